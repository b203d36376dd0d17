"""The embed stage: outputs, cache hits and misses, resume after a kill, portraits and their quarantine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_models import build_tiny_gpt2, build_tiny_resnet, embed_params, write_prepared

import anipop.embedding.embed as embed
from anipop.core.artifacts import load_embeddings
from anipop.core.utils import read_json
from anipop.data.schema import PREPARED_ANIME, QUARANTINE, read_table, write_table
from anipop.embedding.embed import run_embed
from anipop.encoders.cache import EmbeddingCache
from anipop.steps import call_step


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory) -> str:
    return str(build_tiny_gpt2(tmp_path_factory.mktemp("tiny_gpt2")))


def _params(tmp_path: Path, tiny_gpt2: str, image: dict | None = None, **embed_updates):
    return embed_params(tmp_path, text={"model": tiny_gpt2, "pooling": "mean", "max_length": 64}, image=image,
                        **{"batch_size": 4, **embed_updates})


def test_outputs_and_cache_hits_and_misses(tmp_path, tiny_gpt2):
    params = _params(tmp_path, tiny_gpt2)
    write_prepared(params, n_anime=10)
    first = call_step(run_embed, params)["kinds"]["synopsis"]
    assert (first["count"], first["embedded"], first["from_cache"], first["dim"]) == (10, 10, 0, 32)
    ids, vectors = load_embeddings(params.paths.embeddings_dir, "synopsis")
    assert ids == [str(i) for i in range(1, 11)] and vectors.shape == (10, 32) and vectors.dtype == np.float32
    manifest = read_json(Path(params.paths.embeddings_dir) / "manifest.json")
    assert manifest["text_model"] == tiny_gpt2 and manifest["profile"] == "test"
    assert manifest["text_runtime"] == "torch" and manifest["kinds"]["synopsis"] == {"model": tiny_gpt2, "count": 10,
                                                                                     "dim": 32}
    run_log = read_json(embed.run_log_path(params.paths))  # the timings live beside the cache, outside the outputs
    assert run_log["seconds"] > 0 and run_log["kinds"]["synopsis"]["embedded"] == 10
    assert read_table(QUARANTINE, Path(params.paths.embeddings_dir) / "quarantine.parquet").empty

    again = call_step(run_embed, params)["kinds"]["synopsis"]
    assert (again["embedded"], again["from_cache"]) == (0, 10)
    np.testing.assert_array_equal(load_embeddings(params.paths.embeddings_dir, "synopsis")[1], vectors)

    anime = read_table(PREPARED_ANIME, Path(params.paths.prepared_dir) / "anime.parquet")
    anime.loc[anime["anime_id"] == 4, "synopsis"] = "a new secret world"  # one changed row
    anime.loc[anime["anime_id"] == 9, "synopsis"] = anime.loc[anime["anime_id"] == 1, "synopsis"].iloc[0]
    write_table(PREPARED_ANIME, anime, Path(params.paths.prepared_dir) / "anime.parquet")
    changed = call_step(run_embed, params)["kinds"]["synopsis"]
    assert (changed["embedded"], changed["from_cache"]) == (1, 9)  # row 9 now repeats row 1: a hit
    _, after = load_embeddings(params.paths.embeddings_dir, "synopsis")
    np.testing.assert_array_equal(after[8], after[0])
    assert not np.allclose(after[3], vectors[3])


def test_unchanged_vectors_rewrite_identical_outputs(tmp_path, tiny_gpt2):
    """All vectors from the cache on the rerun: every output file is byte-equal, so DVC retrains nothing."""
    params = _params(tmp_path, tiny_gpt2)
    write_prepared(params, n_anime=6)
    out = Path(params.paths.embeddings_dir)
    call_step(run_embed, params)
    first = {path.name: path.read_bytes() for path in sorted(out.iterdir())}
    assert read_json(embed.run_log_path(params.paths))["kinds"]["synopsis"]["embedded"] == 6
    call_step(run_embed, params)
    assert read_json(embed.run_log_path(params.paths))["kinds"]["synopsis"]["from_cache"] == 6  # the log did change
    assert {path.name: path.read_bytes() for path in sorted(out.iterdir())} == first
    assert "manifest.json" in first and not any(key in read_json(out / "manifest.json") for key in ("seconds",
                                                                                                   "load_seconds"))


def test_settings_change_misses_the_cache(tmp_path, tiny_gpt2):
    params = _params(tmp_path, tiny_gpt2)
    write_prepared(params, n_anime=5)
    call_step(run_embed, params)
    last = embed_params(tmp_path, text={"model": tiny_gpt2, "pooling": "last", "max_length": 64}, batch_size=4)
    assert call_step(run_embed, last)["kinds"]["synopsis"]["embedded"] == 5


def test_killed_run_resumes_without_redoing_batches(tmp_path, tiny_gpt2, monkeypatch):
    interrupted, clean = _params(tmp_path / "a", tiny_gpt2), _params(tmp_path / "b", tiny_gpt2)
    for params in (interrupted, clean):
        write_prepared(params, n_anime=22)
    real_loader = embed.load_text_encoder
    calls = {"encoded": 0}

    def dying_loader(*args, **kwargs):
        encoder = real_loader(*args, **kwargs)
        real_encode = encoder.encode

        def encode(texts):
            if calls["encoded"] >= 3 * 4:  # the run dies during its 4th batch
                raise KeyboardInterrupt("killed")
            calls["encoded"] += len(texts)
            return real_encode(texts)

        encoder.encode = encode
        return encoder

    monkeypatch.setattr(embed, "load_text_encoder", dying_loader)
    with pytest.raises(KeyboardInterrupt):
        call_step(run_embed, interrupted)
    assert not (Path(interrupted.paths.embeddings_dir) / "synopsis.npy").exists()
    monkeypatch.setattr(embed, "load_text_encoder", real_loader)
    resumed = call_step(run_embed, interrupted)["kinds"]["synopsis"]
    assert (resumed["embedded"], resumed["from_cache"]) == (22 - 12, 12)

    call_step(run_embed, clean)
    ids, vectors = load_embeddings(interrupted.paths.embeddings_dir, "synopsis")
    clean_ids, clean_vectors = load_embeddings(clean.paths.embeddings_dir, "synopsis")
    assert ids == clean_ids and len(set(ids)) == 22
    np.testing.assert_allclose(vectors, clean_vectors, atol=1e-5)  # batches differ, padding is masked
    cache_root = Path(interrupted.paths.embedding_cache_dir)
    (namespace,) = [p.name for p in cache_root.iterdir() if p.is_dir()]  # beside it: last_run.json
    assert len(EmbeddingCache(cache_root, namespace)) == 22  # each item stored once


def test_cache_compacts_and_survives_a_corrupt_shard(tmp_path):
    def shards() -> list[Path]:
        return list((tmp_path / "ns").glob("shard-*.npz"))

    cache = EmbeddingCache(tmp_path, "ns")
    for i in range(20):
        cache.put_batch([f"k{i}"], np.full((1, 3), i, dtype=np.float32))
    cache.put_batch(["k0"], np.ones((1, 3)))  # already cached: no new shard
    cache.flush()
    assert len(shards()) == 20  # one per batch: what a killed run leaves
    cache.compact()
    assert len(shards()) == 1  # a finished run's batches become one shard
    for run in range(20):  # many small runs: one shard each, merged once there are too many
        later = EmbeddingCache(tmp_path, "ns")
        later.put_batch([f"run{run}"], np.zeros((1, 3)))
        later.compact(max_shards=16)
        assert len(shards()) <= 16
    (tmp_path / "ns" / "shard-broken.npz").write_bytes(b"not a zip")
    reread = EmbeddingCache(tmp_path, "ns")
    assert len(reread) == 40 and reread.get("k7").tolist() == [7.0, 7.0, 7.0]
    assert (tmp_path / "ns" / "shard-broken.corrupt").exists()


@pytest.mark.parametrize("image", [None, "tiny_resnet"])
def test_portraits_embedded_and_bad_ones_quarantined(tmp_path, tiny_gpt2, image):
    image_cfg = None
    if image == "tiny_resnet":
        weights = build_tiny_resnet(tmp_path / "tiny_resnet.pt")
        image_cfg = {"model": "resnet50", "weights": "IMAGENET1K_V2", "weights_path": weights}
    params = _params(tmp_path, tiny_gpt2, image=image_cfg)
    write_prepared(params, n_anime=3, chars_per_anime=2)  # characters 100,101 / 200,201 / 300,301
    images = Path(params.paths.raw_dir) / "images"
    (images / "2_0.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (images / "3_1.png").unlink()

    manifest = call_step(run_embed, params)
    ids, vectors = load_embeddings(params.paths.embeddings_dir, "portrait")
    assert ids == ["1:100", "1:101", "2:201", "3:300"]
    assert vectors.shape == (4, 2048 if image else 3 * 16 + 3 * 8 * 8) and np.isfinite(vectors).all()
    assert manifest["kinds"]["portrait"]["embedded"] == 4 and manifest["quarantined"] == 2
    assert len(load_embeddings(params.paths.embeddings_dir, "character_name")[0]) == 6
    quarantine = read_table(QUARANTINE, Path(params.paths.embeddings_dir) / "quarantine.parquet")
    assert quarantine["stage"].tolist() == ["embed", "embed"]
    assert quarantine["row_key"].tolist() == ["2:200", "3:301"]
    assert quarantine["reason"].str.contains("cannot decode").iloc[0]
    assert quarantine["reason"].str.contains("missing").iloc[1]
    assert quarantine["value"].iloc[1] == str(images / "3_1.png")

    (images / "3_1.png").write_bytes((images / "1_0.png").read_bytes())  # fixed with a known image: a hit
    rerun = call_step(run_embed, params)
    assert (rerun["kinds"]["portrait"]["embedded"], rerun["quarantined"]) == (0, 1)
    ids, again = load_embeddings(params.paths.embeddings_dir, "portrait")
    np.testing.assert_array_equal(again[ids.index("3:301")], again[ids.index("1:100")])


def test_kinds_the_data_lost_are_removed(tmp_path, tiny_gpt2):
    params = _params(tmp_path, tiny_gpt2)
    write_prepared(params, n_anime=2, chars_per_anime=1)
    call_step(run_embed, params)
    out = Path(params.paths.embeddings_dir)
    assert (out / "portrait.npy").exists() and (out / "character_description_ids.json").exists()
    write_prepared(params, n_anime=2, chars_per_anime=0)
    assert set(call_step(run_embed, params)["kinds"]) == {"synopsis"}
    assert not list(out.glob("character_*")) and not (out / "portrait.npy").exists()


def test_missing_model_stops_the_stage_with_a_clear_error(tmp_path):
    from anipop.encoders.text import EncoderUnavailable

    params = embed_params(tmp_path, text={"model": str(tmp_path / "gpt2-local")})
    write_prepared(params, n_anime=2)
    with pytest.raises(EncoderUnavailable, match="gpt2-local"):
        call_step(run_embed, params)
    assert not (Path(params.paths.embeddings_dir) / "manifest.json").exists()


def test_quarantine_table_has_the_shared_schema(tmp_path, tiny_gpt2):
    params = _params(tmp_path, tiny_gpt2)
    write_prepared(params, n_anime=1, chars_per_anime=1)
    (Path(params.paths.raw_dir) / "images" / "1_0.png").write_bytes(b"")
    call_step(run_embed, params)
    table = pd.read_parquet(Path(params.paths.embeddings_dir) / "quarantine.parquet")
    assert list(table.columns) == QUARANTINE.column_names
    assert table.iloc[0]["rule"] == "unreadable_portrait" and "empty file" in table.iloc[0]["reason"]
