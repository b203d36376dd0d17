"""Main characters and portraits from a local folder (the shared MAL characters sample) for the `local` source.

The folder holds `characters.csv.gz` (anime_mal_id, character_id, name, role, description, portrait, ...) and
`portraits/<file>`. Portraits are validated like Jikan's downloads: decoded by content, never trusted by their
extension (two of the sample's ".jpg" files are PNG data, one is RGBA), and copied into `raw_dir/images/` under
the name of their real format, so later steps never read outside the raw folder.

One bad row never ends the run: a row whose ids do not parse, whose anime was not ingested, or that repeats an
(anime, character) pair is quarantined with its line; a portrait that is missing or does not decode is
quarantined and the character kept without it (its description still counts).
"""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from PIL import Image

from anipop.core.artifacts import quarantine_record
from anipop.data.images import image_problem
from anipop.data.schema import QUARANTINE, RAW_CHARACTERS, character_key
from anipop.sources.parsing import ParseError, clean_text, parse_id, read_csv_records

log = logging.getLogger(__name__)

CHARACTERS_FILE = "characters.csv.gz"
PORTRAITS_DIR = "portraits"
REQUIRED_COLUMNS = ("anime_mal_id", "character_id", "name", "role", "description", "portrait")
# PIL's format name -> the extension the copy gets (decoded by content; the source's name may lie)
_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}


@dataclass
class LocalCharacters:
    """The parsed character table, its quarantine rows and the counts the ingest report names."""

    characters: pd.DataFrame
    quarantine: pd.DataFrame
    counts: Counter = field(default_factory=Counter)

    def notes(self, folder: Path) -> list[str]:
        c = self.counts
        return [f"{folder}: {len(self.characters)} main-character rows of {c['anime_with_characters']} anime, "
                f"{c['portraits_copied']} portraits copied ({c['portrait_format_differs']} whose content is not "
                f"the format their name says, {c['portraits_with_alpha']} with transparency, converted to RGB when "
                f"read); {len(self.quarantine)} rows quarantined"]


def _portrait_format(path: Path) -> tuple[str, bool]:
    """(PIL format, has transparency) read from the file's content, not its name."""
    with Image.open(path) as image:
        alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
        return image.format or "", alpha


def read_local_characters(folder: Path, anime_ids: set[int], raw_dir: Path) -> LocalCharacters:
    """Parse `folder`/characters.csv.gz for the ingested `anime_ids`; copy valid portraits to raw_dir/images."""

    folder = Path(folder)
    path = folder / CHARACTERS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the characters file is missing; set ingest.characters_dir in params.yaml "
                                f"(null: anime only)")
    header, records, lines, malformed = read_csv_records(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"{path}: CSV lacks column(s) {missing}")
    quarantine = [quarantine_record("ingest", "characters", f"{path}:{line}", "malformed_row", f"{path}:{line}: {why}")
                  for line, why in malformed]
    counts: Counter = Counter()
    rows: list[dict] = []
    seen: dict[tuple[int, int], str] = {}
    copied: dict[int, str | None] = {}  # character id -> relative path of its copy (None: unusable portrait)
    (Path(raw_dir) / "images").mkdir(parents=True, exist_ok=True)
    for line, values in zip(lines, records, strict=True):
        record = dict(zip(header, values, strict=True))
        where = f"{path}:{line}"
        try:
            anime_id, character_id = parse_id(record["anime_mal_id"]), parse_id(record["character_id"])
        except ParseError as err:
            quarantine.append(quarantine_record("ingest", "characters", where, "parse", f"{where}: {err}",
                                                "character_id", record.get("character_id")))
            continue
        key = character_key(anime_id, character_id)
        if anime_id not in anime_ids:
            quarantine.append(quarantine_record(
                "ingest", "characters", key, "unknown_anime",
                f"{where}: anime {anime_id} is not among the ingested anime (absent, quarantined, or past "
                f"ingest.limit)", "anime_mal_id", anime_id))
            continue
        if (anime_id, character_id) in seen:
            quarantine.append(quarantine_record("ingest", "characters", key, "duplicate_id",
                                                f"{where}: repeats {seen[(anime_id, character_id)]}; kept once",
                                                "character_id", character_id))
            continue
        seen[(anime_id, character_id)] = where
        name = clean_text(record["name"])
        if not name:
            quarantine.append(quarantine_record("ingest", "characters", key, "parse", f"{where}: no name", "name",
                                                record["name"]))
            continue
        if character_id not in copied:
            copied[character_id] = _copy_portrait(folder, record["portrait"], character_id, key, where, raw_dir,
                                                  quarantine, counts)
        elif copied[character_id] is None and clean_text(record["portrait"]):
            quarantine.append(quarantine_record("ingest", "characters", key, "unreadable_portrait",
                                                f"{where}: same portrait as an earlier row of character "
                                                f"{character_id}, which did not decode; character kept without it",
                                                "portrait", record["portrait"]))
        rows.append({"anime_id": anime_id, "character_id": character_id, "name": name,
                     "role": clean_text(record["role"]), "description": clean_text(record["description"]),
                     "portrait_path": copied[character_id]})
    characters = RAW_CHARACTERS.conform(pd.DataFrame(rows, columns=RAW_CHARACTERS.column_names), origin=str(path))
    counts["anime_with_characters"] = int(characters["anime_id"].nunique())
    table = QUARANTINE.conform(pd.DataFrame(quarantine, columns=QUARANTINE.column_names))
    log.info("local characters: %d rows, %d portraits, %d quarantined", len(characters), counts["portraits_copied"],
             len(table))
    return LocalCharacters(characters=characters, quarantine=table, counts=counts)


def _copy_portrait(folder: Path, name: object, character_id: int, key: str, where: str, raw_dir: Path,
                   quarantine: list[dict], counts: Counter) -> str | None:
    """Validate a portrait by decoding it and copy its bytes to raw_dir/images/<id>.<real format>.

    Returns the copy's path relative to raw_dir, or None (no portrait named, a name that is not a plain file
    name, a missing file, or bytes that do not decode: each quarantined with its reason).
    """
    file_name = clean_text(name)
    if not file_name:
        counts["characters_without_portrait"] += 1
        return None
    if Path(file_name).name != file_name or file_name in (".", ".."):
        quarantine.append(quarantine_record("ingest", "characters", key, "unreadable_portrait",
                                            f"{where}: portrait {file_name!r} is not a plain file name inside "
                                            f"{PORTRAITS_DIR}/; character kept without it", "portrait", file_name))
        return None
    source = folder / PORTRAITS_DIR / file_name
    problem = image_problem(source)
    if problem is None:
        try:
            image_format, alpha = _portrait_format(source)
        except OSError as err:  # decoded a moment ago; a file changed under us reads as unusable
            problem = f"cannot decode {source}: {err}"
    if problem is not None:
        quarantine.append(quarantine_record("ingest", "characters", key, "unreadable_portrait",
                                            f"{where}: {problem}; character kept without a portrait",
                                            "portrait", file_name))
        return None
    extension = _EXTENSIONS.get(image_format, "img")
    if Path(file_name).suffix.lower().lstrip(".") not in {extension, "jpeg" if extension == "jpg" else extension}:
        counts["portrait_format_differs"] += 1
        log.info("local characters: %s is %s data; decoded by content", source, image_format)
    if alpha:
        counts["portraits_with_alpha"] += 1
    relative = f"images/{character_id}.{extension}"
    target = Path(raw_dir) / relative
    if not (target.is_file() and target.stat().st_size == source.stat().st_size):  # a resumed ingest skips it
        shutil.copyfile(source, target)
    counts["portraits_copied"] += 1
    return relative
