"""params.yaml loading: the repo's file is valid, and bad files fail with the key's path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import PARAMS_FILE

from anipop.core.config import ConfigError, load_params


def _write(tmp_path: Path, mutate) -> Path:
    raw = yaml.safe_load(PARAMS_FILE.read_text())
    mutate(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_repo_params_load():
    params = load_params(PARAMS_FILE)
    assert params.prepare.min_synopsis_words == 20
    assert params.prepare.split.train == pytest.approx(0.8)


def test_unknown_key_is_rejected_with_its_path(tmp_path):
    path = _write(tmp_path, lambda raw: raw["prepare"].update(min_synopsis_wrds=3))
    with pytest.raises(ConfigError, match=r"prepare\.min_synopsis_wrds: Extra inputs"):
        load_params(path)


def test_mistyped_value_is_rejected(tmp_path):
    path = _write(tmp_path, lambda raw: raw["embed"].update(batch_size="lots"))
    with pytest.raises(ConfigError, match=r"embed\.batch_size"):
        load_params(path)


def test_split_must_sum_to_one(tmp_path):
    path = _write(tmp_path, lambda raw: raw["prepare"]["split"].update(train=0.9))
    with pytest.raises(ConfigError, match="sum to 1"):
        load_params(path)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(ConfigError, match="nowhere.yaml: not found"):
        load_params(tmp_path / "nowhere.yaml")
