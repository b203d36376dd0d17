"""Track records: no row's record uses its own score, its franchise's, or a later year's anime (property tests on
random tables), the served pitch reads the same table, and the table travels as data beside the model."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from anipop.modeling.track_records import TrackRecords

STUDIOS = ["Sunrise", "Bones", "Madhouse", "Toei"]


class WithRecords:
    """Stands in for a pitch model in the save/load test: anything with a `records` attribute."""

    def __init__(self, records: TrackRecords) -> None:
        self.records = records


@st.composite
def tables(draw):
    n = draw(st.integers(2, 40))
    years = draw(st.lists(st.sampled_from([np.nan, 2001.0, 2003.0, 2005.0, 2008.0, 2010.0]), min_size=n, max_size=n))
    groups = draw(st.lists(st.integers(0, 8), min_size=n, max_size=n))
    studios = draw(st.lists(st.lists(st.sampled_from(STUDIOS), max_size=2, unique=True), min_size=n, max_size=n))
    scores = draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))
    return np.array(years), np.array(groups), studios, np.array(scores)


def _features(years, groups, studios, scores, shrink=3.0):
    records = TrackRecords(["studios"], shrink=shrink, recent_years=4).fit({"studios": studios}, years, groups, scores)
    return records.features({"studios": studios}, years, groups)


@settings(max_examples=80, deadline=None)
@given(table=tables(), row=st.integers(0, 39), noise=st.floats(-1, 1))
def test_no_record_moves_with_its_own_score_its_franchise_or_a_later_year(table, row, noise):
    years, groups, studios, scores = table
    row = row % len(years)
    before = _features(years, groups, studios, scores)
    # change every score the row must not see: its own, its franchise's, every anime of its year or later
    unseen = (groups == groups[row]) | np.isnan(years) | (np.isnan(years[row]) | (years >= years[row]))
    changed = scores + np.where(unseen, noise, 0.0)
    after = _features(years, groups, studios, changed)
    np.testing.assert_allclose(after[row], before[row], equal_nan=True)


@settings(max_examples=40, deadline=None)
@given(table=tables())
def test_the_record_is_the_shrunk_mean_of_exactly_the_earlier_other_franchise_anime(table):
    years, groups, studios, scores = table
    shrink = 3.0
    got = _features(years, groups, studios, scores, shrink)
    for i in range(len(years)):
        if np.isnan(years[i]):
            assert np.isnan(got[i]).all()  # undated: nothing says which anime came before it
            continue
        seen = [j for j in range(len(years)) if not np.isnan(years[j]) and years[j] < years[i] and groups[j] != groups[i]]
        prior = np.mean(scores[seen]) if seen else 0.5
        if not studios[i]:
            assert np.isnan(got[i, 0]) and got[i, 1] == 0.0
            continue
        expected = [(sum(scores[j] for j in seen if v in studios[j]) + shrink * prior)
                    / (sum(1 for j in seen if v in studios[j]) + shrink) for v in studios[i]]
        assert got[i, 0] == np.float64(np.mean(expected)) or abs(got[i, 0] - np.mean(expected)) < 1e-9
        assert abs(got[i, 1] - np.log1p(sum(sum(1 for j in seen if v in studios[j]) for v in studios[i]))) < 1e-9


def test_a_pitch_sees_every_earlier_anime_and_without_a_year_all_of_them():
    years = np.array([2001.0, 2005.0, 2010.0])
    studios = [["Bones"], ["Bones"], ["Bones"]]
    records = TrackRecords(["studios"], shrink=0.0).fit({"studios": studios}, years, np.array([1, 2, 3]),
                                                        np.array([0.2, 0.4, 0.9]))
    pitch = records.features({"studios": [["Bones"], ["Bones"], ["A New Studio"]]}, np.array([2006.0, np.nan, 2030.0]))
    assert abs(pitch[0, 0] - 0.3) < 1e-12 and abs(pitch[1, 0] - 0.5) < 1e-12  # 2006: the first two; no year: all three
    assert abs(pitch[2, 0] - 0.5) < 1e-12 and pitch[2, 1] == 0.0  # a studio never seen: the history's mean, no anime


def test_the_table_travels_as_data_beside_the_pickled_model(tmp_path):
    from anipop.core.artifacts import ModelBundle, load_bundle, records_path, save_bundle

    records = TrackRecords(["studios"]).fit({"studios": [["Bones"], ["Toei"]]}, np.array([2001.0, 2002.0]),
                                            np.array([1, 2]), np.array([0.3, 0.6]))
    bundle = ModelBundle(name="m", model=WithRecords(records), inputs=["studios"], input_set="studios",
                         input_type="pitch", train_mean=0.5, aggregation="mean", image_size=32)
    save_bundle(bundle, tmp_path / "model.joblib")
    table = pd.read_parquet(records_path(tmp_path / "model.joblib"))
    assert sorted(table["value"]) == ["", "", "Bones", "Toei"] and records.history is not None  # caller's untouched
    loaded = load_bundle(tmp_path / "model.joblib")
    np.testing.assert_allclose(loaded.model.records.features({"studios": [["Bones"]]}, np.array([2005.0])),
                               records.features({"studios": [["Bones"]]}, np.array([2005.0])))
