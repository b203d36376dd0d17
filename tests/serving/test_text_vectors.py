"""Texts' vectors kept across the models one process scores: reused only where a vector is the text's alone.

The premise, that the row-wise int8 encoder gives a text the same vector in any batch, is held on the real MiniLM
by tests/encoders/test_encoders.py::test_an_int8_vector_does_not_depend_on_its_batchmates.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import pytest

from anipop.encoders.onnx_text import OnnxHiddenStates
from anipop.serving import text_vectors

ROW_WISE = OnnxHiddenStates(session=None, row_workers=2)  # each text alone, as the int8 runtime runs them
BATCHED = OnnxHiddenStates(session=None)  # one session over the padded batch


@dataclass
class CountingEncoder:
    """An encoder whose vector of a text is a function of the text, counting the texts it encodes."""

    namespace: str = "minilm-int8"
    forward: object = ROW_WISE
    encoded: list[str] = field(default_factory=list)

    def encode(self, texts: list[str]) -> np.ndarray:
        """The same vector in every process, and another one for a namespace of another length (this file's two,
        minilm-int8 and gpt2, differ): not Python's hash(), which is seeded per process and once gave two
        namespaces equal vectors, failing the 'never shares' test."""
        self.encoded += texts
        return np.array([[len(t), sum(map(ord, t)) % 97, zlib.crc32(t.encode()) % 1000, len(self.namespace)]
                         for t in texts], np.float32)


@pytest.fixture
def kept(monkeypatch):
    monkeypatch.setattr(text_vectors, "_kept", None)
    text_vectors.keep_text_vectors()
    return text_vectors._kept


def test_off_by_default_every_call_encodes(monkeypatch):
    monkeypatch.setattr(text_vectors, "_kept", None)
    encoder = CountingEncoder()
    text_vectors.encode_texts(encoder, ["a plot", "a hero"])
    text_vectors.encode_texts(encoder, ["a plot"])
    assert encoder.encoded == ["a plot", "a hero", "a plot"]


def test_a_second_model_with_the_same_encoder_reuses_the_vectors_and_gets_the_same_answer(kept):
    champion, challenger = CountingEncoder(), CountingEncoder()
    texts = ["a plot", "a hero", "a plot", "a villain"]
    first = text_vectors.encode_texts(champion, texts)
    second = text_vectors.encode_texts(challenger, ["a villain", "a plot", "a hero", "a plot"])
    np.testing.assert_array_equal(first, champion.encode(texts))
    np.testing.assert_array_equal(second, first[[3, 0, 1, 0]])
    assert challenger.encoded == []
    assert champion.encoded[:3] == ["a plot", "a hero", "a villain"]  # a repeated text encoded once


def test_another_encoder_or_a_batch_dependent_runtime_never_shares(kept):
    minilm, other, torch_runtime = CountingEncoder(), CountingEncoder(namespace="gpt2"), CountingEncoder(forward=None)
    text_vectors.encode_texts(minilm, ["a plot"])
    assert not np.array_equal(text_vectors.encode_texts(other, ["a plot"]), minilm.encode(["a plot"]))
    text_vectors.encode_texts(torch_runtime, ["a plot"])
    text_vectors.encode_texts(torch_runtime, ["a plot"])
    assert other.encoded[:1] == ["a plot"] and torch_runtime.encoded == ["a plot", "a plot"]
    assert set(kept) == {("minilm-int8", "a plot"), ("gpt2", "a plot")}


def test_the_least_recently_used_go_beyond_the_bound(kept, monkeypatch):
    monkeypatch.setattr(text_vectors, "KEPT_MAX", 2)
    encoder = CountingEncoder()
    text_vectors.encode_texts(encoder, ["one", "two"])
    text_vectors.encode_texts(encoder, ["one"])  # used again: "two" is now the oldest
    text_vectors.encode_texts(encoder, ["three"])
    assert list(kept) == [("minilm-int8", "one"), ("minilm-int8", "three")]
    assert isinstance(kept, OrderedDict) and len(kept) == 2


def test_a_batched_onnx_session_never_shares(kept):
    batched = CountingEncoder(forward=BATCHED)
    text_vectors.encode_texts(batched, ["a plot"])
    text_vectors.encode_texts(batched, ["a plot"])
    assert batched.encoded == ["a plot", "a plot"] and not kept


def _new_process(monkeypatch) -> None:
    """This module's state as a fresh process finds it (the stores of the 'previous' one merged and closed)."""
    text_vectors._close_stores()
    monkeypatch.setattr(text_vectors, "_kept", None)
    monkeypatch.setattr(text_vectors, "_store_root", None)
    monkeypatch.setattr(text_vectors, "_stores", {})


def test_a_store_gives_the_embed_stages_vectors_and_keeps_new_ones_for_the_next_process(monkeypatch, tmp_path):
    from anipop.encoders.cache import EmbeddingCache, item_key

    stage_encoder = CountingEncoder()
    stage = EmbeddingCache(tmp_path, stage_encoder.namespace)  # what `anipop embed` leaves, with its keys
    stage.put_batch([item_key(stage_encoder.namespace, "a plot")], stage_encoder.encode(["a plot"]))
    stage.compact()
    _new_process(monkeypatch)
    text_vectors.keep_text_vectors(tmp_path)
    champion = CountingEncoder()
    vectors = text_vectors.encode_texts(champion, ["a plot", "a hero"])
    np.testing.assert_array_equal(vectors, stage_encoder.encode(["a plot", "a hero"]))
    assert champion.encoded == ["a hero"]  # only the text the embed stage never saw
    text_vectors.encode_texts(champion, ["a villain"])  # each call puts a shard on disk at once ...

    _new_process(monkeypatch)
    assert len(list((tmp_path / "minilm-int8").glob("shard-*.npz"))) == 2  # ... merged into one at the exit
    text_vectors.keep_text_vectors(tmp_path)
    later, other = CountingEncoder(), CountingEncoder(namespace="gpt2")
    np.testing.assert_array_equal(text_vectors.encode_texts(later, ["a hero", "a plot"]), vectors[[1, 0]])
    text_vectors.encode_texts(other, ["a plot"])
    assert later.encoded == [] and other.encoded == ["a plot"]  # another namespace is another folder


def test_a_batch_dependent_encoder_neither_reads_nor_writes_the_store(monkeypatch, tmp_path):
    _new_process(monkeypatch)
    text_vectors.keep_text_vectors(tmp_path)
    batched = CountingEncoder(forward=BATCHED)
    text_vectors.encode_texts(batched, ["a plot"])
    assert not list(tmp_path.rglob("shard-*.npz")) and batched.encoded == ["a plot"]
