"""The embed step: every text and portrait of the prepared data becomes a vector, computed once and cached.

Outputs per input kind: `<kind>.npy` (float32 matrix) and `<kind>_ids.json` (row ids in the same order),
`quarantine.parquet` (portraits that are missing or do not decode, stage "embed"), and `manifest.json`
(profile, models, runtime, dims, counts) that MLflow logs. Kinds: synopsis (ids: anime_id), and
character_description, character_name, portrait (ids: anime_id:character_id) when the data has characters.

The outputs hold only what the vectors depend on: a rerun whose vectors are unchanged writes the same bytes, so
DVC sees nothing new and train, evaluate and register do not rerun. What changes from run to run (seconds,
items/s, how many rows came from the cache) goes to the log and to `last_run.json` in the embedding cache folder.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from anipop.core.artifacts import ArtifactPaths, quarantine_record, save_embeddings
from anipop.core.config import EmbedParams, Paths
from anipop.core.input_kinds import EMBEDDED_KINDS
from anipop.core.utils import write_json
from anipop.data.images import image_problem, open_rgb
from anipop.data.schema import (
    PREPARED_ANIME,
    PREPARED_CHARACTERS,
    QUARANTINE,
    character_key,
    read_table,
    write_table,
)
from anipop.encoders.cache import EmbeddingCache, file_key, item_key
from anipop.encoders.text import choose_device, choose_dtype, load_text_encoder

log = logging.getLogger(__name__)

KINDS = EMBEDDED_KINDS  # anipop.core.input_kinds: what features and predict read back
# one batch of (cache key, payload) in; the keys actually encoded and their vectors out
BatchEncoder = Callable[[list[tuple[str, object]]], tuple[list[str], np.ndarray]]
RUN_STATS = ("embedded", "from_cache", "seconds", "items_per_s")  # per-run figures: kept out of the outputs


def text_items(anime: pd.DataFrame, characters: pd.DataFrame) -> dict[str, dict[str, str]]:
    """Per text kind, the texts to embed keyed by row id (anime_id, or anime_id:character_id)."""
    char_ids = [character_key(a, c) for a, c in zip(characters["anime_id"], characters["character_id"])]
    kinds = {
        "synopsis": dict(zip(anime["anime_id"].astype(str), anime["synopsis"])),
        "character_description": dict(zip(char_ids, characters["description"].fillna(""))),
        "character_name": dict(zip(char_ids, characters["name"])),
    }
    return {kind: items for kind, items in kinds.items() if items}


def portrait_items(characters: pd.DataFrame, raw_dir: Path) -> dict[str, Path]:
    """Portrait files keyed by character row id; rows without a portrait path have no portrait to embed."""
    rows = characters[characters["portrait_path"].notna()]
    if len(rows) < len(characters):
        log.info("embed: %d of %d characters have no portrait path; they get no portrait vector",
                 len(characters) - len(rows), len(characters))
    return {character_key(a, c): raw_dir / rel
            for a, c, rel in zip(rows["anime_id"], rows["character_id"], rows["portrait_path"])}


def embed_missing(encode_batch: BatchEncoder, todo: list[tuple[str, object]], cache: EmbeddingCache,
                  batch_size: int, label: str) -> float:
    """Encode `todo` in batches, each persisted to the cache as it finishes; return the seconds spent."""
    started = time.perf_counter()
    try:
        with tqdm(total=len(todo), desc=f"embed {label}", unit="item", disable=not todo) as bar:
            for start in range(0, len(todo), batch_size):
                batch = todo[start:start + batch_size]
                keys, vectors = encode_batch(batch)
                cache.put_batch(keys, vectors)
                bar.update(len(batch))
    finally:  # a failed or interrupted run still keeps every batch it finished
        cache.flush()
    return time.perf_counter() - started


def assemble(keys: dict[str, str], cache: EmbeddingCache, dim: int, embedded: int, cached_before: int,
             seconds: float, model: str) -> tuple[list[str], np.ndarray, dict]:
    """Rows in input order whose vector is cached (every row but quarantined ones), and the kind's stats."""
    row_ids = [row for row, key in keys.items() if key in cache]
    matrix = (np.stack([cache.get(keys[r]) for r in row_ids]) if row_ids else np.zeros((0, dim))).astype(np.float32)
    stats = {"model": model, "count": len(row_ids), "embedded": embedded, "from_cache": cached_before,
             "dim": int(matrix.shape[1]), "seconds": round(seconds, 3),
             "items_per_s": round(embedded / seconds, 1) if embedded and seconds > 0 else None}
    return row_ids, matrix, stats


def embed_texts(encoder, items: dict[str, str], cache: EmbeddingCache, batch_size: int,
                label: str) -> tuple[list[str], np.ndarray, dict]:
    """Embed the texts the cache lacks, longest first (batches of similar length pad little), then assemble."""
    keys = {row_id: item_key(encoder.namespace, text) for row_id, text in items.items()}
    cached_before = sum(key in cache for key in keys.values())
    unique = {keys[r]: items[r] for r in items if keys[r] not in cache}  # identical texts are embedded once
    todo = sorted(unique.items(), key=lambda kv: -len(kv[1]))
    seconds = embed_missing(lambda batch: ([k for k, _ in batch], encoder.encode([t for _, t in batch])),
                            todo, cache, batch_size, label)
    cache.compact()
    return assemble(keys, cache, encoder.dim, len(todo), cached_before, seconds, encoder.name)


def _quarantine(quarantine: list[dict], row_id: str, path: Path, reason: str) -> None:
    quarantine.append(quarantine_record("embed", "characters", row_id, "unreadable_portrait", reason,
                                        "portrait_path", str(path)))


def embed_portraits(encoder, paths: dict[str, Path], cache: EmbeddingCache, batch_size: int,
                    quarantine: list[dict]) -> tuple[list[str], np.ndarray, dict]:
    """Embed portraits keyed by their bytes; a missing or undecodable file is quarantined, its batch goes on.

    A portrait already cached decoded before, so only new ones pay image_problem's full decode.
    """
    keys: dict[str, str] = {}
    for row_id, path in paths.items():
        try:
            key = file_key(encoder.namespace, path)
        except OSError as err:
            _quarantine(quarantine, row_id, path, image_problem(path) or f"cannot read {path}: {err}")
            continue
        if key not in cache and (problem := image_problem(path)):
            _quarantine(quarantine, row_id, path, problem)
            continue
        keys[row_id] = key
    cached_before = sum(key in cache for key in keys.values())
    todo = list({keys[r]: paths[r] for r in keys if keys[r] not in cache}.items())
    failed: dict[str, str] = {}

    def encode_batch(batch: list[tuple[str, Path]]) -> tuple[list[str], np.ndarray]:
        decoded = []
        for key, path in batch:
            try:  # the file passed image_problem; it can still change or vanish before this read
                decoded.append((key, open_rgb(path)))
            except (OSError, ValueError, SyntaxError) as err:
                failed[key] = f"cannot decode {path}: {err}"
        if not decoded:
            return [], np.zeros((0, encoder.dim), dtype=np.float32)
        return [k for k, _ in decoded], encoder.encode([image for _, image in decoded])

    seconds = embed_missing(encode_batch, todo, cache, batch_size, "portrait")
    cache.compact()
    for row_id, key in keys.items():
        if key in failed:
            _quarantine(quarantine, row_id, paths[row_id], failed[key])
    return assemble(keys, cache, encoder.dim, len(todo) - len(failed), cached_before, seconds, encoder.name)


def _drop_stale_kinds(out_dir: Path, written: set[str]) -> None:
    """A kind this run did not produce (the data lost its characters) must not linger from an older run."""
    for kind in set(KINDS) - written:
        for path in (out_dir / f"{kind}.npy", out_dir / f"{kind}_ids.json"):
            path.unlink(missing_ok=True)


def run_embed(embed: EmbedParams, paths: Paths) -> dict:
    """Embed every text kind and the portraits present in the prepared data; write matrices, ids, manifest."""
    from anipop.encoders.image import load_image_encoder

    cfg = embed
    started = time.perf_counter()
    files = ArtifactPaths.of(paths)
    out_dir = files.embeddings_dir
    anime = read_table(PREPARED_ANIME, files.prepared_anime)
    characters = read_table(PREPARED_CHARACTERS, files.prepared_characters)
    device = choose_device(cfg.device)
    dtype = choose_dtype(cfg.dtype, device)
    manifest: dict = {"profile": cfg.profile, "text_model": cfg.text.model, "image_model": cfg.image.model,
                      "text": cfg.text.model_dump(mode="json"), "image": cfg.image.model_dump(mode="json"),
                      "device": str(device), "dtype": str(dtype).removeprefix("torch."), "kinds": {}}
    results: dict[str, tuple[list[str], np.ndarray, dict]] = {}
    load_seconds: dict[str, float] = {}  # model loading, apart from embedding: a constant cost per run
    texts = text_items(anime, characters)
    if texts:
        loading = time.perf_counter()
        encoder = load_text_encoder(cfg.text.model, device, dtype, cfg.text.pooling, cfg.text.max_length,
                                    cfg.text.cpu_runtime, paths.onnx_dir, cfg.cpu_threads)
        load_seconds["text"] = round(time.perf_counter() - loading, 3)
        manifest["text_runtime"], manifest["text_namespace"] = encoder.runtime, encoder.namespace
        cache = EmbeddingCache(paths.embedding_cache_dir, encoder.namespace)
        for kind, items in texts.items():
            results[kind] = embed_texts(encoder, items, cache, cfg.batch_size, kind)
    quarantine: list[dict] = []
    portraits = portrait_items(characters, Path(paths.raw_dir))
    if portraits:
        loading = time.perf_counter()
        image_encoder = load_image_encoder(cfg.image, device, dtype)
        load_seconds["image"] = round(time.perf_counter() - loading, 3)
        cache = EmbeddingCache(paths.embedding_cache_dir, image_encoder.namespace)
        results["portrait"] = embed_portraits(image_encoder, portraits, cache, cfg.batch_size, quarantine)
    for kind, (row_ids, matrix, stats) in results.items():
        save_embeddings(out_dir, kind, row_ids, matrix)
        manifest["kinds"][kind] = stats
    _drop_stale_kinds(out_dir, set(results))
    write_table(QUARANTINE, pd.DataFrame(quarantine, columns=QUARANTINE.column_names), files.embeddings_quarantine)
    manifest["quarantined"] = len(quarantine)
    write_json(files.embeddings_manifest, stable_manifest(manifest))
    manifest["load_seconds"] = load_seconds
    manifest["seconds"] = round(time.perf_counter() - started, 3)
    write_run_log(paths, manifest)
    parts = [f"{kind} {s['count']} rows ({s['embedded']} embedded, {s['from_cache']} cached, {s['dim']}-d, "
             f"{s['items_per_s'] or '-'} items/s)" for kind, (_, _, s) in results.items()]
    log.info("embed: done in %.1f s on %s: %s; %d portrait(s) quarantined", manifest["seconds"], device,
             "; ".join(parts) or "nothing to embed", len(quarantine))
    return manifest


def stable_manifest(manifest: dict) -> dict:
    """The manifest without the per-run figures: equal vectors give an equal file."""
    kept = {key: value for key, value in manifest.items() if key not in {"seconds", "load_seconds"}}
    kept["kinds"] = {kind: {key: value for key, value in stats.items() if key not in RUN_STATS}
                     for kind, stats in manifest["kinds"].items()}
    return kept


def run_log_path(paths: Paths) -> Path:
    """Where the last run's timings and cache hits are kept: beside the cache, outside every DVC output."""
    return Path(paths.embedding_cache_dir) / "last_run.json"


def write_run_log(paths: Paths, manifest: dict) -> None:
    record = {"embeddings_dir": str(paths.embeddings_dir), "seconds": manifest["seconds"],
              "load_seconds": manifest["load_seconds"],
              "kinds": {kind: {key: stats[key] for key in ("count", *RUN_STATS)}
                        for kind, stats in manifest["kinds"].items()}}
    write_json(run_log_path(paths), record)
