"""Regression metrics: hand-checked values, the constant-prediction convention, seeded bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from anipop.core.metrics import METRIC_NAMES, metrics_with_intervals, point_metrics


def test_point_metrics_match_hand_computed_values():
    y_true = np.array([0.0, 0.5, 1.0, 0.25])
    y_pred = np.array([0.1, 0.5, 0.7, 0.25])
    values = point_metrics(y_true, y_pred, score_range=7.0)
    assert set(values) == set(METRIC_NAMES)
    assert values["mse"] == pytest.approx((0.01 + 0 + 0.09 + 0) / 4)
    assert values["mae"] == pytest.approx((0.1 + 0 + 0.3 + 0) / 4)
    assert values["rmse_1_10"] == pytest.approx(np.sqrt(0.025) * 7.0)
    assert values["r2"] == pytest.approx(1 - 0.1 / np.sum((y_true - y_true.mean()) ** 2))
    assert values["pearson"] == pytest.approx(np.corrcoef(y_true, y_pred)[0, 1])
    assert values["spearman"] == pytest.approx(1.0)  # same order
    assert values["kendall"] == pytest.approx(stats.kendalltau(y_true, y_pred)[0])


def test_a_constant_prediction_has_no_ranking_information():
    y_true = np.array([0.2, 0.4, 0.9])
    values = point_metrics(y_true, np.full(3, y_true.mean()), score_range=7.0)
    assert values["pearson"] == values["spearman"] == values["kendall"] == 0.0
    assert values["r2"] == pytest.approx(0.0)


def test_a_worse_prediction_scores_worse_on_every_error_metric():
    rng = np.random.default_rng(0)
    y_true = rng.random(200)
    good = point_metrics(y_true, y_true + rng.normal(0, 0.05, 200), 7.0)
    bad = point_metrics(y_true, y_true + rng.normal(0, 0.3, 200), 7.0)
    for name in ("mse", "mae", "rmse_1_10"):
        assert good[name] < bad[name]
    for name in ("r2", "pearson", "spearman", "kendall"):
        assert good[name] > bad[name]


def test_bootstrap_intervals_are_seeded_and_bracket_a_stable_metric():
    rng = np.random.default_rng(1)
    y_true = rng.random(300)
    y_pred = y_true + rng.normal(0, 0.1, 300)
    first = metrics_with_intervals(y_true, y_pred, 7.0, samples=200, confidence=0.95, seed=3)
    again = metrics_with_intervals(y_true, y_pred, 7.0, samples=200, confidence=0.95, seed=3)
    other = metrics_with_intervals(y_true, y_pred, 7.0, samples=200, confidence=0.95, seed=4)
    assert first == again
    assert first["mse"]["low"] != other["mse"]["low"]
    for name, entry in first.items():
        assert entry["low"] <= entry["high"], name
    assert first["mse"]["low"] < first["mse"]["value"] < first["mse"]["high"]
    narrow = metrics_with_intervals(y_true, y_pred, 7.0, samples=200, confidence=0.5, seed=3)
    assert narrow["mse"]["high"] - narrow["mse"]["low"] < first["mse"]["high"] - first["mse"]["low"]


def test_zero_resamples_gives_point_values_only():
    values = metrics_with_intervals(np.array([0.1, 0.5, 0.9]), np.array([0.2, 0.4, 0.8]), 7.0, 0, 0.95, 0)
    assert all(set(entry) == {"value"} for entry in values.values())


def test_many_columns_share_resamples_and_give_each_columns_own_figures_exactly():
    from anipop.core.metrics import metrics_with_intervals, metrics_with_intervals_many

    rng = np.random.default_rng(3)
    y = rng.random(60)
    columns = {"a": y + rng.normal(0, 0.1, 60), "b": np.full(60, 0.5), "c": rng.random(60)}
    many = metrics_with_intervals_many(y, columns, 9.0, 50, 0.95, seed=7)
    assert list(many) == ["a", "b", "c"]
    for label, predicted in columns.items():
        assert many[label] == metrics_with_intervals(y, predicted, 9.0, 50, 0.95, 7)


@pytest.mark.parametrize("case", ["ties", "constant_prediction", "continuous", "anti_correlated", "two_values"])
def test_vectorised_bootstrap_equals_scoring_each_resample_with_scipy(case, monkeypatch):
    """Every resample's seven metrics, computed at once from copy counts, are point_metrics of that resample."""
    from anipop.core import metrics

    rng = np.random.default_rng(11)
    y = np.round(rng.random(120), 2)
    predicted = {"ties": np.round(y + rng.normal(0, 0.2, 120), 1), "constant_prediction": np.full(120, 0.4),
                 "continuous": rng.random(120), "anti_correlated": -y + rng.normal(0, 0.05, 120),
                 "two_values": (rng.random(120) > 0.5).astype(float)}[case]
    picks = metrics.bootstrap_picks(len(y), 40, seed=5)
    picks[0] = 3  # one resample of a single repeated row: everything constant
    draws = metrics.bootstrap_draws(y, predicted, 9.0, picks)
    for i, pick in enumerate(picks):
        expected = metrics.point_metrics(y[pick], predicted[pick], 9.0)
        for name, value in expected.items():
            assert draws[name][i] == pytest.approx(value, abs=1e-9), (case, i, name)
    monkeypatch.setattr(metrics, "DENSE_BOOTSTRAP_MAX_ROWS", 10)  # the one-resample-at-a-time path agrees
    looped = metrics.bootstrap_draws(y, predicted, 9.0, picks)
    for name in draws:
        np.testing.assert_allclose(looped[name], draws[name], atol=1e-9)
