"""Run every anipop benchmark and print the numbers (nothing asserted); --write records them in results.json.

    python benchmarks/run_all.py                 # all of them; results in .benchmarks/results.json (untracked)
    python benchmarks/run_all.py --only train_epoch dvc_noop
    python benchmarks/run_all.py --only embed --embed-rows 0 --write   # the whole data; updates the tracked file

Without --write a run leaves every tracked file as it was, so benchmarking a fresh clone dirties nothing;
benchmarks/results.json changes only when someone means to publish new figures.

- embed: the configured text encoder against fp32 eager torch, paired on random rows (items/s, tokens/s, ratio,
  cosine), and a 1 %-changed rerun of the stage (benchmarks/embed.py);
- dvc_noop: wall time of `dvc repro` when nothing changed (needs a completed `make run` first);
- train_epoch: seconds per epoch of the paper's full and reduced networks at the default data's size;
- embed_memory: peak RSS of embedding 1k and 10k texts in a fresh process: bounded by the batch, not the data;
- replay (only with --only replay, tens of minutes): `anipop replay` on the default data in a scratch copy, and
  where its time went by stage (also printed for the tracked reports/replay.json by `--replay-report`);
- bootstrap: the evaluate step's intervals (54 models x 1,000 resamples of the 718 test rows), all resamples of a
  model at once against scoring each resample with scipy (the code's path beyond DENSE_BOOTSTRAP_MAX_ROWS);
- request_bounds: CPU of one metadata field, the red team's oversized shapes against the largest valid field.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results.json"      # tracked: rewritten only with --write
SCRATCH = REPO / ".benchmarks" / "results.json"     # ignored: where a plain run writes
EMBED_ROWS = 800  # a random sample by default (minutes on 2 cores); --embed-rows 0 embeds every synopsis


def bench_embed(rows: int | None = EMBED_ROWS) -> dict:
    spec = importlib.util.spec_from_file_location("bench_embed", REPO / "benchmarks" / "embed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.run(rows=rows or None, chunks=4)


def bench_dvc_noop(repeats: int = 3) -> dict:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    status = subprocess.run([sys.executable, "-m", "dvc", "status"], cwd=REPO, env=env, capture_output=True, text=True)
    if "up to date" not in status.stdout:
        return {"skipped": "the pipeline is not up to date here: run `make run` first, then benchmark its no-op"}
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=REPO, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return {"runs_s": [round(t, 3) for t in times], "median_s": round(float(np.median(times)), 3)}


def bench_train_epoch(rows: int = 5611, dim: int = 384, epochs: int = 3) -> dict:
    """The default data's train split size and MiniLM width, synthetic features, early stopping off."""
    from anipop.core.config import load_params
    from anipop.modeling.train import fit_network

    params = load_params(REPO / "params.yaml")
    network = params.train.network.model_copy(update={"max_epochs": epochs, "patience": epochs + 1})
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, dim)).astype(np.float32)
    y = rng.random(rows).astype(np.float32)
    vx, vy = x[:700], y[:700]
    result = {"rows": rows, "dim": dim, "epochs": epochs, "threads": network.threads}
    for variant in ("wide", "small"):
        started = time.perf_counter()
        fit_network(x, y, vx, vy, getattr(network, variant), network, seed=0)
        result[f"{variant}_s_per_epoch"] = round((time.perf_counter() - started) / epochs, 3)
    return result


_MEMORY_PROBE = """
import json, resource, sys, tempfile
from pathlib import Path
from anipop.core.config import load_params
from anipop.embedding.embed import embed_texts
from anipop.encoders.cache import EmbeddingCache
from anipop.encoders.text import choose_device, load_text_encoder
rows = int(sys.argv[1])
cfg = load_params(sys.argv[2]).embed
encoder = load_text_encoder(cfg.text.model, choose_device("cpu"), pooling=cfg.text.pooling, max_length=64)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
words = "hero school dragon band island summer rival journey secret city".split()
items = {str(i): " ".join(words[(i * 7 + k) % len(words)] for k in range(24)) + f" {i}" for i in range(rows)}
with tempfile.TemporaryDirectory() as tmp:
    ids, matrix, stats = embed_texts(encoder, items, EmbeddingCache(tmp, "bench"), cfg.batch_size, "memory")
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": rows, "peak_rss_mb": round(after / 1024, 1), "after_model_load_rss_mb": round(before / 1024, 1),
                  "output_matrix_mb": round(matrix.nbytes / 2**20, 2), "items_per_s": stats.get("items_per_s")}))
"""


def bench_embed_memory(sizes: tuple[int, ...] = (1000, 10000)) -> dict:
    """Each size in a fresh process, so peak RSS is that run's alone. Texts are short (64 tokens) to keep it quick."""
    runs = []
    for rows in sizes:
        out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(rows), str(REPO / "params.yaml")],
                             capture_output=True, text=True, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    small, large = runs[0], runs[-1]
    growth = large["peak_rss_mb"] - small["peak_rss_mb"]
    return {"runs": runs, "peak_growth_mb": round(growth, 1),
            "output_growth_mb": round(large["output_matrix_mb"] - small["output_matrix_mb"], 2),
            "note": "growth beyond the output matrix and the in-memory cache of vectors would mean per-dataset buffering"}


def bench_bootstrap(rows: int = 718, models: int = 54, samples: int = 1000, looped_models: int = 4) -> dict:
    """Seconds for every model's intervals; the one-resample-at-a-time path is timed on a few models and scaled."""
    from anipop.core import metrics

    rng = np.random.default_rng(0)
    y = rng.random(rows)
    columns = {str(i): np.round(y + rng.normal(0, 0.3, rows), 3) for i in range(models)}
    started = time.perf_counter()
    dense = metrics.metrics_with_intervals_many(y, columns, 9.0, samples, 0.95, 7)
    dense_s = time.perf_counter() - started
    few = dict(list(columns.items())[:looped_models])
    limit = metrics.DENSE_BOOTSTRAP_MAX_ROWS
    metrics.DENSE_BOOTSTRAP_MAX_ROWS = 0
    try:
        started = time.perf_counter()
        looped = metrics.metrics_with_intervals_many(y, few, 9.0, samples, 0.95, 7)
        looped_s = (time.perf_counter() - started) * models / looped_models
    finally:
        metrics.DENSE_BOOTSTRAP_MAX_ROWS = limit
    differs = max(abs(dense[k][m][b] - looped[k][m][b]) for k in few for m in looped[k] for b in looped[k][m])
    return {"rows": rows, "models": models, "samples": samples, "all_at_once_s": round(dense_s, 2),
            "one_by_one_s_scaled": round(looped_s, 1), "ratio": round(looped_s / dense_s, 1),
            "max_interval_difference": differs}


def replay_time(report: dict) -> dict:
    """Where a replay's time went: each stage's seconds summed over its steps, in pipeline order."""
    totals: dict[str, float] = {}
    for step in report["steps"]:
        for stage, seconds in step.get("stage_seconds", []):
            totals[stage] = totals.get(stage, 0.0) + seconds
        totals["other policies"] = totals.get("other policies", 0.0) + sum(step.get("policy_seconds", {}).values())
    steps = sum(step.get("wall_seconds", 0) for step in report["steps"])
    return {"steps": len(report["steps"]), "wall_min": round(report["wall_seconds"] / 60, 1),
            "step_wall_s": sorted(round(step.get("wall_seconds", 0)) for step in report["steps"]),
            "stages_s": {stage: round(seconds) for stage, seconds in totals.items()},
            "outside_stages_s": round(steps - sum(totals.values())), "judge_and_report_s": round(report["judge_seconds"])}


def bench_request_bounds(repeats: int = 5) -> dict:
    """CPU (best of `repeats`) that one metadata field costs: the red team's oversized shapes against the largest
    valid field. The tests check that oversized fields are refused on their length alone; this prints the cost."""
    from anipop.data.metadata import MAX_VALUE_CHARS, MAX_VALUES_PER_FIELD, MetadataError, parse_values

    shapes = {
        "valid maximal field": ", ".join(f"{i:03d}" + "s" * (MAX_VALUE_CHARS - 3) for i in range(MAX_VALUES_PER_FIELD)),
        "110k distinct comma values": ", ".join(f"Studio {i}" for i in range(110_000)),
        "4.9 MB python literal": "[" + ", ".join(repr(f"Genre {i}") for i in range(300_000)) + "]",
        "100k-item JSON list": [f"s{i}" for i in range(100_000)],
        "one 5 MB value": "x" * 5_000_000,
    }
    cpu_ms = {}
    for name, value in shapes.items():
        best = float("inf")
        for _ in range(repeats):
            started = time.process_time()
            try:
                parse_values("studios", value)
            except MetadataError:
                pass
            best = min(best, time.process_time() - started)
        cpu_ms[name] = round(best * 1e3, 4)
    return {"cpu_ms": cpu_ms}


def bench_replay() -> dict:
    """`anipop replay` on the default data in a scratch copy of the project (the tracked reports stay as they are;
    the embedding cache is the project's, as in a real replay). Tens of minutes: only with --only replay."""
    import shutil
    import tempfile

    import yaml

    scratch = Path(tempfile.mkdtemp(prefix="anipop-replay-bench-"))
    for item in ("src", "flows"):
        shutil.copytree(REPO / item, scratch / item, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(REPO / "dvc.yaml", scratch)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for key in ("embedding_cache_dir", "onnx_dir", "http_cache_dir", "served_scores_dir"):
        params["paths"][key] = str((REPO / params["paths"][key]).resolve())
    for key in ("local_path", "characters_dir"):
        params["ingest"][key] = str((REPO / params["ingest"][key]).resolve())
    (scratch / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "anipop.cli", "replay"], cwd=scratch, env=env, check=True, capture_output=True)
    report = json.loads((scratch / "reports" / "replay.json").read_text())
    shutil.rmtree(scratch, ignore_errors=True)
    return {**replay_time(report), "process_wall_min": round((time.perf_counter() - started) / 60, 1)}


BENCHMARKS = {"embed": bench_embed, "dvc_noop": bench_dvc_noop, "train_epoch": bench_train_epoch,
              "embed_memory": bench_embed_memory, "bootstrap": bench_bootstrap, "replay": bench_replay,
              "request_bounds": bench_request_bounds}
DEFAULT = ("embed", "dvc_noop", "train_epoch", "embed_memory", "bootstrap", "request_bounds")  # replay: tens of minutes, on request


def machine() -> dict:
    import torch

    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), help="run just these")
    parser.add_argument("--embed-rows", type=int, default=EMBED_ROWS, help="embed benchmark rows; 0 = all")
    parser.add_argument("--write", action="store_true", help="record in the tracked benchmarks/results.json")
    parser.add_argument("--replay-report", action="store_true",
                        help="print where the time of the tracked reports/replay.json went, and stop")
    args = parser.parse_args(argv)
    if args.replay_report:
        print(json.dumps(replay_time(json.loads((REPO / "reports" / "replay.json").read_text())), indent=2))
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    target = RESULTS if args.write else SCRATCH
    results = json.loads(target.read_text()) if target.exists() else {}
    results["machine"] = machine()
    for name in args.only or DEFAULT:
        started = time.perf_counter()
        figures = bench_embed(args.embed_rows) if name == "embed" else BENCHMARKS[name]()
        results[name] = {**figures, "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        print(f"{name} ({time.perf_counter() - started:.0f} s): {json.dumps(results[name])}", flush=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"written {target.relative_to(REPO)}")


if __name__ == "__main__":
    main()
