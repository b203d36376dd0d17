"""Backtests: CV folds are disjoint by franchise, the temporal split trains on nothing after the cut, and every
model and both baselines are refitted and reported."""

from __future__ import annotations

import pandas as pd
from fixtures_training import toy_params, write_toy_dataset
from hypothesis import given, settings
from hypothesis import strategies as st

from anipop.core.utils import read_json
from anipop.data.schema import PREPARED_ANIME, read_table, write_table
from anipop.evaluation.backtest import fold_of, run_backtest, temporal_rows


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 5000), min_size=2, max_size=200), st.integers(0, 99), st.integers(2, 7),
       st.integers(0, 3))
def test_cv_folds_are_disjoint_by_franchise(group_ids, seed, folds, repeat):
    anime = pd.DataFrame({"anime_id": range(len(group_ids)), "group_id": group_ids})
    fold = anime["group_id"].map(lambda g: fold_of(g, seed, repeat, folds))
    assert fold.between(0, folds - 1).all()
    assert (anime.assign(fold=fold).groupby("group_id")["fold"].nunique() == 1).all()


def test_temporal_split_has_nothing_after_the_cut_in_train_and_no_franchise_across_it():
    anime = pd.DataFrame({
        "anime_id": [1, 2, 3, 4, 5, 6, 7],
        "group_id": [1, 1, 3, 4, 4, 6, 7],
        "premiered": ["2010-04-01", "2019-01-01", "2016", "2018-07", "2021-01-01", None, "2012-10-05"],
    })
    rows, counts = temporal_rows(anime, cut_year=2018, seed=0)
    trained = pd.concat([rows["train"], rows["val"]])
    assert (trained["year"] < 2018).all()
    assert set(trained["anime_id"]) == {1, 3, 7}
    assert set(rows["test"]["anime_id"]) == {4, 5}        # franchise 4 began in 2018: all of it is "new"
    assert set(rows["sequels"]["anime_id"]) == {2}        # a 2019 sequel of a 2010 franchise: scored apart
    assert counts["undated"] == 1
    assert not set(trained["group_id"]) & set(rows["test"]["group_id"])


def test_backtest_refits_every_model_and_both_baselines(tmp_path):
    params = toy_params(tmp_path)
    write_toy_dataset(params, count=200)
    result = run_backtest(params)
    cv = read_json(params.paths.reports_dir / "cv.json")
    models = {"mlp_wide", "mlp_small", "ridge", "tfidf_benchmark", "train_mean", "length_only"}
    assert models <= set(cv) and cv["folds"] == 5
    assert len(result["cv"]["per_fold"]["ridge"]) == 5
    # the toy data carries signal in every modality: a real model beats both baselines on CV
    assert cv["ridge"]["spearman"] > cv["length_only"]["spearman"]
    assert cv["train_mean"]["spearman"] == 0.0
    temporal = read_json(params.paths.reports_dir / "temporal.json")
    assert models <= set(temporal) and temporal["cut_year"] == 2018
    text = (params.paths.reports_dir / "backtest.md").read_text()
    assert "Paired differences" in text and "Temporal backtest" in text


def test_cv_leaves_the_test_split_untouched(tmp_path):
    params = toy_params(tmp_path)
    write_toy_dataset(params, count=120)
    table = params.paths.prepared_dir / "anime.parquet"
    anime = read_table(PREPARED_ANIME, table)
    anime.loc[anime["split"] == "test", "score"] = 1000.0  # any read of a test score would poison the metrics
    write_table(PREPARED_ANIME, anime, table)
    result = run_backtest(params.model_copy(update={"evaluate": params.evaluate.model_copy(
        update={"temporal": params.evaluate.temporal.model_copy(update={"enabled": False})})}))
    tested = sum(fold["test"] for fold in result["cv"]["folds"])
    assert tested == int((anime["split"] != "test").sum())
    assert result["cv"]["models"]["ridge"]["rmse_1_10"]["mean"] < 100
