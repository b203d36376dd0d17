"""Live metrics: how a served model did on anime whose scores arrived after it was trained.

Why a module of its own: the drift check (is the champion still as good as its test split said?) and the
retraining replay (what did each year's champion deliver on the next year's shows?) score the same way, on MAL's
1-10 scale, so their figures compare: Spearman, R² and MAE in points, each with a bootstrap interval, and paired
differences between two models on the same resamples. The scores themselves come through the served interface
(serving.scoring.served_scores).
"""

from __future__ import annotations

import numpy as np

from anipop.core.metrics import metrics_with_intervals_many

LIVE_METRICS = ("spearman", "r2", "mae")  # on the 1-10 scale: MAE in points


def live_metrics(true_scores: np.ndarray, predicted: dict[str, np.ndarray], samples: int, confidence: float,
                 seed: int) -> dict[str, dict[str, dict[str, float]]]:
    """Each prediction column's LIVE_METRICS as {value, low, high}, all on the same resamples."""
    results = metrics_with_intervals_many(np.asarray(true_scores, float), predicted, 1.0, samples, confidence, seed)
    return {label: {name: values[name] for name in LIVE_METRICS} for label, values in results.items()}
