"""The champion against its previous recipe (evaluate.previous_recipe) on the test split, paired.

    python benchmarks/recipe_test_split.py

The pipeline scores the previous recipe on the backtests (CV folds, temporal cut, rolling years: reports/
backtest.md, rolling.md); the test split is scored once, by evaluate, for the trained models only. This fits
both recipes on the train split (val for early stopping) of the last `dvc repro`, as train does, and prints
Spearman, R2 and MAE (1-10) on the test split with 95 % bootstrap intervals and the paired difference.
Nothing tracked is written.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    os.chdir(REPO)
    from anipop.core.artifacts import ArtifactPaths
    from anipop.core.config import load_params
    from anipop.core.metrics import COMPARED_METRICS, metrics_with_intervals_many, paired_difference
    from anipop.data.schema import PREPARED_ANIME, PREPARED_CHARACTERS, read_table
    from anipop.evaluation.backtest import fit_and_predict

    params = load_params("params.yaml")
    params = params.with_overrides({"train.models": ["meta_ridge", "pitch_gbm", "pitch_stack"]})
    paths = ArtifactPaths.of(params.paths)
    anime = read_table(PREPARED_ANIME, paths.prepared_anime)
    characters = read_table(PREPARED_CHARACTERS, paths.prepared_characters)
    rows = {split: anime[anime["split"] == split] for split in ("train", "val")}
    test = anime[anime["split"] == "test"]
    y_true, predictions, score_range = fit_and_predict(params, anime, characters, rows, test)
    now, before = params.train.model, params.evaluate.previous_recipe.name
    cfg = params.evaluate
    scored = metrics_with_intervals_many(y_true, {now: predictions[now], before: predictions[before]}, score_range,
                                         cfg.bootstrap_samples, cfg.confidence, params.seed)
    print(f"test split: {len(test)} anime")
    for name in (now, before):
        print(name, ", ".join(f"{m} {scored[name][m]['value']:.4f} [{scored[name][m]['low']:.4f}, "
                              f"{scored[name][m]['high']:.4f}]" for m in COMPARED_METRICS))
    for metric in COMPARED_METRICS:
        d = paired_difference(y_true, predictions[now], predictions[before], metric, cfg.bootstrap_samples,
                              cfg.confidence, params.seed, score_range)
        print(f"{now} - {before} {metric}: {d['value']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]")
    assert np.isfinite(y_true).all()


if __name__ == "__main__":
    main()
