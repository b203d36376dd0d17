"""The evaluate step: test-split metrics of every trained model next to both baselines (train mean, length), plus plots.

The baseline always sits in the same table: on a min-max-normalised score a small MSE is easy to get, so a
model only counts if it beats predicting the training mean. Every model is scored on the same bootstrap
resamples (one seed), so their intervals are comparable. Metric names are the same in every run, so MLflow
and `dvc metrics diff` line runs up.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from anipop.core.artifacts import ArtifactPaths, MinMaxScaler, ModelBundle, PrimaryModel, load_bundle
from anipop.core.config import Params
from anipop.core.metrics import markdown_table, metrics_with_intervals_many
from anipop.core.model_catalog import BASELINES
from anipop.core.utils import read_json, write_json, write_text
from anipop.data.schema import PREPARED_ANIME, PREPARED_CHARACTERS, read_table
from anipop.evaluation.calibration import write_calibrations
from anipop.evaluation.plots import ablation_plots, learning_curve_plots, prediction_plots
from anipop.modeling.features import model_inputs

log = logging.getLogger(__name__)


def load_runs(paths: ArtifactPaths) -> tuple[dict, list[tuple[dict, ModelBundle]]]:
    """The train report and every (run, bundle) it lists, in training order."""
    report = read_json(paths.train_report)
    return report, [(run, load_bundle(paths.models_dir / run["path"])) for run in report["runs"]]


def run_label(run: dict) -> str:
    """A run's name in every table and prediction column: 'input_set/model'."""
    return f"{run['input_set']}/{run['model']}"


def predict_test(params: Params, runs: list[tuple[dict, ModelBundle]]) -> pd.DataFrame:
    """Test rows with the true normalised score and one prediction column per run label."""
    paths = ArtifactPaths.of(params.paths)
    anime = read_table(PREPARED_ANIME, paths.prepared_anime)
    test = anime[anime["split"] == "test"]
    if test.empty:
        raise ValueError(f"{paths.prepared_anime}: the test split is empty; check prepare.split")
    characters = read_table(PREPARED_CHARACTERS, paths.prepared_characters)
    predictions = pd.DataFrame({"anime_id": test["anime_id"].to_numpy(), "true": test["score_norm"].to_numpy()})
    features: dict[tuple, object] = {}
    for run, bundle in runs:
        key = (bundle.input_type, tuple(bundle.inputs), bundle.aggregation)
        if key not in features:
            features[key] = model_inputs(bundle.input_type, bundle.inputs, test["anime_id"], anime, characters,
                                         params.paths.embeddings_dir, params.paths.raw_dir, bundle.aggregation,
                                         bundle.image_size)
        predictions[run_label(run)] = np.clip(bundle.model.predict(features[key]), 0.0, 1.0)
    return predictions


def mlflow_label(label: str) -> str:
    """'all_inputs/ridge' stays; 'all_inputs/train_mean' becomes 'train_mean' (baselines ignore the input set)."""
    model = label.rpartition("/")[2]
    return model if model in BASELINES else label


def _cv_summary(paths: ArtifactPaths) -> dict | None:
    """The backtest stage's CV mean and sd per model (reports/cv_details.json), when CV ran."""
    return read_json(paths.cv_details).get("models") if paths.cv_details.exists() else None


def _rolling_summary(paths: ArtifactPaths) -> dict | None:
    """The rolling stage's mean and sd over years per model (reports/rolling_details.json), when it ran."""
    return read_json(paths.rolling_details).get("models") if paths.rolling_details.exists() else None


def _points(metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    return {name: round(entry["value"], 6) for name, entry in metrics.items()}


def run_evaluate(params: Params, track: bool = True) -> dict:
    """Write metrics.json, intervals.json, metrics.md and plots, log them to MLflow; return the summary."""
    paths = ArtifactPaths.of(params.paths)
    scaler = MinMaxScaler.read(paths.scaler)
    report, trained = load_runs(paths)
    predictions = predict_test(params, trained)
    # the served models' intervals, sized on validation here: register and the served model only read them
    write_calibrations(params, [(run_label(run), bundle) for run, bundle in trained])
    runs = report["runs"]
    y_true = predictions["true"].to_numpy()
    cfg = params.evaluate

    scored = metrics_with_intervals_many(  # every model on the same resamples
        y_true, {run_label(run): predictions[run_label(run)].to_numpy(dtype=float) for run in runs},
        scaler.high - scaler.low, cfg.bootstrap_samples, cfg.confidence, params.seed)
    primary = PrimaryModel.of_report(report)
    main_set = primary.input_set
    main = {run["model"]: scored[run_label(run)] for run in runs if run["input_set"] == main_set}
    ablation: dict[str, dict] = {}
    for run in runs:
        ablation.setdefault(run["input_set"], {})[run["model"]] = scored[run_label(run)]
    summary = {"test_rows": len(predictions), "primary": primary.model, "input_set": main_set,
               "models": main, "ablation": ablation}

    # metrics.json (the main table) and ablation.json hold point values only, so `dvc metrics show/diff` stay
    # readable; intervals.json holds every value with its interval.
    write_json(paths.metrics, {"test_rows": len(predictions),
                                          **{model: _points(values) for model, values in main.items()}})
    ablation_points = {input_set: {model: _points(values) for model, values in models.items()}
                       for input_set, models in ablation.items()}
    write_json(paths.ablation, ablation_points)
    write_json(paths.intervals, summary)
    main_table = markdown_table(main)
    ablation_table = markdown_table({f"{s}/{m}": v for s, models in ablation.items() for m, v in models.items()})
    skipped = "".join(f"- {entry['reason']}\n" for entry in report.get("skipped", []))
    text = (f"Test split: {len(predictions)} anime. Normalised score (min-max over train); "
            f"{cfg.confidence:.0%} bootstrap intervals ({cfg.bootstrap_samples} resamples).\n\n"
            f"## Models on {main_set} (primary: {primary.model})\n\n{main_table}\n"
            f"## Ablation: input set / model\n\n{ablation_table}"
            + (f"\nSkipped (the data lacks these inputs):\n\n{skipped}" if skipped else ""))
    write_text(paths.metrics_table, text)

    primary_label = primary.label
    histories = {run_label(run): run["history"] for run in runs if run["input_set"] == main_set and "history" in run}
    plots = [*prediction_plots(y_true, predictions[primary_label].to_numpy(), predictions["anime_id"],
                               primary_label, scaler, paths),
             *learning_curve_plots(histories, primary_label, paths),
             *ablation_plots(ablation_points, paths)]
    print(f"\n{text}")
    if track:
        from anipop.evaluation.mlflow_runs import log_evaluation_runs

        extras = [paths.metrics, paths.ablation, paths.intervals, paths.calibration, paths.metrics_table, *plots,
                  paths.embeddings_manifest, paths.train_report]
        backtests = [path for path in (paths.backtest_table, paths.cv_metrics, paths.temporal_metrics,
                                       paths.rolling_table, paths.rolling_metrics) if path.exists()]
        named = {label: mlflow_label(label) for label in scored}  # a baseline's child is named by it alone
        summary["mlflow_run_id"] = log_evaluation_runs(  # the parent run; one child per input set and model
            params, {named[label]: values for label, values in scored.items()}, cv=_cv_summary(paths),
            rolling=_rolling_summary(paths),
            predictions=predictions.rename(columns=named), artifacts=[*extras, *backtests],
            test_rows=len(predictions))["parent_run_id"]
    return summary
