"""Embed benchmark: params.yaml's text encoder against fp32 eager torch, paired in one run, and a 1 % rerun.

    python benchmarks/embed.py                       # every prepared synopsis (the full default data: ~7k)
    python benchmarks/embed.py --rows 800            # a seeded random sample of prepared anime ids
    python benchmarks/embed.py --device cuda --dtype bfloat16 --profile paper   # on a GPU machine (gpt2)

Rows: the prepared synopses (run `anipop ingest && anipop prepare` or `make run` first), all of them or a random
sample of ids; never the first ids, whose synopses are short and unrepresentative.

Pairing: the rows are cut into `--chunks` random, equal slices; each slice is embedded by the baseline (fp32
eager torch on the device) and by the candidate (the configured runtime: params.yaml text.cpu_runtime, dtype),
in A B A B order, each in the stage's longest-first batches. On a shared machine the load drifts; a slice's two
legs run back to back, so the per-slice ratio is fair and its median is the figure to quote.

Quality: cosine similarity of each row's candidate vector to its baseline vector (mean, min). `--save-vectors`
writes both matrices for benchmarks/embed_quality.py (the downstream Spearman delta).

Rerun: the stage (`run_embed`) on the same rows with 1 % of synopses changed and every other vector in the
cache, as a full run leaves it: wall time, model load included, over the candidate's forward time for all rows.
That denominator is below a full stage run's time, so the ratio is an upper bound.

The last line printed is JSON; `run()` returns the same dict for benchmarks/run_all.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from anipop.core.config import Params, load_params
from anipop.data.schema import PREPARED_ANIME, PREPARED_CHARACTERS, read_table, write_table
from anipop.embedding.embed import run_embed
from anipop.encoders.cache import EmbeddingCache, item_key
from anipop.encoders.text import choose_device, choose_dtype, load_text_encoder
from anipop.steps import call_step

REPO = Path(__file__).resolve().parents[1]


def sample_anime(rows: int | None, seed: int = 0) -> pd.DataFrame:
    """All prepared anime of this checkout (rows None or >= the count), or a seeded random sample of their ids."""
    path = REPO / load_params(REPO / "params.yaml").paths.prepared_dir / "anime.parquet"
    if not path.exists():
        raise SystemExit(f"{path} not found: run `anipop ingest && anipop prepare` (or `make run`) first")
    anime = read_table(PREPARED_ANIME, path)
    if rows is not None and rows < len(anime):
        anime = anime.sample(rows, random_state=seed)
    return anime.sort_values("anime_id").reset_index(drop=True)


def _params_in(root: Path, profile: str | None, device: str | None, dtype: str | None,
               model: str | None = None) -> Params:
    base = load_params(REPO / "params.yaml")
    paths = base.paths.model_copy(update={name: root / name for name in base.paths.model_dump()
                                          if name != "onnx_dir"})  # the built graph is reused, not rebuilt
    paths = paths.model_copy(update={"onnx_dir": REPO / base.paths.onnx_dir})
    updates = {"profile": profile or base.embed.profile, "device": device or base.embed.device,
               "dtype": dtype or base.embed.dtype}
    embed = base.embed.model_copy(update=updates)
    if model is not None:  # another text model (a save_pretrained folder), e.g. on a machine without the package
        chosen = embed.profiles[embed.profile]
        chosen = chosen.model_copy(update={"text": chosen.text.model_copy(update={"model": model})})
        embed = embed.model_copy(update={"profiles": {**embed.profiles, embed.profile: chosen}})
    return Params.model_validate(base.model_copy(update={"paths": paths, "embed": embed}).model_dump())


def _encode_all(encoder, texts: list[str], batch_size: int) -> tuple[np.ndarray, float]:
    """The stage's order (longest first) and batch size; vectors back in input order, and the seconds."""
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    started = time.perf_counter()
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        out[index] = encoder.encode([texts[i] for i in index])
    if encoder.device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - started


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def _rerun(params: Params, anime: pd.DataFrame, encoder, vectors: np.ndarray) -> dict:
    """Cache every row's candidate vector, change 1 % of the synopses, time the stage."""
    cache = EmbeddingCache(params.paths.embedding_cache_dir, encoder.namespace)
    cache.put_batch([item_key(encoder.namespace, t) for t in anime["synopsis"]], vectors)
    cache.compact()
    changed = anime.copy()
    n_changed = max(1, round(len(anime) * 0.01))
    rows = np.random.default_rng(1).choice(len(anime), size=n_changed, replace=False)
    changed.loc[rows, "synopsis"] = changed.loc[rows, "synopsis"] + " Revised."
    prepared = Path(params.paths.prepared_dir)
    write_table(PREPARED_ANIME, changed, prepared / "anime.parquet")
    write_table(PREPARED_CHARACTERS, PREPARED_CHARACTERS.empty(), prepared / "characters.parquet")
    started = time.perf_counter()
    manifest = call_step(run_embed, params)
    wall = time.perf_counter() - started
    stats = manifest["kinds"]["synopsis"]
    return {"changed_rows": n_changed, "embedded": stats["embedded"], "from_cache": stats["from_cache"],
            "wall_s": round(wall, 3), "model_load_s": manifest["load_seconds"]["text"]}


def run(rows: int | None = None, chunks: int = 4, profile: str | None = None, device: str | None = None,
        dtype: str | None = None, save_vectors: Path | None = None, model: str | None = None,
        baseline_max_length: int | None = None) -> dict:
    """Paired baseline/candidate throughput and closeness on `rows` synopses (None: all), and the rerun."""
    with tempfile.TemporaryDirectory(prefix="anipop-bench-embed-") as tmp:
        params = _params_in(Path(tmp), profile, device, dtype, model)
        cfg, text = params.embed, params.embed.text
        anime = sample_anime(rows)
        texts = anime["synopsis"].tolist()
        on = choose_device(cfg.device)
        candidate_dtype = choose_dtype(cfg.dtype, on)
        loads = {}
        started = time.perf_counter()
        baseline_max_length = baseline_max_length or text.max_length  # a shorter max_length is part of the candidate
        baseline = load_text_encoder(text.model, on, torch.float32, text.pooling, baseline_max_length, "torch",
                                     params.paths.onnx_dir, cfg.cpu_threads)
        loads["baseline"] = time.perf_counter() - started
        started = time.perf_counter()
        candidate = load_text_encoder(text.model, on, candidate_dtype, text.pooling, text.max_length,
                                      text.cpu_runtime, params.paths.onnx_dir, cfg.cpu_threads)
        loads["candidate"] = time.perf_counter() - started  # includes building the graph the first time
        # the full lengths, to count the tokens each encoder keeps; verbose=False: this call only counts, so
        # transformers' "(569 > 512) ... will result in indexing errors" warning would be about nothing
        lengths = np.array([len(ids) for ids in candidate.tokenizer(texts, truncation=False, verbose=False)["input_ids"]])
        tokens, base_tokens = np.minimum(lengths, candidate.max_length), np.minimum(lengths, baseline.max_length)
        for encoder in (baseline, candidate):  # warm-up: first-call allocations and kernel choice
            encoder.encode(texts[:cfg.batch_size])
        slices = np.array_split(np.random.default_rng(0).permutation(len(texts)), chunks)
        base_vec = np.zeros((len(texts), baseline.dim), dtype=np.float32)
        cand_vec = np.zeros_like(base_vec)
        pairs, done = [], np.zeros(len(texts), dtype=bool)
        for index in slices:
            part = [texts[i] for i in index]
            base_vec[index], base_s = _encode_all(baseline, part, cfg.batch_size)
            cand_vec[index], cand_s = _encode_all(candidate, part, cfg.batch_size)
            pairs.append({"rows": len(index), "tokens": int(tokens[index].sum()), "baseline_s": round(base_s, 3),
                          "candidate_s": round(cand_s, 3), "ratio": round(base_s / cand_s, 3)})
            print(f"slice {len(pairs)}/{chunks}: {pairs[-1]}", file=sys.stderr, flush=True)
            done[index] = True
            if save_vectors is not None:  # after every slice, so an interrupted run still leaves its rows
                np.savez(save_vectors, anime_id=anime["anime_id"].to_numpy(), baseline=base_vec,
                         candidate=cand_vec, done=done)
        rerun = _rerun(params, anime, candidate, cand_vec)
    cosine = _cosine(cand_vec, base_vec)
    base_total = sum(p["baseline_s"] for p in pairs)
    cand_total = sum(p["candidate_s"] for p in pairs)
    return {
        "benchmark": "embed", "rows": len(texts), "tokens": int(tokens.sum()), "model": text.model,
        "max_length": candidate.max_length, "baseline_max_length": baseline.max_length,
        "truncated_share": round(float((lengths > candidate.max_length).mean()), 4),
        "device": str(on), "batch_size": cfg.batch_size,
        "baseline": "torch float32", "candidate": f"{candidate.runtime} {str(candidate_dtype).removeprefix('torch.')}",
        "cpu_threads": cfg.cpu_threads, "chunks": chunks,
        "baseline_items_per_s": round(len(texts) / base_total, 1),
        "candidate_items_per_s": round(len(texts) / cand_total, 1),
        "baseline_tokens_per_s": round(int(base_tokens.sum()) / base_total),
        "candidate_tokens_per_s": round(int(tokens.sum()) / cand_total),
        "ratio_total": round(base_total / cand_total, 3),
        "ratio_median": round(float(np.median([p["ratio"] for p in pairs])), 3),
        "cosine_mean": round(float(cosine.mean()), 5), "cosine_min": round(float(cosine.min()), 5),
        "model_load_s": {k: round(v, 3) for k, v in loads.items()},
        "rerun": rerun, "rerun_vs_full_ratio": round(rerun["wall_s"] / cand_total, 4),
        "pairs": pairs, "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="random sample of synopses (default: all)")
    parser.add_argument("--chunks", type=int, default=4, help="paired slices, A B A B")
    parser.add_argument("--profile", default=None, help="params.yaml embed profile (default: the file's)")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda, mps (default: params.yaml)")
    parser.add_argument("--dtype", default=None, help="candidate dtype on an accelerator (default: params.yaml)")
    parser.add_argument("--save-vectors", type=Path, default=None, help="npz of both matrices, for embed_quality")
    parser.add_argument("--baseline-max-length", type=int, default=None,
                        help="the baseline's max_length in tokens (default: the profile's), to pair a shorter "
                             "candidate max_length against the old default")
    parser.add_argument("--model", default=None, help="text model instead of the profile's (a save_pretrained folder)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from anipop.encoders.text import EncoderUnavailable

    try:
        result = run(args.rows, args.chunks, args.profile, args.device, args.dtype, args.save_vectors, args.model,
                     args.baseline_max_length)
    except (EncoderUnavailable, FileNotFoundError) as err:  # weights or prepared data missing: say which, no trace
        sys.exit(f"error: {err}")
    print(f"embed on {result['device']} ({result['model']}, {result['rows']} rows, {result['tokens']} tokens): "
          f"{result['baseline']} {result['baseline_items_per_s']} items/s, {result['candidate']} "
          f"{result['candidate_items_per_s']} items/s; ratio {result['ratio_median']} (median of "
          f"{result['chunks']} pairs), cosine mean {result['cosine_mean']} min {result['cosine_min']}; rerun with "
          f"{result['rerun']['changed_rows']} changed rows {result['rerun']['wall_s']} s = "
          f"{result['rerun_vs_full_ratio']:.1%} of the full forward time", file=sys.stderr)
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
