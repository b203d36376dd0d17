"""`anipop predict` offers one option per pitch field of the registry, and hands the given ones to the pitch."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from anipop.cli import app
from anipop.core.input_kinds import FRANCHISE_FIELD, METADATA_FIELDS, NUMERIC_FIELDS, PITCH_FIELD_HELP


def test_every_pitch_field_has_its_help_and_nothing_else_does():
    assert list(PITCH_FIELD_HELP) == [*METADATA_FIELDS, *NUMERIC_FIELDS, FRANCHISE_FIELD]


def test_predict_has_an_option_per_pitch_field():
    result = CliRunner().invoke(app, ["predict", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    for field in PITCH_FIELD_HELP:
        assert f"--{field} " in result.output, field


@pytest.mark.parametrize("field", list(PITCH_FIELD_HELP))
def test_a_pitch_field_option_reaches_the_parsed_pitch(field, monkeypatch):
    """The option's value arrives in the pitch table under the field's name; an absurd one is refused naming it."""
    import anipop.serving.pitch as pitch

    seen = {}

    def parse(pitches, limits):
        seen.update(pitches.iloc[0].to_dict())
        raise pitch.PitchError("stop here: no model needed")

    monkeypatch.setattr(pitch, "parse_pitches", parse)
    result = CliRunner().invoke(app, ["predict", "--synopsis", "A pitch.", f"--{field}", "2027"])
    assert result.exit_code == 2 and "stop here" in result.output, result.output
    assert seen[field] == "2027" and seen["synopsis"] == "A pitch."
    assert not {f for f in PITCH_FIELD_HELP if f != field} & set(seen)  # fields not given are not sent
