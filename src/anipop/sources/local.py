"""The `local` source: the shared MyAnimeList 2023 scrape, plus main characters and portraits from a local
folder when `characters_dir` names one (sources.local_characters)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from anipop.core.artifacts import quarantine_record
from anipop.data.schema import QUARANTINE, RAW_ANIME
from anipop.sources import IngestResult
from anipop.sources.parsing import (
    ParseError,
    clean_synopsis,
    clean_text,
    parse_count,
    parse_duration,
    parse_fields,
    parse_first_air_date,
    parse_id,
    parse_name_list,
    parse_score,
    people_names,
    read_csv_records,
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
    "demographic": ("demographic", clean_text),  # raw strings: prepare parses them (anipop.data.metadata), so a
    "producers": ("producers", clean_text),      # malformed list loses that field, not the anime
    "cast": ("voice_actors", people_names),      # the listed voice actors, 'Given Family', comma-separated
    "duration": ("duration", parse_duration),    # minutes an episode (or the film) runs
}
# the staff column: key roles only (ingest.staff_roles); parsed apart, since the parser needs the roles
_STAFF_COLUMN = "staffs"
# the CSV columns read: the id, then each parser's source column once
_CSV_COLUMNS = ["mal_id", *dict.fromkeys(csv_column for csv_column, _ in _FIELD_PARSERS.values()), _STAFF_COLUMN]
# surrogateescape decodes each byte that is not valid UTF-8 to one of these code points
_UNDECODABLE = re.compile("[\udc80-\udcff]")


@dataclass
class LocalSource:
    """Reads the gzip CSV at `path`; `limit` keeps the first N rows (quick runs, tests)."""

    path: Path
    limit: int | None = None
    name: str = "local"
    characters_dir: Path | None = None  # characters.csv.gz + portraits/; None: anime only
    staff_roles: tuple[str, ...] = ()  # the staff roles kept (ingest.staff_roles); () keeps no staff

    def ingest(self, raw_dir: Path) -> IngestResult:
        """Parse the CSV into the raw anime table; rows that cannot be parsed go to quarantine with line and field."""
        header, records, lines, malformed = read_csv_records(self.path, self.limit)
        missing = [c for c in _CSV_COLUMNS if c not in header]
        if missing:
            raise ValueError(f"{self.path}: CSV lacks column(s) {sorted(missing)}")
        frame = pd.DataFrame(records, columns=header, dtype=object)
        rows, rejected = parse_rows(frame, origin=str(self.path), lines=lines, staff_roles=self.staff_roles)
        rejected = [*(quarantine_record("ingest", "anime", f"{self.path}:{line}", "malformed_row",
                                        f"{self.path}:{line}: {reason}", None, None)
                      for line, reason in malformed), *rejected]
        anime = RAW_ANIME.conform(pd.DataFrame(rows, columns=RAW_ANIME.column_names), origin=str(self.path))
        quarantine = QUARANTINE.conform(pd.DataFrame(rejected, columns=QUARANTINE.column_names))
        log.info("local source: %d anime parsed, %d rows quarantined", len(anime), len(quarantine))
        if self.characters_dir is None:
            notes = [f"{self.path.name}: no characters or portraits in this source; those modalities are empty"]
            return IngestResult(anime=anime, quarantine=quarantine, notes=notes)
        from anipop.sources.local_characters import read_local_characters

        local = read_local_characters(Path(self.characters_dir), set(anime["anime_id"].tolist()), raw_dir)
        return IngestResult(anime=anime, characters=local.characters,
                            quarantine=pd.concat([quarantine, local.quarantine], ignore_index=True),
                            notes=local.notes(Path(self.characters_dir)))


def parse_rows(frame: pd.DataFrame, origin: str, lines: list[int] | None = None,
               staff_roles: tuple[str, ...] = ()) -> tuple[list[dict], list[dict]]:
    """Parse CSV rows into raw-schema dicts; rows with bytes that are not UTF-8, an unparseable id or field
    are rejected, each reason naming the CSV line it starts on (`lines`, else counted from the record texts).

    Duplicate ids: identical copies are kept once (the others quarantined as copies); copies that disagree
    (a different score, say) are all quarantined, since nothing tells which one is right.
    """
    parsed: list[tuple[str, dict]] = []
    rejected: list[dict] = []
    next_line = 2  # line 1 is the header
    for index, record in enumerate(frame.to_dict("records")):
        line_no = next_line if lines is None else lines[index]
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
        row: dict[str, object] = {"anime_id": anime_id, "scored_by": None}
        problem = parse_fields(record, _FIELD_PARSERS, row)
        if problem is not None:
            field, reason = problem
            rejected.append(quarantine_record("ingest", "anime", anime_id, "parse", f"{where}: field '{field}': {reason}", field, record.get(field)))
            continue
        row["staff"] = people_names(record.get(_STAFF_COLUMN), staff_roles) if staff_roles else None
        parsed.append((where, row))
    return _resolve_duplicates(parsed, rejected)


def _resolve_duplicates(parsed: list[tuple[str, dict]], rejected: list[dict]) -> tuple[list[dict], list[dict]]:
    """Keep one of identical duplicate rows; quarantine every copy of an id whose copies disagree."""
    by_id: dict[int, list[tuple[str, dict]]] = {}
    for where, row in parsed:
        by_id.setdefault(int(row["anime_id"]), []).append((where, row))
    rows: list[dict] = []
    for anime_id, copies in by_id.items():
        first_where, first = copies[0]
        if len(copies) == 1:
            rows.append(first)
            continue
        differing = sorted({key for _, row in copies[1:] for key in first if row.get(key) != first.get(key)})
        if not differing:
            rows.append(first)
            rejected.extend(quarantine_record("ingest", "anime", anime_id, "duplicate_id",
                                              f"{where}: mal_id {anime_id} repeats {first_where} exactly; kept once",
                                              "mal_id", anime_id) for where, _ in copies[1:])
            continue
        places = ", ".join(where for where, _ in copies)
        rejected.extend(quarantine_record(
            "ingest", "anime", anime_id, "duplicate_id",
            f"{where}: mal_id {anime_id} appears {len(copies)} times ({places}) with different {differing}; "
            f"all quarantined", differing[0], row.get(differing[0])) for where, row in copies)
    return rows, rejected


def _row_key(record: dict, where: str) -> object:
    """The row's id when it parses, else its file:line (the quarantine key of a row without a usable id)."""
    try:
        return parse_count(record["mal_id"]) or where
    except ParseError:
        return where

