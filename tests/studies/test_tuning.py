"""`anipop tune --write-params`: the winner goes into params.yaml by editing its one line, nothing else moves."""

from __future__ import annotations

import shutil

import pytest
import yaml
from conftest import PARAMS_FILE

from anipop.core.config import load_params
from anipop.studies.tuning import write_winner


def test_the_winner_is_written_in_place_and_the_file_still_loads(tmp_path):
    params_file = tmp_path / "params.yaml"
    shutil.copy(PARAMS_FILE, params_file)
    before_text = params_file.read_text()
    write_winner(params_file, 0.45)
    after_text = params_file.read_text()
    changed = [(a, b) for a, b in zip(before_text.splitlines(), after_text.splitlines()) if a != b]
    assert len(before_text.splitlines()) == len(after_text.splitlines()) and len(changed) == 1
    old_line, new_line = changed[0]
    assert new_line.split("#")[1:] == old_line.split("#")[1:]  # the comment is kept
    assert new_line.index("#") == old_line.index("#")  # at its column
    assert load_params(params_file).train.pitch.blend_linear == 0.45
    before, after = yaml.safe_load(before_text), yaml.safe_load(after_text)
    after["train"]["pitch"]["blend_linear"] = before["train"]["pitch"]["blend_linear"]
    assert after == before


def test_a_file_where_the_knob_cannot_be_found_is_left_as_it_was(tmp_path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text("train:\n  pitch: {blend_linear: 0.3}\n")
    with pytest.raises(ValueError, match="cannot find train.pitch.blend_linear"):
        write_winner(params_file, 0.5)
    assert params_file.read_text() == "train:\n  pitch: {blend_linear: 0.3}\n"


def test_tune_write_params_puts_the_winner_into_the_params_file_it_read(tmp_path, monkeypatch):
    """The CLI wiring: the winner of the grid (here a stand-in result) lands in --params; without the flag the file
    is left as it was."""
    from typer.testing import CliRunner

    import anipop.studies.tuning as tuning
    from anipop.cli import app

    params_file = tmp_path / "params.yaml"
    shutil.copy(PARAMS_FILE, params_file)
    before = params_file.read_text()
    monkeypatch.setattr(tuning, "run_tune", lambda params, track: {"best": {"blend_linear": 0.6}, "current": 0.3})
    result = CliRunner().invoke(app, ["tune", "--no-track", "--params", str(params_file)])
    assert result.exit_code == 0, result.output
    assert params_file.read_text() == before
    result = CliRunner().invoke(app, ["tune", "--no-track", "--write-params", "--params", str(params_file)])
    assert result.exit_code == 0, result.output
    assert "train.pitch.blend_linear = 0.6 (was 0.3)" in result.output
    assert load_params(params_file).train.pitch.blend_linear == 0.6
