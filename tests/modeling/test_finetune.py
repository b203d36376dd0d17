"""finetune: pooling that is right under either padding side, the training loop's schedule and accumulation,
a stored model that predicts like the live one, and its place in the train step (tiny saved models only)."""

from __future__ import annotations

import joblib
import numpy as np
import pytest
import torch
from conftest import knobs
from fixtures_models import build_tiny_bert, build_tiny_gpt2, sentence
from fixtures_training import toy_params, write_toy_dataset

from anipop.core.artifacts import load_bundle
from anipop.modeling.finetune import (
    EncoderRegressor,
    FinetunedRegressor,
    load_pretrained,
    pool,
    predict_texts,
    train_encoder_regressor,
)
from anipop.modeling.train import run_train


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory):
    return build_tiny_gpt2(tmp_path_factory.mktemp("gpt2"))


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("bert"))


def test_last_pooling_finds_the_last_real_token_under_either_padding():
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert pool(hidden, right, "last").squeeze(-1).tolist() == [1.0, 7.0]
    assert pool(hidden, left, "last").squeeze(-1).tolist() == [3.0, 7.0]
    assert pool(hidden, left, "mean").squeeze(-1).tolist() == [2.5, 5.5]
    with pytest.raises(ValueError, match="pooling"):
        pool(hidden, left, "first")


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_causal_model_gives_the_same_prediction_padded_left_right_or_alone(tiny_gpt2, pooling):
    texts = [sentence(1, 3), sentence(2, 9)]  # the short one is padded in a batch
    predictions = {}
    for side in ("left", "right"):
        tokenizer, encoder = load_pretrained(str(tiny_gpt2))
        tokenizer.padding_side = side
        torch.manual_seed(0)
        model = EncoderRegressor(encoder, pooling, side).eval()
        predictions[side] = predict_texts(model, tokenizer, texts, 32, 2, torch.device("cpu"))
        alone = predict_texts(model, tokenizer, texts[:1], 32, 1, torch.device("cpu"))
        assert predictions[side][0] == pytest.approx(alone[0], abs=1e-5)
    np.testing.assert_allclose(predictions["left"], predictions["right"], atol=1e-5)


def learnable(count: int = 48) -> tuple[list[str], np.ndarray]:
    """Texts whose target is the share of 'hero' words: something an encoder + head can learn."""
    rng = np.random.default_rng(0)
    heroes = rng.integers(0, 6, count)
    texts = [" ".join(["hero"] * h + ["village"] * (6 - h)) + " " + sentence(i, 3) for i, h in enumerate(heroes)]
    return texts, heroes / 6.0


def test_training_learns_counts_steps_with_accumulation_and_stores_a_model_that_predicts_the_same(tiny_bert,
                                                                                                   tmp_path):
    texts, target = learnable()
    cfg = knobs("train.finetune", epochs=4, batch_size=4, accumulation=3, learning_rate=3e-3, max_length=32, threads=1)
    tokenizer, encoder = load_pretrained(str(tiny_bert))
    torch.manual_seed(0)
    model = EncoderRegressor(encoder, cfg.pooling, cfg.padding_side)
    history = train_encoder_regressor(model, tokenizer, texts, target, cfg, seed=0, device=torch.device("cpu"),
                                      val=(texts[:8], target[:8]))
    assert history["optimizer_steps"] == 4 * 4  # 12 micro-batches of 4, 3 per step: 4 steps an epoch
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert len(history["epoch_seconds"]) == len(history["val_loss"]) == 4
    live = predict_texts(model, tokenizer, texts, 32, 4, torch.device("cpu"))
    stored = FinetunedRegressor.from_trained(model, tokenizer, cfg)
    joblib.dump(stored, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_allclose(loaded.predict({"synopsis": texts}), np.clip(live, 0, 1), atol=1e-5)


def test_bf16_autocast_is_for_cuda_only():
    from anipop.modeling.finetune import _autocast

    with _autocast(torch.device("cpu"), True):
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.float32


def test_finetune_is_a_train_model_that_reads_the_synopsis(tiny_bert, tmp_path):
    params = toy_params(tmp_path, models=["ridge", "finetune"], model="ridge", ablations=[])
    train = params.train.model_dump()
    train["finetune"].update(model=str(tiny_bert), epochs=1, max_length=16, threads=1, max_train_rows=40)
    params = params.model_validate(params.model_dump() | {"train": train})
    write_toy_dataset(params, count=60)
    report = run_train(params)
    run = next(r for r in report["runs"] if r["model"] == "finetune")
    assert run["kinds"] == ["synopsis"] and run["input_type"] == "raw" and run["train_rows"] == 40
    assert run["seconds_per_epoch"] > 0
    bundle = load_bundle(params.paths.models_dir / "all_inputs" / "finetune.joblib")
    predictions = bundle.model.predict({"synopsis": ["a hero of the village", "the sea"]})
    assert predictions.shape == (2,) and ((predictions >= 0) & (predictions <= 1)).all()


def test_backtest_leaves_finetune_out_unless_asked(tmp_path):
    from anipop.modeling.train import backtest_models

    params = toy_params(tmp_path, models=["ridge", "finetune"], model="ridge")
    assert "finetune" not in backtest_models(params, params.train.inputs)
    train = params.train.model_dump()
    train["finetune"]["backtest"] = True
    params = params.model_validate(params.model_dump() | {"train": train})
    assert "finetune" in backtest_models(params, params.train.inputs)


def test_a_non_finite_loss_stops_the_fit_with_a_clear_error(tiny_bert):
    """A NaN model must never be stored and scored as if it had trained (seen with a GPT-2-size model on a GPU)."""
    texts, target = learnable()
    cfg = knobs("train.finetune", epochs=1, batch_size=4, max_length=32, threads=1)
    tokenizer, encoder = load_pretrained(str(tiny_bert))
    model = EncoderRegressor(encoder, cfg.pooling, cfg.padding_side)
    target = np.asarray(target, dtype=np.float64)
    target[5] = np.nan  # a poisoned batch: the second micro-batch of the shuffled order holds it or another
    with pytest.raises(FloatingPointError, match=r"non-finite training loss at epoch 1, micro-batch \d+"):
        train_encoder_regressor(model, tokenizer, texts, target, cfg, seed=0, device=torch.device("cpu"))


def test_a_half_precision_checkpoint_trains_in_float32(tiny_bert, tmp_path):
    """Saved in fp16 (as carried to a GPU machine): the loaded encoder is float32, so AdamW keeps small updates."""
    from transformers import AutoModel, AutoTokenizer

    half = tmp_path / "half"
    AutoModel.from_pretrained(str(tiny_bert)).half().save_pretrained(half)
    AutoTokenizer.from_pretrained(str(tiny_bert)).save_pretrained(half)
    _, encoder = load_pretrained(str(half))
    assert {p.dtype for p in encoder.parameters()} == {torch.float32}
