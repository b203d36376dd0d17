"""Do characters and portraits add to the synopsis? The ablation that answers it on the real sample, honestly.

The question is asked of the anime that have main characters (the shared sample: ~230 popular shows) with
franchise-grouped K-fold CV, the backtest's own folds (backtest.fold_of over train+val; sequels share their
leads, so a franchise never sits on both sides). Each fold trains on ALL other anime, with and without
characters, exactly like the joint production model (train.fit_model, modality masks and dropout included),
and is scored twice: on its anime with characters (the ablation) and on its anime without (does the character
branch cost anything on a synopsis-only pitch?).

Input variants: synopsis only, + character descriptions, + portraits, all inputs; for ridge and the network
(`multimodal.models`), beside the train-mean and length-only baselines. Reported as mean ± sd over folds and as
paired per-fold differences against synopsis-only with a t interval, so "the data cannot tell" is said when
the interval straddles zero. Outputs: reports/multimodal.md, multimodal.json (DVC metrics), multimodal_details.json.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
from scipy import stats

from anipop.core.artifacts import ArtifactPaths, MinMaxScaler
from anipop.core.config import Params
from anipop.core.metrics import point_metrics
from anipop.core.model_catalog import BASELINES
from anipop.core.utils import map_in_processes, worker_count, write_json, write_text
from anipop.data.schema import PREPARED_ANIME, PREPARED_CHARACTERS, read_table
from anipop.evaluation.backtest import fold_of
from anipop.modeling.features import available_kinds
from anipop.modeling.train import TrainingData, fit_model, input_type_of

log = logging.getLogger(__name__)

SYNOPSIS_ONLY = "synopsis"
JOINT = "all_inputs"
VARIANTS: dict[str, tuple[str, ...]] = {
    SYNOPSIS_ONLY: ("synopsis",),
    "+descriptions": ("synopsis", "character_description"),
    "+portraits": ("synopsis", "portrait"),
    JOINT: ("synopsis", "character_description", "character_name", "portrait"),
}
REPORTED = ("spearman", "r2", "rmse_1_10")  # shown in the markdown tables (the JSON has every metric)
PAIRED = ("spearman", "r2")
MIN_TEST_ROWS = 3  # a fold subset smaller than this has no meaningful correlation: skipped, and said so


def label(model: str, variant: str | None) -> str:
    """'ridge: +portraits' (a baseline is its name alone)."""
    return model if variant is None else f"{model}: {variant}"


def _predict(name: str, kinds: list[str], data: TrainingData, test_ids) -> np.ndarray:
    model, _ = fit_model(name, kinds, data)
    return np.clip(model.predict(data.inputs_for(test_ids, input_type_of(name), kinds)), 0.0, 1.0)


def run_fold(params: Params, anime: pd.DataFrame, characters: pd.DataFrame, rows: dict[str, pd.DataFrame],
             test: pd.DataFrame, variants: dict[str, list[str]]) -> dict[str, dict[str, dict[str, float]]]:
    """Fit every (model, variant) and both baselines on `rows`; metrics on test anime with / without characters."""
    scaler = MinMaxScaler.fit(rows["train"]["score"])
    targets = {split: scaler.transform(part["score"].to_numpy(dtype=np.float64)) for split, part in rows.items()}
    data = TrainingData(params, anime, characters, rows, targets)
    has = test["anime_id"].isin(set(characters["anime_id"])).to_numpy()
    y_true = scaler.transform(test["score"].to_numpy(dtype=np.float64))
    score_range = scaler.high - scaler.low
    results: dict[str, dict[str, dict[str, float]]] = {"with": {}, "without": {}}
    fits = [(name, None, ["synopsis"]) for name in BASELINES]
    fits += [(name, variant, kinds) for name in params.multimodal.models for variant, kinds in variants.items()]
    for name, variant, kinds in fits:
        started = time.perf_counter()
        predicted = _predict(name, kinds, data, test["anime_id"])
        log.info("multimodal: %s on %s: %.1fs", name, "+".join(kinds), time.perf_counter() - started)
        for part, mask in (("with", has), ("without", ~has)):
            scored_here = part == "with" or variant in (None, SYNOPSIS_ONLY, JOINT)
            if scored_here and mask.sum() >= MIN_TEST_ROWS:
                results[part][label(name, variant)] = point_metrics(y_true[mask], predicted[mask], score_range)
    return results


def summarise(per_fold: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, dict[str, float]]]:
    return {name: {metric: {"mean": float(np.mean([f[metric] for f in folds])),
                            "sd": float(np.std([f[metric] for f in folds], ddof=1)) if len(folds) > 1 else 0.0}
                   for metric in folds[0]}
            for name, folds in per_fold.items() if folds}


def paired(per_fold: dict[str, list[dict[str, float]]], a: str, b: str, confidence: float) -> list[dict]:
    """a - b on the same folds, per metric: mean, sd, a t interval of the mean, folds a wins, a verdict."""
    rows = []
    if a not in per_fold or b not in per_fold:  # a fold too small to score one of them: no paired figure
        log.info("multimodal: %s vs %s not paired: not scored on every fold", a, b)
        return rows
    for metric in PAIRED:
        diffs = np.array([x[metric] - y[metric] for x, y in zip(per_fold[a], per_fold[b], strict=True)])
        n = len(diffs)
        sd = float(diffs.std(ddof=1)) if n > 1 else 0.0
        half = float(stats.t.ppf((1 + confidence) / 2, n - 1) * sd / np.sqrt(n)) if n > 1 else float("inf")
        low, high = float(diffs.mean()) - half, float(diffs.mean()) + half
        verdict = "cannot tell" if low <= 0 <= high else ("better" if low > 0 else "worse")
        rows.append({"a": a, "b": b, "metric": metric, "mean": float(diffs.mean()), "sd": sd, "low": low,
                     "high": high, "a_wins": int((diffs > 0).sum()), "folds": n, "verdict": verdict})
    return rows


def _table(summary: dict) -> str:
    lines = ["| model | input | " + " | ".join(REPORTED) + " |", "|---|---|" + "---|" * len(REPORTED)]
    for name, values in summary.items():
        model, _, variant = name.partition(": ")
        cells = [f"{values[m]['mean']:.3f} ± {values[m]['sd']:.3f}" for m in REPORTED]
        lines.append(f"| {model} | {variant or '(baseline)'} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _paired_table(rows: list[dict], confidence: float) -> str:
    lines = [f"| a - b | metric | mean ± sd | {confidence:.0%} t interval | a better in | verdict |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['a']} - {r['b']} | {r['metric']} | {r['mean']:+.3f} ± {r['sd']:.3f} | "
                     f"[{r['low']:+.3f}, {r['high']:+.3f}] | {r['a_wins']}/{r['folds']} | {r['verdict']} |")
    return "\n".join(lines) + "\n"


def run_multimodal_ablation(params: Params) -> dict:
    """Run the ablation; write reports/multimodal.md, multimodal.json and multimodal_details.json."""
    paths = ArtifactPaths.of(params.paths)
    anime = read_table(PREPARED_ANIME, paths.prepared_anime)
    characters = read_table(PREPARED_CHARACTERS, paths.prepared_characters)
    folds, seed, confidence = params.evaluate.cv_folds, params.seed, params.evaluate.confidence
    pool = anime[anime["split"].isin(["train", "val"])]
    has = pool["anime_id"].isin(set(characters["anime_id"]))
    variants = {name: available_kinds(params.paths.embeddings_dir, kinds) for name, kinds in VARIANTS.items()}
    variants = {name: kinds for name, kinds in variants.items() if name == SYNOPSIS_ONLY or len(kinds) > 1}
    base = {"pool": {"anime": len(pool), "with_characters": int(has.sum()),
                     "franchises_with_characters": int(pool.loc[has, "group_id"].nunique())},
            "folds": folds, "models": list(params.multimodal.models), "variants": variants}
    if folds < 2 or has.sum() < 2 * folds or len(variants) < 2:
        why = (f"skipped: {int(has.sum())} train+val anime with characters, evaluate.cv_folds={folds}, "
               f"variants with character inputs: {sorted(set(variants) - {SYNOPSIS_ONLY})}")
        write_json(paths.multimodal_metrics, {"skipped": 1})
        write_json(paths.multimodal_details, {**base, "skipped": why})
        write_text(paths.multimodal_table, f"# Multimodal ablation\n\n{why}\n")
        log.info("multimodal: %s", why)
        return {**base, "skipped": why}
    per_fold: dict[str, dict[str, list[dict[str, float]]]] = {"with": {}, "without": {}}
    fold_sizes = []
    started = time.perf_counter()
    fold = pool["group_id"].map(lambda g: fold_of(int(g), seed, 0, folds))
    jobs = []  # every fold's rows, fitted side by side (evaluate.workers: no figure changes), reported in order
    for k in range(folds):
        test, rest = pool[fold == k], pool[fold != k]
        jobs.append((k, {"train": rest[rest["split"] == "train"], "val": rest[rest["split"] == "val"]}, test))
    fitted = map_in_processes(run_fold, [(params, anime, characters, rows, test, variants) for _, rows, test in jobs],
                              worker_count(params.evaluate.workers, len(jobs)))
    for (k, rows, test), results in zip(jobs, fitted, strict=True):
        for part, by_model in results.items():
            for name, values in by_model.items():
                per_fold[part].setdefault(name, []).append(values)
        n_with = int(test["anime_id"].isin(set(characters["anime_id"])).sum())
        fold_sizes.append({"fold": k, "train": len(rows["train"]), "with_characters": n_with,
                           "without_characters": len(test) - n_with})
        log.info("multimodal: fold %d: %d test anime with characters, %d without", k, n_with, len(test) - n_with)
    complete = {part: {name: f for name, f in by_model.items() if len(f) == len(fold_sizes)}
                for part, by_model in per_fold.items()}
    pairs = []
    for model in params.multimodal.models:
        for variant in variants:
            if variant != SYNOPSIS_ONLY:
                pairs += paired(complete["with"], label(model, variant), label(model, SYNOPSIS_ONLY), confidence)
    for model in params.multimodal.models:
        for baseline in BASELINES:
            pairs += paired(complete["with"], label(model, JOINT if JOINT in variants else SYNOPSIS_ONLY),
                            baseline, confidence)
    without_pairs = [row for model in params.multimodal.models if JOINT in variants
                     for row in paired(complete["without"], label(model, JOINT), label(model, SYNOPSIS_ONLY),
                                       confidence)]
    summary = {part: summarise(by_model) for part, by_model in complete.items()}
    details = {**base, "fold_sizes": fold_sizes, "summary": summary, "paired_with_characters": pairs,
               "paired_without_characters": without_pairs, "per_fold": complete}
    # the wall time goes to the log, not the reports: they are DVC outputs, the same bytes on every rerun
    log.info("multimodal: ablation wall time %.1f s", time.perf_counter() - started)
    write_json(paths.multimodal_details, details)
    write_json(paths.multimodal_metrics, {
        part: {name: {m: round(v["mean"], 6) for m, v in metrics.items() if m in REPORTED}
               for name, metrics in by_model.items()} for part, by_model in summary.items()})
    text = render(details, confidence)
    write_text(paths.multimodal_table, text)
    print(text)
    return details


def render(details: dict, confidence: float) -> str:
    pool, sizes = details["pool"], details["fold_sizes"]
    with_sizes = ", ".join(str(s["with_characters"]) for s in sizes)
    return "\n".join([
        "# Multimodal ablation: do characters and portraits add to the synopsis?", "",
        f"Franchise-grouped {details['folds']}-fold CV over train+val ({pool['anime']} anime; "
        f"{pool['with_characters']} with main characters in {pool['franchises_with_characters']} franchises; "
        f"per fold with characters: {with_sizes}). Every fold trains on all other anime (with and without "
        "characters, as the production model does) and is scored on its anime with characters, then apart on "
        "those without. mean ± sd over folds. The anime with characters are popular shows (mean score ~8.0 "
        "against 6.6): these numbers speak for them, and R2 within that narrow, shifted range is low or negative "
        "for every model; Spearman is the figure to read. Caution: in this sample, HAVING characters marks a "
        "popular show, so a model that reads the presence of characters gains R2 and RMSE on these anime from "
        "that selection alone; only a gain in Spearman within them says the characters' content helps.", "",
        "## Anime with characters", "", _table(details["summary"]["with"]),
        "### Paired differences on the same folds (a - b)", "",
        "The verdict is 'cannot tell' when the t interval of the mean difference contains zero.", "",
        _paired_table(details["paired_with_characters"], confidence),
        "## Anime without characters: the joint model vs synopsis-only (does the branch cost anything?)", "",
        _table(details["summary"]["without"]),
        _paired_table(details["paired_without_characters"], confidence) if details["paired_without_characters"]
        else "(no joint variant: the data has no character inputs)\n", ""])
