"""Regression metrics with bootstrap intervals, the same names in every run so runs compare."""

from __future__ import annotations

import numpy as np

# Every metric a run reports, in table order, with its direction: the registry promotes on one of them, the
# config accepts only these names, and the tables print them in this order.
METRICS: dict[str, str] = {"mse": "lower", "mae": "lower", "rmse_1_10": "lower", "r2": "higher",
                           "pearson": "higher", "spearman": "higher", "kendall": "higher"}
METRIC_NAMES = tuple(METRICS)
LOWER_IS_BETTER = frozenset(name for name, direction in METRICS.items() if direction == "lower")


def point_metrics(y_true: np.ndarray, y_pred: np.ndarray, score_range: float) -> dict[str, float]:
    """MSE/MAE on the normalised score, RMSE on MAL's 1-10 scale, R², and three correlations.

    Correlations of a constant prediction (the train-mean baseline) are undefined; they are reported as 0,
    which is what 'no ranking information' means.
    """
    from scipy import stats  # here, not at the top: params validation imports this module in every process

    error = y_pred - y_true
    mse = float(np.mean(error**2))
    total = float(np.sum((y_true - y_true.mean()) ** 2))
    constant = np.ptp(y_pred) == 0 or np.ptp(y_true) == 0
    return {
        "mse": mse,
        "mae": float(np.mean(np.abs(error))),
        "rmse_1_10": float(np.sqrt(mse) * score_range),
        "r2": float(1 - np.sum(error**2) / total) if total > 0 else 0.0,
        "pearson": 0.0 if constant else float(stats.pearsonr(y_true, y_pred)[0]),
        "spearman": 0.0 if constant else float(stats.spearmanr(y_true, y_pred)[0]),
        "kendall": 0.0 if constant else float(stats.kendalltau(y_true, y_pred)[0]),
    }


def metrics_with_intervals(y_true: np.ndarray, y_pred: np.ndarray, score_range: float, samples: int,
                           confidence: float, seed: int) -> dict[str, dict[str, float]]:
    """Each metric as {value, low, high}: a percentile bootstrap over test rows (seeded, reproducible)."""
    point = point_metrics(y_true, y_pred, score_range)
    result = {name: {"value": value} for name, value in point.items()}
    if samples <= 0:
        return result
    rng = np.random.default_rng(seed)
    draws = {name: [] for name in point}
    for _ in range(samples):
        pick = rng.integers(0, len(y_true), len(y_true))
        for name, value in point_metrics(y_true[pick], y_pred[pick], score_range).items():
            draws[name].append(value)
    tail = (1 - confidence) / 2 * 100
    for name, values in draws.items():
        low, high = np.percentile(values, [tail, 100 - tail])
        result[name].update(low=float(low), high=float(high))
    return result


def metrics_with_intervals_many(y_true: np.ndarray, predictions: dict[str, np.ndarray], score_range: float,
                                samples: int, confidence: float, seed: int,
                                workers: int = 0) -> dict[str, dict[str, dict[str, float]]]:
    """metrics_with_intervals of each prediction column (same seed, so the same resamples), on parallel processes.

    Why: the evaluate step bootstraps ~50 models x 1,000 resamples x 3 rank correlations, most of its time, on
    one core. Each column's figures are exactly what metrics_with_intervals gives it alone; only the wall time
    changes. workers: processes (0: one per CPU this process may use; 1: in this process).
    """
    from anipop.utils import map_in_processes, worker_count

    labels = list(predictions)
    args = [(y_true, np.asarray(predictions[label], dtype=float), score_range, samples, confidence, seed)
            for label in labels]
    results = map_in_processes(metrics_with_intervals, args, worker_count(workers, len(labels)) if samples > 0 else 1)
    return dict(zip(labels, results, strict=True))


def markdown_table(metrics: dict[str, dict[str, dict[str, float]]]) -> str:
    """One row per model: each metric as 'value [low, high]' (the evaluation report and the model card)."""
    header = "| model | " + " | ".join(METRIC_NAMES) + " |"
    lines = [header, "|" + "---|" * (len(METRIC_NAMES) + 1)]
    for model, values in metrics.items():
        cells = []
        for name in METRIC_NAMES:
            entry = values[name]
            interval = f" [{entry['low']:.3f}, {entry['high']:.3f}]" if "low" in entry else ""
            cells.append(f"{entry['value']:.4f}{interval}")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
