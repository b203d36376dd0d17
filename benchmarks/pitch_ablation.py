"""Issue 18's table: franchise-grouped CV (mean ± sd), temporal backtest and test split per input set.

Usage: .venv/bin/python benchmarks/pitch_ablation.py all_inputs,synopsis,metadata,studios OUT.json [models]
Every number comes from anipop.backtest's own functions (run_crossval, run_temporal, fit_and_predict); the
test split is read by fit_and_predict on the test rows, so run it once, after tuning.
"""
import json
import logging
import sys
import time
from pathlib import Path

from anipop.backtest import fit_and_predict, run_crossval, run_temporal
from anipop.config import load_params
from anipop.metrics import point_metrics
from anipop.schema import PREPARED_ANIME, PREPARED_CHARACTERS, read_table

logging.basicConfig(level=logging.WARNING)
params = load_params("params.yaml")
anime = read_table(PREPARED_ANIME, "data/prepared/anime.parquet")
chars = read_table(PREPARED_CHARACTERS, "data/prepared/characters.parquet")
PITCH = tuple(sys.argv[3].split(",")) if len(sys.argv) > 3 else ("meta_ridge", "pitch_gbm", "pitch_stack")
plan = [(s, PITCH) for s in sys.argv[1].split(",")]
out = {}
for input_set, models in plan:
    extra = ("ridge", "tfidf_benchmark") if input_set in ("synopsis", "all_inputs") else ()
    train = params.train.model_copy(update={"models": (*models, *extra), "model": models[0], "inputs": input_set})
    p = params.model_copy(update={"train": train})
    t = time.time()
    cv = run_crossval(p, anime, chars)
    tmp = run_temporal(p, anime, chars)
    rows = {s: anime[anime["split"] == s] for s in ("train", "val")}
    y_true, preds, rng = fit_and_predict(p, anime, chars, rows, anime[anime["split"] == "test"])
    test = {name: point_metrics(y_true, pr, rng) for name, pr in preds.items()}
    out[input_set] = {"cv": cv["models"], "temporal": tmp.get("models", {}), "test": test}
    for name, m in cv["models"].items():
        tv = tmp.get("models", {}).get(name, {})
        print(f"{input_set:12s} {name:16s} CV spearman {m['spearman']['mean']:.3f} ± {m['spearman']['sd']:.3f} "
              f"r2 {m['r2']['mean']:.3f} ± {m['r2']['sd']:.3f} | temporal spearman {tv.get('spearman', {}).get('value', float('nan')):.3f} "
              f"r2 {tv.get('r2', {}).get('value', float('nan')):.3f} | test spearman {test[name]['spearman']:.3f} r2 {test[name]['r2']:.3f}", flush=True)
    print(f"  ({time.time()-t:.0f}s)", flush=True)
    Path(sys.argv[2]).write_text(json.dumps(out, indent=1))
