"""Paper-faithful mode: each flaw does what the paper's code did, and the run reports every variant."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from fixtures_models import build_tiny_bert, sentence
from fixtures_training import toy_params, write_toy_dataset

from anipop.core.utils import read_json
from anipop.encoders.text import load_text_encoder
from anipop.steps import call_step
from anipop.studies.paper_mode import FIRST_LEFT, MEAN, encode_texts, run_paper_mode, split_targets, variants


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("bert"))


def test_per_split_scaling_uses_each_splits_own_range():
    rows = {"train": pd.DataFrame({"score": [2.0, 6.0, 10.0]}), "val": pd.DataFrame({"score": [5.0, 7.0]}),
            "test": pd.DataFrame({"score": [4.0, 5.0, 8.0]})}
    honest, honest_range = split_targets(rows, per_split=False)
    flawed, flawed_range = split_targets(rows, per_split=True)
    np.testing.assert_allclose(honest["test"], [0.25, 0.375, 0.75])
    np.testing.assert_allclose(flawed["test"], [0.0, 0.25, 1.0])  # the test split's own min and max
    np.testing.assert_allclose(flawed["train"], honest["train"])
    assert (honest_range, flawed_range) == (8.0, 4.0)


def test_first_token_under_left_padding_is_a_pad_state_unless_the_text_is_the_batchs_longest(tiny_bert):
    encoder = load_text_encoder(str(tiny_bert), torch.device("cpu"), max_length=32)
    text, shorter, longer = sentence(1, 4), sentence(2, 1), sentence(3, 12)
    beside_shorter = encode_texts(encoder, [text, shorter], 2)  # text is the longest: position 0 is [CLS]
    beside_longer = encode_texts(encoder, [text, longer], 2)    # text is padded: position 0 is [PAD]
    assert not np.allclose(beside_shorter[FIRST_LEFT][0], beside_longer[FIRST_LEFT][0], atol=1e-4)
    np.testing.assert_allclose(beside_shorter[MEAN][0], beside_longer[MEAN][0], atol=1e-5)
    right_padded_mean = encoder.encode([text, longer])[0]  # the embed step's own mean pooling
    np.testing.assert_allclose(beside_longer[MEAN][0], right_padded_mean, atol=1e-5)
    assert encoder.tokenizer.padding_side == "right"  # restored for the embed step


def test_variants_drop_each_flaw_in_turn_then_all():
    rows = variants({"per_split_scaling": True, "select_on_test": True, "first_token_left_padding": True}, True)
    assert [label for label, _ in rows] == ["paper-faithful", "without per_split_scaling", "without select_on_test",
                                            "without first_token_left_padding", "no flaws"]
    assert rows[-1][1] == frozenset() and len(rows[0][1]) == 3
    assert variants({"select_on_test": True}, False) == [("paper-faithful", frozenset({"select_on_test"}))]


def test_paper_mode_reports_every_variant(tiny_bert, tmp_path):
    params = toy_params(tmp_path)
    mode = params.paper_mode.model_dump()
    mode.update(enabled=True, encoder=str(tiny_bert), max_length=32)
    mode["head"].update(epochs=2, threads=1)
    params = params.model_validate(params.model_dump() | {"paper_mode": mode})
    write_toy_dataset(params, count=80, characters=False)
    report = call_step(run_paper_mode, params)
    assert [v["label"] for v in report["variants"]][0] == "paper-faithful" and len(report["variants"]) == 5
    saved = read_json(params.paths.reports_dir / "paper_mode.json")
    assert saved["variants"][0]["selected_on"] == "test" and saved["variants"][-1]["selected_on"] == "val"
    assert "| no flaws | none |" in (params.paths.reports_dir / "paper_mode.md").read_text()
    again = call_step(run_paper_mode, params)  # vectors come from the cache: the same numbers
    assert again["variants"][0]["metrics"] == report["variants"][0]["metrics"]


def test_paper_mode_is_opt_in_and_says_how_to_run_it(tmp_path):
    params = toy_params(tmp_path)
    assert call_step(run_paper_mode, params) == {"enabled": False}
    assert "dvc exp run -S paper_mode.enabled=true" in (Path(params.paths.reports_dir) / "paper_mode.md").read_text()
