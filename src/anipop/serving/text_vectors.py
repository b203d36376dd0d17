"""Texts' vectors kept in the process, for the next model that scores the same pitches with the same text encoder.

Why: the registry scores the champion and then the challenger, and the replay every champion, on the same
anime; each model loads its own encoder, so each encoded every synopsis and character again (the replay test's
register stage: 26-30 s a step before, 21-24 s after). With the row-wise int8 encoder (encoders.onnx_text.OnnxHiddenStates) a text's
vector is a function of the text and the encoder's namespace alone, bit for bit whatever its batch, so the
second model's encoding is the first one's. Any other forward pass (eager torch, a batched ONNX session) pads
texts to their batch, so its vectors are never shared.

Off unless `keep_text_vectors()` turns it on: serving.scoring (the registry, the drift check, the replay) does;
a REST server does not, so it keeps no text of one request for the next.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

KEPT_MAX = 8192  # vectors kept (MiniLM: 1.5 KB each), the least recently used dropped first

_kept: OrderedDict[tuple[str, str], np.ndarray] | None = None
_lock = threading.Lock()


def keep_text_vectors() -> None:
    """From now on, remember each text's vector in this process (bounded: KEPT_MAX)."""
    global _kept
    with _lock:
        if _kept is None:
            _kept = OrderedDict()


def encode_texts(encoder, texts: list[str]) -> np.ndarray:
    """`encoder.encode(texts)`, with the vectors this process already made for these texts reused when kept."""
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
        fresh = encoder.encode([text for _, text in missing])
        with _lock:
            for key, vector in zip(missing, fresh):
                found[key] = kept[key] = vector
            while len(kept) > KEPT_MAX:
                kept.popitem(last=False)
    return np.stack([found[key] for key in keys])


def _encodes_each_text_alone(encoder) -> bool:
    """Whether the encoder's forward pass runs every text on its own (OnnxHiddenStates with row workers): only
    then is a text's vector the same in any batch. Asked of the forward pass itself, not of a runtime's name."""
    from anipop.encoders.onnx_text import OnnxHiddenStates

    return isinstance(encoder.forward, OnnxHiddenStates) and encoder.forward.row_workers > 0
