"""Honest estimates beyond one test split: franchise-grouped K-fold CV and a temporal backtest.

Why both: a 10 % test split of a few hundred anime is noisy, and model differences of a few hundredths of R²
drown in it; K folds give a spread and paired per-fold differences. And "before huge investments" means a show
that does not exist yet: the temporal backtest trains on franchises that began before a cut year and tests on
franchises that began after it, which is how anipop is used on next season's pitches.

Both refit every model and both baselines with the train step's own code (train.TrainingData / fit_model), on
the main input set. CV runs over train+val only: the test split stays untouched for the final evaluation.
Within each fold the score scaler is refitted on the fold's training rows, like the train step does on train.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pandas as pd

from anipop.core.artifacts import ArtifactPaths, MinMaxScaler
from anipop.core.config import Params
from anipop.core.metrics import (
    COMPARED_METRICS,
    LOWER_IS_BETTER,
    METRIC_NAMES,
    comparison_lines,
    markdown_table,
    metrics_with_intervals_many,
    paired_difference,
    point_metrics,
)
from anipop.core.model_catalog import unsaid_franchise
from anipop.core.utils import map_in_processes, worker_count, write_json, write_text
from anipop.data.franchise import first_year, hash_position
from anipop.data.schema import PREPARED_ANIME, PREPARED_CHARACTERS, read_table
from anipop.modeling.pitch import PitchModel
from anipop.modeling.train import TrainingData, backtest_models, fit_model, input_type_of, model_kinds, resolve_kinds

log = logging.getLogger(__name__)

PAIRED_METRICS = ("r2", "spearman")
VAL_SHARE = 0.1  # the temporal backtest's early-stopping rows: this share of the pre-cut franchises


def fit_and_predict(params: Params, anime: pd.DataFrame, characters: pd.DataFrame, rows: dict[str, pd.DataFrame],
                    test: pd.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray], float]:
    """Fit every model and baseline on rows['train'] (val for early stopping); predict `test`.

    Returns (true normalised scores of `test`, model -> predictions, the scaler's 1-10 range).
    """
    scaler = MinMaxScaler.fit(rows["train"]["score"])
    targets = {split: scaler.transform(part["score"].to_numpy(dtype=np.float64)) for split, part in rows.items()}
    data = TrainingData(params, anime, characters, rows, targets)
    input_set = params.train.inputs
    resolved = resolve_kinds(input_set, data)
    predictions: dict[str, np.ndarray] = {}
    for name in backtest_models(params, input_set):
        kinds = model_kinds(name, resolved)
        if not kinds:
            continue
        model, _ = fit_model(name, kinds, data)
        inputs = data.inputs_for(test["anime_id"], input_type_of(name), kinds)
        predictions[name] = np.clip(model.predict(inputs), 0.0, 1.0)
        if name == params.train.model and isinstance(model, PitchModel) and model.reads_franchise_scores:
            # the same model for pitches that do not say their franchise's earlier scores
            unsaid = replace(inputs, earlier_scores=None)
            predictions[unsaid_franchise(name)] = np.clip(model.predict(unsaid), 0.0, 1.0)
    previous = params.evaluate.previous_recipe
    if previous.enabled and params.train.model in predictions:
        predictions[previous.name] = _previous_recipe_predictions(params, anime, characters, rows, targets, test)
    y_true = scaler.transform(test["score"].to_numpy(dtype=np.float64))
    return y_true, predictions, scaler.high - scaler.low


def _previous_recipe_predictions(params: Params, anime: pd.DataFrame, characters: pd.DataFrame,
                                 rows: dict[str, pd.DataFrame], targets: dict[str, np.ndarray],
                                 test: pd.DataFrame) -> np.ndarray:
    """The primary model refitted under evaluate.previous_recipe on the same rows: the recipe it replaces."""
    before = params.previous_recipe_params()
    data = TrainingData(before, anime, characters, rows, targets)
    name = params.train.model
    kinds = model_kinds(name, resolve_kinds(before.train.inputs, data))
    model, _ = fit_model(name, kinds, data)
    return np.clip(model.predict(data.inputs_for(test["anime_id"], input_type_of(name), kinds)), 0.0, 1.0)


def previous_recipe_comparison(params: Params, y_true: np.ndarray, predictions: dict[str, np.ndarray],
                               score_range: float) -> dict | None:
    """Primary model minus its previous recipe on the same anime: paired bootstrap differences (same resamples)."""
    cfg, previous = params.evaluate, params.evaluate.previous_recipe
    if not previous.enabled or previous.name not in predictions or params.train.model not in predictions:
        return None
    now, before = predictions[params.train.model], predictions[previous.name]
    return {"a": params.train.model, "b": previous.name,
            **{metric: paired_difference(y_true, now, before, metric, cfg.bootstrap_samples, cfg.confidence,
                                         params.seed, score_range) for metric in COMPARED_METRICS}}


def fold_of(group_id: int, seed: int, repeat: int, folds: int) -> int:
    """A franchise's fold in one repeat: a seeded hash, so a group's anime always share their fold."""
    return min(int(hash_position(f"cv{repeat}:{group_id}", seed) * folds), folds - 1)


def crossval_jobs(params: Params, anime: pd.DataFrame) -> list[tuple[int, int, dict[str, pd.DataFrame], pd.DataFrame]]:
    """(repeat, fold, fit rows {train, val}, test rows) of every franchise-grouped CV fold over train+val."""
    cfg = params.evaluate
    pool = anime[anime["split"].isin(["train", "val"])]
    jobs = []
    for repeat in range(cfg.cv_repeats):
        fold = pool["group_id"].map(lambda g, r=repeat: fold_of(int(g), params.seed, r, cfg.cv_folds))
        for k in range(cfg.cv_folds):
            test, rest = pool[fold == k], pool[fold != k]
            if test.empty or rest.empty:
                continue
            jobs.append((repeat, k, {"train": rest[rest["split"] == "train"], "val": rest[rest["split"] == "val"]},
                         test))
    return jobs


def run_crossval(params: Params, anime: pd.DataFrame, characters: pd.DataFrame) -> dict:
    """Franchise-grouped K-fold CV (times repeats) over train+val; per-fold metrics of every model."""
    cfg = params.evaluate
    per_fold: dict[str, list[dict[str, float]]] = {}
    folds_info = []
    jobs = crossval_jobs(params, anime)  # fitted side by side (evaluate.workers), reported in order
    fitted = map_in_processes(fit_and_predict, [(params, anime, characters, rows, test) for *_, rows, test in jobs],
                              worker_count(cfg.workers, len(jobs)))
    for (repeat, k, rows, test), (y_true, predictions, score_range) in zip(jobs, fitted, strict=True):
        for name, predicted in predictions.items():
            per_fold.setdefault(name, []).append(point_metrics(y_true, predicted, score_range))
        folds_info.append({"repeat": repeat, "fold": k, "train": len(rows["train"]), "val": len(rows["val"]),
                           "test": len(test), "test_groups": int(test["group_id"].nunique())})
        log.info("backtest: CV repeat %d fold %d: %d test anime (%d franchises), trained on %d",
                 repeat, k, len(test), test["group_id"].nunique(), len(rows["train"]))
    summary = {name: {metric: {"mean": float(np.mean([f[metric] for f in folds])),
                               "sd": float(np.std([f[metric] for f in folds], ddof=1)) if len(folds) > 1 else 0.0}
                      for metric in METRIC_NAMES}
               for name, folds in per_fold.items()}
    return {"folds": folds_info, "models": summary, "per_fold": per_fold,
            "paired": paired_differences(per_fold)}


def paired_differences(per_fold: dict[str, list[dict[str, float]]]) -> list[dict]:
    """Every model against every other on the same folds: mean ± sd of the difference and folds won."""
    names = list(per_fold)
    rows = []
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            for metric in PAIRED_METRICS:
                diffs = np.array([a[metric] - b[metric] for a, b in zip(per_fold[first], per_fold[second],
                                                                         strict=True)])
                rows.append({"a": first, "b": second, "metric": metric, "mean": float(diffs.mean()),
                             "sd": float(diffs.std(ddof=1)) if len(diffs) > 1 else 0.0,
                             "a_wins": int((diffs > 0).sum()), "folds": len(diffs)})
    return rows


def temporal_rows(anime: pd.DataFrame, cut_year: int, seed: int) -> tuple[dict[str, pd.DataFrame], dict]:
    """Rows of the temporal backtest, grouped: a franchise belongs to the year its first anime aired.

    train/val: anime that aired before the cut, of franchises that began before it (val: a hashed share of
    those franchises); test: franchises that began in or after the cut year; sequels: later anime of
    franchises that began before the cut (excluded from both, scored apart). Anime without a date are left out.
    """
    year = first_year(anime["premiered"])
    dated = anime[year.notna()].assign(year=year[year.notna()].astype(int))
    start = dated.groupby("group_id")["year"].transform("min")
    old = dated[start < cut_year]
    in_val = old["group_id"].map(lambda g: hash_position(f"temporal-val:{g}", seed) < VAL_SHARE)
    before = old["year"] < cut_year
    rows = {"train": old[before & ~in_val], "val": old[before & in_val], "test": dated[start >= cut_year],
            "sequels": old[~before]}
    counts = {name: len(part) for name, part in rows.items()}
    counts["undated"] = int(year.isna().sum())
    return rows, counts


def run_temporal(params: Params, anime: pd.DataFrame, characters: pd.DataFrame) -> dict:
    """Train before the cut year, test on new franchises after it (and, apart, on post-cut sequels)."""
    cfg = params.evaluate
    rows, counts = temporal_rows(anime, cfg.temporal.cut_year, params.seed)
    if rows["train"].empty or rows["test"].empty:
        return {"cut_year": cfg.temporal.cut_year, "counts": counts, "skipped": "no anime on one side of the cut"}
    fit_rows = {"train": rows["train"], "val": rows["val"]}
    both = pd.concat([rows["test"], rows["sequels"]])
    y_true, predictions, score_range = fit_and_predict(params, anime, characters, fit_rows, both)
    new = np.arange(len(both)) < len(rows["test"])
    result: dict = {"cut_year": cfg.temporal.cut_year, "counts": counts, "models": {}, "sequels": {}}
    for part, mask in (("models", new), ("sequels", ~new)):
        if mask.sum() < 3:
            continue
        result[part].update(metrics_with_intervals_many(  # every model on the same resamples
            y_true[mask], {name: predicted[mask] for name, predicted in predictions.items()}, score_range,
            cfg.bootstrap_samples, cfg.confidence, params.seed))
    comparison = previous_recipe_comparison(params, y_true[new], {k: v[new] for k, v in predictions.items()},
                                            score_range)
    if comparison:
        result["previous_recipe"] = comparison
    return result


def rolling_jobs(anime: pd.DataFrame, first: int, last: int, seed: int) -> list[tuple[int, dict, pd.DataFrame, dict]]:
    """(year, fit rows {train, val}, test rows, counts) of each rolling-origin year: fit on the franchises begun
    before the year (anime aired before it), test on the anime that aired in the year of franchises begun in it."""
    jobs = []
    for year in range(first, last + 1):
        rows, counts = temporal_rows(anime, year, seed)
        test = rows["test"][rows["test"]["year"] == year]
        if rows["train"].empty or len(test) < 3:
            continue
        jobs.append((year, {"train": rows["train"], "val": rows["val"]}, test,
                     {"train": len(rows["train"]), "val": len(rows["val"]), "test": len(test),
                      "test_franchises": int(test["group_id"].nunique())}))
    return jobs


def run_rolling(params: Params, anime: pd.DataFrame, characters: pd.DataFrame) -> dict:
    """Rolling origin: for each year from evaluate.rolling.first_year to last_year, every model and baseline
    refitted on what came before and scored on that year's new franchises; per year and mean ± sd over years.

    Why beside the single cut: one cut year is one draw; the years give a spread and show whether the gap to
    cross-validation closes or widens, one year ahead, which is how a yearly retraining serves."""
    cfg = params.evaluate.rolling
    jobs = rolling_jobs(anime, cfg.first_year, cfg.last_year, params.seed)
    fitted = map_in_processes(fit_and_predict, [(params, anime, characters, rows, test) for _, rows, test, _ in jobs],
                              worker_count(params.evaluate.workers, len(jobs)))
    years: dict[str, dict] = {}
    per_model: dict[str, list[dict[str, float]]] = {}
    for (year, _, _, counts), (y_true, predictions, score_range) in zip(jobs, fitted, strict=True):
        scored = {name: point_metrics(y_true, predicted, score_range) for name, predicted in predictions.items()}
        years[str(year)] = {"counts": counts, "models": scored}
        for name, values in scored.items():
            per_model.setdefault(name, []).append(values)
        log.info("backtest: rolling origin %d: %d new-franchise anime, trained on %d", year, counts["test"],
                 counts["train"])
    summary = {name: {metric: {"mean": float(np.mean([v[metric] for v in values])),
                               "sd": float(np.std([v[metric] for v in values], ddof=1)) if len(values) > 1 else 0.0}
                      for metric in METRIC_NAMES}
               for name, values in per_model.items()}
    result = {"first_year": cfg.first_year, "last_year": cfg.last_year, "years": years, "models": summary}
    previous = params.evaluate.previous_recipe
    if previous.enabled and previous.name in summary and params.train.model in summary:
        result["previous_recipe"] = _years_compared(years, params.train.model, previous.name)
    return result


def _years_compared(years: dict[str, dict], now: str, before: str) -> dict:
    """now - before per metric over the rolling years: mean ± sd of the yearly differences and years better
    (metrics.LOWER_IS_BETTER for the errors)."""
    compared: dict = {"a": now, "b": before}
    for metric in COMPARED_METRICS:
        diffs = np.array([y["models"][now][metric] - y["models"][before][metric] for y in years.values()])
        better = (diffs < 0) if metric in LOWER_IS_BETTER else (diffs > 0)
        compared[metric] = {"mean": float(diffs.mean()), "sd": float(diffs.std(ddof=1)) if len(diffs) > 1 else 0.0,
                            "years_better": int(better.sum()), "years": len(diffs)}
    return compared


def rolling_table(rolling: dict) -> str:
    """Per model: Spearman per year, then mean ± sd of Spearman, R² and MAE (1-10) over the years."""
    years = list(rolling["years"])
    lines = ["| model | " + " | ".join(years) + " | Spearman mean ± sd | R² mean ± sd | MAE (1-10) mean ± sd |",
             "|---|" + "---|" * (len(years) + 3)]
    for name, summary in rolling["models"].items():
        per_year = [f"{rolling['years'][y]['models'][name]['spearman']:.3f}" if name in rolling["years"][y]["models"]
                    else "—" for y in years]
        lines.append(f"| {name} | " + " | ".join(per_year) + " | " + " | ".join(
            f"{summary[m]['mean']:.3f} ± {summary[m]['sd']:.3f}" for m in ("spearman", "r2", "mae_1_10")) + " |")
    counts = ", ".join(f"{y}: {rolling['years'][y]['counts']['test']}" for y in years)
    return "\n".join(lines) + f"\n\nAnime scored per year (new franchises): {counts}.\n"


def write_rolling(params: Params) -> dict:
    """The rolling-origin stage: reports/rolling.json (metrics), rolling_details.json and rolling.md."""
    paths = ArtifactPaths.of(params.paths)
    anime = read_table(PREPARED_ANIME, paths.prepared_anime)
    characters = read_table(PREPARED_CHARACTERS, paths.prepared_characters)
    cfg = params.evaluate.rolling
    if not cfg.enabled:
        write_json(paths.rolling_metrics, {"enabled": False})
        write_json(paths.rolling_details, {"skipped": "evaluate.rolling.enabled is false"})
        write_text(paths.rolling_table, "The rolling-origin backtest is off (evaluate.rolling.enabled: false).\n")
        return {"enabled": False}
    rolling = run_rolling(params, anime, characters)
    write_json(paths.rolling_metrics, {"years": len(rolling["years"]), **_points(rolling["models"])})
    write_json(paths.rolling_details, rolling)
    text = (f"# Rolling origin: each year from {cfg.first_year} to {cfg.last_year}, trained on what came before\n\n"
            f"Every model and both baselines refitted per year on the anime of franchises begun before it (aired "
            f"before it), scored on the anime aired in that year of franchises begun in it. Spearman per year; mean "
            f"± sd over the years.\n\n{rolling_table(rolling)}"
            + (f"\n## Against the previous recipe\n\n{comparison_lines(None, rolling)}"
               if rolling.get("previous_recipe") else ""))
    write_text(paths.rolling_table, text)
    print(text)
    return rolling


def _cv_table(summary: dict) -> str:
    header = "| model | " + " | ".join(METRIC_NAMES) + " |"
    lines = [header, "|" + "---|" * (len(METRIC_NAMES) + 1)]
    for name, values in summary.items():
        cells = [f"{values[m]['mean']:.4f} ± {values[m]['sd']:.4f}" for m in METRIC_NAMES]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _paired_table(paired: list[dict]) -> str:
    lines = ["| a - b | metric | mean ± sd | a better in |", "|---|---|---|---|"]
    for row in paired:
        lines.append(f"| {row['a']} - {row['b']} | {row['metric']} | {row['mean']:+.3f} ± {row['sd']:.3f} | "
                     f"{row['a_wins']}/{row['folds']} folds |")
    return "\n".join(lines) + "\n"


def _points(models: dict) -> dict:
    """mean (CV) or value (temporal) per model and metric: the numbers `dvc metrics diff` compares."""
    return {name: {metric: round(entry.get("mean", entry.get("value")), 6) for metric, entry in metrics.items()}
            for name, metrics in models.items()}


def run_backtest(params: Params) -> dict:
    """Write reports/cv.json, reports/temporal.json (metrics) and reports/backtest.md; return both results."""
    paths = ArtifactPaths.of(params.paths)
    anime = read_table(PREPARED_ANIME, paths.prepared_anime)
    characters = read_table(PREPARED_CHARACTERS, paths.prepared_characters)
    cfg = params.evaluate
    sections = [f"# Backtests of the main input set ({params.train.inputs})\n"]
    # with several workers the temporal fit runs in a thread here while the CV folds run on their processes (the
    # parent would only wait): one round of fits less; each fit is deterministic, so no figure changes
    side = ThreadPoolExecutor(1) if cfg.temporal.enabled and worker_count(cfg.workers, 2) > 1 else None
    temporal_fit = side.submit(run_temporal, params, anime, characters) if side else None
    cv = run_crossval(params, anime, characters) if cfg.cv_folds >= 2 else None
    if cv:
        write_json(paths.cv_metrics, {"folds": len(cv["folds"]), **_points(cv["models"])})
        write_json(paths.cv_details, cv)
        sizes = ", ".join(str(f["test"]) for f in cv["folds"])
        sections.append(f"## Franchise-grouped {cfg.cv_folds}-fold CV x {cfg.cv_repeats} (train+val; test anime "
                        f"per fold: {sizes})\n\nmean ± sd over folds; every model refitted per fold.\n\n"
                        f"{_cv_table(cv['models'])}\n### Paired differences (same folds)\n\n"
                        f"{_paired_table(cv['paired'])}")
    else:
        write_json(paths.cv_metrics, {"folds": 0})
        write_json(paths.cv_details, {"skipped": "evaluate.cv_folds is 0"})
    if side:
        temporal = temporal_fit.result()
        side.shutdown()
    else:
        temporal = run_temporal(params, anime, characters) if cfg.temporal.enabled else None
    if temporal and "models" in temporal:
        write_json(paths.temporal_metrics, {"cut_year": temporal["cut_year"], **temporal["counts"],
                                          **_points(temporal["models"])})
        write_json(paths.temporal_details, temporal)
        c = temporal["counts"]
        sections.append(f"## Temporal backtest: franchises first aired before {temporal['cut_year']} -> after\n\n"
                        f"Trained on {c['train']} anime (+{c['val']} for early stopping); tested on {c['test']} "
                        f"anime of franchises that began in {temporal['cut_year']} or later. {c['sequels']} later "
                        f"sequels of older franchises are scored apart; {c['undated']} undated anime left out.\n\n"
                        f"### New franchises\n\n{markdown_table(temporal['models'])}"
                        + (f"\n### Against the previous recipe (paired bootstrap, same anime)\n\n"
                           f"{comparison_lines(temporal, None)}" if temporal.get("previous_recipe") else "")
                        + (f"\n### Sequels of pre-{temporal['cut_year']} franchises (not a pitch for a new show)\n\n"
                           f"{markdown_table(temporal['sequels'])}" if temporal["sequels"] else ""))
    else:
        write_json(paths.temporal_metrics, {"cut_year": cfg.temporal.cut_year,
                                          **(temporal or {}).get("counts", {})})
        write_json(paths.temporal_details, temporal or {"skipped": "evaluate.temporal.enabled is false"})
    text = "\n".join(sections)
    write_text(paths.backtest_table, text)
    print(text)
    return {"cv": cv, "temporal": temporal}
