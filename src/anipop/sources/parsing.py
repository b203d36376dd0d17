"""Parsers for the dirty values a MyAnimeList scrape holds: separators, '#' prefixes, 'N/A', HTML entities.

Each parser returns None for a *known* missing marker (the value is absent, which is legitimate) and raises
ParseError for a value it cannot make sense of (the row goes to quarantine with that reason). The tolerant
CSV reader (read_csv_records) is here too: the local anime file and the characters file both use it.
"""

from __future__ import annotations

import ast
import csv
import gzip
import html
import io
import math
import re
import zlib
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

MISSING_MARKERS = frozenset(
    {"", "n/a", "na", "nan", "none", "null", "unknown", "not_exist", "not available", "none found, add some", "?", "-"}
)
PLACEHOLDER_SYNOPSES = (
    "no synopsis information has been added",
    "no synopsis has been added",
)
MAL_SCORE_RANGE = (1.0, 10.0)
INT64_MAX = 2**63 - 1  # the raw tables store counts as Int64: a larger value must be a row error, not a crash
_WHITESPACE = re.compile(r"\s+")
_MAL_CREDIT = re.compile(r"\[\s*written by mal rewrite\s*\]", re.IGNORECASE)
_SCORE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class ParseError(ValueError):
    """A value that is present but cannot be parsed; the message says why."""


def is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in MISSING_MARKERS


def parse_count(value: object) -> int | None:
    """'3,689,853' -> 3689853; '#110' -> 110; 'N/A' -> None; negative, fractional or > int64 -> ParseError.

    Decimal, not float: a float silently rounds counts past 2**53, and an id past int64 would crash the
    whole table's cast instead of quarantining its row.
    """
    if is_missing(value):
        return None
    text = str(value).strip().lstrip("#").replace(",", "").replace("_", "")
    try:
        number = Decimal(text)
    except (InvalidOperation, ValueError) as err:
        raise ParseError(f"not a number: {str(value)[:40]!r}") from err
    if not number.is_finite() or number < 0 or number != number.to_integral_value():
        raise ParseError(f"not a non-negative whole number: {str(value)[:40]!r}")
    if number > INT64_MAX:
        raise ParseError(f"too large (over {INT64_MAX}): {str(value)[:40]!r}")
    return int(number)


def parse_id(value: object) -> int:
    """A MAL id: plain decimal digits (or an integer), and an empty id is a ParseError (a row needs its key).

    Stricter than parse_count: "1e3" or "1,000" as an id is a typo or a corrupt row, not anime 1000."""
    if isinstance(value, str) and not is_missing(value) and not re.fullmatch(r"[0-9]+", value.strip()):
        raise ParseError(f"mal_id is not a plain whole number: {value[:40]!r}")
    number = parse_count(value)
    if number is None:
        raise ParseError("mal_id is empty")
    return number


def parse_fields(record: Mapping[str, object], parsers: Mapping[str, tuple[str, Callable[[object], object]]],
                 row: dict[str, object]) -> tuple[str, str] | None:
    """Fill `row` from `record`, each raw-schema column by its (source field, parser).

    Returns (source field, reason) for the first field that cannot be parsed, or for a missing title (every
    source's anime needs one), else None. Shared by the local and jikan sources so both reject alike.
    """
    for column, (source_field, parser) in parsers.items():
        try:
            row[column] = parser(record.get(source_field))
        except ParseError as err:
            return source_field, str(err)
    if row.get("title") is None:
        return "title", "empty"
    return None


def parse_score(value: object) -> float | None:
    """A MAL weighted score: digits with an optional decimal point, within 1-10; None when unscored.

    Strict on purpose: a thousands separator ("1,000"), a decimal comma, an exponent or Python's digit
    underscores are not MAL scores, and reading them leniently ("1,000" -> 1.0) would move the train minimum,
    hence the score scale every model is compared on. MAL's unscored markers ("N/A", "Unknown") are None: the
    prepare step quarantines those rows under its `unscored` rule.
    """
    if is_missing(value):
        return None
    text = str(value).strip()
    if not _SCORE.fullmatch(text):
        raise ParseError(f"score is not a MyAnimeList score (digits with an optional '.'): {text[:40]!r}")
    score = float(text)
    low, high = MAL_SCORE_RANGE
    if not low <= score <= high:
        raise ParseError(f"score {score!r} outside MyAnimeList's {low:g}-{high:g} range")
    return score


def clean_text(value: object) -> str | None:
    """Unescape HTML entities, drop control characters and MAL's credit line, collapse whitespace."""
    if is_missing(value):
        return None
    text = html.unescape(str(value))
    text = _MAL_CREDIT.sub(" ", text)
    text = _CONTROL_CHARS.sub(" ", text)
    text = _WHITESPACE.sub(" ", text).strip()
    return text or None


def clean_synopsis(value: object) -> str | None:
    """Like clean_text, and MAL's 'no synopsis has been added' placeholders count as missing."""
    text = clean_text(value)
    if text and text.lower().startswith(PLACEHOLDER_SYNOPSES):
        return None
    return text


def parse_name_list(value: object) -> str | None:
    """"['Action', 'Drama', '']" or 'Action, Drama' -> 'Action, Drama' (empty items dropped)."""
    if is_missing(value):
        return None
    text = str(value).strip()
    items: list[str]
    if text.startswith("["):
        try:
            parsed = ast.literal_eval(text)
        # TypeError: an unhashable dict key or set item, e.g. "[{[]: 1}]"; the others: absurd nesting
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as err:
            raise ParseError(f"malformed list: {text[:40]!r}") from err
        if not isinstance(parsed, list):
            raise ParseError(f"not a list: {text[:40]!r}")
        items = [str(item).strip() for item in parsed]
    else:
        items = [item.strip() for item in text.split(",")]
    kept = [html.unescape(item) for item in items if not is_missing(item)]
    return ", ".join(kept) or None


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(hr|min|sec)", re.IGNORECASE)


def parse_duration(value: object) -> float | None:
    """MAL's runtime of an episode (or of the film): '24 min. per ep.', '1 hr. 55 min.', '45 sec.', Jikan's
    '24 min per ep' -> minutes; 'Unknown' or text with no time -> None (missing, not an error)."""
    if is_missing(value):
        return None
    parts = _DURATION_PART.findall(str(value))
    if not parts:
        return None
    minutes = sum(float(n) * {"hr": 60.0, "min": 1.0, "sec": 1 / 60}[unit.lower()] for n, unit in parts)
    return round(minutes, 2) if minutes > 0 else None


def given_family(name: str | None) -> str | None:
    """'Family, Given' (MAL's staff and cast lists, Jikan's) -> 'Given Family': a person's name without the comma
    that separates a list field's values (anipop.data.metadata.SEPARATOR)."""
    if name is None or ", " not in name:
        return name
    family, given = name.split(", ", 1)
    return f"{given} {family}".strip()


def people_names(value: object, roles: Iterable[str] | None = None) -> str | None:
    """MAL's staff list "[{'name': 'Watanabe, Shinichiro', 'role': 'Director, Script'}, ...]" (people whose roles
    include one of `roles`) or cast list "['Yamadera, Kouichi', ...]" -> 'Shinichiro Watanabe, ...' (each person
    once, in order). A value that is not such a list is returned as it is: prepare's metadata parser reports it
    (unparseable_metadata) and the anime keeps everything else."""
    if is_missing(value):
        return None
    text = str(value).strip()
    try:
        parsed = ast.literal_eval(text) if text.startswith("[") else None
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        parsed = None
    if not isinstance(parsed, list):
        return text
    wanted = {role.lower() for role in roles} if roles is not None else None
    names: list[str] = []
    for item in parsed:
        if isinstance(item, dict):
            person_roles = {r.strip().lower() for r in str(item.get("role", "")).split(",")}
            if wanted is not None and not person_roles & wanted:
                continue
            item = item.get("name")
        if not isinstance(item, str) or is_missing(item):
            continue
        name = " ".join(html.unescape(given_family(item.strip()) or "").replace(",", " ").split())
        if name and name not in names:
            names.append(name)
    return ", ".join(names) or None


def parse_first_air_date(aired: object) -> str | None:
    """'Apr 7, 2013 to Sep 29, 2013' -> '2013-04-07'; 'Apr 2013' -> '2013-04'; '2013' -> '2013'."""
    if is_missing(aired):
        return None
    start = str(aired).split(" to ")[0].strip()
    for fmt, out in (("%b %d, %Y", "%Y-%m-%d"), ("%b, %Y", "%Y-%m"), ("%b %Y", "%Y-%m"), ("%Y", "%Y")):
        try:
            return datetime.strptime(start, fmt).strftime(out)
        except ValueError:
            continue
    return None  # free text MAL could not date ('Not available', '?'): absent, not an error


def _open_text(path: Path) -> io.TextIOBase:
    """The file as text, gunzipped when it starts with gzip's magic bytes (whatever its name says).

    surrogateescape: a few bytes that are not UTF-8 quarantine their rows, not the whole file.
    """
    try:
        with open(path, "rb") as probe:
            gzipped = probe.read(2) == b"\x1f\x8b"
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{path}: the local MAL file is missing; set ingest.local_path in params.yaml") from err
    binary = gzip.open(path, "rb") if gzipped else open(path, "rb")  # noqa: SIM115 - closed by the wrapper
    return io.TextIOWrapper(binary, encoding="utf-8", errors="surrogateescape", newline="")


def read_csv_records(path: Path, limit: int | None = None) -> tuple[list[str], list[list[str]], list[int],
                                                                   list[tuple[int, str]]]:
    """(header, records, the line each record starts on, malformed (line, reason)) of a CSV or CSV.gz.

    Why not pandas: one row with too many fields makes pandas abort the whole file, and it reports no line
    numbers for rows whose quoted fields span lines. A truncated or corrupt archive raises one ValueError
    naming the file (click would otherwise turn gzip's EOFError into a bare "Aborted.").
    """
    records: list[list[str]] = []
    lines: list[int] = []
    malformed: list[tuple[int, str]] = []
    try:
        with _open_text(path) as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if not header:
                raise ValueError(f"{path}: the CSV is empty (no header line)")
            while limit is None or len(records) + len(malformed) < limit:
                line = reader.line_num + 1
                try:
                    record = next(reader)
                except StopIteration:
                    break
                except csv.Error as err:  # e.g. a field over csv's size limit: that record only
                    malformed.append((line, f"unreadable CSV record: {err}"))
                    continue
                if not record or record == [""]:
                    continue  # a blank line, as pandas skips it
                if len(record) != len(header):
                    malformed.append((line, f"{len(record)} fields where the header has {len(header)}"))
                    continue
                records.append(record)
                lines.append(line)
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise ValueError(f"{path}: truncated or corrupt gzip archive ({err})") from err
    return header, records, lines, malformed
