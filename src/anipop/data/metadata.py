"""Pitch metadata: the facts a producer decides before the big money is spent, parsed and encoded once.

Fields (each an input kind that params can switch off): genres, themes, type (the format: TV, Movie, OVA,
ONA...), source (original, manga, light novel, game...), demographic, studios, producers, rating (the age rating
the show is made for) and year (the planned first-air year; from `premiered` in the data). They are known when
a show is pitched. Never used: episodes (a long-running show gets more episodes *because* it is popular),
licensors (foreign distributors buy shows that already did well), members, favorites, rank, popularity (all
counted after release).

The same code parses the training table and a served pitch, and one encoder (min-count vocabulary learned on
the train rows only) turns both into multi-hot columns. A value the vocabulary lacks (a new studio, a
misspelt genre, a value seen fewer than `min_count` times in train) is encoded as the field's `<unknown>`
column, an absent field as its `<missing>` column, so a synopsis-only pitch is still scored.
"""

from __future__ import annotations

import difflib
import html
from collections import Counter
from collections.abc import Iterable

import numpy as np
import pandas as pd

from anipop.core.input_kinds import (  # noqa: F401 - the field names are input kinds: named in that registry
    DURATION_FIELD,
    FRANCHISE_FIELD,
    LIST_FIELDS,
    METADATA_FIELDS,
    PITCH_METADATA_KINDS,
    SINGLE_FIELDS,
    YEAR_FIELD,
)
from anipop.data.literal_lists import ListSyntaxError, parse_text_list

YEAR_RANGE = (1900, 2100)
SEPARATOR = ", "  # how list fields are stored in the raw and prepared tables (ingest's parse_name_list)
# MAL's "not given" markers; producers say "['None found', 'add some']", studios "None found, add some"
MISSING_VALUES = frozenset({"", "n/a", "na", "nan", "none", "null", "unknown", "not_exist", "?", "-",
                            "none found, add some", "none found", "add some"})
UNKNOWN, MISSING = "<unknown>", "<missing>"
# Values MAL gives only after release: the "Award Winning" genre is added once a show wins an award (mean score
# 7.40 against 6.60), so no pitch can know it. Dropped from the training data and from every pitch (with a note).
POST_RELEASE_VALUES: dict[str, frozenset[str]] = {"genres": frozenset({"Award Winning"})}
MAX_VALUES_PER_FIELD = 50     # a pitch naming more genres or studios than this is not a pitch
MAX_VALUE_CHARS = 200
# the longest text a valid field can be (its values, their separators, quotes and brackets, some spacing) and the
# most raw items before deduplication: checked before any parsing, so a field's cost is bounded whatever is sent
MAX_FIELD_CHARS = MAX_VALUES_PER_FIELD * (MAX_VALUE_CHARS + 8) + 64
MAX_RAW_ITEMS = 4 * MAX_VALUES_PER_FIELD


class MetadataError(ValueError):
    """A metadata value that cannot be read; the message names the field and says why."""


def _is_missing(item: object) -> bool:
    if item is None:
        return True
    if isinstance(item, float) and np.isnan(item):
        return True
    return isinstance(item, str) and item.strip().lower() in MISSING_VALUES


def parse_values(field: str, value: object) -> list[str]:
    """One field's values as a clean list: "['Action', 'Drama']", 'Action, Drama', a list, or missing -> [].

    "Unknown", "N/A" and empty items mean "not given". A single field (type, source) keeps at most one value.
    Raises MetadataError (naming the field) for what is not text or a list of texts, or is absurdly long.
    """
    if field not in METADATA_FIELDS:
        raise MetadataError(f"unknown metadata field {field!r}; expected one of {list(METADATA_FIELDS)}")
    # every bound before anything reads the value (even the missing-value check copies a text): an oversized
    # field costs the same few microseconds at any size, and the work below is linear in a few kilobytes at most
    if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
        raise MetadataError(f"field {field!r}: {len(value):,} characters (limit {MAX_FIELD_CHARS:,}: "
                            f"{MAX_VALUES_PER_FIELD} values of {MAX_VALUE_CHARS} characters)")
    if isinstance(value, (list, tuple, np.ndarray)) and len(value) > MAX_RAW_ITEMS:
        raise MetadataError(f"field {field!r}: {len(value):,} items (limit {MAX_VALUES_PER_FIELD} values)")
    if _is_missing(value):
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                items = parse_text_list(text)
            except ListSyntaxError as err:
                raise MetadataError(f"field {field!r}: malformed list {text[:40]!r} ({err})") from None
        elif field in SINGLE_FIELDS:
            items = [text]
        else:
            items = text.split(",")
    elif isinstance(value, (list, tuple, np.ndarray)):
        items = list(value)
    else:
        raise MetadataError(f"field {field!r}: expected text or a list of texts, got {type(value).__name__}")
    if len(items) > MAX_RAW_ITEMS:
        raise MetadataError(f"field {field!r}: {len(items):,} items (limit {MAX_VALUES_PER_FIELD} values)")
    seen: dict[str, None] = {}  # insertion-ordered set: deduplication in linear time
    for item in items:
        if _is_missing(item):
            continue
        if not isinstance(item, str):
            raise MetadataError(f"field {field!r}: expected text items, got {type(item).__name__}")
        if len(item) > MAX_FIELD_CHARS:
            raise MetadataError(f"field {field!r}: a value of {len(item):,} characters (limit {MAX_VALUE_CHARS})")
        text = " ".join(html.unescape(item).split())
        if len(text) > MAX_VALUE_CHARS:
            raise MetadataError(f"field {field!r}: a value of {len(text)} characters (limit {MAX_VALUE_CHARS})")
        if text:
            seen[text] = None
            if len(seen) > MAX_VALUES_PER_FIELD:
                raise MetadataError(f"field {field!r}: more than {MAX_VALUES_PER_FIELD} values "
                                    f"(limit {MAX_VALUES_PER_FIELD})")
    cleaned = list(seen)
    if len(cleaned) > MAX_VALUES_PER_FIELD:
        raise MetadataError(f"field {field!r}: {len(cleaned)} values (limit {MAX_VALUES_PER_FIELD})")
    if field in SINGLE_FIELDS and len(cleaned) > 1:
        raise MetadataError(f"field {field!r}: one value expected, got {cleaned[:5]}")
    return cleaned


def _number(value: object, field: str, what: str, example: str) -> float | None:
    """A numeric pitch field as a float (text or number); missing -> None; MetadataError naming the field."""
    if _is_missing(value):
        return None
    if isinstance(value, bool):
        raise MetadataError(f"field {field!r}: expected {what}, got {type(value).__name__}")
    try:
        return float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise MetadataError(f"field {field!r}: expected {what} such as {example}, got {str(value)[:40]!r}") from None


def parse_year(value: object) -> float | None:
    """A pitch's planned first-air year: an integer in YEAR_RANGE (text or number); missing -> None."""
    year = _number(value, YEAR_FIELD, "a year", "2026")
    if year is None:
        return None
    if not year.is_integer() or not YEAR_RANGE[0] <= year <= YEAR_RANGE[1]:
        raise MetadataError(f"field {YEAR_FIELD!r}: {str(value)[:40]!r} is not a year in {YEAR_RANGE[0]}-{YEAR_RANGE[1]}")
    return year


DURATION_RANGE = (0.1, 600.0)  # minutes: a 6-second spot to a 10-hour film


def parse_duration_minutes(value: object) -> float | None:
    """A pitch's planned runtime of an episode (or of the film), in minutes; missing -> None."""
    minutes = _number(value, DURATION_FIELD, "minutes", "24")
    if minutes is None:
        return None
    if not DURATION_RANGE[0] <= minutes <= DURATION_RANGE[1]:
        raise MetadataError(f"field {DURATION_FIELD!r}: {str(value)[:40]!r} is not minutes in "
                            f"{DURATION_RANGE[0]}-{DURATION_RANGE[1]:.0f}")
    return minutes


def table_durations(frame: pd.DataFrame) -> np.ndarray:
    """Each row's runtime in minutes (NaN where unknown)."""
    if DURATION_FIELD not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[DURATION_FIELD], errors="coerce").astype(float).to_numpy()


def table_years(frame: pd.DataFrame) -> np.ndarray:
    """The first-air year of each row of a prepared table (from `premiered`), NaN where unknown."""
    if "premiered" not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame["premiered"].astype("string").str[:4], errors="coerce").astype(float).to_numpy()


def pitch_time_values(field: str, values: list[str]) -> tuple[list[str], list[str]]:
    """(the values a pitch can know, the post-release ones dropped from them)."""
    late = POST_RELEASE_VALUES.get(field, frozenset())
    return [v for v in values if v not in late], [v for v in values if v in late]


def stored(values: list[str]) -> str | None:
    """The table form of a parsed field: values joined by SEPARATOR, None when empty."""
    return SEPARATOR.join(values) or None


def parse_table(anime: pd.DataFrame, fields: Iterable[str] = METADATA_FIELDS,
                dropped: dict[str, int] | None = None) -> tuple[pd.DataFrame, list[dict]]:
    """Normalise the metadata columns of an anime table; return (table, problems).

    A value that cannot be parsed becomes missing for that anime (the anime keeps its synopsis and score) and is
    reported as a problem {anime_id, field, value, reason}, which prepare quarantines with the reason. Post-release
    values (POST_RELEASE_VALUES) are dropped; `dropped` counts the anime that lost one, per "field: value".
    """
    out = anime.copy()
    problems: list[dict] = []
    dropped = {} if dropped is None else dropped
    for field in fields:
        if field not in out.columns:
            out[field] = None
            continue
        column = []
        for anime_id, value in zip(out["anime_id"], out[field], strict=True):
            try:
                kept, late = pitch_time_values(field, parse_values(field, None if pd.isna(value) else value))
                for item in late:
                    dropped[f"{field}: {item}"] = dropped.get(f"{field}: {item}", 0) + 1
                column.append(stored(kept))
            except MetadataError as err:
                problems.append({"anime_id": int(anime_id), "field": field, "value": str(value)[:200],
                                 "reason": str(err)})
                column.append(None)
        out[field] = pd.Series(column, index=out.index, dtype="string")
    return out, problems


def table_values(frame: pd.DataFrame, field: str) -> list[list[str]]:
    """Per row, the stored values of one field of a prepared table (missing column or cell -> [])."""
    if field not in frame.columns:
        return [[] for _ in range(len(frame))]
    return [[] if pd.isna(v) or not str(v).strip() else
            ([str(v).strip()] if field in SINGLE_FIELDS else [s.strip() for s in str(v).split(",") if s.strip()])
            for v in frame[field]]


def fields_with_values(frame: pd.DataFrame, wanted: Iterable[str]) -> list[str]:
    """The wanted metadata fields that at least one row of `frame` has (a source may lack some)."""
    present = [f for f in wanted if f in METADATA_FIELDS and f in frame.columns and frame[f].notna().any()]
    if YEAR_FIELD in wanted and not np.isnan(table_years(frame)).all():
        present.append(YEAR_FIELD)
    if DURATION_FIELD in wanted and not np.isnan(table_durations(frame)).all():
        present.append(DURATION_FIELD)
    if FRANCHISE_FIELD in wanted and {"group_id", "premiered", "score"} <= set(frame.columns):
        present.append(FRANCHISE_FIELD)  # derived per row by data.franchise_scores
    return present


class MetadataEncoder:
    """Multi-hot columns per field with a vocabulary learned on train only (values seen >= min_count times).

    Every field also gets `<unknown>` (a value outside the vocabulary) and `<missing>` (no value given).
    """

    def __init__(self, fields: Iterable[str], min_count: int = 5) -> None:
        self.fields = [f for f in fields if f in METADATA_FIELDS]
        self.min_count = int(min_count)
        self.vocabulary: dict[str, list[str]] = {}

    def fit(self, values: dict[str, list[list[str]]]) -> "MetadataEncoder":
        for field in self.fields:
            counts = Counter(v for row in values[field] for v in row)
            self.vocabulary[field] = sorted(v for v, n in counts.items() if n >= self.min_count)
        return self

    @property
    def columns(self) -> list[str]:
        return [f"{field}={value}" for field in self.fields for value in [*self.vocabulary[field], UNKNOWN, MISSING]]

    def transform(self, values: dict[str, list[list[str]]]):
        """A CSR matrix (rows, len(columns)) of 0/1 floats."""
        from scipy import sparse

        rows, cols = [], []
        offset = 0
        n = None
        for field in self.fields:
            vocab = {v: i for i, v in enumerate(self.vocabulary[field])}
            unknown, missing = len(vocab), len(vocab) + 1
            field_rows = values[field]
            n = len(field_rows) if n is None else n
            for r, items in enumerate(field_rows):
                hits = {vocab.get(v, unknown) for v in items} or {missing}
                rows.extend([r] * len(hits))
                cols.extend(offset + h for h in hits)
            offset += len(vocab) + 2
        n = n or 0
        data = np.ones(len(rows), dtype=np.float32)
        return sparse.csr_matrix((data, (rows, cols)), shape=(n, offset), dtype=np.float32)


def unknown_field_message(names: list[str], allowed: Iterable[str]) -> str:
    """"unknown field(s) ['genre'] (did you mean 'genres'?); a pitch has [...]": a misspelt pitch field's error."""
    allowed = list(allowed)
    hints = [f"{close[0]!r}" for name in names if (close := difflib.get_close_matches(str(name), allowed, n=1))]
    hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
    return f"unknown field(s) {[str(n)[:40] for n in names]}{hint}; a pitch has {allowed}"
