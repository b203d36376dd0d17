"""Regression metrics with bootstrap intervals, the same names in every run so runs compare."""

from __future__ import annotations

import numpy as np

# Every metric a run reports, in table order, with its direction: the registry promotes on one of them, the
# config accepts only these names, and the tables print them in this order.
METRICS: dict[str, str] = {"mse": "lower", "mae": "lower", "mae_1_10": "lower", "rmse_1_10": "lower", "r2": "higher",
                           "pearson": "higher", "spearman": "higher", "kendall": "higher"}
METRIC_NAMES = tuple(METRICS)
LOWER_IS_BETTER = frozenset(name for name, direction in METRICS.items() if direction == "lower")


def point_metrics(y_true: np.ndarray, y_pred: np.ndarray, score_range: float) -> dict[str, float]:
    """MSE/MAE on the normalised score, RMSE on MAL's 1-10 scale, R², and three correlations.

    Correlations of a constant prediction (the train-mean baseline) are undefined; they are reported as 0,
    which is what 'no ranking information' means. So is R² of a constant truth (a resample of one repeated row).
    """
    from scipy import stats  # here, not at the top: params validation imports this module in every process

    error = y_pred - y_true
    mse = float(np.mean(error**2))
    total = float(np.sum((y_true - y_true.mean()) ** 2))
    constant = np.ptp(y_pred) == 0 or np.ptp(y_true) == 0
    return {
        "mse": mse,
        "mae": float(np.mean(np.abs(error))),
        "mae_1_10": float(np.mean(np.abs(error)) * score_range),  # points on MAL's scale, as public figures are
        "rmse_1_10": float(np.sqrt(mse) * score_range),
        "r2": float(1 - np.sum(error**2) / total) if total > 0 and np.ptp(y_true) > 0 else 0.0,
        "pearson": 0.0 if constant else float(stats.pearsonr(y_true, y_pred)[0]),
        "spearman": 0.0 if constant else float(stats.spearmanr(y_true, y_pred)[0]),
        "kendall": 0.0 if constant else float(stats.kendalltau(y_true, y_pred)[0]),
    }


# Largest test set whose Kendall numerator is computed as one (resamples x n) @ (n x n) product; beyond it the
# n x n sign matrix grows past ~100 MB and each resample is scored on its own (scipy).
DENSE_BOOTSTRAP_MAX_ROWS = 5000


def bootstrap_picks(n: int, samples: int, seed: int) -> np.ndarray:
    """(samples, n) row indices drawn with replacement: the resamples every model is scored on (seeded)."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, n, n) for _ in range(samples)]) if samples > 0 else np.empty((0, n), int)


def _tie_groups(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort order of `values`, and for each sorted position the start and end (exclusive) of its run of equals."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    new_run = np.r_[True, ordered[1:] != ordered[:-1]]
    run_id = np.cumsum(new_run) - 1
    starts = np.flatnonzero(new_run)
    ends = np.r_[starts[1:], len(values)]
    return order, starts[run_id], ends[run_id]


def _resample_ranks(values: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average rank each row gets inside each resample (as scipy's rankdata of the resampled values), and the
    number of tied pairs per resample (Kendall's tau-b denominator). counts: (samples, n) copies of each row."""
    order, start, end = _tie_groups(values)
    cumulative = np.zeros((counts.shape[0], len(values) + 1))
    np.cumsum(counts[:, order], axis=1, out=cumulative[:, 1:])
    below, through = cumulative[:, start], cumulative[:, end]
    ranks = np.empty_like(below)
    ranks[:, order] = below + (through - below + 1) / 2
    run_first = np.r_[True, start[1:] != start[:-1]]
    run_sizes = (through - below)[:, run_first]  # copies of each distinct value in the resample
    return ranks, 0.5 * ((run_sizes**2).sum(axis=1) - counts.sum(axis=1))


def _weighted_pearson(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pearson r of each resample, a resample given as copies per row (weights); 0 where either side is constant."""
    total = weights.sum(axis=1, keepdims=True)
    dx = x - (weights * x).sum(axis=1, keepdims=True) / total
    dy = y - (weights * y).sum(axis=1, keepdims=True) / total
    sxx, syy, sxy = (weights * dx * dx).sum(1), (weights * dy * dy).sum(1), (weights * dx * dy).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = sxy / np.sqrt(sxx * syy)
    return np.clip(np.nan_to_num(r, nan=0.0), -1.0, 1.0)


def copy_counts(picks: np.ndarray, n: int) -> np.ndarray:
    """(samples, n): how many copies of each row each resample holds."""
    counts = np.zeros((len(picks), n))
    np.add.at(counts, (np.repeat(np.arange(len(picks)), n), picks.ravel()), 1.0)
    return counts


def bootstrap_draws(y_true: np.ndarray, y_pred: np.ndarray, score_range: float, picks: np.ndarray,
                    counts: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """point_metrics of every resample at once: the values point_metrics gives each resampled pair of arrays.

    Why: scoring 50 models x 1,000 resamples one at a time through scipy took about a minute of the evaluate
    step (mostly per-call overhead). A resample is the original rows with a copy count each, so every metric is a
    weighted statistic of the original rows: means, Pearson on values or on within-resample average ranks
    (Spearman), and Kendall's tau-b from the pairwise sign matrix (numerator = counts' S counts / 2).
    counts: copy_counts(picks), when the caller scores several models on the same resamples.
    """
    n = len(y_true)
    if n > DENSE_BOOTSTRAP_MAX_ROWS:
        draws = [point_metrics(y_true[pick], y_pred[pick], score_range) for pick in picks]
        return {name: np.array([d[name] for d in draws]) for name in METRIC_NAMES}
    counts = copy_counts(picks, n) if counts is None else counts
    error = y_pred - y_true
    mse = counts @ error**2 / n
    y_mean = counts @ y_true / n
    total = (counts * (y_true - y_mean[:, None]) ** 2).sum(axis=1)
    present = counts > 0
    true_constant = np.where(present, y_true, -np.inf).max(1) == np.where(present, y_true, np.inf).min(1)
    constant = true_constant | (np.where(present, y_pred, -np.inf).max(1) == np.where(present, y_pred, np.inf).min(1))
    true_ranks, true_ties = _resample_ranks(y_true, counts)
    pred_ranks, pred_ties = _resample_ranks(y_pred, counts)
    signs = np.sign(y_true[:, None] - y_true[None, :]) * np.sign(y_pred[:, None] - y_pred[None, :])
    # counts and signs are small integers: float32 sums are exact while n^2 < 2^24, and twice as fast
    exact = np.float32 if n * n < 2**24 else np.float64
    concordant_minus_discordant = 0.5 * ((counts.astype(exact) @ signs.astype(exact)) * counts).sum(axis=1)
    pairs = n * (n - 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        kendall = concordant_minus_discordant / np.sqrt((pairs - true_ties) * (pairs - pred_ties))
        r2 = np.where((total > 0) & ~true_constant, 1 - mse * n / total, 0.0)
    return {
        "mse": mse,
        "mae": counts @ np.abs(error) / n,
        "mae_1_10": counts @ np.abs(error) / n * score_range,
        "rmse_1_10": np.sqrt(mse) * score_range,
        "r2": r2,
        "pearson": np.where(constant, 0.0, _weighted_pearson(y_true, y_pred, counts)),
        "spearman": np.where(constant, 0.0, _weighted_pearson(true_ranks, pred_ranks, counts)),
        "kendall": np.where(constant, 0.0, np.clip(np.nan_to_num(kendall), -1.0, 1.0)),
    }


def metrics_with_intervals(y_true: np.ndarray, y_pred: np.ndarray, score_range: float, samples: int,
                           confidence: float, seed: int) -> dict[str, dict[str, float]]:
    """Each metric as {value, low, high}: a percentile bootstrap over test rows (seeded, reproducible)."""
    return metrics_with_intervals_many(y_true, {"": y_pred}, score_range, samples, confidence, seed)[""]


def metrics_with_intervals_many(y_true: np.ndarray, predictions: dict[str, np.ndarray], score_range: float,
                                samples: int, confidence: float,
                                seed: int) -> dict[str, dict[str, dict[str, float]]]:
    """metrics_with_intervals of each prediction column, all on the same resamples (one seed): comparable intervals."""
    y_true = np.asarray(y_true, dtype=float)
    picks = bootstrap_picks(len(y_true), samples, seed)
    counts = copy_counts(picks, len(y_true)) if 0 < samples and len(y_true) <= DENSE_BOOTSTRAP_MAX_ROWS else None
    tail = (1 - confidence) / 2 * 100
    results = {}
    for label, column in predictions.items():
        y_pred = np.asarray(column, dtype=float)
        result = {name: {"value": value} for name, value in point_metrics(y_true, y_pred, score_range).items()}
        if samples > 0:
            for name, values in bootstrap_draws(y_true, y_pred, score_range, picks, counts).items():
                low, high = np.percentile(values, [tail, 100 - tail])
                result[name].update(low=float(low), high=float(high))
        results[label] = result
    return results


def paired_difference(y_true: np.ndarray, first: np.ndarray, second: np.ndarray, metric: str, samples: int,
                      confidence: float, seed: int, score_range: float = 1.0) -> dict[str, float]:
    """first - second on `metric`, with a percentile interval over resamples shared by both (paired): far
    narrower than comparing two separate intervals, since both models meet the same hard and easy rows."""
    y = np.asarray(y_true, float)
    first, second = np.asarray(first, float), np.asarray(second, float)
    value = point_metrics(y, first, score_range)[metric] - point_metrics(y, second, score_range)[metric]
    if samples <= 0 or len(y) < 2:
        return {"value": float(value)}
    picks = bootstrap_picks(len(y), samples, seed)
    counts = copy_counts(picks, len(y)) if len(y) <= DENSE_BOOTSTRAP_MAX_ROWS else None
    draws = (bootstrap_draws(y, first, score_range, picks, counts)[metric]
             - bootstrap_draws(y, second, score_range, picks, counts)[metric])
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return {"value": float(value), "low": float(low), "high": float(high)}


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


COMPARED_METRICS = ("spearman", "r2", "mae_1_10")  # a model against its previous recipe, paired


def comparison_lines(temporal: dict | None, rolling: dict | None) -> str:
    """Markdown: the primary model against its previous recipe on the temporal cut (paired bootstrap interval)
    and over the rolling years (mean ± sd of the yearly differences, years better)."""
    lines = []
    if temporal and temporal.get("previous_recipe"):
        c = temporal["previous_recipe"]
        cells = ", ".join(f"{m} {c[m]['value']:+.3f}" + (f" [{c[m]['low']:+.3f}, {c[m]['high']:+.3f}]" if "low" in c[m]
                                                          else "") for m in COMPARED_METRICS)
        lines.append(f"- temporal cut {temporal['cut_year']}, {c['a']} - {c['b']} on the same anime: {cells}")
    if rolling and rolling.get("previous_recipe"):
        c = rolling["previous_recipe"]
        cells = ", ".join(f"{m} {c[m]['mean']:+.3f} ± {c[m]['sd']:.3f} (better in {c[m]['years_better']}/"
                          f"{c[m]['years']} years)" for m in COMPARED_METRICS)
        lines.append(f"- rolling origin, {c['a']} - {c['b']} per year: {cells}")
    return "\n".join(lines) + ("\n" if lines else "")
