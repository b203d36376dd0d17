"""A per-item embedding cache on disk: content-keyed, append-only shards, atomic writes.

Why shards: each finished batch is written as its own small file (temp + rename), so a run killed half-way
keeps every batch it finished and a rerun embeds only what is missing, with no duplicates. `compact()`
merges shards once a run completes so the folder stays small.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import numpy as np

from anipop.utils import atomic_path


def item_key(namespace: str, content: bytes | str) -> str:
    """The cache key of one item: a hash of the encoder namespace and the item's own bytes."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    return hashlib.sha256(namespace.encode() + b"\0" + data).hexdigest()


def namespace_of(**settings: object) -> str:
    """A short id of everything that changes an item's vector (model id, pooling, max length, ...)."""
    text = "|".join(f"{key}={settings[key]}" for key in sorted(settings))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class EmbeddingCache:
    """Vectors of one encoder configuration, stored under root/namespace/shard-*.npz."""

    def __init__(self, root: str | Path, namespace: str) -> None:
        self.folder = Path(root) / namespace
        self.folder.mkdir(parents=True, exist_ok=True)
        self._vectors: dict[str, np.ndarray] = {}
        for shard in sorted(self.folder.glob("shard-*.npz")):
            with np.load(shard) as data:
                self._vectors.update(zip(data["keys"].tolist(), data["vectors"]))

    def __contains__(self, key: str) -> bool:
        return key in self._vectors

    def __len__(self) -> int:
        return len(self._vectors)

    def get(self, key: str) -> np.ndarray:
        return self._vectors[key]

    def put_batch(self, keys: list[str], vectors: np.ndarray) -> None:
        """Persist one finished batch as a new shard; only then does it count as cached."""
        fresh = [i for i, key in enumerate(keys) if key not in self._vectors]
        if not fresh:
            return
        fresh_keys = np.array([keys[i] for i in fresh])
        fresh_vectors = np.asarray(vectors[fresh], dtype=np.float32)
        with atomic_path(self.folder / f"shard-{uuid.uuid4().hex}.npz") as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, keys=fresh_keys, vectors=fresh_vectors)
        self._vectors.update(zip(fresh_keys.tolist(), fresh_vectors))

    def compact(self, max_shards: int = 16) -> None:
        """Merge shards into one when there are many; the merged file is written before the old go."""
        shards = sorted(self.folder.glob("shard-*.npz"))
        if len(shards) <= max_shards or not self._vectors:
            return
        keys = np.array(list(self._vectors))
        vectors = np.stack([self._vectors[k] for k in keys.tolist()])
        with atomic_path(self.folder / f"shard-{uuid.uuid4().hex}.npz") as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, keys=keys, vectors=vectors)
        for shard in shards:
            shard.unlink()
