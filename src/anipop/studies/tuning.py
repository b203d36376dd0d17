"""Tuning without peeking: a small grid for pitch_stack on the franchise-grouped CV folds of train+val only.

Why a grid over the blend weight: pitch_stack is `w x meta_ridge + (1 - w) x pitch_gbm`, so the two
components are fitted once per fold (the backtest's own fit_and_predict) and every weight is scored on the same
out-of-fold predictions; a trial costs nothing, and the test split is never read. Each trial is an MLflow child
run (param blend_linear, CV Spearman / R² mean and sd) under one parent; the winner and every trial go to
reports/tuning.json. `anipop tune --write-params` puts the winner into params.yaml (train.pitch.blend_linear, the
line edited in place, its comment kept); `dvc repro` then touches the test split once, in the evaluate stage.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import yaml

from anipop.core.artifacts import ArtifactPaths
from anipop.core.config import Params
from anipop.core.metrics import point_metrics
from anipop.core.utils import write_json, write_text
from anipop.data.schema import PREPARED_ANIME, PREPARED_CHARACTERS, read_table
from anipop.evaluation.backtest import fit_and_predict, fold_of

log = logging.getLogger(__name__)

COMPONENTS = ("meta_ridge", "pitch_gbm")
DEFAULT_GRID = tuple(round(w, 2) for w in np.linspace(0.0, 1.0, 11))


def fold_predictions(params: Params) -> list[dict]:
    """Per CV fold of train+val: true normalised scores, each component's predictions, the score range."""
    paths = ArtifactPaths.of(params.paths)
    anime = read_table(PREPARED_ANIME, paths.prepared_anime)
    characters = read_table(PREPARED_CHARACTERS, paths.prepared_characters)
    train = params.train.model_copy(update={"models": COMPONENTS, "model": COMPONENTS[0]})
    fit_params = params.model_copy(update={"train": train})
    pool = anime[anime["split"].isin(["train", "val"])]  # the test split is never read here
    folds = params.evaluate.cv_folds
    fold = pool["group_id"].map(lambda g: fold_of(int(g), params.seed, 0, folds))
    out = []
    for k in range(folds):
        test, rest = pool[fold == k], pool[fold != k]
        rows = {"train": rest[rest["split"] == "train"], "val": rest[rest["split"] == "val"]}
        y_true, predictions, score_range = fit_and_predict(fit_params, anime, characters, rows, test)
        out.append({"y": y_true, "range": score_range, **{name: predictions[name] for name in COMPONENTS}})
        log.info("tune: fold %d of %d fitted (%d test anime)", k + 1, folds, len(test))
    return out


def score_grid(folds: list[dict], grid=DEFAULT_GRID) -> list[dict]:
    """CV metrics (mean and sd over folds) of pitch_stack at each blend weight."""
    trials = []
    for weight in grid:
        per_fold = [point_metrics(f["y"], np.clip(weight * f["meta_ridge"] + (1 - weight) * f["pitch_gbm"], 0, 1),
                                  f["range"]) for f in folds]
        trials.append({"blend_linear": float(weight),
                       **{f"cv_{m}_{stat}": float(fn([p[m] for p in per_fold]))
                          for m in ("spearman", "r2", "rmse_1_10")
                          for stat, fn in (("mean", np.mean), ("sd", lambda v: np.std(v, ddof=1)))}})
    return trials


def run_tune(params: Params, track: bool = True, grid=DEFAULT_GRID) -> dict:
    """Fit the components per fold, score the grid, log one MLflow child run per trial, write tuning.json."""
    trials = score_grid(fold_predictions(params), grid)
    best = max(trials, key=lambda t: t["cv_spearman_mean"])
    result = {"model": "pitch_stack", "searched": "train.pitch.blend_linear", "folds": params.evaluate.cv_folds,
              "selection": "highest CV Spearman mean on train+val (test split not read)",
              "current": params.train.pitch.blend_linear, "best": best, "trials": trials}
    if track:
        import mlflow

        from anipop.tracking import use_experiment

        use_experiment(params)
        with mlflow.start_run(run_name="tune pitch_stack") as parent:
            mlflow.log_params({"searched": "blend_linear", "folds": params.evaluate.cv_folds,
                               **{f"pitch.{k}": v for k, v in params.train.pitch.model_dump(mode="json").items()
                                  if k != "blend_linear" and not isinstance(v, list)}})
            for trial in trials:
                with mlflow.start_run(run_name=f"blend_linear={trial['blend_linear']:g}", nested=True):
                    mlflow.log_param("blend_linear", trial["blend_linear"])
                    mlflow.log_metrics({k: v for k, v in trial.items() if k.startswith("cv_")})
            mlflow.log_metrics({f"best_{k}": v for k, v in best.items()})
            result["mlflow_run_id"] = parent.info.run_id
    write_json(ArtifactPaths.of(params.paths).tuning, result)
    log.info("tune: best blend_linear=%s (CV Spearman %.4f); params.yaml has %s", best["blend_linear"],
             best["cv_spearman_mean"], params.train.pitch.blend_linear)
    return result


SEARCHED_KNOB = ("train", "pitch", "blend_linear")


def write_winner(params_file: Path, value: float) -> None:
    """Set train.pitch.blend_linear to `value` in params.yaml, editing that one line (comment and layout kept), and
    check by reading the file back that nothing else changed; a file whose layout hides the key is left as it was.

    Why not a YAML round trip: it would rewrite the whole file's layout (nulls, wrapped lists), as `dvc exp run -S`
    does, and bury the one change in the diff."""
    text = params_file.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    start, end, indent = 0, len(lines), 0
    for key in SEARCHED_KNOB:
        pattern = re.compile(rf"^{' ' * indent}{re.escape(key)}:(\s*)(.*?)(\s*#.*)?$")
        found = [i for i in range(start, end) if pattern.match(lines[i].rstrip("\n"))]
        if len(found) != 1:
            raise ValueError(f"{params_file}: cannot find {'.'.join(SEARCHED_KNOB)} to write (at {key!r}); set it by hand")
        start = found[0] + 1
        end = next((i for i in range(start, end) if lines[i].strip() and not lines[i].startswith(" " * (indent + 1))
                    and not lines[i].lstrip().startswith("#")), end)
        indent += 2
    line = lines[found[0]].rstrip("\n")
    match = pattern.match(line)
    comment = (match.group(3) or "").strip()
    column = len(line) - len(match.group(3).lstrip()) if comment else 0  # where the comment starts: kept there
    head = f"{line[: match.start(1)]} {value:g}"
    lines[found[0]] = (f"{head.ljust(column - 1)} {comment}" if comment else head) + "\n"
    new_text = "".join(lines)
    before, after = yaml.safe_load(text), yaml.safe_load(new_text)
    section = _get(after, SEARCHED_KNOB[:-1])
    if section[SEARCHED_KNOB[-1]] != value:
        raise ValueError(f"{params_file}: writing {'.'.join(SEARCHED_KNOB)} did not give {value}; set it by hand")
    section[SEARCHED_KNOB[-1]] = _get(before, SEARCHED_KNOB)
    if after != before:
        raise ValueError(f"{params_file}: writing {'.'.join(SEARCHED_KNOB)} would change other values; set it by hand")
    write_text(params_file, new_text)  # atomic: a kill mid-write leaves the old file, never half of it


def _get(tree: dict, keys: tuple[str, ...]) -> object:
    for key in keys:
        tree = tree[key]
    return tree
