"""The `local` source: the shared MyAnimeList 2023 scrape (anime only; no characters or portraits)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from anipop.schema import QUARANTINE, RAW_ANIME
from anipop.sources import IngestResult, quarantine_record
from anipop.sources.parsing import (
    ParseError,
    clean_synopsis,
    clean_text,
    parse_count,
    parse_fields,
    parse_first_air_date,
    parse_id,
    parse_name_list,
    parse_score,
)

log = logging.getLogger(__name__)

# raw schema column -> (CSV column, parser). A parser raising ParseError quarantines the row.
_FIELD_PARSERS = {
    "title": ("title", clean_text),
    "synopsis": ("synopsis", clean_synopsis),
    "score": ("score", parse_score),
    "members": ("members", parse_count),
    "favorites": ("favorites", parse_count),
    "aired": ("aired", clean_text),
    "premiered": ("aired", parse_first_air_date),
    "type": ("type", clean_text),
    "source": ("source", clean_text),
    "episodes": ("episodes", parse_count),
    "genres": ("genres", parse_name_list),
    "themes": ("themes", parse_name_list),
    "studios": ("studios", parse_name_list),
    "rating": ("rating", clean_text),
    "image_url": ("image_link", clean_text),
}
# the CSV columns read: the id, then each parser's source column once
_CSV_COLUMNS = ["mal_id", *dict.fromkeys(csv_column for csv_column, _ in _FIELD_PARSERS.values())]
# surrogateescape decodes each byte that is not valid UTF-8 to one of these code points
_UNDECODABLE = re.compile("[\udc80-\udcff]")


@dataclass
class LocalSource:
    """Reads the gzip CSV at `path`; `limit` keeps the first N rows (quick runs, tests)."""

    path: Path
    limit: int | None = None
    name: str = "local"

    def ingest(self, raw_dir: Path) -> IngestResult:
        """Parse the CSV into the raw anime table; rows that cannot be parsed go to quarantine with line and field."""
        try:
            # surrogateescape: a few bytes that are not UTF-8 quarantine their rows, not the whole file;
            # object, not str: pandas' arrow-backed strings cannot hold the escaped bytes
            frame = pd.read_csv(self.path, dtype=object, keep_default_na=False, nrows=self.limit,
                                encoding="utf-8", encoding_errors="surrogateescape")
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"{self.path}: the local MAL file is missing; set ingest.local_path in params.yaml"
            ) from err
        missing = [c for c in _CSV_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"{self.path}: CSV lacks column(s) {sorted(missing)}")
        rows, rejected = parse_rows(frame, origin=str(self.path))
        anime = RAW_ANIME.conform(pd.DataFrame(rows, columns=RAW_ANIME.column_names), origin=str(self.path))
        quarantine = QUARANTINE.conform(pd.DataFrame(rejected, columns=QUARANTINE.column_names))
        notes = [f"{self.path.name}: no characters or portraits in this source; those modalities are empty"]
        log.info("local source: %d anime parsed, %d rows quarantined", len(anime), len(quarantine))
        return IngestResult(anime=anime, quarantine=quarantine, notes=notes)


def parse_rows(frame: pd.DataFrame, origin: str) -> tuple[list[dict], list[dict]]:
    """Parse CSV rows into raw-schema dicts; rows with bytes that are not UTF-8, an unparseable id or field,
    or a duplicate id are rejected, each reason naming the CSV line it starts on."""
    rows: list[dict] = []
    rejected: list[dict] = []
    seen_ids: set[int] = set()
    next_line = 2  # line 1 is the header
    for record in frame.to_dict("records"):
        line_no = next_line
        next_line += 1 + sum(str(v).count("\n") for v in record.values())  # quoted fields may span lines
        where = f"{origin}:{line_no}"
        undecodable = next((c for c in _CSV_COLUMNS if _UNDECODABLE.search(str(record[c]))), None)
        if undecodable is not None:
            rejected.append(quarantine_record("ingest", "anime", _row_key(record, where), "not_utf8",
                                              f"{where}: field '{undecodable}' is not valid UTF-8", undecodable,
                                              record[undecodable]))
            continue
        try:
            anime_id = parse_id(record["mal_id"])
        except ParseError as err:
            rejected.append(quarantine_record("ingest", "anime", where, "parse", f"{where}: {err}", "mal_id", record["mal_id"]))
            continue
        if anime_id in seen_ids:
            rejected.append(quarantine_record("ingest", "anime", anime_id, "duplicate_id", f"{where}: mal_id {anime_id} already seen; first row kept", "mal_id", anime_id))
            continue
        row: dict[str, object] = {"anime_id": anime_id, "scored_by": None}
        problem = parse_fields(record, _FIELD_PARSERS, row)
        if problem is not None:
            field, reason = problem
            rejected.append(quarantine_record("ingest", "anime", anime_id, "parse", f"{where}: field '{field}': {reason}", field, record.get(field)))
            continue
        seen_ids.add(anime_id)
        rows.append(row)
    return rows, rejected


def _row_key(record: dict, where: str) -> object:
    """The row's id when it parses, else its file:line (the quarantine key of a row without a usable id)."""
    try:
        return parse_count(record["mal_id"]) or where
    except ParseError:
        return where

