"""Embedding in shards: N slices of the prepared data embedded as parallel Prefect tasks (Dask scale-out).

Why this shape: the embed step already caches every vector per item in `paths.embedding_cache_dir`. So a
shard is simply `run_embed` on a slice of the prepared tables, writing into that shared cache; once every
shard is done, the ordinary `run_embed` on the full data finds every item cached and only assembles the
matrices. Nothing of the embed step is written twice, and the sharded path stays correct whatever embed
does inside (text kinds, portraits): a shard is the same step on less data.

The shard task lives in the package (not in flows/) so Dask workers in other processes can import it.
"""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

import numpy as np
from prefect import task

from anipop.core.artifacts import ANIME_TABLE, CHARACTERS_TABLE
from anipop.core.config import Params
from anipop.data.schema import PREPARED_ANIME, PREPARED_CHARACTERS, read_table, write_table

log = logging.getLogger(__name__)

_IMPORT_LOCK = threading.Lock()
SLICED_TABLES = {ANIME_TABLE: PREPARED_ANIME, CHARACTERS_TABLE: PREPARED_CHARACTERS}


def shards_dir(params: Params) -> Path:
    """Scratch for the slices: stable paths, so an unchanged slice has an unchanged cache key."""
    return Path(params.orchestration.prefect_dir) / "embed-shards"


def split_ids(anime_ids: list[int], shards: int) -> list[list[int]]:
    """Sorted ids cut into at most `shards` contiguous, near-equal, non-empty slices."""
    ordered = np.sort(np.asarray(anime_ids, dtype=np.int64))
    return [part.tolist() for part in np.array_split(ordered, max(1, min(shards, len(ordered)))) if len(part)]


def write_shards(params: Params, shards: int) -> list[Params]:
    """Write one prepared folder per slice and return, per slice, params that point the embed step at it.

    Each slice keeps every anime row of its ids and their characters; the other prepared files (splits,
    scaler, reports) are copied as they are. The embedding cache stays the shared one.
    """
    prepared = Path(params.paths.prepared_dir)
    tables = {name: read_table(schema, prepared / name) for name, schema in SLICED_TABLES.items()}
    root = shards_dir(params)
    if root.exists():
        shutil.rmtree(root)
    shard_params = []
    for index, ids in enumerate(split_ids(tables[ANIME_TABLE]["anime_id"].tolist(), shards)):
        shard_prepared = root / f"shard-{index}" / "prepared"
        shard_prepared.mkdir(parents=True)
        for item in prepared.iterdir():
            if item.name not in SLICED_TABLES and not item.name.startswith("."):
                (shutil.copytree if item.is_dir() else shutil.copy2)(item, shard_prepared / item.name)
        for name, schema in SLICED_TABLES.items():
            frame = tables[name]
            write_table(schema, frame[frame["anime_id"].isin(ids)], shard_prepared / name)
        paths = params.paths.model_copy(update={"prepared_dir": shard_prepared,
                                                "embeddings_dir": root / f"shard-{index}" / "embeddings"})
        shard_params.append(params.model_copy(update={"paths": paths}))
    log.info("embed: %d anime in %d shards under %s", len(tables[ANIME_TABLE]), len(shard_params), root)
    return shard_params


def remove_shards(params: Params) -> None:
    shutil.rmtree(shards_dir(params), ignore_errors=True)


def _resolve_lazy_imports() -> None:
    """transformers resolves `from transformers import AutoModel` lazily, and two threads doing it at once
    can fail ("cannot import name 'AutoModel'"); resolve the auto classes once per process, under a lock."""
    with _IMPORT_LOCK:
        import transformers

        for name in ("AutoModel", "AutoTokenizer", "AutoConfig"):
            getattr(transformers, name)


@task(name="embed-shard")
def embed_shard(params: Params) -> dict:
    """Embed one slice into the shared per-item cache; returns that slice's manifest (paths, counts).
    Not cached by Prefect: the per-item cache makes a repeated shard cheap, and DVC judges the embed stage."""
    _resolve_lazy_imports()
    from anipop.embedding.embed import run_embed

    return run_embed(params.embed, params.paths)
