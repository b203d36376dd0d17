"""A per-item embedding cache on disk: content-keyed, append-only shards, atomic writes.

Why shards: each finished batch is written as its own small file (temp + rename), so a run killed half-way
keeps every batch it finished and a rerun embeds only what is missing, with no duplicates. `compact()`
merges shards once a run completes so the folder stays small. A key is a hash of the encoder's namespace
(model id, pooling, max length, ...) and the item's own bytes, so a changed text or image is a miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from anipop.core.utils import atomic_path, update_digest

log = logging.getLogger(__name__)

_STALE_TEMP_S = 6 * 3600  # a temp shard this old belongs to a killed run, not a live one


def item_key(namespace: str, content: bytes | str) -> str:
    """The cache key of one item: a hash of the encoder namespace and the item's own bytes."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    return hashlib.sha256(namespace.encode() + b"\0" + data).hexdigest()


def file_key(namespace: str, path: str | Path) -> str:
    """item_key of a file's bytes, read in blocks so a folder of images is never all in memory."""
    return update_digest(hashlib.sha256(namespace.encode() + b"\0"), path).hexdigest()


def namespace_of(**settings: object) -> str:
    """A short id of everything that changes an item's vector (model id, pooling, max length, ...)."""
    text = "|".join(f"{key}={settings[key]}" for key in sorted(settings))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fingerprint_path(path: str | Path) -> str:
    """A content hash of a local model file or folder, so replacing its weights invalidates cached vectors."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode() + b"\0")
        update_digest(digest, file)
    return digest.hexdigest()[:16]


def _read_shard(shard: Path) -> tuple[list[str], np.ndarray] | None:
    """A shard's keys and vectors, or None (logged, file set aside) when it is unreadable."""
    try:
        with np.load(shard) as data:
            return data["keys"].tolist(), np.asarray(data["vectors"], dtype=np.float32)
    except FileNotFoundError:  # merged away by another run's compaction since listed: at worst items re-embed
        return None
    except (OSError, ValueError, KeyError, EOFError) as err:
        log.warning("embedding cache: unreadable shard %s (%s); set aside as .corrupt, its items re-embed",
                    shard, err)
        with contextlib.suppress(FileNotFoundError):  # another run set it aside first
            shard.replace(shard.with_suffix(".corrupt"))
        return None


def _read_shards(shards: list[Path]) -> dict[str, np.ndarray]:
    """Every readable shard's vectors by key (a later shard wins a duplicate key; the vectors are equal)."""
    vectors: dict[str, np.ndarray] = {}
    for shard in shards:
        content = _read_shard(shard)
        if content is not None:
            vectors.update(zip(*content))
    return vectors


class EmbeddingCache:
    """Vectors of one encoder configuration, stored under root/namespace/shard-*.npz.

    Shards are written by one background thread so the encoder (a GPU) does not wait on the disk; `flush()`
    waits for them, and `embed_missing` calls it even when a batch fails, so every finished batch is kept.
    """

    def __init__(self, root: str | Path, namespace: str) -> None:
        self.folder = Path(root) / namespace
        self.folder.mkdir(parents=True, exist_ok=True)
        self._vectors = _read_shards(sorted(self.folder.glob("shard-*.npz")))
        self._remove_stale_temps()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedding-cache")
        self._pending: list[Future] = []
        self._run_shards: list[Path] = []  # written by this process since the last compaction
        self._run_keys: list[str] = []

    def _remove_stale_temps(self) -> None:
        """Temp files of runs killed mid-write (SIGKILL skips atomic_path's clean-up)."""
        now = time.time()
        for temp in self.folder.glob(".shard-*.tmp"):
            try:
                if now - temp.stat().st_mtime > _STALE_TEMP_S:
                    temp.unlink()
            except FileNotFoundError:  # another run removed it first
                pass

    def __contains__(self, key: str) -> bool:
        return key in self._vectors

    def __len__(self) -> int:
        return len(self._vectors)

    def get(self, key: str) -> np.ndarray:
        return self._vectors[key]

    def put_batch(self, keys: list[str], vectors: np.ndarray) -> None:
        """Queue one finished batch to be written as a new shard (a rerun after flush() finds it)."""
        fresh = [i for i, key in enumerate(keys) if key not in self._vectors]
        if not fresh:
            return
        fresh_keys = np.array([keys[i] for i in fresh])
        fresh_vectors = np.array(vectors[fresh], dtype=np.float32)  # a copy: the caller may reuse its buffer
        self._vectors.update(zip(fresh_keys.tolist(), fresh_vectors))
        self._run_keys.extend(fresh_keys.tolist())
        shard = self.folder / f"shard-{uuid.uuid4().hex}.npz"
        self._run_shards.append(shard)
        self._pending.append(self._writer.submit(self._write_shard, shard, fresh_keys, fresh_vectors))

    def flush(self) -> None:
        """Wait until every queued shard is on disk; re-raise the first write error (disk full, permissions)."""
        pending, self._pending = self._pending, []
        errors = [future.exception() for future in pending]
        first = next((err for err in errors if err is not None), None)
        if first is not None:
            raise first

    @staticmethod
    def _write_shard(shard: Path, keys: np.ndarray, vectors: np.ndarray) -> None:
        with atomic_path(shard) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, keys=keys, vectors=vectors)

    def _write_merged(self, vectors: dict[str, np.ndarray]) -> None:
        """Write `vectors` (key -> vector) as one new shard; the caller then removes the shards it merged."""
        keys = list(vectors)
        self._write_shard(self.folder / f"shard-{uuid.uuid4().hex}.npz", np.array(keys),
                          np.stack([vectors[k] for k in keys]))

    def compact(self, max_shards: int = 16) -> None:
        """Merge this run's batch shards into one (from memory); merge all shards when there are many.

        The full merge reads the shards themselves (not this process's memory), so shards another run wrote
        meanwhile are kept, never deleted unread. Each merged file is written before the old ones go.
        """
        self.flush()
        if len(self._run_shards) > 1:
            self._write_merged({key: self._vectors[key] for key in self._run_keys})
            for shard in self._run_shards:
                shard.unlink(missing_ok=True)
        self._run_shards, self._run_keys = [], []
        shards = sorted(self.folder.glob("shard-*.npz"))
        if len(shards) <= max_shards:
            return
        merged = _read_shards(shards)
        if merged:
            self._write_merged(merged)
        for shard in shards:
            shard.unlink(missing_ok=True)
