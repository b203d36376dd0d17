"""Parsers of dirty MAL values: known missing markers are None, garbage raises ParseError."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anipop.sources.parsing import (
    ParseError,
    clean_synopsis,
    clean_text,
    parse_count,
    parse_first_air_date,
    parse_name_list,
    parse_score,
)


@pytest.mark.parametrize("raw, expected", [("3,689,853", 3689853), ("#110", 110), ("0", 0), ("N/A", None),
                                           ("Unknown", None), ("", None), (None, None), ("12.0", 12)])
def test_parse_count(raw, expected):
    assert parse_count(raw) == expected


@pytest.mark.parametrize("raw", ["-3", "1.5", "abc", "inf"])
def test_parse_count_rejects(raw):
    with pytest.raises(ParseError):
        parse_count(raw)


@pytest.mark.parametrize("raw, expected", [("8.75", 8.75), ("1", 1.0), ("10", 10.0), ("N/A", None), ("", None)])
def test_parse_score(raw, expected):
    assert parse_score(raw) == expected


@pytest.mark.parametrize("raw", ["0", "11", "-2", "nan%", "9.5.1", "1,000", "8,5", "1e1", "1_0", "inf", "0x8",
                                 " 7 .5", "８.５"])
def test_parse_score_rejects_out_of_range_and_garbage(raw):
    with pytest.raises(ParseError):
        parse_score(raw)


def test_clean_text_unescapes_and_collapses():
    assert clean_text("Tom &amp; Jerry&#039;s\n\n  show\x00 [Written by MAL Rewrite]") == "Tom & Jerry's show"
    assert clean_text("   ") is None


def test_placeholder_synopsis_is_missing():
    placeholder = "No synopsis information has been added to this title. Help improve our database."
    assert clean_synopsis(placeholder) is None


def test_name_lists():
    assert parse_name_list("['Action', 'Drama', '']") == "Action, Drama"
    assert parse_name_list("Sunrise, Bones") == "Sunrise, Bones"
    assert parse_name_list("NOT_EXIST") is None
    with pytest.raises(ParseError):
        parse_name_list("['unterminated")


@pytest.mark.parametrize("raw, expected", [("Apr 7, 2013 to Sep 29, 2013", "2013-04-07"), ("Apr 2013", "2013-04"),
                                           ("2005", "2005"), ("Not available", None), ("?", None)])
def test_first_air_date(raw, expected):
    assert parse_first_air_date(raw) == expected


@given(st.integers(min_value=0, max_value=10**12))
def test_count_round_trips_with_separators(number):
    assert parse_count(f"{number:,}") == number


@given(st.floats(min_value=1.0, max_value=10.0, allow_nan=False))
def test_every_in_range_score_parses(score):
    assert parse_score(repr(score)) == pytest.approx(score)


@given(st.text())
def test_parsers_never_raise_anything_but_parse_error(text):
    for parser in (parse_count, parse_score, parse_name_list):
        try:
            parser(text)
        except ParseError:
            pass
    cleaned = clean_text(text)
    assert cleaned is None or (cleaned == cleaned.strip() and "  " not in cleaned)
