"""The evaluate step: test-split metrics for the model next to the train-mean baseline, plus plots.

The baseline always sits in the same table: on a min-max-normalised score a small MSE is easy to get,
so a model only counts if it beats predicting the training mean.
"""

from __future__ import annotations

import logging
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from anipop.config import Params
from anipop.features import build_features
from anipop.metrics import METRIC_NAMES, metrics_with_intervals
from anipop.prepare import MinMaxScaler
from anipop.schema import PREPARED_ANIME, read_table
from anipop.utils import atomic_path, read_json, write_json

log = logging.getLogger(__name__)

BASELINE = "train_mean"


def predict_test(params: Params) -> pd.DataFrame:
    """Test rows with the true normalised score and each model's prediction, one column per model."""
    anime = read_table(PREPARED_ANIME, Path(params.paths.prepared_dir) / "anime.parquet")
    test = anime[anime["split"] == "test"]
    if test.empty:
        raise ValueError("the test split is empty; check prepare.split in params.yaml")
    bundle = joblib.load(Path(params.paths.models_dir) / "model.joblib")
    features = build_features(params.paths.embeddings_dir, test["anime_id"], bundle["inputs"])
    predictions = pd.DataFrame({"anime_id": test["anime_id"].to_numpy(), "true": test["score_norm"].to_numpy()})
    predictions[bundle["name"]] = np.clip(bundle["model"].predict(features), 0.0, 1.0)
    predictions[BASELINE] = bundle["train_mean"]
    return predictions


def markdown_table(metrics: dict[str, dict[str, dict[str, float]]]) -> str:
    """One row per model: each metric as 'value [low, high]'."""
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


def save_plots(predictions: pd.DataFrame, model_name: str, scaler: MinMaxScaler, plots_dir: Path) -> list[Path]:
    """predictions.csv (DVC scatter plot) and a PNG scatter of predicted vs true on the 1-10 scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots_dir.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame({
        "anime_id": predictions["anime_id"],
        "true_score": scaler.inverse(predictions["true"]).round(4),
        "predicted_score": scaler.inverse(predictions[model_name]).round(4),
    })
    csv_path = plots_dir / "predictions.csv"
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False)
    figure, axis = plt.subplots(figsize=(5, 5))
    axis.scatter(table["true_score"], table["predicted_score"], s=6, alpha=0.5)
    low, high = table[["true_score", "predicted_score"]].min().min(), table[["true_score", "predicted_score"]].max().max()
    axis.plot([low, high], [low, high], color="grey", linewidth=1)
    axis.set(xlabel="true MAL score", ylabel="predicted MAL score", title=f"{model_name}: test split")
    png_path = plots_dir / "predicted_vs_true.png"
    figure.savefig(png_path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return [csv_path, png_path]


def run_evaluate(params: Params, track: bool = True) -> dict:
    """Write reports/metrics.json, reports/metrics.md and plots, log them to MLflow; return the metrics."""
    reports = Path(params.paths.reports_dir)
    scaler = MinMaxScaler.from_dict(read_json(Path(params.paths.prepared_dir) / "scaler.json"))
    predictions = predict_test(params)
    model_names = [c for c in predictions.columns if c not in ("anime_id", "true")]
    y_true = predictions["true"].to_numpy()
    metrics = {
        name: metrics_with_intervals(y_true, predictions[name].to_numpy(dtype=float), scaler.high - scaler.low,
                                     params.evaluate.bootstrap_samples, params.evaluate.confidence, params.seed)
        for name in model_names
    }
    summary = {"test_rows": len(predictions), "models": metrics}
    # metrics.json holds point values only, so `dvc metrics show/diff` stay readable; intervals go beside it.
    write_json(reports / "metrics.json", {"test_rows": len(predictions), **{
        model: {name: round(entry["value"], 6) for name, entry in values.items()} for model, values in metrics.items()}})
    write_json(reports / "intervals.json", summary)
    table = markdown_table(metrics)
    with atomic_path(reports / "metrics.md") as tmp:
        tmp.write_text(f"Test split: {len(predictions)} anime. Normalised score (min-max over train).\n\n{table}")
    plots = save_plots(predictions, model_names[0], scaler, reports / "plots")
    print(f"\nTest split ({len(predictions)} anime), {params.evaluate.confidence:.0%} bootstrap intervals:\n{table}")
    if track:
        from anipop.tracking import log_evaluation

        extras = [reports / "metrics.json", reports / "intervals.json", reports / "metrics.md", *plots,
                  Path(params.paths.embeddings_dir) / "manifest.json", Path(params.paths.models_dir) / "train_report.json"]
        summary["mlflow_run_id"] = log_evaluation(params, summary, extras)
    return summary
