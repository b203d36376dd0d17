"""Does the character correction of pitch_stack (train.pitch.character_feature) help, and where?

Scores the primary model with the switch on and off on the backtest's own franchise-grouped CV folds
(backtest.crossval_jobs, fitted by backtest.fit_and_predict) and on the test split: Spearman over all rows, over
the rows that have characters and over those without, the paired per-fold differences, and how far the
correction moves the mean prediction of the rows with characters (presence-neutral: it should not) and the
rows without (it must not: exactly 0).

    .venv/bin/python benchmarks/pitch_characters.py [--out FILE.json]

Fits each setting's folds one after the other (one process): ~15 s a fit on the full default data, 2 cores.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from anipop.core.artifacts import ArtifactPaths, load_embeddings
from anipop.core.config import load_params
from anipop.core.metrics import point_metrics
from anipop.data.schema import PREPARED_ANIME, PREPARED_CHARACTERS, read_table
from anipop.evaluation.backtest import crossval_jobs, fit_and_predict
from anipop.modeling.features import PITCH_CHARACTER_KINDS

REPO = Path(__file__).resolve().parents[1]
PARTS = ("all", "with_characters", "without_characters")


def _spearmans(y_true: np.ndarray, predicted: np.ndarray, has: np.ndarray, score_range: float) -> dict:
    masks = {"all": np.ones(len(has), bool), "with_characters": has, "without_characters": ~has}
    return {part: {"spearman": point_metrics(y_true[m], predicted[m], score_range)["spearman"] if m.sum() > 2
                   else None, "rows": int(m.sum())} for part, m in masks.items()}


def score_setting(params, anime, characters, with_ids: set[int]) -> dict:
    """Per CV fold and on the test split: pitch_stack's Spearman on all rows / with / without characters."""
    name = params.train.model
    folds, pooled = [], {"y": [], "p": [], "has": []}
    for repeat, k, rows, test in crossval_jobs(params, anime):
        y_true, predictions, score_range = fit_and_predict(params, anime, characters, rows, test)
        has = test["anime_id"].isin(with_ids).to_numpy()
        folds.append({"repeat": repeat, "fold": k, **_spearmans(y_true, predictions[name], has, score_range)})
        pooled["y"].append(y_true), pooled["p"].append(predictions[name]), pooled["has"].append(has)
        print(f"  fold {k}: {folds[-1]}", file=sys.stderr)
    y, p, has = (np.concatenate(pooled[key]) for key in ("y", "p", "has"))
    fit_rows = {split: anime[anime["split"] == split] for split in ("train", "val")}
    test = anime[anime["split"] == "test"]
    y_test, predictions, score_range = fit_and_predict(params, anime, characters, fit_rows, test)
    has_test = test["anime_id"].isin(with_ids).to_numpy()
    return {"cv_folds": folds, "cv_pooled": _spearmans(y, p, has, score_range),
            "test": _spearmans(y_test, predictions[name], has_test, score_range),
            "predicted": {"cv": p, "test": predictions[name]}, "has": {"cv": has, "test": has_test}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(name)s: %(message)s")
    logging.getLogger("anipop.modeling.pitch.characters").setLevel(logging.INFO)  # each fit's character weight, on stderr
    base = load_params(REPO / "params.yaml")
    paths = ArtifactPaths.of(base.paths)
    anime = read_table(PREPARED_ANIME, paths.prepared_anime)
    characters = read_table(PREPARED_CHARACTERS, paths.prepared_characters)
    # the anime with characters as the model sees them: owners of the character embeddings it reads
    with_ids = {int(str(r).split(":")[0]) for kind in PITCH_CHARACTER_KINDS
                for r in load_embeddings(paths.embeddings_dir, kind)[0]}
    train = base.train.model_copy(update={"models": (base.train.model,)})
    evaluate = base.evaluate.model_copy(update={"workers": 1})
    result = {}
    for setting in ("on", "off"):
        pitch = base.train.pitch.model_copy(update={"character_feature": setting == "on"})
        params = base.model_copy(update={"train": train.model_copy(update={"pitch": pitch}), "evaluate": evaluate})
        print(f"{setting}:", file=sys.stderr)
        result[setting] = score_setting(params, anime, characters, with_ids)
    for setting, found in result.items():
        for part in PARTS:
            values = [f[part]["spearman"] for f in found["cv_folds"]]
            rows = [f[part]["rows"] for f in found["cv_folds"]]
            print(f"{setting:9s} {part:19s} CV {np.mean(values):.4f} ± {np.std(values, ddof=1):.4f} (rows/fold {rows}) "
                  f"pooled {found['cv_pooled'][part]['spearman']:.4f} ({found['cv_pooled'][part]['rows']}) "
                  f"test {found['test'][part]['spearman']:.4f} ({found['test'][part]['rows']})")
    for part in PARTS:
        diff = np.array([a[part]["spearman"] - b[part]["spearman"]
                         for a, b in zip(result["on"]["cv_folds"], result["off"]["cv_folds"], strict=True)])
        print(f"on - off  {part:19s} {diff.mean():+.4f} ± {diff.std(ddof=1):.4f}, better in "
              f"{int((diff > 0).sum())}/{len(diff)} folds: {np.round(diff, 4).tolist()}")
    moved = {}
    for split in ("cv", "test"):
        shift = result["on"]["predicted"][split] - result["off"]["predicted"][split]
        has = result["on"]["has"][split]
        moved[split] = {"with_characters_mean": float(shift[has].mean()), "with_characters_sd": float(shift[has].std()),
                        "without_characters_max_abs": float(np.abs(shift[~has]).max())}
        print(f"on - off predictions ({split}): rows with characters mean {moved[split]['with_characters_mean']:+.4f} "
              f"(sd {moved[split]['with_characters_sd']:.4f}); rows without: max |difference| "
              f"{moved[split]['without_characters_max_abs']:.2e}")
    if args.out:
        for found in result.values():
            found.pop("predicted"), found.pop("has")
        args.out.write_text(json.dumps({**result, "moved": moved}, indent=1))


if __name__ == "__main__":
    main()
