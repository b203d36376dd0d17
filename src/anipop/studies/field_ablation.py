"""Each input set alone (every pitch metadata field, all metadata, the synopsis) on the backtest's own evaluations.

Why: the main backtest refits every model on the main input set only, so it cannot say what the studio alone,
or the genres alone, are worth; the ablation table of the evaluate step has the test split only. This step
refits a few cheap models (params.field_ablation.models: ridge on one-hot metadata, the synopsis-only text
models) per input set on the same franchise-grouped CV folds, the same temporal backtest and the same test split,
through anipop.evaluation.backtest's own functions (run_crossval, run_temporal, fit_and_predict): no fold or metric is
written twice. A model fits only the sets it can read (train.reads_input_set), as in the train step.

The baselines (train mean, synopsis length) are refitted with every set, on the same rows; they are the same
for every set, so they are reported once. Fit times are logged, never written: the outputs change only with
the fits.
"""

from __future__ import annotations

import logging
import time

import pandas as pd

from anipop.core.artifacts import ArtifactPaths
from anipop.core.config import Params
from anipop.core.input_kinds import INPUT_SETS
from anipop.core.metrics import point_metrics
from anipop.core.model_catalog import BASELINES
from anipop.core.utils import write_json, write_text
from anipop.data.schema import PREPARED_ANIME, PREPARED_CHARACTERS, read_table
from anipop.evaluation.backtest import fit_and_predict, run_crossval, run_temporal
from anipop.modeling.train import reads_input_set
from anipop.studies.results_table import ScoreRow, markdown_rows, row_counts_line

log = logging.getLogger(__name__)


def models_reading(params: Params, input_set: str) -> list[str]:
    """The configured ablation models that read `input_set`, in config order."""
    return [name for name in params.field_ablation.models if reads_input_set(name, input_set)]


def check_plan(params: Params) -> dict[str, list[str]]:
    """input set -> its models; a set no configured model reads is a configuration error, raised before any fit."""
    plan = {input_set: models_reading(params, input_set) for input_set in params.field_ablation.input_sets}
    unread = [input_set for input_set, models in plan.items() if not models]
    if unread:
        raise ValueError(f"params.yaml field_ablation.input_sets: no model of field_ablation.models "
                         f"{list(params.field_ablation.models)} reads {unread}; add one that does (meta_ridge reads "
                         f"the metadata and the synopsis, ridge the embedded kinds) or drop the set")
    return plan


def ablation_params(params: Params, input_set: str, models: list[str]) -> Params:
    """params as the backtest sees them for one set: its models on it (baselines beside), the ablation's bootstrap."""
    train = params.train.model_copy(update={"inputs": input_set, "models": tuple(models)})
    evaluate = params.evaluate.model_copy(update={"bootstrap_samples": params.field_ablation.bootstrap_samples})
    return params.model_copy(update={"train": train, "evaluate": evaluate})


def evaluate_set(params: Params, anime: pd.DataFrame, characters: pd.DataFrame) -> dict:
    """CV (mean ± sd), temporal and test metrics of every model and baseline on params.train.inputs.

    Returns {"models": {name: {"cv": ..., "temporal": ..., "test": ...}}, "rows": {...}}; a part the config
    switches off (cv_folds 0, temporal off) or the data cannot fill (no test split) is absent.
    """
    cfg = params.evaluate
    found: dict[str, dict] = {}
    rows: dict = {}
    if cfg.cv_folds >= 2:
        cv = run_crossval(params, anime, characters)
        rows["cv_folds"] = [fold["test"] for fold in cv["folds"]]
        for name, metrics in cv["models"].items():
            found.setdefault(name, {})["cv"] = metrics
    if cfg.temporal.enabled:
        temporal = run_temporal(params, anime, characters)
        rows["temporal"] = {"cut_year": temporal["cut_year"], **temporal["counts"]}
        for name, metrics in temporal.get("models", {}).items():
            found.setdefault(name, {})["temporal"] = metrics
    test = anime[anime["split"] == "test"]
    if len(test) >= 2:
        fit_rows = {split: anime[anime["split"] == split] for split in ("train", "val")}
        y_true, predictions, score_range = fit_and_predict(params, anime, characters, fit_rows, test)
        rows["test"] = len(test)
        for name, predicted in predictions.items():
            found.setdefault(name, {})["test"] = point_metrics(y_true, predicted, score_range)
    return {"models": found, "rows": rows}


def run_field_ablation(params: Params) -> dict:
    """Write reports/field_ablation.json and .md: per input set and model, CV mean ± sd, temporal and test."""
    paths = ArtifactPaths.of(params.paths)
    cfg = params.field_ablation
    if not cfg.enabled:  # the stage still writes its outputs, so `dvc repro` has them
        write_json(paths.field_ablation_metrics, {"enabled": False})
        write_text(paths.field_ablation_table, "The per-input-set ablation is off (field_ablation.enabled: false).\n")
        return {"enabled": False}
    plan = check_plan(params)
    anime = read_table(PREPARED_ANIME, paths.prepared_anime)
    characters = read_table(PREPARED_CHARACTERS, paths.prepared_characters)
    # "order": the configured order of the sets (the JSON's keys are written sorted)
    report: dict = {"enabled": True, "order": list(plan), "input_sets": {}, "baselines": {}, "skipped": []}
    started = time.perf_counter()
    for input_set, models in plan.items():
        set_started = time.perf_counter()
        result = evaluate_set(ablation_params(params, input_set, models), anime, characters)
        report.setdefault("rows", result["rows"])  # the same folds and splits for every set
        for name in BASELINES:
            if name in result["models"]:
                report["baselines"].setdefault(name, result["models"][name])
        fitted = {name: result["models"][name] for name in models if name in result["models"]}
        for name in models:
            if name not in fitted:
                report["skipped"].append({"input_set": input_set, "model": name, "reason":
                                          f"the data has none of {list(INPUT_SETS[input_set])}"})
        report["input_sets"][input_set] = fitted
        log.info("field-ablation: %s (%s): %.1fs", input_set, ", ".join(models), time.perf_counter() - set_started)
    log.info("field-ablation: %d input sets in %.1fs", len(plan), time.perf_counter() - started)
    write_json(paths.field_ablation_metrics, report)
    text = ablation_markdown(report, params)
    write_text(paths.field_ablation_table, text)
    print(text)
    return report


def ablation_markdown(report: dict, params: Params) -> str:
    """field_ablation.md: the baselines, then one row per input set and model."""
    rows = [ScoreRow("baseline", "synopsis (its length)" if name != "train_mean" else "none", name, entry)
            for name, entry in report["baselines"].items()]
    rows += [ScoreRow("input set alone", input_set, name, entry)
             for input_set in report["order"] for name, entry in report["input_sets"][input_set].items()]
    skipped = "".join(f"- {s['model']} on {s['input_set']}: skipped, {s['reason']}\n" for s in report["skipped"])
    return (f"# Each input set alone, next to the baselines\n\n{row_counts_line(report.get('rows', {}))}\n\n"
            f"Models: {', '.join(params.field_ablation.models)} (each on the sets it reads); every metric is in "
            f"field_ablation.json.\n\n{markdown_rows(rows)}" + (f"\n{skipped}" if skipped else ""))
