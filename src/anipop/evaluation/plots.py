"""Evaluation plots: data files DVC renders (`dvc plots show`) and PNGs that MLflow stores.

Every file name is fixed, and every file is written on every run (a header-only CSV or a figure that says
"no network trained" when there is nothing to draw), so DVC never finds a declared plot missing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from anipop.core.artifacts import ArtifactPaths, MinMaxScaler
from anipop.core.utils import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path


def _save(figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    _pyplot().close(figure)
    return path


def prediction_plots(true_norm: np.ndarray, pred_norm: np.ndarray, anime_ids, label: str, scaler: MinMaxScaler,
                     paths: ArtifactPaths) -> list[Path]:
    """predictions.csv (DVC scatter), predicted-vs-true and residual PNGs, all on MAL's 1-10 scale."""
    plt = _pyplot()
    table = pd.DataFrame({"anime_id": np.asarray(anime_ids),
                          "true_score": np.round(scaler.inverse(np.asarray(true_norm)), 4),
                          "predicted_score": np.round(scaler.inverse(np.asarray(pred_norm)), 4)})
    table["residual"] = (table["predicted_score"] - table["true_score"]).round(4)
    written = [_write_csv(table, paths.predictions_plot_table)]

    figure, axis = plt.subplots(figsize=(5, 5))
    axis.scatter(table["true_score"], table["predicted_score"], s=6, alpha=0.5)
    low = float(table[["true_score", "predicted_score"]].min().min())
    high = float(table[["true_score", "predicted_score"]].max().max())
    axis.plot([low, high], [low, high], color="grey", linewidth=1)
    axis.set(xlabel="true MAL score", ylabel="predicted MAL score", title=f"{label}: test split")
    written.append(_save(figure, paths.predicted_vs_true_plot))

    figure, axis = plt.subplots(figsize=(6, 4))
    axis.scatter(table["predicted_score"], table["residual"], s=6, alpha=0.5)
    axis.axhline(0.0, color="grey", linewidth=1)
    axis.set(xlabel="predicted MAL score", ylabel="predicted - true", title=f"{label}: residuals (test split)")
    written.append(_save(figure, paths.residuals_plot))
    return written


def learning_curve_plots(histories: dict[str, dict], primary: str, paths: ArtifactPaths) -> list[Path]:
    """learning_curves.csv (the primary network's, else the first network's) and a PNG of every network."""
    plt = _pyplot()
    chosen = primary if primary in histories else next(iter(histories), None)
    columns = ["epoch", "train_loss", "val_loss"]
    table = pd.DataFrame(columns=columns)
    if chosen is not None:
        history = histories[chosen]
        table = pd.DataFrame({"epoch": np.arange(1, len(history["train_loss"]) + 1),
                              "train_loss": history["train_loss"], "val_loss": history["val_loss"]})
    written = [_write_csv(table, paths.learning_curves_plot_table)]

    figure, axis = plt.subplots(figsize=(6, 4))
    for index, (label, history) in enumerate(histories.items()):
        epochs = np.arange(1, len(history["train_loss"]) + 1)
        colour = f"C{index}"
        axis.plot(epochs, history["train_loss"], color=colour, linestyle="--", label=f"{label} train")
        axis.plot(epochs, history["val_loss"], color=colour, label=f"{label} validation")
        axis.axvline(history["best_epoch"], color=colour, linewidth=0.5, alpha=0.5)
    if histories:
        axis.legend(fontsize=7)
    else:
        axis.text(0.5, 0.5, "no network trained", ha="center", va="center", transform=axis.transAxes)
    axis.set(xlabel="epoch", ylabel="MSE (normalised score)", title="learning curves (vertical line: kept epoch)")
    written.append(_save(figure, paths.learning_curves_plot))
    return written


def ablation_plots(ablation: dict[str, dict[str, dict[str, float]]], paths: ArtifactPaths) -> list[Path]:
    """ablation.csv (DVC horizontal bars of R2) and grouped MSE and R2 bars per input set and model."""
    plt = _pyplot()
    rows = [{"label": f"{input_set}/{model}", "input_set": input_set, "model": model, **values}
            for input_set, models in ablation.items() for model, values in models.items()]
    table = pd.DataFrame(rows)
    written = [_write_csv(table, paths.ablation_plot_table)]

    input_sets = list(ablation)
    models = list(dict.fromkeys(model for values in ablation.values() for model in values))
    figure, axes = plt.subplots(1, 2, figsize=(max(11, 0.9 * len(input_sets) * 2), 4.8))
    width = 0.8 / max(len(models), 1)
    for axis, metric in zip(axes, ("mse", "r2")):
        for index, model in enumerate(models):
            heights = [ablation[s].get(model, {}).get(metric, np.nan) for s in input_sets]
            axis.bar(np.arange(len(input_sets)) + index * width, heights, width, label=model)
        axis.set_xticks(np.arange(len(input_sets)) + width * (len(models) - 1) / 2, input_sets, rotation=45,
                        ha="right")  # 16 input sets side by side overprinted when level
        axis.set(ylabel=metric, title=f"ablation: {metric} (test split)")
        axis.axhline(0.0, color="grey", linewidth=0.5)
    axes[0].legend(fontsize=7)
    written.append(_save(figure, paths.ablation_plot))
    return written
