"""The embed step: every text of the prepared data becomes a vector, computed once and cached.

Outputs per input kind: `<kind>.npy` (float32 matrix) and `<kind>_ids.json` (row ids in the same order),
plus `manifest.json` (model, dims, counts, seconds, items/s) that MLflow logs.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from anipop.config import Params
from anipop.embedding_cache import EmbeddingCache, item_key, namespace_of
from anipop.encoders import TextEncoder, choose_device, choose_dtype, load_text_encoder
from anipop.schema import PREPARED_ANIME, PREPARED_CHARACTERS, read_table
from anipop.utils import atomic_path, write_json

log = logging.getLogger(__name__)


def character_key(anime_id: int, character_id: int) -> str:
    return f"{anime_id}:{character_id}"


def text_items(anime: pd.DataFrame, characters: pd.DataFrame) -> dict[str, dict[str, str]]:
    """Per input kind, the texts to embed keyed by row id (anime_id, or anime_id:character_id)."""
    char_ids = [character_key(a, c) for a, c in zip(characters["anime_id"], characters["character_id"])]
    kinds = {
        "synopsis": dict(zip(anime["anime_id"].astype(str), anime["synopsis"])),
        "character_description": dict(zip(char_ids, characters["description"].fillna(""))),
        "character_name": dict(zip(char_ids, characters["name"])),
    }
    return {kind: items for kind, items in kinds.items() if items}


def embed_texts(encoder: TextEncoder, items: dict[str, str], cache: EmbeddingCache, namespace: str,
                batch_size: int, label: str) -> tuple[list[str], np.ndarray, dict]:
    """Embed the items the cache lacks, longest first (less padding per batch), then assemble all rows."""
    keys = {row_id: item_key(namespace, text) for row_id, text in items.items()}
    todo = sorted({keys[r]: items[r] for r in items if keys[r] not in cache}.items(), key=lambda kv: -len(kv[1]))
    started = time.perf_counter()
    with tqdm(total=len(todo), desc=f"embed {label}", unit="item", disable=not todo) as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            cache.put_batch([k for k, _ in batch], encoder.encode([t for _, t in batch]))
            bar.update(len(batch))
    seconds = time.perf_counter() - started
    cache.compact()
    row_ids = list(items)
    matrix = np.stack([cache.get(keys[r]) for r in row_ids]).astype(np.float32)
    stats = {"count": len(row_ids), "embedded": len(todo), "from_cache": len(row_ids) - len(todo),
             "dim": int(matrix.shape[1]), "seconds": round(seconds, 3),
             "items_per_s": round(len(todo) / seconds, 1) if todo and seconds > 0 else None}
    return row_ids, matrix, stats


def save_embeddings(out_dir: Path, kind: str, row_ids: list[str], matrix: np.ndarray) -> None:
    with atomic_path(out_dir / f"{kind}.npy") as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, matrix)
    write_json(out_dir / f"{kind}_ids.json", row_ids)


def load_embeddings(embeddings_dir: str | Path, kind: str) -> tuple[list[str], np.ndarray]:
    """Read one kind back: (row ids, matrix). Raises FileNotFoundError naming the file."""
    folder = Path(embeddings_dir)
    import json

    ids = json.loads((folder / f"{kind}_ids.json").read_text(encoding="utf-8"))
    return ids, np.load(folder / f"{kind}.npy")


def run_embed(params: Params) -> dict:
    """Embed every text kind present in the prepared data; write matrices, ids and the manifest."""
    cfg = params.embed
    prepared = Path(params.paths.prepared_dir)
    out_dir = Path(params.paths.embeddings_dir)
    anime = read_table(PREPARED_ANIME, prepared / "anime.parquet")
    characters = read_table(PREPARED_CHARACTERS, prepared / "characters.parquet")
    device = choose_device(cfg.device)
    dtype = choose_dtype(cfg.dtype, device)
    encoder = load_text_encoder(cfg.text.model, device, dtype, cfg.text.pooling, cfg.text.max_length)
    namespace = namespace_of(model=cfg.text.model, pooling=cfg.text.pooling, max_length=cfg.text.max_length,
                             dtype=str(dtype))
    cache = EmbeddingCache(params.paths.embedding_cache_dir, namespace)
    manifest: dict = {"text_model": cfg.text.model, "pooling": cfg.text.pooling, "max_length": cfg.text.max_length,
                      "device": str(device), "dtype": str(dtype).removeprefix("torch."), "kinds": {}}
    for kind, items in text_items(anime, characters).items():
        row_ids, matrix, stats = embed_texts(encoder, items, cache, namespace, cfg.batch_size, kind)
        save_embeddings(out_dir, kind, row_ids, matrix)
        manifest["kinds"][kind] = stats
        log.info("embed %s: %d rows (%d embedded, %d from cache), dim %d, %s items/s", kind, stats["count"],
                 stats["embedded"], stats["from_cache"], stats["dim"], stats["items_per_s"])
    write_json(out_dir / "manifest.json", manifest)
    return manifest
