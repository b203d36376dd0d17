"""Pitch parsing: good pitches parse; each kind of bad input names its row and field."""

from __future__ import annotations

import base64
import io
import json

import pandas as pd
import pytest
from PIL import Image

from anipop.pitch import PitchError, character_argument, decode_portrait, parse_pitches

SYNOPSIS = "Two rival chefs open restaurants on the same street of a sleepy harbour town."


def _png_bytes(colour=(10, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (6, 9), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_pitch_with_characters_from_path_base64_and_data_uri(tmp_path):
    path = tmp_path / "hero.png"
    path.write_bytes(_png_bytes())
    encoded = base64.b64encode(_png_bytes((200, 0, 0))).decode()
    characters = [
        {"name": "Aoi", "description": "a stubborn chef", "image": str(path)},
        {"name": "Ren", "description": "her rival", "image": encoded},
        {"name": "Mio", "description": "the critic", "image": f"data:image/png;base64,{encoded}"},
        {"name": "Sora", "description": "no portrait"},
    ]
    (pitch,) = parse_pitches(pd.DataFrame({"synopsis": [SYNOPSIS], "characters": [json.dumps(characters)]}))
    assert pitch.synopsis == SYNOPSIS
    assert [c.name for c in pitch.characters] == ["Aoi", "Ren", "Mio", "Sora"]
    assert pitch.characters[0].portrait.size == (6, 9)
    assert pitch.characters[1].portrait.getpixel((0, 0)) == (200, 0, 0)
    assert pitch.characters[3].portrait is None


def test_characters_column_is_optional():
    (pitch,) = parse_pitches(pd.DataFrame({"synopsis": [SYNOPSIS]}))
    assert pitch.characters == []


@pytest.mark.parametrize("frame, message", [
    (pd.DataFrame({"synopsis": ["   "]}), r"row 0, field 'synopsis': empty"),
    (pd.DataFrame({"synopsis": [SYNOPSIS, None]}), r"row 1, field 'synopsis': missing"),
    (pd.DataFrame({"synopsis": [42]}), r"row 0, field 'synopsis': expected text, got int"),
    (pd.DataFrame({"title": ["x"]}), r"field 'synopsis' is required"),
    (pd.DataFrame({"synopsis": [SYNOPSIS], "budget": [1]}), r"unknown field\(s\) \['budget'\]"),
    (pd.DataFrame({"synopsis": [SYNOPSIS], "characters": ["[{"]}), r"row 0, field 'characters': not valid JSON"),
    (pd.DataFrame({"synopsis": [SYNOPSIS], "characters": ['[{"name": "A"}]']}),
     r"row 0, field 'characters\[0\].description': missing"),
    (pd.DataFrame({"synopsis": [SYNOPSIS], "characters": ['[{"name": "A", "description": "d", "image": "nope.png"}]']}),
     r"characters\[0\].image'.*neither an existing image file nor base64"),
])
def test_bad_input_names_row_and_field(frame, message):
    with pytest.raises(PitchError, match=message):
        parse_pitches(frame)


def test_unreadable_image_file_and_bad_base64_bytes(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(_png_bytes()[:20])
    with pytest.raises(PitchError, match="cannot decode"):
        decode_portrait(str(broken), "img")
    with pytest.raises(PitchError, match="cannot decode image data"):
        decode_portrait(base64.b64encode(b"plain text, not pixels").decode(), "img")


def test_base64_decompression_bomb_is_refused_before_decoding(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 30)
    with pytest.raises(PitchError, match=r"img: too large image data: 6x9 = 54 pixels"):
        decode_portrait(base64.b64encode(_png_bytes()).decode(), "img")


def test_character_argument():
    assert character_argument("Aoi::a chef::/tmp/a.png") == {"name": "Aoi", "description": "a chef", "image": "/tmp/a.png"}
    assert character_argument("Aoi::a chef") == {"name": "Aoi", "description": "a chef"}
    with pytest.raises(PitchError, match="NAME::DESCRIPTION"):
        character_argument("just a name")
