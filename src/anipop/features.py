"""Feature assembly: the embeddings of each anime's inputs, concatenated in one fixed order.

Characters are several per anime; their vectors are averaged so every anime gets one fixed-size block.
A kind the data lacks (the offline sample has no characters) is skipped with a logged notice.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from anipop.embed import load_embeddings

log = logging.getLogger(__name__)

ANIME_KINDS = ("synopsis",)
CHARACTER_KINDS = ("character_description", "character_name")


def available_kinds(embeddings_dir: str | Path, wanted: tuple[str, ...]) -> list[str]:
    folder = Path(embeddings_dir)
    present = [kind for kind in wanted if (folder / f"{kind}.npy").exists()]
    for kind in wanted:
        if kind not in present:
            log.info("features: no %s embeddings in %s; that input is skipped", kind, folder)
    return present


def _per_anime(kind: str, row_ids: list[str], matrix: np.ndarray, anime_ids: np.ndarray) -> np.ndarray:
    """One row per anime id: direct lookup for anime kinds, mean over its characters for character kinds."""
    if kind in ANIME_KINDS:
        index = {int(r): i for i, r in enumerate(row_ids)}
        missing = [a for a in anime_ids if a not in index]
        if missing:
            raise KeyError(f"{kind} embeddings lack anime_id(s) {missing[:5]}; rerun `anipop embed`")
        return matrix[[index[a] for a in anime_ids]]
    owners = np.array([int(r.split(":")[0]) for r in row_ids])
    frame = pd.DataFrame(matrix).groupby(owners).mean()
    return frame.reindex(anime_ids).fillna(0.0).to_numpy(dtype=np.float32)


def build_features(embeddings_dir: str | Path, anime_ids, kinds: list[str]) -> np.ndarray:
    """Concatenate the chosen kinds' per-anime vectors, in the order of `anime_ids`."""
    anime_ids = np.asarray(anime_ids, dtype=np.int64)
    blocks = []
    for kind in kinds:
        row_ids, matrix = load_embeddings(embeddings_dir, kind)
        blocks.append(_per_anime(kind, row_ids, matrix, anime_ids))
    if not blocks:
        raise ValueError(f"no embeddings found in {embeddings_dir}; run `anipop embed` first")
    return np.hstack(blocks).astype(np.float32)
