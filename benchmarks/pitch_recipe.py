"""The pitch models under recipe variants, on the backtest's own franchise-grouped CV folds and temporal split.

    python benchmarks/pitch_recipe.py                       # every variant below
    python benchmarks/pitch_recipe.py --only old records    # some of them

Each variant is a set of params overrides (dotted keys, like `dvc exp run -S`) on params.yaml; every variant's
models are refitted by the backtest's code (anipop.evaluation.backtest.run_crossval / run_temporal) on the prepared data of
the last `dvc repro`, so the figures compare with reports/cv.json and reports/temporal.json. Printed: CV Spearman
mean and paired difference against the first variant (folds better), temporal Spearman, R2 and MAE (1-10 scale).
Nothing tracked is written; the raw figures go to .benchmarks/pitch_recipe.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
MODELS = ["meta_ridge", "pitch_gbm", "pitch_stack"]
NO_STAFF = ["genres", "themes", "type", "source", "demographic", "studios", "producers", "rating", "year"]
VARIANTS: dict[str, dict[str, object]] = {
    "old": {"train.pitch.gbm_seeds": 1, "train.pitch.track_records.enabled": False,
            "train.pitch.metadata_fields": NO_STAFF},
    "seeds": {"train.pitch.track_records.enabled": False, "train.pitch.metadata_fields": NO_STAFF},
    "records": {"train.pitch.metadata_fields": NO_STAFF},
    "records+staff": {"train.pitch.metadata_fields": [*NO_STAFF, "staff"]},
    "records+staff+relative": {"train.pitch.metadata_fields": [*NO_STAFF, "staff"],
                               "train.pitch.track_records.relative": True},
    "records+staff+train_val": {"train.pitch.metadata_fields": [*NO_STAFF, "staff"],
                                "train.pitch.fit_rows": "train_val"},
    "records+staff+shrink30": {"train.pitch.metadata_fields": [*NO_STAFF, "staff"],
                               "train.pitch.track_records.shrink": 30.0},
    "records+staff+recent3": {"train.pitch.metadata_fields": [*NO_STAFF, "staff"],
                              "train.pitch.track_records.recent_years": 3},
    "records+staff+knn20": {"train.pitch.metadata_fields": [*NO_STAFF, "staff"], "train.pitch.text_neighbours": 20},
    "records+staff+knn50": {"train.pitch.metadata_fields": [*NO_STAFF, "staff"], "train.pitch.text_neighbours": 50},
    "records+staff+duration": {"train.pitch.metadata_fields": [*NO_STAFF, "staff", "duration"]},
    "records+staff+duration+knn50": {"train.pitch.metadata_fields": [*NO_STAFF, "staff", "duration"],
                                     "train.pitch.text_neighbours": 50},
    "+train_val": {"train.pitch.metadata_fields": [*NO_STAFF, "staff", "duration"], "train.pitch.fit_rows": "train_val"},
    "+blend0.2": {"train.pitch.metadata_fields": [*NO_STAFF, "staff", "duration"], "train.pitch.blend_linear": 0.2},
    "+blend0.4": {"train.pitch.metadata_fields": [*NO_STAFF, "staff", "duration"], "train.pitch.blend_linear": 0.4},
    "+gbm800": {"train.pitch.metadata_fields": [*NO_STAFF, "staff", "duration"], "train.pitch.gbm_n_estimators": 800,
                "train.pitch.gbm_learning_rate": 0.025},
    "records+staff+cast": {"train.pitch.metadata_fields": [*NO_STAFF, "staff", "cast"],
                           "train.pitch.track_records.fields": ["studios", "producers", "source", "genres", "themes",
                                                                "demographic", "type", "rating", "staff", "cast"]},
}


def _set(tree: dict, dotted: str, value: object) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        tree = tree[key]
    tree[leaf] = value


def params_for(overrides: dict[str, object]):
    from anipop.core.config import Params

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["train"]["models"] = MODELS
    raw["train"]["model"] = "pitch_stack"
    for key, value in overrides.items():
        _set(raw, key, value)
    return Params.model_validate(raw)


def run(names: list[str]) -> dict:
    import os

    os.chdir(REPO)
    from anipop.core.artifacts import ArtifactPaths
    from anipop.data.schema import PREPARED_ANIME, PREPARED_CHARACTERS, read_table
    from anipop.evaluation.backtest import run_crossval, run_rolling, run_temporal

    results = {}
    for name in names:
        params = params_for(VARIANTS[name])
        paths = ArtifactPaths.of(params.paths)
        anime = read_table(PREPARED_ANIME, paths.prepared_anime)
        characters = read_table(PREPARED_CHARACTERS, paths.prepared_characters)
        started = time.perf_counter()
        cv = run_crossval(params, anime, characters)
        temporal = run_temporal(params, anime, characters)
        rolling = run_rolling(params, anime, characters)
        results[name] = {"cv_per_fold": {m: [f["spearman"] for f in cv["per_fold"][m]] for m in MODELS},
                         "temporal": {m: {k: temporal["models"][m][k]["value"] for k in ("spearman", "r2", "mae")}
                                      for m in MODELS},
                         "rolling": {m: {y: r["models"][m]["spearman"] for y, r in rolling["years"].items()}
                                     for m in MODELS},
                         "seconds": round(time.perf_counter() - started)}
        stack = results[name]
        print(f"{name}: CV spearman pitch_stack {np.mean(stack['cv_per_fold']['pitch_stack']):.4f}, temporal "
              f"{stack['temporal']['pitch_stack']['spearman']:.4f} ({stack['seconds']} s)", flush=True)
    return results


def report(results: dict) -> None:
    first = next(iter(results))
    print(f"\n| variant | CV Spearman (pitch_stack) | paired vs {first} (folds better) | temporal Spearman | "
          f"temporal R2 | temporal MAE (norm.) | rolling Spearman mean ± sd (years better) | pitch_gbm CV | "
          f"pitch_gbm temporal |")
    print("|---|---|---|---|---|---|---|---|---|")
    base_rolling = np.array(list(results[first]["rolling"]["pitch_stack"].values()))
    base = np.array(results[first]["cv_per_fold"]["pitch_stack"])
    for name, r in results.items():
        folds = np.array(r["cv_per_fold"]["pitch_stack"])
        diff = folds - base
        t = r["temporal"]["pitch_stack"]
        years = np.array(list(r["rolling"]["pitch_stack"].values()))
        print(f"| {name} | {folds.mean():.4f} ± {folds.std(ddof=1):.4f} | {diff.mean():+.4f} ± {diff.std(ddof=1):.4f} "
              f"({int((diff > 0).sum())}/{len(diff)}) | {t['spearman']:.4f} | {t['r2']:.4f} | {t['mae']:.4f} | "
              f"{years.mean():.4f} ± {years.std(ddof=1):.4f} ({int((years > base_rolling).sum())}/{len(years)}) | "
              f"{np.mean(r['cv_per_fold']['pitch_gbm']):.4f} | {r['temporal']['pitch_gbm']['spearman']:.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(VARIANTS))
    args = parser.parse_args()
    results = run(args.only or list(VARIANTS))
    out = REPO / ".benchmarks" / "pitch_recipe.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    report(results)


if __name__ == "__main__":
    main()
