"""Texts' vectors kept in the process, for the next model that scores the same pitches with the same text encoder.

Why: the registry scores the champion and then the challenger, and the replay every champion, on the same
anime; each model loads its own encoder, so each encoded every synopsis and character again (the replay test's
register stage: 26-30 s a step before, 21-24 s after). With the row-wise int8 encoder
(encoders.onnx_text.OnnxHiddenStates) a text's vector is a function of the text and the encoder's namespace
alone, bit for bit whatever its batch, so the second model's encoding is the first one's. Any other forward pass (eager torch, a batched ONNX session) pads
texts to their batch, so its vectors are never shared.

Off unless `keep_text_vectors()` turns it on: serving.scoring (the registry, the drift check, the replay) does;
a REST server does not, so it keeps no text of one request for the next.

Given the project's embedding cache folder (paths.embedding_cache_dir), the vectors are also read from and added
to it (encoders.cache: the same folder per encoder namespace, the same keys). Why: the embed stage has already
encoded every prepared synopsis and character with the encoder a served model ships (its namespace says so:
weights, pooling, length, runtime and its version), and the registry, the drift check and the replay, each its
own process, encoded those same texts again: in a profile of the replay test, 40 s of its 204 s of CPU.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from anipop.encoders.cache import EmbeddingCache

log = logging.getLogger(__name__)

KEPT_MAX = 8192  # vectors kept (MiniLM: 1.5 KB each), the least recently used dropped first

_kept: OrderedDict[tuple[str, str], np.ndarray] | None = None
_store_root: Path | None = None
_stores: dict[str, EmbeddingCache] = {}  # namespace -> its folder under _store_root
_lock = threading.Lock()


def keep_text_vectors(store: Path | str | None = None) -> None:
    """From now on, remember each text's vector in this process (bounded: KEPT_MAX); with `store` (an embedding
    cache folder), also look vectors up there first and add the ones encoded here."""
    global _kept, _store_root
    with _lock:
        if _kept is None:
            _kept = OrderedDict()
        if store is not None and _store_root != Path(store):
            _close_stores()
            _store_root = Path(store)


def encode_texts(encoder, texts: list[str]) -> np.ndarray:
    """`encoder.encode(texts)`, with the vectors this process already made for these texts reused when kept, and
    those the store holds read from it."""
    kept = _kept
    if kept is None or not texts or not _encodes_each_text_alone(encoder):
        return encoder.encode(texts)
    keys = [(encoder.namespace, text) for text in texts]
    found: dict[tuple[str, str], np.ndarray] = {}
    with _lock:
        for key in keys:
            if key in kept:
                kept.move_to_end(key)
                found[key] = kept[key]
    missing = list(dict.fromkeys(key for key in keys if key not in found))
    if missing:
        found.update(_from_store(encoder.namespace, missing))
        todo = [key for key in missing if key not in found]
        if todo:
            fresh = encoder.encode([text for _, text in todo])
            _to_store(encoder.namespace, [text for _, text in todo], fresh)
            found.update(zip(todo, fresh))
        with _lock:
            kept.update((key, found[key]) for key in missing)
            while len(kept) > KEPT_MAX:
                kept.popitem(last=False)
    return np.stack([found[key] for key in keys])


def _store(namespace: str) -> EmbeddingCache | None:
    """The store's cache of one encoder namespace, opened once per process (None: no store)."""
    if _store_root is None:
        return None
    if namespace not in _stores:
        from anipop.encoders.cache import EmbeddingCache

        _stores[namespace] = EmbeddingCache(_store_root, namespace)
    return _stores[namespace]


def _from_store(namespace: str, keys: list[tuple[str, str]]) -> dict[tuple[str, str], np.ndarray]:
    """The vectors the store already holds of these (namespace, text) keys."""
    from anipop.encoders.cache import item_key

    with _lock:
        store = _store(namespace)
        if store is None:
            return {}
        stored = {key: item_key(namespace, key[1]) for key in keys}
        return {key: store.get(item) for key, item in stored.items() if item in store}


def _to_store(namespace: str, texts: list[str], vectors) -> None:
    """Add vectors encoded here to the store, on disk before returning (the next process reads them)."""
    from anipop.encoders.cache import item_key

    with _lock:
        store = _store(namespace)
        if store is None or not texts:
            return
        store.put_batch([item_key(namespace, text) for text in texts], np.asarray(vectors, dtype=np.float32))
        store.flush()


@atexit.register
def _close_stores() -> None:
    """Merge the shards this process added (a killed one leaves them apart: every reader still finds them)."""
    for store in _stores.values():
        try:
            store.compact()
        except OSError as err:  # a full disk at exit: the shards stay apart, every reader still finds them
            log.warning("text vectors: shards under %s not merged (%s)", store.folder, err)
    _stores.clear()


def _encodes_each_text_alone(encoder) -> bool:
    """Whether the encoder's forward pass runs every text on its own (OnnxHiddenStates with row workers): only
    then is a text's vector the same in any batch. Asked of the forward pass itself, not of a runtime's name."""
    from anipop.encoders.onnx_text import OnnxHiddenStates

    return isinstance(encoder.forward, OnnxHiddenStates) and encoder.forward.row_workers > 0
