"""Downstream quality of the fast text encoder: the same models, split and seed on fp32 and on the new vectors.

    python benchmarks/embed.py --save-vectors .benchmarks/embed_vectors.npz     # both matrices, all synopses
    python benchmarks/embed_quality.py .benchmarks/embed_vectors.npz             # Spearman of each, and the delta

The ridge baseline and the primary network (params.yaml train: alpha, layer sizes, optimiser, seed) are fitted
on the train split of each matrix, early-stopped on val, and scored on test; only the vectors differ. The
acceptance bound of the issue: |Spearman(new) - Spearman(fp32)| <= 0.005 for each model. Synopsis vectors
only: the default data has no characters, so they are all of its embedding inputs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from anipop.config import load_params
from anipop.metrics import point_metrics
from anipop.models import RidgeRegressor
from anipop.schema import PREPARED_ANIME, read_table
from anipop.train import fit_network

REPO = Path(__file__).resolve().parents[1]
BOUND = 0.005


def _fit_and_score(name: str, x: np.ndarray, y: np.ndarray, split: np.ndarray, params) -> float:
    train, val, test = (split == "train"), (split == "val"), (split == "test")
    if name == "ridge":
        model = RidgeRegressor(params.train.ridge_alpha, params.seed).fit(x[train], y[train])
    else:
        network = params.train.network
        shape = network.wide if name == "mlp_wide" else network.small
        model, _ = fit_network(x[train], y[train], x[val], y[val], shape, network, params.seed)
    return point_metrics(y[test], model.predict(x[test]), 1.0)["spearman"]


def run(vectors: Path, models: tuple[str, ...] = ("ridge", "mlp_wide")) -> dict:
    params = load_params(REPO / "params.yaml")
    saved = np.load(vectors)
    done = saved["done"] if "done" in saved.files else np.ones(len(saved["anime_id"]), dtype=bool)
    anime = read_table(PREPARED_ANIME, REPO / params.paths.prepared_dir / "anime.parquet").set_index("anime_id")
    ids = saved["anime_id"][done]
    rows = anime.loc[ids]
    y, split = rows["score_norm"].to_numpy(np.float32), rows["split"].to_numpy()
    result = {"rows": int(done.sum()), "of_rows": int(len(done)), "test_rows": int((split == "test").sum()),
              "bound": BOUND, "models": {}}
    for name in models:
        fp32 = _fit_and_score(name, saved["baseline"][done], y, split, params)
        new = _fit_and_score(name, saved["candidate"][done], y, split, params)
        result["models"][name] = {"spearman_fp32": round(fp32, 5), "spearman_new": round(new, 5),
                                  "delta": round(new - fp32, 5), "within_bound": abs(new - fp32) <= BOUND}
        print(f"{name}: test Spearman fp32 {fp32:.4f}, new {new:.4f}, delta {new - fp32:+.4f}", file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("vectors", type=Path, help="npz written by benchmarks/embed.py --save-vectors")
    parser.add_argument("--models", nargs="+", default=["ridge", "mlp_wide"], choices=["ridge", "mlp_wide", "mlp_small"])
    args = parser.parse_args(argv)
    print(json.dumps(run(args.vectors, tuple(args.models)), sort_keys=True))


if __name__ == "__main__":
    main()
