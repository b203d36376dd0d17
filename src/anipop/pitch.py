"""A producer's pitch as anipop reads it, and the checks that turn bad input into a clear error.

A pitch is a synopsis plus optional main characters (name, description, portrait). Portraits arrive as a
file path, a base64 string, or a data URI, because the CLI passes paths while a REST client sends bytes.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from PIL import Image

from anipop.images import decode_problem, image_problem, open_rgb
from anipop.text import strip_credits

PITCH_COLUMNS = ("synopsis", "characters")


class PitchError(ValueError):
    """A pitch that cannot be scored; the message names the row and the field."""


@dataclass
class Character:
    name: str
    description: str
    portrait: Image.Image | None = None


@dataclass
class Pitch:
    synopsis: str
    characters: list[Character] = field(default_factory=list)


def decode_portrait(value: str, where: str) -> Image.Image:
    """A data URI, an existing file path, or base64 bytes, decoded fully as RGB; PitchError naming `where`."""
    text = value.strip()
    if not text.startswith("data:") and len(text) < 4096 and Path(text).exists():
        problem = image_problem(text)
        if problem:
            raise PitchError(f"{where}: {problem}")
        return open_rgb(text)
    try:
        data = base64.b64decode(text.split(",", 1)[-1] if text.startswith("data:") else text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise PitchError(f"{where}: {text[:60]!r} is neither an existing image file nor base64 image data") from err
    problem = decode_problem(io.BytesIO(data), "image data")  # the same pixel limit as files: no bombs
    if problem:
        raise PitchError(f"{where}: {problem}")
    return open_rgb(io.BytesIO(data))


def _text(value: object, where: str, required: bool, prose: bool = False) -> str:
    """A text field; `prose` (synopsis, descriptions) also gets the training texts' hygiene (text.strip_credits)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        if required:
            raise PitchError(f"{where}: missing")
        return ""
    if not isinstance(value, str):
        raise PitchError(f"{where}: expected text, got {type(value).__name__}")
    cleaned = strip_credits(value) if prose else value.strip()
    if required and not cleaned:
        raise PitchError(f"{where}: empty")
    return cleaned


def _characters(value: object, row: int) -> list[Character]:
    """The `characters` field: a JSON list (or a list) of {name, description, image?} objects."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or value == "":
        return []
    items = value
    if isinstance(value, str):
        try:
            items = json.loads(value)
        except json.JSONDecodeError as err:
            raise PitchError(f"row {row}, field 'characters': not valid JSON: {err.msg}") from err
    if not isinstance(items, list):
        raise PitchError(f"row {row}, field 'characters': expected a list of characters")
    characters = []
    for index, item in enumerate(items):
        where = f"row {row}, field 'characters[{index}]"
        if not isinstance(item, dict):
            raise PitchError(f"{where}': expected an object with name, description, image")
        portrait = item.get("image")
        characters.append(Character(
            name=_text(item.get("name"), f"{where}.name'", required=True),
            description=_text(item.get("description"), f"{where}.description'", required=True, prose=True),
            portrait=None if portrait in (None, "") else decode_portrait(_text(portrait, f"{where}.image'", True),
                                                                         f"{where}.image'"),
        ))
    return characters


def parse_pitches(frame: pd.DataFrame) -> list[Pitch]:
    """Validate a frame of pitches (columns synopsis, characters); the first bad field raises PitchError."""
    if not isinstance(frame, pd.DataFrame):
        raise PitchError(f"expected a table of pitches, got {type(frame).__name__}")
    if "synopsis" not in frame.columns:
        raise PitchError(f"field 'synopsis' is required; got columns {list(frame.columns)}")
    unknown = [c for c in frame.columns if c not in PITCH_COLUMNS]
    if unknown:
        raise PitchError(f"unknown field(s) {unknown}; a pitch has {list(PITCH_COLUMNS)}")
    if frame.empty:
        raise PitchError("no pitches given")
    pitches = []
    for row, record in enumerate(frame.to_dict("records")):
        synopsis = _text(record.get("synopsis"), f"row {row}, field 'synopsis'", required=True, prose=True)
        pitches.append(Pitch(synopsis=synopsis, characters=_characters(record.get("characters"), row)))
    return pitches


def character_argument(value: str) -> dict[str, str]:
    """The CLI's NAME::DESCRIPTION[::IMAGE] into a character object."""
    parts = value.split("::")
    if len(parts) not in (2, 3):
        raise PitchError(f"--character {value!r}: expected NAME::DESCRIPTION or NAME::DESCRIPTION::IMAGE")
    return {"name": parts[0], "description": parts[1], **({"image": parts[2]} if len(parts) == 3 else {})}
