"""Pitch metadata: parsing of MAL's raw strings, quarantine, the train-only vocabulary, the pitch's
optional fields, Great Expectations, and the pitch models that read them."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from conftest import params_in, request_limits
from fixtures_mal import mal_row, write_mal_csv

from anipop.data.metadata import (
    MISSING,
    UNKNOWN,
    MetadataEncoder,
    MetadataError,
    parse_table,
    parse_values,
    parse_year,
    table_values,
)
from anipop.data.prepare import run_prepare
from anipop.data.schema import PREPARED_ANIME, QUARANTINE, RAW_ANIME, RAW_CHARACTERS, read_table, write_table
from anipop.serving.pitch import PitchError, parse_pitches
from anipop.sources.local import LocalSource
from anipop.steps import call_step

LONG = " ".join(["word"] * 25)


@pytest.mark.parametrize(("field", "raw", "expected"), [
    ("genres", "['Action', 'Award Winning', 'Sci-Fi']", ["Action", "Award Winning", "Sci-Fi"]),
    ("genres", "NOT_EXIST", []),
    ("producers", "['None found', 'add some']", []),          # MAL's placeholder list
    ("studios", "None found, add some", []),                  # ... and its plain-text twin
    ("studios", "Studio Gokumi, AXsiZ", ["Studio Gokumi", "AXsiZ"]),
    ("producers", "['Aniplex', 'Dentsu', 'Aniplex', '']", ["Aniplex", "Dentsu"]),  # duplicates and empty items
    ("type", "Unknown", []),
    ("source", "N/A", []),
    ("source", "Light novel", ["Light novel"]),
    ("demographic", "Shounen", ["Shounen"]),
    ("themes", "['Gore &amp; Horror']", ["Gore & Horror"]),  # HTML entities unescaped
])
def test_raw_strings_parse_into_clean_values(field, raw, expected):
    assert parse_values(field, raw) == expected


@pytest.mark.parametrize(("field", "raw", "why"), [
    ("producers", "['Aniplex', 'Dentsu'", "malformed list"),
    ("genres", "{'Action': 1}", None),  # not a list literal: read as one odd genre name, not an error
    ("type", "['TV', 'Movie']", "one value expected"),
    ("genres", 3, "expected text"),
])
def test_unparseable_values_are_errors_naming_the_field(field, raw, why):
    if why is None:
        assert parse_values(field, raw) == ["{'Action': 1}"]
        return
    with pytest.raises(MetadataError, match=f"field '{field}'.*{why}"):
        parse_values(field, raw)


def test_year_of_a_pitch():
    assert parse_year("2027") == 2027.0 and parse_year(None) is None and parse_year("") is None
    for bad in ("soon", "2027.5", "3000", True):
        with pytest.raises(MetadataError, match="year"):
            parse_year(bad)


def test_local_ingest_keeps_demographic_and_producers_raw(tmp_path):
    csv = write_mal_csv(tmp_path / "mal.csv", [
        mal_row(1, demographic="Seinen", producers="['Aniplex', 'Dentsu']"),
        mal_row(2, producers="['Aniplex'"),  # malformed: kept raw here, prepare decides
    ])
    anime = LocalSource(path=csv).ingest(tmp_path / "raw").anime.set_index("anime_id")
    assert anime.loc[1, "demographic"] == "Seinen" and anime.loc[1, "producers"] == "['Aniplex', 'Dentsu']"
    assert anime.loc[2, "producers"] == "['Aniplex'"  # the anime is not lost at ingest


def test_prepare_parses_metadata_and_quarantines_only_the_bad_field(tmp_path):
    params = params_in(tmp_path)
    rows = [{"anime_id": i, "title": f"A{i}", "synopsis": LONG, "score": 5.0 + i % 40 / 10, "type": "TV",
             "source": "Unknown", "genres": "Action, Drama", "demographic": "NOT_EXIST",
             "producers": "['Aniplex', 'Dentsu']", "rating": "R - 17+ (violence & profanity)"}
            for i in range(1, 41)]
    rows[0]["producers"] = "['Aniplex'"
    raw = pd.DataFrame(rows).reindex(columns=RAW_ANIME.column_names)
    write_table(RAW_ANIME, raw, params.paths.raw_dir / "anime.parquet")
    write_table(RAW_CHARACTERS, RAW_CHARACTERS.empty(), params.paths.raw_dir / "characters.parquet")
    write_table(QUARANTINE, QUARANTINE.empty(), params.paths.raw_dir / "quarantine.parquet")
    call_step(run_prepare, params)
    anime = read_table(PREPARED_ANIME, params.paths.prepared_dir / "anime.parquet").set_index("anime_id")
    assert len(anime) == 40  # the anime with the malformed list is kept, without that field
    assert pd.isna(anime.loc[1, "producers"]) and anime.loc[2, "producers"] == "Aniplex, Dentsu"
    assert anime["source"].isna().all() and anime["demographic"].isna().all()  # "Unknown", NOT_EXIST
    assert anime.loc[2, "rating"] == "R - 17+ (violence & profanity)"
    quarantine = read_table(QUARANTINE, params.paths.prepared_dir / "quarantine.parquet")
    bad = quarantine[quarantine["rule"] == "unparseable_metadata"]
    assert bad[["row_key", "field"]].values.tolist() == [["1", "producers"]]
    assert "malformed list" in bad["reason"].iloc[0]


def test_prepared_table_written_before_metadata_reads_as_missing(tmp_path):
    old = pd.DataFrame({"anime_id": [1], "title": ["A"], "synopsis": [LONG], "score": [7.0], "score_norm": [0.5],
                        "split": ["train"], "group_id": [1], "premiered": ["2010"]})
    old.to_parquet(tmp_path / "old.parquet")
    table = read_table(PREPARED_ANIME, tmp_path / "old.parquet")
    assert table["genres"].isna().all() and table_values(table, "genres") == [[]]


def test_vocabulary_is_learned_on_train_only_and_unknown_values_are_unknown():
    train = {"studios": [["Sunrise"], ["Sunrise"], ["Bones"], []]}
    encoder = MetadataEncoder(["studios"], min_count=2).fit(train)
    assert encoder.columns == ["studios=Sunrise", f"studios={UNKNOWN}", f"studios={MISSING}"]  # Bones: rare
    matrix = encoder.transform({"studios": [["Sunrise"], ["Brand New Studio"], [], ["Bones", "Sunrise"]]}).toarray()
    assert matrix.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]]


def test_pitch_accepts_metadata_and_unknown_values():
    frame = pd.DataFrame({"synopsis": ["A detective and a ghost solve crimes in a rainy harbour town."],
                          "genres": ["Mystery, Supernatural"], "studios": ['["A Studio Nobody Knows"]'],
                          "type": ["TV"], "year": ["2027"]})
    pitch = parse_pitches(frame, request_limits())[0]
    assert pitch.metadata == {"genres": ["Mystery", "Supernatural"], "studios": ["A Studio Nobody Knows"],
                              "type": ["TV"]}
    assert pitch.year == 2027.0
    assert parse_pitches(frame[["synopsis"]], request_limits())[0].metadata == {}  # every metadata field is optional


@pytest.mark.parametrize(("column", "value", "message"), [
    ("genre", "Action", "unknown field(s) ['genre'] (did you mean 'genres'?)"),
    ("studio", "Sunrise", "did you mean 'studios'?"),
    ("type", '["TV", "Movie"]', "row 0, field 'type': one value expected"),
    ("year", "next spring", "row 0, field 'year'"),
])
def test_misspelt_or_bad_metadata_fields_are_rejected(column, value, message):
    with pytest.raises(PitchError, match=re.escape(message)):
        parse_pitches(pd.DataFrame({"synopsis": ["A story."], column: [value]}), request_limits())


def test_great_expectations_catch_unparsed_metadata(tmp_path):
    from anipop.data.validate import prepared_anime_suite

    anime = pd.DataFrame({"anime_id": [1, 2], "title": ["A", "B"], "synopsis": [LONG, LONG], "score": [7.0, 6.0],
                          "score_norm": [0.5, 0.4], "split": ["train", "train"], "group_id": [1, 2],
                          "premiered": ["2010", "2011"], "genres": ["Action, Drama", "['Action']"],
                          "type": ["TV", "Unknown"]})
    anime = PREPARED_ANIME.conform(anime)
    clean, _ = parse_table(anime)
    suite, frame, _ = prepared_anime_suite(anime)
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    batch = context.data_sources.add_pandas("p").add_dataframe_asset("a").add_batch_definition_whole_dataframe("b")
    failed = {(r.expectation_config.kwargs.get("column"), r.expectation_config.type)
              for r in batch.get_batch(batch_parameters={"dataframe": frame}).validate(suite).results if not r.success}
    assert ("genres", "expect_column_values_to_not_match_regex") in failed
    assert ("type", "expect_column_values_to_not_be_in_set") in failed
    suite, frame, _ = prepared_anime_suite(clean)
    assert batch.get_batch(batch_parameters={"dataframe": frame}).validate(suite).success
