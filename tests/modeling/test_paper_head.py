"""paper_head: the authors' widths and activations, their optimiser settings, and its place in train/backtest."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import knobs
from fixtures_training import toy_params, write_toy_dataset
from torch import nn

from anipop.core.artifacts import load_bundle
from anipop.core.utils import read_json
from anipop.evaluation.backtest import run_backtest
from anipop.modeling.paper_head import PaperHead, fit_paper_head
from anipop.modeling.train import run_train


def layer_plan(module: nn.Sequential) -> list[tuple]:
    """(Linear in, out) and activation / dropout names in order: the architecture as the paper lists it."""
    plan = []
    for layer in module:
        if isinstance(layer, nn.Linear):
            plan.append(("Linear", layer.in_features, layer.out_features))
        elif isinstance(layer, nn.Dropout):
            plan.append(("Dropout", layer.p))
        else:
            plan.append((type(layer).__name__,))
    return plan


def test_full_head_has_the_authors_branch_and_tower():
    head = PaperHead(synopsis_dim=768, character_dim=768 + 49)
    assert layer_plan(head.branch) == [("Dropout", 0.1), ("Linear", 817, 768), ("Tanh",), ("Dropout", 0.1),
                                       ("Linear", 768, 768)]
    assert layer_plan(head.tower) == [
        ("Linear", 1536, 768), ("Tanh",), ("Linear", 768, 384), ("Tanh",), ("Linear", 384, 192), ("Tanh",),
        ("Linear", 192, 96), ("ReLU",), ("Linear", 96, 48), ("ReLU",), ("Linear", 48, 24), ("ReLU",),
        ("Linear", 24, 12), ("ReLU",), ("Linear", 12, 6), ("ReLU",), ("Linear", 6, 1)]


def test_synopsis_only_head_starts_at_384_like_their_synopsis_script():
    head = PaperHead(synopsis_dim=384, character_dim=0)
    assert head.branch is None
    assert layer_plan(head.tower)[:2] == [("Linear", 384, 384), ("Tanh",)]
    assert layer_plan(head.tower)[-1] == ("Linear", 6, 1)


def test_head_rejects_no_inputs():
    with pytest.raises(ValueError, match="needs inputs"):
        PaperHead(0, 0)


def test_fit_uses_the_authors_schedule_and_keeps_the_last_epoch_unless_told():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5)).astype(np.float32)
    y = (0.5 + 0.1 * x[:, 0]).clip(0, 1)
    cfg = knobs("train.paper_head", epochs=3, threads=1)
    model, history = fit_paper_head(x, y, synopsis_dim=3, cfg=cfg, seed=1, monitor={"val": (x[:16], y[:16])})
    assert history["epochs_run"] == 3 and history["best_epoch"] == 3 and len(history["val_loss"]) == 3
    assert model.synopsis_dim == 3 and model.character_dim == 2
    predictions = model.predict(x)
    assert predictions.shape == (64,) and ((predictions >= 0) & (predictions <= 1)).all()
    again, _ = fit_paper_head(x, y, synopsis_dim=3, cfg=cfg, seed=1)
    np.testing.assert_array_equal(again.predict(x), predictions)  # seeded: bit for bit
    _, chosen = fit_paper_head(x, y, 3, cfg, 1, monitor={"test": (x[:8], y[:8])}, select_on="test")
    assert chosen["best_epoch"] == int(np.argmin(chosen["test_loss"])) + 1
    with pytest.raises(ValueError, match="cannot select"):
        fit_paper_head(x, y, 3, cfg, 1, select_on="val")


def test_learning_rate_falls_linearly_to_zero():
    from torch import optim

    from anipop.modeling.paper_head import linear_schedule

    optimiser = optim.AdamW(nn.Linear(1, 1).parameters(), lr=5e-5)
    schedule = linear_schedule(optimiser, total_steps=4)
    rates = []
    for _ in range(4):
        rates.append(optimiser.param_groups[0]["lr"])
        optimiser.step()
        schedule.step()
    assert rates == pytest.approx([5e-5, 3.75e-5, 2.5e-5, 1.25e-5])
    assert optimiser.param_groups[0]["lr"] == 0.0


@pytest.fixture(scope="module")
def head_params(tmp_path_factory):
    params = toy_params(tmp_path_factory.mktemp("paper_head"), models=["ridge", "paper_head"], model="paper_head",
                        ablations=["synopsis"])
    train = params.train.model_dump()
    train["paper_head"].update(epochs=10, learning_rate=2e-3, threads=1)  # the toy set is small: more steps
    params = params.model_validate(params.model_dump() | {"train": train})
    write_toy_dataset(params, count=200)
    return params


def test_paper_head_trains_as_a_registered_model_and_beats_the_mean(head_params):
    report = run_train(head_params)
    runs = {(r["input_set"], r["model"]): r for r in report["runs"]}
    assert ("all_inputs", "paper_head") in runs and ("synopsis", "paper_head") in runs
    bundle = load_bundle(head_params.paths.models_dir / "model.joblib")
    assert bundle.name == "paper_head" and bundle.model.character_dim > 0
    synopsis_only = load_bundle(head_params.paths.models_dir / "synopsis" / "paper_head.joblib").model
    assert synopsis_only.character_dim == 0
    assert len(runs[("all_inputs", "paper_head")]["history"]["val_loss"]) == 10


def test_paper_head_appears_in_the_grouped_cv(head_params):
    run_backtest(head_params)
    cv = read_json(head_params.paths.reports_dir / "cv.json")
    assert {"paper_head", "ridge", "train_mean"} <= set(cv)
    assert cv["paper_head"]["spearman"] > 0.3  # the toy data's signal is strong; the head must find some
