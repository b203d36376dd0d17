"""Behavioural tests of the models (Made-With-ML style): invariance, direction, minimum functionality.

Each model is trained here on a small synthetic task whose answer is known, through the same code the train
step uses (fit_network, RidgeRegressor, TfidfPixelBenchmark), so a regression in that code shows as behaviour.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import knobs

from anipop.core.artifacts import load_embeddings, save_embeddings
from anipop.core.config import NetworkShape
from anipop.modeling.features import build_features
from anipop.modeling.models import RidgeRegressor, TfidfPixelBenchmark
from anipop.modeling.train import fit_network

SHAPE = NetworkShape(hidden=(32, 16), dropout=0.0)
FAST = knobs("train.network", learning_rate=0.01, max_epochs=60, patience=10, batch_size=32, threads=1)


def linear_task(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Feature 0 drives the score (0.2 .. 0.8); features 1-4 are noise."""
    rng = np.random.default_rng(seed)
    features = rng.normal(0, 1, (rows, 5)).astype(np.float32)
    return features, np.clip(0.5 + 0.15 * features[:, 0] + rng.normal(0, 0.03, rows), 0, 1)


def interaction_task(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The score follows x0 * x1: no linear signal at all, so only a non-linear model can learn it."""
    rng = np.random.default_rng(seed)
    features = rng.normal(0, 1, (rows, 4)).astype(np.float32)
    return features, 0.5 + 0.35 * np.tanh(features[:, 0] * features[:, 1])


def train_network(task, seed: int = 0):
    train_x, train_y = task(600, seed)
    val_x, val_y = task(150, seed + 1)
    return fit_network(train_x, train_y, val_x, val_y, SHAPE, FAST, seed=0)[0]


def text_task(rows: int, seed: int) -> tuple[dict, np.ndarray]:
    rng = np.random.default_rng(seed)
    quality = rng.random(rows)
    filler = "hero school city friend rival journey".split()
    texts = [" ".join(["great"] * int(q * 6) + list(rng.choice(filler, 8))) for q in quality]
    return {"synopsis": texts}, quality


@pytest.fixture(scope="module")
def models() -> dict:
    train_x, train_y = linear_task(600, 0)
    texts, quality = text_task(300, 0)
    return {"network": train_network(linear_task),
            "ridge": RidgeRegressor(alpha=1.0).fit(train_x, train_y),
            "benchmark": TfidfPixelBenchmark(["synopsis"], max_features=100, alpha=1.0).fit(texts, quality)}


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((np.asarray(a) - np.asarray(b)) ** 2))


# --- invariance ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["network", "ridge"])
def test_predictions_do_not_depend_on_row_order_or_batch(models, name):
    features, _ = linear_task(50, 9)
    order = np.random.default_rng(0).permutation(50)
    model = models[name]
    together = model.predict(features)
    np.testing.assert_allclose(model.predict(features[order]), together[order], rtol=0, atol=1e-6)
    np.testing.assert_allclose(model.predict(features[3:4])[0], together[3], rtol=0, atol=1e-6)


def test_benchmark_predictions_do_not_depend_on_row_order(models):
    texts, _ = text_task(40, 9)
    order = np.random.default_rng(0).permutation(40)
    together = models["benchmark"].predict(texts)
    shuffled = models["benchmark"].predict({"synopsis": [texts["synopsis"][i] for i in order]})
    np.testing.assert_allclose(shuffled, together[order], atol=1e-9)


def test_character_features_do_not_depend_on_the_order_of_characters(tmp_path):
    rng = np.random.default_rng(0)
    ids = [f"{anime}:{character}" for anime in (1, 2, 3) for character in (10, 11, 12)]
    matrix = rng.normal(0, 1, (len(ids), 4)).astype(np.float32)
    save_embeddings(tmp_path / "a", "character_description", ids, matrix)
    order = rng.permutation(len(ids))
    save_embeddings(tmp_path / "b", "character_description", [ids[i] for i in order], matrix[order])
    for aggregation in ("mean", "max"):
        first = build_features(tmp_path / "a", [3, 1, 2], ["character_description"], aggregation)
        second = build_features(tmp_path / "b", [3, 1, 2], ["character_description"], aggregation)
        np.testing.assert_allclose(first, second, atol=1e-6)
    assert load_embeddings(tmp_path / "b", "character_description")[0] != ids  # the order did change


# --- direction ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["network", "ridge"])
def test_a_higher_driving_feature_gives_a_higher_score(models, name):
    features, _ = linear_task(200, 7)
    raised = features.copy()
    raised[:, 0] += 1.0
    before, after = models[name].predict(features), models[name].predict(raised)
    assert np.mean(after > before) > 0.9
    assert np.mean(after - before) > 0.05


def test_a_noise_feature_barely_moves_the_network(models):
    features, _ = linear_task(200, 7)
    raised = features.copy()
    raised[:, 3] += 1.0
    moved = np.abs(models["network"].predict(raised) - models["network"].predict(features))
    assert np.mean(moved) < 0.05


def test_the_benchmark_scores_praise_words_higher(models):
    plain = {"synopsis": ["hero school city friend rival journey"] * 3}
    praised = {"synopsis": ["great great great great hero school city friend rival journey"] * 3}
    assert np.all(models["benchmark"].predict(praised) > models["benchmark"].predict(plain) + 0.1)


# --- minimum functionality ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["network", "ridge"])
def test_beats_the_train_mean_on_a_learnable_task(models, name):
    _, train_y = linear_task(600, 0)
    test_x, test_y = linear_task(300, 5)
    baseline = mse(np.full_like(test_y, train_y.mean()), test_y)
    assert mse(models[name].predict(test_x), test_y) < 0.3 * baseline


def test_benchmark_beats_the_train_mean_on_a_learnable_text_task(models):
    _, train_quality = text_task(300, 0)
    texts, quality = text_task(200, 5)
    baseline = mse(np.full_like(quality, train_quality.mean()), quality)
    assert mse(models["benchmark"].predict(texts), quality) < 0.3 * baseline


def test_the_network_learns_an_interaction_that_ridge_cannot():
    train_x, train_y = interaction_task(600, 0)
    test_x, test_y = interaction_task(300, 5)
    baseline = mse(np.full_like(test_y, train_y.mean()), test_y)
    ridge = RidgeRegressor(alpha=1.0).fit(train_x, train_y)
    network = train_network(interaction_task)
    assert mse(ridge.predict(test_x), test_y) > 0.9 * baseline
    assert mse(network.predict(test_x), test_y) < 0.5 * baseline


def test_predictions_stay_in_the_normalised_range(models):
    features, _ = linear_task(100, 3)
    extreme = features * 50
    for name in ("network", "ridge"):
        scores = models[name].predict(extreme)
        assert scores.min() >= 0.0 and scores.max() <= 1.0, name
