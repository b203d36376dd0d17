"""franchise_scores: a row's franchise record holds exactly the scores of its franchise's anime of strictly earlier
years (property test on random tables: never its own score, a same-year entry's or a later one's), and a
pitch's field is parsed into scores, "a new franchise" or "not said", or refused naming the field."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anipop.data.franchise_scores import (
    MAX_FRANCHISE_SCORES,
    earlier_scores,
    franchise_features,
    parse_franchise_scores,
)
from anipop.data.metadata import MetadataError


@st.composite
def tables(draw) -> pd.DataFrame:
    n = draw(st.integers(1, 40))
    dates = draw(st.lists(st.sampled_from([None, "2001-04-01", "2001-10-01", "2003-01-05", "2005", "2010-07"]),
                          min_size=n, max_size=n))
    return pd.DataFrame({"anime_id": np.arange(n) + 100,
                         "group_id": draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)),
                         "premiered": pd.Series(dates, dtype="string"),
                         "score": draw(st.lists(st.one_of(st.none(), st.floats(1, 10)), min_size=n, max_size=n))})


@settings(max_examples=80, deadline=None)
@given(table=tables(), row=st.integers(0, 39), noise=st.floats(-1, 1))
def test_no_row_sees_its_own_score_a_same_year_one_or_a_later_one(table, row, noise):
    row = row % len(table)
    before = earlier_scores(table)
    year = table["premiered"].str[:4].astype(float)
    unseen = (year.isna() | year[row:row + 1].isna().iloc[0] | (year >= year.iloc[row])).to_numpy()
    changed = table.assign(score=table["score"].astype(float) + np.where(unseen, noise, 0.0))
    assert earlier_scores(changed)[row] == before[row]


@settings(max_examples=60, deadline=None)
@given(table=tables())
def test_a_row_gets_exactly_its_franchise_s_scored_anime_of_earlier_years(table):
    got = earlier_scores(table)
    year = table["premiered"].str[:4].astype(float).to_numpy()
    for i in range(len(table)):
        if np.isnan(year[i]):
            assert got[i] is None  # undated: nothing says what came before it
            continue
        expected = sorted(float(table["score"].iloc[j]) for j in range(len(table))
                          if table["group_id"].iloc[j] == table["group_id"].iloc[i] and not np.isnan(year[j])
                          and year[j] < year[i] and pd.notna(table["score"].iloc[j]))
        assert sorted(got[i]) == expected


def test_a_sequel_reads_its_prequels_and_a_first_entry_reads_none():
    table = pd.DataFrame({"anime_id": [1, 2, 3, 4], "group_id": [1, 1, 1, 4],
                          "premiered": ["2013-04-07", "2017-04-01", "2017-10-09", "2017-01-01"],
                          "score": [8.5, 8.2, 7.0, 6.0]})
    assert earlier_scores(table) == [[], [8.5], [8.5], []]  # the same-year entry (2017) is not a prequel
    features = franchise_features(earlier_scores(table), 4)
    assert np.isnan(features[0, 0]) and features[0, 1] == 0.0  # a new franchise: a record of none
    assert features[1, 0] == 8.5 and features[1, 1] == pytest.approx(np.log(2))
    assert np.isnan(franchise_features(None, 2)).all()  # not said: missing, not "new"


@pytest.mark.parametrize(("value", "expected"), [
    (None, None), (float("nan"), None), ("", None), ("  N/A ", None),
    ("original", []), ("Original", []), ("[]", []), ([], []),
    ("7.9, 8.2", [7.9, 8.2]), ("[7.9, 8.2]", [7.9, 8.2]), ([7, "8.5"], [7.0, 8.5]), (np.array([6.5]), [6.5]),
])
def test_a_pitch_says_its_franchise_s_scores_a_new_franchise_or_nothing(value, expected):
    assert parse_franchise_scores(value) == expected


@pytest.mark.parametrize(("value", "says"), [
    ("7.9, great", "'great' is not a MAL score"),
    ("[7.9, 11]", "'11' is not a MAL score in 1-10"),
    ([0.5], "'0.5' is not a MAL score in 1-10"),
    (["nan"], "'nan' is not a MAL score in 1-10"),
    ([True], "expected scores"),
    ("[7.9,", "not a JSON list"),
    ("[" * 5000, "not a JSON list"),
    (" , ,", "no score in ', ,'; send 'original' for a new franchise"),
    ('{"a": 1}', "is not a MAL score such as 7.9"),
    ({"a": 1}, "got dict"),
    ([7.0] * (MAX_FRANCHISE_SCORES + 1), f"(limit {MAX_FRANCHISE_SCORES})"),
    ("7," * (MAX_FRANCHISE_SCORES * 12), f"more than {MAX_FRANCHISE_SCORES} scores"),
])
def test_a_bad_franchise_scores_value_is_refused_naming_the_field(value, says):
    with pytest.raises(MetadataError, match="franchise_scores") as err:
        parse_franchise_scores(value)
    assert says in str(err.value)
