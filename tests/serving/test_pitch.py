"""Pitch parsing: good pitches parse; each kind of bad input names its row and field."""

from __future__ import annotations

import base64
import io
import json

import pandas as pd
import pytest
from conftest import request_limits
from PIL import Image

from anipop.serving.pitch import (
    PitchError,
    PitchLimits,
    character_argument,
    decode_portrait,
    inline_image_files,
    parse_pitches,
    read_pitch_file,
)

SYNOPSIS = "Two rival chefs open restaurants on the same street of a sleepy harbour town."


def knobs_limits(**update) -> PitchLimits:
    """params.yaml's request limits with `update` (a tighter bound to hit)."""
    return PitchLimits.model_validate({**request_limits().model_dump(), **update})


def _png_bytes(colour=(10, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (6, 9), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_pitch_with_characters_from_base64_and_data_uri(tmp_path):
    encoded = base64.b64encode(_png_bytes((200, 0, 0))).decode()
    characters = [
        {"name": "Aoi", "description": "a stubborn chef", "image": base64.b64encode(_png_bytes()).decode()},
        {"name": "Ren", "description": "her rival", "image": encoded},
        {"name": "Mio", "description": "the critic", "image": f"data:image/png;base64,{encoded}"},
        {"name": "Sora", "description": "no portrait"},
    ]
    (pitch,) = parse_pitches(pd.DataFrame({"synopsis": [SYNOPSIS], "characters": [json.dumps(characters)]}), request_limits())
    assert pitch.synopsis == SYNOPSIS
    assert [c.name for c in pitch.characters] == ["Aoi", "Ren", "Mio", "Sora"]
    assert pitch.characters[0].portrait.size == (6, 9)
    assert pitch.characters[1].portrait.getpixel((0, 0)) == (200, 0, 0)
    assert pitch.characters[3].portrait is None


def test_characters_column_is_optional():
    (pitch,) = parse_pitches(pd.DataFrame({"synopsis": [SYNOPSIS]}), request_limits())
    assert pitch.characters == []
    assert pitch.earlier_scores is None  # franchise_scores not said: unknown, not "a new franchise"


def test_franchise_scores_say_a_sequel_s_record_or_a_new_franchise():
    frame = pd.DataFrame({"synopsis": [SYNOPSIS] * 3, "franchise_scores": ["8.1, 7.6", "original", None]})
    assert [p.earlier_scores for p in parse_pitches(frame, request_limits())] == [[8.1, 7.6], [], None]


@pytest.mark.parametrize("frame, message", [
    (pd.DataFrame({"synopsis": ["   "]}), r"row 0, field 'synopsis': empty"),
    (pd.DataFrame({"synopsis": [SYNOPSIS, None]}), r"row 1, field 'synopsis': missing"),
    (pd.DataFrame({"synopsis": [42]}), r"row 0, field 'synopsis': expected text, got int"),
    (pd.DataFrame({"title": ["x"]}), r"field 'synopsis' is required"),
    (pd.DataFrame({"synopsis": [SYNOPSIS], "budget": [1]}), r"unknown field\(s\) \['budget'\]"),
    (pd.DataFrame({"synopsis": [SYNOPSIS], "characters": ["[{"]}), r"row 0, field 'characters': not valid JSON"),
    (pd.DataFrame({"synopsis": [SYNOPSIS] * 2, "franchise_scores": ["7", "7, 0"]}),
     r"row 1, field 'franchise_scores': '0' is not a MAL score in 1-10"),
    (pd.DataFrame({"synopsis": [SYNOPSIS], "characters": ['[{"name": "A"}]']}),
     r"row 0, field 'characters\[0\].description': missing"),
    (pd.DataFrame({"synopsis": [SYNOPSIS], "characters": ['[{"name": "A", "description": "d", "image": "nope.png"}]']}),
     r"characters\[0\].image'.*not base64 image data or a data: URI \(file paths are not accepted"),
])
def test_bad_input_names_row_and_field(frame, message):
    with pytest.raises(PitchError, match=message):
        parse_pitches(frame, request_limits())


def test_bad_base64_bytes(tmp_path):
    with pytest.raises(PitchError, match="cannot decode image data"):
        decode_portrait(base64.b64encode(b"plain text, not pixels").decode(), "img")


def test_base64_decompression_bomb_is_refused_before_decoding(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 30)
    with pytest.raises(PitchError, match=r"img: too large image data: 6x9 = 54 pixels"):
        decode_portrait(base64.b64encode(_png_bytes()).decode(), "img")


def test_character_argument():
    assert character_argument("Aoi::a chef::/tmp/a.png") == {"name": "Aoi", "description": "a chef",
                                                            "image_path": "/tmp/a.png"}
    assert character_argument("Aoi::a chef") == {"name": "Aoi", "description": "a chef"}
    with pytest.raises(PitchError, match="NAME::DESCRIPTION"):
        character_argument("just a name")


@pytest.mark.parametrize("path", ["/etc/shadow", "/etc/passwd", "/no/such/file", "params.yaml"])
def test_a_server_path_is_never_opened_and_answers_alike(path):
    """No existence or type oracle: any path is 'not base64', whether the file exists, is readable or not."""
    frame = pd.DataFrame({"synopsis": [SYNOPSIS],
                          "characters": [json.dumps([{"name": "A", "description": "d", "image": path}])]})
    with pytest.raises(PitchError) as raised:
        parse_pitches(frame, request_limits())
    assert str(raised.value) == ("row 0, field 'characters[0].image': not base64 image data or a data: URI "
                                 "(file paths are not accepted; send the image's bytes)")


def test_image_files_reach_a_pitch_only_through_the_cli_helper(tmp_path):
    (tmp_path / "hero.png").write_bytes(_png_bytes())
    frame = pd.DataFrame({"synopsis": [SYNOPSIS], "characters": [json.dumps(
        [{"name": "Aoi", "description": "a chef", "image_path": "hero.png"}])]})
    with pytest.raises(PitchError, match=r"unknown key\(s\) \['image_path'\]"):
        parse_pitches(frame, request_limits())  # what a REST client would get
    (pitch,) = parse_pitches(inline_image_files(frame, base=tmp_path), request_limits())
    assert pitch.characters[0].portrait.size == (6, 9)


def _pitch(synopsis=SYNOPSIS, characters=()):
    return pd.DataFrame({"synopsis": [synopsis], "characters": [json.dumps(list(characters))]})


@pytest.mark.parametrize("frame, limits, message", [
    (_pitch("x" * 101), knobs_limits(max_synopsis_chars=100),
     r"row 0, field 'synopsis': 101 characters exceed the limit prepare.max_synopsis_chars = 100"),
    (_pitch(characters=[{"name": f"c{i}", "description": "d"} for i in range(4)]),
     knobs_limits(max_characters_per_pitch=3), r"4 characters exceed the limit serving.max_characters_per_pitch = 3"),
    (_pitch(characters=[{"name": "A", "description": "d", "image": base64.b64encode(_png_bytes()).decode()}]),
     knobs_limits(max_image_pixels=50), r"54 pixels exceeds the 50 pixel limit .*serving.max_image_pixels"),
    (_pitch(characters=[{"name": f"c{i}", "description": "d", "image": base64.b64encode(_png_bytes()).decode()}
                        for i in range(3)]),
     knobs_limits(max_request_pixels=150), r"characters\[2\].image': 54 pixels exceed .*serving.max_request_pixels = 150"),
    (_pitch("y" * 2000), knobs_limits(max_request_bytes=1000),
     r"request of \d+ bytes exceeds the limit serving.max_request_bytes = 1000"),
    (pd.DataFrame({"synopsis": [SYNOPSIS] * 3}), knobs_limits(max_pitches_per_request=2),
     r"3 pitches exceed the limit serving.max_pitches_per_request = 2"),
    (pd.DataFrame({"synopsis": [SYNOPSIS], "characters": ["[" * 100_000 + "]" * 100_000]}), request_limits(),
     r"row 0, field 'characters': JSON nested too deeply"),
])
def test_limits_are_named_when_exceeded(frame, limits, message):
    with pytest.raises(PitchError, match=message):
        parse_pitches(frame, limits)


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    (b"  \n", "the file is empty"),
    ("synopsis\nCaf\u00e9 story\n".encode("latin-1"), r"not UTF-8 text \(byte 12"),
    ("synopsis\nA story\n".encode("utf-16"), "binary data, not a CSV text file"),
    (bytes(range(256)), "binary data"),
    (b'synopsis\n"unterminated\n', "not a readable CSV"),
])
def test_predict_file_problems_are_one_line_naming_the_file(tmp_path, content, message):
    path = tmp_path / "pitches.csv"
    path.write_bytes(content)
    with pytest.raises(PitchError, match=message) as raised:
        read_pitch_file(path)
    assert str(raised.value).startswith(str(path)) and "\n" not in str(raised.value)


def test_predict_cli_bad_file_is_one_line(tmp_path):
    from typer.testing import CliRunner

    from anipop.cli import app

    path = tmp_path / "pitches.csv"
    path.write_bytes("synopsis\nA story\n".encode("utf-16"))
    result = CliRunner().invoke(app, ["predict", "--file", str(path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: {path}: binary data, not a CSV text file (UTF-16 or "
                                                  f"another binary encoding?)"]


@pytest.mark.parametrize("limit, refused_early", [(1, True), (30, False)])
def test_predict_cli_checks_the_configured_character_limit_before_loading_a_model(tmp_path, limit, refused_early):
    """The early check reads `serving` from params.yaml: a tighter limit refuses at once, naming its value; a
    looser one lets 25 characters through to the model (it used to refuse them at the default 20)."""
    import yaml
    from conftest import params_in
    from typer.testing import CliRunner

    from anipop.cli import app

    params = params_in(tmp_path, serving={"max_characters_per_pitch": limit},
                       mlflow={"tracking_uri": f"sqlite:///{tmp_path / 'empty.db'}"})
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
    characters = [arg for n in range(25) for arg in ("--character", f"Hero {n}::a brave hero number {n}")]
    result = CliRunner().invoke(app, ["predict", "--params", str(params_file), "--synopsis", SYNOPSIS, *characters])
    named = f"serving.max_characters_per_pitch = {limit}"
    if refused_early:
        assert result.exit_code == 2 and named in result.output, result.output
    else:  # past the early check: it fails on the empty store's missing champion, not on the limit
        assert result.exit_code != 0 and "max_characters_per_pitch" not in result.output, result.output
