"""Property-based tests (hypothesis) of the parsers and the cleaning rules.

The example tests (test_parsing, test_local_source, test_prepare) pin known cases; these state what must hold
for *any* input a scrape can bring: a parser returns a value of its type or raises ParseError, never
another exception; a parsed row always fits the raw schema and writes to parquet; every row is either kept
or quarantined, once, and a kept row satisfies every rule while a quarantined one breaks the rule it names.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_mal import CSV_COLUMNS
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from anipop.core.artifacts import MinMaxScaler
from anipop.core.config import PrepareParams, SplitRatios
from anipop.data.prepare import clean_anime, clean_characters
from anipop.data.schema import QUARANTINE, RAW_ANIME, RAW_CHARACTERS
from anipop.sources.local import parse_rows
from anipop.sources.parsing import (
    INT64_MAX,
    MAL_SCORE_RANGE,
    ParseError,
    clean_synopsis,
    clean_text,
    is_missing,
    parse_count,
    parse_first_air_date,
    parse_name_list,
    parse_score,
)

# ---------------------------------------------------------------- strategies

UNDECODABLE = st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF)  # bytes surrogateescape could not decode
NUMBER_PARTS = st.sampled_from(["0", "7", "12", "999", ",", ".", "_", "#", "-", "+", "e", "E", " ", "N/A", "inf",
                                "nan", "1e20", "99999999999999999999", "٣", "²", "0x1F"])
number_like = st.one_of(
    st.lists(NUMBER_PARTS, max_size=8).map("".join),
    st.integers(min_value=-10, max_value=10**30).map(lambda n: f"{n:,}"),  # past int64 too
)
messy_text = st.one_of(
    st.text(),
    st.text(st.characters(codec="utf-8") | UNDECODABLE),
    st.lists(st.sampled_from(["&amp;", "&#039;", "&lt;", "&#0;", "&#xD800;", "\n", "\t", " ", "\x00", "\x85",
                              "[Written by MAL Rewrite]", "word", "é", "N/A", "No synopsis has been added"]),
             max_size=12).map("".join),
)
literal_atom = st.one_of(st.integers(), st.text(max_size=5).map(repr), st.just("None"), st.just("..."),
                         st.just("[]"), st.just("{}"), st.just("b'x'"))
# Python-literal-shaped text: nested lists, dicts and sets, so unhashable keys and odd nestings come up
list_like = st.recursive(
    literal_atom.map(str),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda items: "[" + ", ".join(items) + "]"),
        st.lists(st.tuples(inner, inner), max_size=2).map(
            lambda pairs: "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"),
        st.lists(inner, min_size=1, max_size=2).map(lambda items: "{" + ", ".join(items) + "}"),
    ),
    max_leaves=8,
).map(lambda text: text if text.startswith("[") else f"[{text}]")


# ---------------------------------------------------------------- parsers

@given(st.one_of(number_like, messy_text))
def test_parse_count_gives_an_int64_count_or_a_parse_error(text):
    try:
        count = parse_count(text)
    except ParseError:
        return
    assert count is None or (type(count) is int and 0 <= count <= INT64_MAX)


@given(st.integers(min_value=0, max_value=INT64_MAX), st.booleans(), st.booleans())
def test_parse_count_is_exact_over_the_whole_int64_range(number, separators, hash_prefix):
    # floats round past 2**53: a count (or an id) must never come back as a neighbour of itself
    text = ("#" if hash_prefix else "") + (f"{number:,}" if separators else str(number))
    assert parse_count(text) == number


@given(st.integers(min_value=INT64_MAX + 1, max_value=10**40))
def test_counts_past_int64_are_a_row_error(number):
    with pytest.raises(ParseError, match="too large"):
        parse_count(f"{number:,}")


@given(st.one_of(number_like, messy_text, st.floats().map(repr)))
def test_parse_score_gives_a_mal_score_or_a_parse_error(text):
    try:
        score = parse_score(text)
    except ParseError:
        return
    low, high = MAL_SCORE_RANGE
    assert score is None or (np.isfinite(score) and low <= score <= high)


@given(st.floats(allow_nan=False, allow_infinity=False).filter(lambda s: not 1.0 <= s <= 10.0))
def test_out_of_range_scores_are_rejected(score):
    # exponent notation (repr of very large or small floats) is rejected as not being a MAL score at all
    with pytest.raises(ParseError, match="outside|not a MyAnimeList score"):
        parse_score(repr(score))


@given(st.one_of(list_like, messy_text))
def test_parse_name_list_gives_text_or_a_parse_error(text):
    try:
        names = parse_name_list(text)
    except ParseError:
        return
    assert names is None or (isinstance(names, str) and names and not names.startswith(", "))


plain_name = st.text(st.characters(codec="utf-8", categories=["L", "N", "Zs"]), min_size=1, max_size=10)


@given(st.lists(plain_name.map(str.strip).filter(lambda name: name and not is_missing(name)), max_size=5))
def test_parse_name_list_round_trips_a_written_list(names):
    # both ways MAL writes a list: a Python literal and plain comma-separated text
    assert parse_name_list(repr(names)) == (", ".join(names) or None)
    assume(not any("," in name for name in names))
    assert parse_name_list(", ".join(names)) == (", ".join(names) or None)


@given(messy_text)
def test_clean_text_output_is_normalised(text):
    cleaned = clean_text(text)
    if cleaned is None:
        return
    assert cleaned == cleaned.strip() and "  " not in cleaned
    assert not any(ch in cleaned for ch in "\x00\x0b\x0c\x1f\x7f\n\t\r")
    synopsis = clean_synopsis(text)
    assert synopsis in (None, cleaned)


@given(messy_text)
def test_parse_first_air_date_never_raises(text):
    date = parse_first_air_date(text)
    assert date is None or date[:4].isdigit()


# ---------------------------------------------------------------- the local source's rows

def mostly(valid: st.SearchStrategy, garbage: st.SearchStrategy) -> st.SearchStrategy:
    """Valid values three times in four, so whole rows often survive and reach the tables' writers."""
    return st.one_of(valid, valid, valid, garbage)


COUNT_COLUMNS = ("members", "favorites", "episodes")
column_values = {
    "score": mostly(st.sampled_from(["7.5", "8,25", "N/A", "", "10", "1.0"]), st.one_of(number_like, messy_text)),
    **{c: mostly(st.sampled_from(["12", "3,689,853", "#110", "N/A", "Unknown"]), number_like) for c in COUNT_COLUMNS},
    **{c: mostly(st.sampled_from(["['Action', 'Drama']", "Sunrise, Bones", "[]", "NOT_EXIST"]),
                 st.one_of(list_like, messy_text)) for c in ("genres", "themes", "studios")},
    "title": mostly(st.text(min_size=1), messy_text),
}


@st.composite
def csv_frames(draw) -> pd.DataFrame:
    """A few CSV records as pandas reads them (every value text), ids drawn from a small pool to collide."""
    count = draw(st.integers(min_value=0, max_value=6))
    records = []
    for _ in range(count):
        record = {column: draw(column_values.get(column, messy_text)) for column in CSV_COLUMNS}
        record["mal_id"] = draw(mostly(st.sampled_from(["1", "2", "3", "#4", "5,000"]), number_like))
        records.append(record)
    return pd.DataFrame(records, columns=CSV_COLUMNS, dtype=object)


@settings(max_examples=60, deadline=None)
@given(csv_frames())
def test_parsed_rows_fit_the_raw_schema_and_nothing_is_lost(frame):
    rows, rejected = parse_rows(frame, origin="anime.csv")
    assert len(rows) + len(rejected) == len(frame)  # every record is either kept or quarantined
    for text in (value for row in rows for value in row.values() if isinstance(value, str)):
        assert text == text.strip() and text.encode("utf-8")  # kept text is trimmed, non-empty and valid UTF-8
    anime = RAW_ANIME.conform(pd.DataFrame(rows, columns=RAW_ANIME.column_names))
    assert anime["anime_id"].is_unique
    quarantine = QUARANTINE.conform(pd.DataFrame(rejected, columns=QUARANTINE.column_names))
    assert quarantine["reason"].str.startswith("anime.csv:").all()  # each reason names the file and line
    for table in (anime, quarantine):  # no lone surrogate or other unwritable value reaches a table
        table.to_parquet(io.BytesIO(), index=False)


# ---------------------------------------------------------------- prepare's cleaning rules

synopsis_value = st.one_of(st.none(), st.just(" "), st.lists(st.sampled_from(["hero", "ship", "a", "ocean"]),
                                                               max_size=30).map(" ".join),
                           st.text(st.sampled_from("ab "), min_size=1, max_size=80))


@st.composite
def raw_anime_tables(draw) -> pd.DataFrame:
    ids = draw(st.lists(st.integers(min_value=1, max_value=10**6), unique=True, max_size=25))
    rows = [{"anime_id": anime_id, "title": f"A{anime_id}", "synopsis": draw(synopsis_value),
             "score": draw(st.one_of(st.none(), st.floats(min_value=1, max_value=10)))} for anime_id in ids]
    return RAW_ANIME.conform(pd.DataFrame(rows).reindex(columns=RAW_ANIME.column_names))


prepare_rules = st.builds(
    PrepareParams, drop_unscored=st.booleans(), min_synopsis_words=st.integers(0, 12),
    max_synopsis_chars=st.integers(1, 60), drop_characters_without_description=st.booleans(),
    drop_characters_without_portrait=st.booleans(), split=st.just(SplitRatios(train=0.8, val=0.1, test=0.1)))


def _broken_rule(row: pd.Series, rules: PrepareParams) -> str | None:
    """The first anime rule `row` breaks, in the order prepare applies them (an independent restatement)."""
    if rules.drop_unscored and pd.isna(row["score"]):
        return "unscored"
    if pd.isna(row["synopsis"]):
        return "no_synopsis"
    if len(row["synopsis"]) > rules.max_synopsis_chars:
        return "synopsis_too_long"
    if len(row["synopsis"].split()) < rules.min_synopsis_words:
        return "short_synopsis"
    return None


@settings(max_examples=80, deadline=None)
@given(raw_anime_tables(), prepare_rules)
def test_anime_rules_partition_the_rows(anime, rules):
    quarantine: list[dict] = []
    kept = clean_anime(anime, rules, quarantine)
    rejected = {record["row_key"]: record for record in quarantine}
    assert len(rejected) == len(quarantine)  # a row is quarantined once, by the first rule it breaks
    assert set(kept["anime_id"].astype(str)) | set(rejected) == set(anime["anime_id"].astype(str))
    assert set(kept["anime_id"].astype(str)).isdisjoint(rejected)
    for _, row in anime.iterrows():
        broken = _broken_rule(row, rules)
        record = rejected.get(str(row["anime_id"]))
        assert (record and record["rule"]) == broken or (record is None and broken is None), (row.to_dict(), record)
        if record:
            assert record["stage"] == "prepare" and record["table"] == "anime" and record["reason"]


@pytest.fixture(scope="module")
def portraits(tmp_path_factory) -> Path:
    raw_dir = tmp_path_factory.mktemp("raw")
    (raw_dir / "images").mkdir()
    Image.new("RGB", (6, 9), (10, 20, 30)).save(raw_dir / "images" / "good.png")
    (raw_dir / "images" / "bad.jpg").write_bytes(b"\xff\xd8 not an image")
    return raw_dir


character_value = st.fixed_dictionaries({
    "anime_id": st.integers(1, 6), "role": st.sampled_from(["Main", "main", "Supporting", None]),
    "description": st.sampled_from([None, "", "  ", "a brave pilot"]),
    "portrait_path": st.sampled_from([None, "images/good.png", "images/bad.jpg", "images/missing.png"]),
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(character_value, max_size=15), st.sets(st.integers(1, 6)), prepare_rules)
def test_character_rules_partition_the_rows(portraits, characters, kept_anime, rules):
    rows = [{**value, "character_id": i, "name": f"C{i}"} for i, value in enumerate(characters)]
    frame = RAW_CHARACTERS.conform(pd.DataFrame(rows, columns=RAW_CHARACTERS.column_names))
    quarantine: list[dict] = []
    kept = clean_characters(frame, kept_anime, portraits, rules, quarantine)
    keys = [f"{a}:{c}" for a, c in zip(kept["anime_id"], kept["character_id"])]
    assert len(keys) + len(quarantine) == len(frame)
    assert set(keys).isdisjoint(record["row_key"] for record in quarantine)
    assert set(kept["anime_id"]) <= kept_anime and (kept["role"].str.lower() == "main").all()
    if rules.drop_characters_without_description:
        assert (kept["description"].fillna("").str.strip() != "").all()
    if rules.drop_characters_without_portrait:
        assert set(kept["portrait_path"]) <= {"images/good.png"}
    for record in quarantine:
        if record["rule"] == "unreadable_portrait":  # the reason names the file
            assert str(portraits / "images") in record["reason"]


@settings(deadline=None)
@given(st.lists(st.floats(min_value=1, max_value=10), min_size=2, max_size=50).filter(lambda s: max(s) > min(s)))
def test_score_scaler_maps_train_scores_into_0_1_and_back(scores):
    series = pd.Series(scores)
    scaler = MinMaxScaler.fit(series)
    normalised = scaler.transform(series)
    assert normalised.min() == 0.0 and normalised.max() == 1.0
    np.testing.assert_allclose(scaler.inverse(normalised), series, rtol=1e-9, atol=1e-9)
    assert MinMaxScaler.from_dict(json.loads(json.dumps(scaler.to_dict()))) == scaler
