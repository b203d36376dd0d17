"""The local source: dirty MAL values are parsed; unparseable rows are quarantined with line and field."""

from __future__ import annotations

from conftest import params_in
from fixtures_mal import mal_row, write_mal_csv

from anipop.data.schema import QUARANTINE, RAW_ANIME, read_table
from anipop.sources.ingest import run_ingest
from anipop.sources.local import LocalSource
from anipop.steps import call_step


def test_dirty_values_are_parsed_and_bad_rows_quarantined(tmp_path):
    csv = write_mal_csv(tmp_path / "anime.csv", [
        mal_row(1, members="3,689,853", synopsis="Tom &amp; Jerry&#039;s   long\n\nstory"),
        mal_row(2, score="N/A"),
        mal_row(3, score="11"),
        mal_row(1, members="3,689,853", synopsis="Tom &amp; Jerry&#039;s   long\n\nstory"),  # an identical copy
        mal_row(4, members="lots"),
        {**mal_row(5), "mal_id": "abc"},
    ])
    result = LocalSource(path=csv).ingest(tmp_path / "raw")
    anime = result.anime.set_index("anime_id")
    assert sorted(anime.index) == [1, 2]
    assert anime.loc[1, "members"] == 3689853
    assert anime.loc[1, "synopsis"] == "Tom & Jerry's long story"
    assert anime.loc[1, "premiered"] == "2013-04-07"
    assert anime.loc[1, "title"] == "Anime1"  # an identical duplicate is kept once
    assert anime["score"].isna().tolist() == [False, True]
    reasons = result.quarantine.set_index("row_key")
    assert "outside MyAnimeList's 1-10 range" in reasons.loc["3", "reason"]
    # CSV line 6: row 1's quoted synopsis spans lines 2-4 (its two newlines), row 2 is line 5
    assert reasons.loc["3", "field"] == "score" and ":6:" in reasons.loc["3", "reason"]
    assert reasons.loc["1", "rule"] == "duplicate_id" and "kept once" in reasons.loc["1", "reason"]
    assert reasons.loc["4", "field"] == "members"
    assert any("mal_id" in r for r in result.quarantine["reason"])
    assert len(result.anime) + len(result.quarantine) == 6  # nothing silently dropped


def test_limit_reads_first_rows(tmp_path):
    csv = write_mal_csv(tmp_path / "anime.csv.gz", [mal_row(i) for i in range(1, 11)])
    assert len(LocalSource(path=csv, limit=4).ingest(tmp_path).anime) == 4


def test_run_ingest_writes_schema_tables(tmp_path):
    csv = write_mal_csv(tmp_path / "anime.csv", [mal_row(1), mal_row(2, score="0")])
    params = params_in(tmp_path, ingest={"local_path": csv})
    report = call_step(run_ingest, params)
    assert report == {**report, "anime": 1, "characters": 0, "quarantined": 1}
    assert len(read_table(RAW_ANIME, params.paths.raw_dir / "anime.parquet")) == 1
    assert read_table(QUARANTINE, params.paths.raw_dir / "quarantine.parquet")["row_key"].tolist() == ["2"]


def test_scores_that_are_not_mal_scores_are_quarantined_with_the_reason(tmp_path):
    """'1,000' once read as 1.0 and moved the train minimum (the scale every model is compared on)."""
    from anipop.data.prepare import run_prepare

    rows = [mal_row(i, score=f"{5 + i / 20:.2f}", synopsis=" ".join(["word"] * 30)) for i in range(1, 41)]
    rows += [mal_row(41, score="1,000"), mal_row(42, score="N/A"), mal_row(43, score="Unknown"),
             mal_row(44, score="8,5"), mal_row(45, score="1e1"), mal_row(46, score="1_0")]
    params = params_in(tmp_path, ingest={"local_path": write_mal_csv(tmp_path / "anime.csv", rows)})
    call_step(run_ingest, params)
    call_step(run_prepare, params)
    raw = read_table(QUARANTINE, params.paths.raw_dir / "quarantine.parquet").set_index("row_key")
    for key, value in (("41", "1,000"), ("44", "8,5"), ("45", "1e1"), ("46", "1_0")):
        assert raw.loc[key, "field"] == "score" and value in raw.loc[key, "reason"], key
    prepared = read_table(QUARANTINE, params.paths.prepared_dir / "quarantine.parquet").set_index("row_key")
    for key in ("42", "43"):  # MAL's unscored markers: quarantined by prepare's `unscored` rule
        assert prepared.loc[key, "rule"] == "unscored", key
    anime = read_table(RAW_ANIME, params.paths.raw_dir / "anime.parquet")
    assert anime["score"].min() == 5.05  # nothing moved the scale


def test_duplicate_ids_with_conflicting_scores_are_all_quarantined(tmp_path):
    csv = write_mal_csv(tmp_path / "anime.csv", [mal_row(1, score="8.1"), mal_row(2), mal_row(1, score="3.2"),
                                                mal_row(3), mal_row(3)])
    result = LocalSource(path=csv).ingest(tmp_path / "raw")
    assert sorted(result.anime["anime_id"]) == [2, 3]  # the identical pair of id 3 is kept once
    conflicts = result.quarantine[result.quarantine["row_key"] == "1"]
    assert len(conflicts) == 2 and (conflicts["rule"] == "duplicate_id").all()
    assert conflicts["reason"].str.contains(r":2:.*:2, .*:4\) with different \['score'\]").any()
    assert len(result.anime) + len(result.quarantine) == 5


def test_a_malformed_row_is_quarantined_with_its_line_and_the_rest_is_read(tmp_path):
    csv = write_mal_csv(tmp_path / "anime.csv", [mal_row(i) for i in range(1, 6)])
    lines = csv.read_text().splitlines(keepends=True)
    lines[3] = lines[3].rstrip("\n") + ",one too many\n"  # line 4 of the file: the third record
    csv.write_text("".join(lines))
    result = LocalSource(path=csv).ingest(tmp_path / "raw")
    assert sorted(result.anime["anime_id"]) == [1, 2, 4, 5]
    (reason,) = result.quarantine["reason"]
    assert reason.startswith(f"{csv}:4: ") and "29 fields where the header has 28" in reason


def test_a_truncated_archive_fails_in_one_line_naming_the_file(tmp_path):
    from typer.testing import CliRunner

    from anipop.cli import app

    csv = write_mal_csv(tmp_path / "anime.csv.gz", [mal_row(i) for i in range(1, 200)])
    csv.write_bytes(csv.read_bytes()[: len(csv.read_bytes()) // 2])
    params_file = tmp_path / "params.yaml"
    params_file.write_text(params_in(tmp_path, ingest={"local_path": csv}).model_dump_json())
    result = CliRunner().invoke(app, ["ingest", "--params", str(params_file)])
    assert result.exit_code == 1, result.output
    (line,) = [line for line in result.output.splitlines() if "error" in line]
    assert f"{csv}: truncated or corrupt gzip archive" in line and "Traceback" not in result.output
