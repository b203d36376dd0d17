"""The local source: dirty MAL values are parsed; unparseable rows are quarantined with line and field."""

from __future__ import annotations

from anipop.ingest import run_ingest
from anipop.schema import QUARANTINE, RAW_ANIME, read_table
from anipop.sources.local import LocalSource
from conftest import params_in
from fixtures_mal import mal_row, write_mal_csv


def test_dirty_values_are_parsed_and_bad_rows_quarantined(tmp_path):
    csv = write_mal_csv(tmp_path / "anime.csv", [
        mal_row(1, members="3,689,853", synopsis="Tom &amp; Jerry&#039;s   long\n\nstory"),
        mal_row(2, score="N/A"),
        mal_row(3, score="11"),
        mal_row(1, title="Duplicate of one"),
        mal_row(4, members="lots"),
        {**mal_row(5), "mal_id": "abc"},
    ])
    result = LocalSource(path=csv).ingest(tmp_path / "raw")
    anime = result.anime.set_index("anime_id")
    assert sorted(anime.index) == [1, 2]
    assert anime.loc[1, "members"] == 3689853
    assert anime.loc[1, "synopsis"] == "Tom & Jerry's long story"
    assert anime.loc[1, "premiered"] == "2013-04-07"
    assert anime.loc[1, "title"] == "Anime1"  # the first of duplicated ids is kept
    assert anime["score"].isna().tolist() == [False, True]
    reasons = result.quarantine.set_index("row_key")
    assert "outside MyAnimeList's 1-10 range" in reasons.loc["3", "reason"]
    # CSV line 6: row 1's quoted synopsis spans lines 2-4 (its two newlines), row 2 is line 5
    assert reasons.loc["3", "field"] == "score" and ":6:" in reasons.loc["3", "reason"]
    assert reasons.loc["1", "rule"] == "duplicate_id"
    assert reasons.loc["4", "field"] == "members"
    assert any("mal_id" in r for r in result.quarantine["reason"])
    assert len(result.anime) + len(result.quarantine) == 6  # nothing silently dropped


def test_limit_reads_first_rows(tmp_path):
    csv = write_mal_csv(tmp_path / "anime.csv.gz", [mal_row(i) for i in range(1, 11)])
    assert len(LocalSource(path=csv, limit=4).ingest(tmp_path).anime) == 4


def test_run_ingest_writes_schema_tables(tmp_path):
    csv = write_mal_csv(tmp_path / "anime.csv", [mal_row(1), mal_row(2, score="0")])
    params = params_in(tmp_path, ingest={"local_path": csv})
    report = run_ingest(params)
    assert report == {**report, "anime": 1, "characters": 0, "quarantined": 1}
    assert len(read_table(RAW_ANIME, params.paths.raw_dir / "anime.parquet")) == 1
    assert read_table(QUARANTINE, params.paths.raw_dir / "quarantine.parquet")["row_key"].tolist() == ["2"]
