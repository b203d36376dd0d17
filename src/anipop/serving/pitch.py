"""A producer's pitch as anipop reads it, and the checks that turn bad input into a clear error.

A pitch is a synopsis plus optional main characters (name, description, portrait). Portraits arrive as
base64 bytes or a data URI, never as a path: the served model is reachable by strangers, and a path would let
them probe the server's files. The CLI turns the image files its user names into data URIs first
(`portrait_data_uri`). Every request is bounded (`PitchLimits`); a bound exceeded is a PitchError naming it.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pandas as pd
from PIL import Image
from pydantic import ConfigDict, Field

from anipop.core.config import ServingParams
from anipop.data.franchise_scores import FRANCHISE_FIELD, parse_franchise_scores
from anipop.data.images import IMAGE_FORMATS, decode_problem, image_problem, open_rgb
from anipop.data.metadata import (
    DURATION_FIELD,
    METADATA_FIELDS,
    MISSING_VALUES,
    YEAR_FIELD,
    MetadataError,
    parse_duration_minutes,
    parse_values,
    parse_year,
    pitch_time_values,
    unknown_field_message,
)
from anipop.data.text import strip_credits

T = TypeVar("T")
PITCH_COLUMNS = ("synopsis", "characters")
# metadata fields are optional: absent = unknown
PITCH_FIELDS = (*PITCH_COLUMNS, *METADATA_FIELDS, YEAR_FIELD, DURATION_FIELD, FRANCHISE_FIELD)


class PitchLimits(ServingParams):
    """Bounds on one request, stored inside the served model: params.yaml's `serving` section (declared once, in
    config.ServingParams) and prepare's synopsis bound.

    Why: one 35 KB PNG can decode to 36 MP (~120 MB), and nothing else bounded characters or text.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_synopsis_chars: int = Field(ge=1)

    @classmethod
    def of(cls, serving: ServingParams, max_synopsis_chars: int) -> "PitchLimits":
        return cls(max_synopsis_chars=max_synopsis_chars, **serving.model_dump())

    @classmethod
    def from_dict(cls, values: dict | None) -> "PitchLimits":
        """Limits saved with a model; a bound it did not save (saved before that bound existed) is UNSAVED_LIMITS'."""
        return cls.model_validate({**UNSAVED_LIMITS.model_dump(), **(values or {})})


# The limits of a served model that saved none: pitch models logged before their limits were saved, and the
# benchmark and baseline children (served_pyfunc.BundleModel). A record of what those models were served with,
# fixed: it is not a default of params.yaml's `serving` section, which every model logged now saves.
UNSAVED_LIMITS = PitchLimits(max_characters_per_pitch=20, max_image_pixels=4_000_000, max_request_pixels=20_000_000,
                             max_request_bytes=5_000_000, max_pitches_per_request=100, max_synopsis_chars=20_000)


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
    metadata: dict[str, list[str]] = field(default_factory=dict)  # field -> values (anipop.data.metadata)
    year: float | None = None  # the planned first-air year
    duration: float | None = None  # the planned minutes an episode (or the film) runs
    earlier_scores: list[float] | None = None  # franchise_scores: its earlier anime's MAL scores ([]: a new one)
    post_release: list[str] = field(default_factory=list)  # "field: value" given but only known after release


def decode_portrait(value: str, where: str, max_pixels: int | None = None) -> Image.Image:
    """Base64 bytes or a data URI, decoded fully as RGB within `max_pixels`; PitchError naming `where`."""
    text = value.strip()
    try:
        data = base64.b64decode(_base64_payload(text), validate=True)
    except (binascii.Error, ValueError) as err:
        raise PitchError(f"{where}: not base64 image data or a data: URI (file paths are not accepted; "
                         f"send the image's bytes)") from err
    problem = decode_problem(io.BytesIO(data), "image data", max_pixels)  # header checked before decoding
    if problem:
        raise PitchError(f"{where}: {problem}")
    return open_rgb(io.BytesIO(data))


def _base64_payload(text: str) -> str:
    """The base64 part of a data URI or plain base64, without the line breaks `base64 FILE` wraps it at 76
    columns with (any whitespace: base64's alphabet has none)."""
    return "".join((text.split(",", 1)[-1] if text.startswith("data:") else text).split())


def image_pixels(value: str) -> int:
    """The pixel count an image declares in its header (0 when it is not readable: decoding reports that)."""
    text = value.strip()
    try:
        data = base64.b64decode(_base64_payload(text), validate=True)
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
            width, height = image.size
    except Exception:  # noqa: BLE001 - any unreadable header is reported by decode_portrait with its reason
        return 0
    return width * height


def portrait_data_uri(path: str | Path) -> str:
    """An image file the CLI's own user named, as a data URI (the one place a path becomes image bytes)."""
    path = Path(path)
    problem = image_problem(path)
    if problem:
        raise PitchError(f"image {path}: {problem}")
    return "data:application/octet-stream;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


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


def _synopsis(value: object, where: str) -> str:
    """The required synopsis: text with letters or digits in it, and not a missing-value marker ("NA", "N/A")
    that would be scored as a two-letter story."""
    synopsis = _text(value, where, required=True, prose=True)
    if not any(char.isalnum() for char in synopsis):
        raise PitchError(f"{where}: no letters or digits (only punctuation, control or invisible characters)")
    if synopsis.lower() in MISSING_VALUES:
        raise PitchError(f"{where}: {synopsis[:10]!r} marks a missing value; send the synopsis itself")
    return synopsis


def _characters(value: object, row: int, limits: PitchLimits, budget: list[int]) -> list[Character]:
    """The `characters` field: a JSON list (or a list) of {name, description, image?} objects.

    `budget` holds the pixels this request may still decode; each portrait's header is checked against it
    and against the per-image limit before any pixel is decoded.
    """
    if value is None or (isinstance(value, float) and pd.isna(value)) or value == "":
        return []
    items = value
    if isinstance(value, str):
        try:
            items = json.loads(value)
        except json.JSONDecodeError as err:
            raise PitchError(f"row {row}, field 'characters': not valid JSON: {err.msg}") from err
        except RecursionError as err:
            raise PitchError(f"row {row}, field 'characters': JSON nested too deeply") from err
    if not isinstance(items, list):
        raise PitchError(f"row {row}, field 'characters': expected a list of characters")
    if len(items) > limits.max_characters_per_pitch:
        raise PitchError(f"row {row}, field 'characters': {len(items)} characters exceed the limit "
                         f"serving.max_characters_per_pitch = {limits.max_characters_per_pitch}")
    characters = []
    for index, item in enumerate(items):
        where = f"row {row}, field 'characters[{index}]"
        if not isinstance(item, dict):
            raise PitchError(f"{where}': expected an object with name, description, image")
        unknown = sorted(set(item) - {"name", "description", "image"})
        if unknown:
            raise PitchError(f"{where}': unknown key(s) {unknown}; a character has name, description, image")
        portrait = item.get("image")
        image = None
        if portrait not in (None, ""):
            text = _text(portrait, f"{where}.image'", True)
            pixels = image_pixels(text)
            if limits.max_image_pixels >= pixels > budget[0]:  # one image over its own limit: decode_portrait says so
                raise PitchError(f"{where}.image': {pixels} pixels exceed what is left of the limit "
                                 f"serving.max_request_pixels = {limits.max_request_pixels} for one request")
            budget[0] -= pixels
            image = decode_portrait(text, f"{where}.image'", limits.max_image_pixels)
        characters.append(Character(
            name=_text(item.get("name"), f"{where}.name'", required=True),
            description=_text(item.get("description"), f"{where}.description'", required=True, prose=True),
            portrait=image,
        ))
    return characters


def _metadata(record: dict, row: int) -> tuple[dict[str, list[str]], list[str]]:
    """The pitch's metadata fields, parsed like the training data's (a value never seen is fine: unknown), and the
    post-release values it gave, which are dropped as the training data's were."""
    values, late = {}, []
    for name in METADATA_FIELDS:
        if name in record:
            try:
                values[name], dropped = pitch_time_values(name, parse_values(name, record[name]))
            except MetadataError as err:
                raise PitchError(f"row {row}, {err}") from None
            late += [f"{name}: {value}" for value in dropped]
    return values, late


def _parsed(parse: Callable[[object], T], record: dict, field_name: str, row: int) -> T:
    """One numeric pitch field through its parser (missing -> None); its MetadataError, which names the field,
    as a PitchError naming the row too."""
    try:
        return parse(record.get(field_name))
    except MetadataError as err:
        raise PitchError(f"row {row}, {err}") from None


def _request_bytes(frame: pd.DataFrame) -> int:
    """Bytes of every text cell (and any nested list/dict, as JSON) in the request."""
    total = 0
    for value in frame.to_numpy().ravel():
        if isinstance(value, str):
            total += len(value)
        elif isinstance(value, (list, dict)):
            try:
                total += len(json.dumps(value))
            except (TypeError, ValueError, RecursionError):
                total += 1 << 40  # unmeasurable: treat as over any limit
    return total


def request_chunks(frame: pd.DataFrame, limits: PitchLimits) -> list[pd.DataFrame]:
    """Consecutive slices of `frame` that each fit one request under `limits` (pitches, bytes, portrait pixels).

    Why: the project scores whole tables through a served model's own interface (a champion re-scored on a new
    test split, the replay's live metrics), and that interface rightly refuses a request of 700 pitches. A row
    too large on its own gets a slice of its own, where the model's check names the limit it exceeds.
    """
    chunks: list[pd.DataFrame] = []
    start, count, size, pixels = 0, 0, 0, 0
    for row in range(len(frame)):
        one = frame.iloc[row:row + 1]
        row_size = _request_bytes(one)
        row_pixels = sum(image_pixels(item["image"]) for item in _character_items(one)
                         if isinstance(item, dict) and isinstance(item.get("image"), str))
        if count and (count + 1 > limits.max_pitches_per_request or size + row_size > limits.max_request_bytes
                      or pixels + row_pixels > limits.max_request_pixels):
            chunks.append(frame.iloc[start:row])
            start, count, size, pixels = row, 0, 0, 0
        count, size, pixels = count + 1, size + row_size, pixels + row_pixels
    if count:
        chunks.append(frame.iloc[start:])
    return chunks


def _character_items(one_row: pd.DataFrame) -> list:
    """The character objects of a one-row frame, [] when absent or not a JSON list (the model reports those)."""
    if "characters" not in one_row.columns:
        return []
    value = one_row["characters"].iloc[0]
    try:
        items = json.loads(value) if isinstance(value, str) and value.strip() else value
    except (json.JSONDecodeError, RecursionError):
        return []
    return items if isinstance(items, list) else []


def parse_pitches(frame: pd.DataFrame, limits: PitchLimits) -> list[Pitch]:
    """Validate a frame of pitches (columns synopsis, characters); the first bad field raises PitchError."""
    if not isinstance(frame, pd.DataFrame):
        raise PitchError(f"expected a table of pitches, got {type(frame).__name__}")
    if "synopsis" not in frame.columns:
        raise PitchError(f"field 'synopsis' is required; got columns {[str(c)[:40] for c in frame.columns][:10]}")
    unknown = [str(c)[:40] for c in frame.columns if c not in PITCH_FIELDS]
    if unknown:
        raise PitchError(unknown_field_message(unknown[:10], PITCH_FIELDS))
    if frame.empty:
        raise PitchError("no pitches given")
    if len(frame) > limits.max_pitches_per_request:
        raise PitchError(f"{len(frame)} pitches exceed the limit serving.max_pitches_per_request = "
                         f"{limits.max_pitches_per_request}")
    size = _request_bytes(frame)
    if size > limits.max_request_bytes:
        raise PitchError(f"request of {size} bytes exceeds the limit serving.max_request_bytes = "
                         f"{limits.max_request_bytes}")
    budget = [limits.max_request_pixels]
    pitches = []
    for row, record in enumerate(frame.to_dict("records")):
        synopsis = _synopsis(record.get("synopsis"), f"row {row}, field 'synopsis'")
        if len(synopsis) > limits.max_synopsis_chars:
            raise PitchError(f"row {row}, field 'synopsis': {len(synopsis)} characters exceed the limit "
                             f"prepare.max_synopsis_chars = {limits.max_synopsis_chars}")
        metadata, late = _metadata(record, row)
        pitches.append(Pitch(synopsis=synopsis, characters=_characters(record.get("characters"), row, limits, budget),
                             metadata=metadata, year=_parsed(parse_year, record, YEAR_FIELD, row),
                             duration=_parsed(parse_duration_minutes, record, DURATION_FIELD, row),
                             earlier_scores=_parsed(parse_franchise_scores, record, FRANCHISE_FIELD, row),
                             post_release=late))
    return pitches


def character_argument(value: str) -> dict[str, str]:
    """The CLI's NAME::DESCRIPTION[::IMAGE_FILE] into a character object (the file as `image_path`)."""
    parts = value.split("::")
    if len(parts) not in (2, 3):
        raise PitchError(f"--character {value!r}: expected NAME::DESCRIPTION or NAME::DESCRIPTION::IMAGE")
    return {"name": parts[0], "description": parts[1], **({"image_path": parts[2]} if len(parts) == 3 else {})}


def read_pitch_file(path: str | Path) -> pd.DataFrame:
    """A UTF-8 CSV of pitches; an empty, binary, non-UTF-8 or malformed file is one PitchError naming it."""
    path = Path(path)
    data = path.read_bytes()  # OSError (missing, a folder, unreadable) names the path itself
    if not data.strip():
        raise PitchError(f"{path}: the file is empty; expected a CSV with a 'synopsis' column")
    if b"\x00" in data:
        raise PitchError(f"{path}: binary data, not a CSV text file (UTF-16 or another binary encoding?)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise PitchError(f"{path}: not UTF-8 text (byte {err.start}: {data[err.start:err.start + 1]!r}); "
                         f"save it as UTF-8") from err
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as err:
        raise PitchError(f"{path}: not a readable CSV: {str(err).strip().splitlines()[0][:200]}") from err


def inline_image_files(frame: pd.DataFrame, base: Path) -> pd.DataFrame:
    """Turn each character's `image_path` (a file the CLI user named, relative to `base`) into `image` bytes.

    Only the CLI calls this: the served model never reads a path, so only the person at the keyboard can
    point at a file, and only explicitly.
    """
    if "characters" not in frame.columns:
        return frame
    converted = []
    for row, value in enumerate(frame["characters"]):
        try:
            items = json.loads(value) if isinstance(value, str) and value.strip() else value
        except (json.JSONDecodeError, RecursionError):
            converted.append(value)  # parse_pitches reports it, naming row and field
            continue
        if isinstance(items, list) and any(isinstance(i, dict) and "image_path" in i for i in items):
            items = [dict(item) for item in items]
            for index, item in enumerate(items):
                if isinstance(item, dict) and "image_path" in item:
                    if item.get("image"):
                        raise PitchError(f"row {row}, field 'characters[{index}]': give image or image_path, not both")
                    path = Path(str(item.pop("image_path")))
                    item["image"] = portrait_data_uri(path if path.is_absolute() else base / path)
            value = json.dumps(items)
        converted.append(value)
    return frame.assign(characters=converted)
