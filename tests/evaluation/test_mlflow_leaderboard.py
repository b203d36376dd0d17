"""The order, ranks and texts that make MLflow's runs view open on the best model (no server needed here;
tests/integration/test_mlflow_ui.py checks them on a real tracking server and in Chromium)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from anipop.evaluation.mlflow_leaderboard import (
    child_description,
    headline_ranks,
    leaderboard_markdown,
    logging_order,
    view_link,
)

CV = {"pitch_stack": {"spearman": {"mean": 0.77, "sd": 0.01}}, "ridge": {"spearman": {"mean": 0.48, "sd": 0.02}},
      "meta_ridge": {"spearman": {"mean": 0.74, "sd": 0.01}}, "length_only": {"spearman": {"mean": 0.40, "sd": 0.02}},
      "train_mean": {"spearman": {"mean": 0.0, "sd": 0.0}}}
LABELS = ["all_inputs/ridge", "studios/pitch_stack", "all_inputs/pitch_stack", "train_mean", "year/meta_ridge",
          "length_only", "all_inputs/meta_ridge"]


def test_created_last_is_shown_first_so_the_best_model_is_created_last():
    order = logging_order(LABELS, "all_inputs", CV)
    newest_first = list(reversed(order))
    assert newest_first == ["all_inputs/pitch_stack", "all_inputs/meta_ridge", "all_inputs/ridge", "length_only",
                            "train_mean", "year/meta_ridge", "studios/pitch_stack"]
    assert sorted(order) == sorted(LABELS)  # nothing dropped, nothing twice


def test_ranks_cover_the_main_models_and_baselines_only_ordered_by_cv_spearman():
    ranks = headline_ranks(LABELS, "all_inputs", CV)
    assert ranks == {"all_inputs/pitch_stack": 1, "all_inputs/meta_ridge": 2, "all_inputs/ridge": 3,
                     "length_only": 4, "train_mean": 5}


def test_without_cv_every_model_ranks_in_its_given_order_and_nothing_fails():
    ranks = headline_ranks(LABELS, "all_inputs", None)
    assert set(ranks) == {"all_inputs/ridge", "all_inputs/pitch_stack", "all_inputs/meta_ridge", "train_mean",
                          "length_only"}
    assert "Rank" in child_description("all_inputs/ridge", ranks, None, {})
    board = leaderboard_markdown({}, ranks, None, 0, "all_inputs/ridge", None)
    assert "Not ranked: cross-validation was not run" in board and "-fold" not in board


def test_descriptions_name_rank_and_baselines_or_say_ablation():
    ranks = headline_ranks(LABELS, "all_inputs", CV)
    test = {"spearman": {"value": 0.79, "low": 0.76, "high": 0.82}}
    text = child_description("all_inputs/pitch_stack", ranks, CV, test)
    assert text == ("Rank 1 of 5 on CV Spearman (0.770; baselines: train_mean 0.000, length_only 0.400); "
                    "test Spearman 0.790 [0.760, 0.820]")
    assert child_description("studios/pitch_stack", ranks, CV, test).startswith("Ablation")


def test_the_view_link_filters_one_parent_and_sorts_on_cv_spearman():
    link = view_link("http://127.0.0.1:5000/", "7", "abc123")
    assert link.startswith("http://127.0.0.1:5000/#/experiments/7/runs?")
    query = parse_qs(urlsplit(link).fragment.split("?", 1)[1])
    assert query["searchFilter"] == ["tags.mlflow.parentRunId = 'abc123' and tags.`anipop.headline` = 'true'"]
    assert query["orderByKey"] == ["metrics.`cv_spearman_mean`"] and query["orderByAsc"] == ["false"]


def test_the_leaderboard_lists_ranked_rows_with_test_figures_and_the_link():
    ranks = headline_ranks(LABELS, "all_inputs", CV)
    results = {label: {"spearman": {"value": 0.5, "low": 0.4, "high": 0.6}, "mae_1_10": {"value": 0.45},
                       "r2": {"value": 0.3}} for label in LABELS}
    board = leaderboard_markdown(results, ranks, CV, 5, "all_inputs/pitch_stack", "http://x/#/y")
    assert "Ranked on 5-fold grouped CV Spearman" in board
    rows = [line for line in board.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [row.split(" | ")[1] for row in rows] == ["**all_inputs/pitch_stack** (champion candidate)",
                                                    "all_inputs/meta_ridge", "all_inputs/ridge", "length_only",
                                                    "train_mean"]
    assert rows[0].endswith("| 0.770 | 0.500 [0.400, 0.600] | 0.450 | 0.300 |")
    assert "](http://x/#/y)" in board
