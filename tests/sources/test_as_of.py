"""The data as of a date (ingest.as_of): no anime of the future reaches prepare or training, for any date."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest
from conftest import REAL_DATA, params_in
from fixtures_mal import mal_row, write_mal_csv
from hypothesis import given, settings
from hypothesis import strategies as st

from anipop.data.schema import PREPARED_ANIME, RAW_CHARACTERS, read_table
from anipop.sources.as_of import as_of_view, latest_air_date
from anipop.sources.local import LocalSource
from anipop.steps import call_step


@pytest.fixture(scope="module")
def real_slice(tmp_path_factory) -> pd.DataFrame:
    """The first 1,500 rows of the real MAL file, parsed (first-air dates of every form the file has)."""
    if not REAL_DATA.exists():
        pytest.skip(f"real MAL data not found at {REAL_DATA}")
    anime = LocalSource(path=REAL_DATA, limit=1500).ingest(tmp_path_factory.mktemp("raw")).anime
    edge = pd.DataFrame({"anime_id": [900001, 900002, 900003, 900004], "premiered": ["2013-04", "2013", None, "2013-12-31"]})
    return pd.concat([anime, edge], ignore_index=True)


def test_partial_dates_are_read_at_their_latest_day():
    assert latest_air_date("2013-04-07") == date(2013, 4, 7)
    assert latest_air_date("2013-04") == date(2013, 4, 30)
    assert latest_air_date("2012-02") == date(2012, 2, 29)
    assert latest_air_date("2013") == date(2013, 12, 31)
    assert latest_air_date(None) is None and latest_air_date(pd.NA) is None and latest_air_date("soon") is None


@settings(max_examples=60, deadline=None)
@given(as_of=st.dates(min_value=date(1960, 1, 1), max_value=date(2026, 12, 31)), lag=st.integers(0, 400))
def test_no_anime_of_the_future_is_in_the_view_for_any_date(real_slice, as_of, lag):
    kept, _, view = as_of_view(real_slice, RAW_CHARACTERS.empty(), as_of, lag)
    cutoff = as_of - timedelta(days=lag)
    latest = [latest_air_date(p) for p in kept["premiered"]]
    assert all(day is not None and day <= cutoff for day in latest)  # nothing aired after the cutoff, nothing undated
    left_out = real_slice[~real_slice["anime_id"].isin(kept["anime_id"])]
    assert all(latest_air_date(p) is None or latest_air_date(p) > cutoff for p in left_out["premiered"])
    assert view.kept + view.later + view.undated == len(real_slice)  # every anime counted once


def test_ingest_and_prepare_hold_only_the_view_and_say_what_was_left_out(tmp_path):
    from anipop.data.prepare import run_prepare
    from anipop.sources.ingest import run_ingest

    words = " ".join(["a story of rivals and friends on a summer island"] * 3)
    aired = {1: "Apr 7, 2013 to Sep 29, 2013", 2: "Dec 20, 2013",  # 2: less than 90 days before as_of
             3: "2013", 4: "Not available", 5: "Jan 1, 2010", 6: "Jun 2012"}  # 3: read as 31 December; 4: undated
    rows = [mal_row(i, aired=day, synopsis=words, score=f"{6 + i / 10:.2f}") for i, day in aired.items()]
    rows += [mal_row(10 + i, aired="Jan 1, 2005", synopsis=words, score=f"{5 + i / 10:.2f}") for i in range(20)]
    params = params_in(tmp_path, ingest={"local_path": write_mal_csv(tmp_path / "mal.csv", rows),
                                         "as_of": date(2014, 1, 1), "score_lag_days": 90})
    report = call_step(run_ingest, params)
    assert report["anime"] == 23 and report["as_of"] == {
        "as_of": "2014-01-01", "score_lag_days": 90, "first_aired_on_or_before": "2013-10-03", "kept": 23,
        "left_out_aired_later": 2, "left_out_undated": 1}
    call_step(run_prepare, params)
    prepared = read_table(PREPARED_ANIME, params.paths.prepared_dir / "anime.parquet")
    assert sorted(prepared["anime_id"]) == [1, 5, 6, *range(10, 30)]
    card = (params.paths.reports_dir / "data_card.md").read_text()
    assert "As of 2014-01-01" in card and "not the ones these anime had on 2014-01-01" in card
