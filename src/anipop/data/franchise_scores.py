"""A franchise's own track record: the MAL scores of its anime that aired before the one pitched.

Why: a producer pitching season 2 knows how season 1 scored, and that says more about season 2 than any
studio's record. In the data the franchise is the prepared table's `group_id` (data.franchise) and "before" is
a strictly earlier first-air year, the rule of every other track record (modeling.track_records): no row ever
sees its own score, a same-year entry's or a later one's. In a pitch it is the optional field
`franchise_scores`: the scores the producer reads off MAL, `[]` (or "original") for a new franchise, absent when
not said. "Not said" and "a new franchise" differ: the first is missing, the second a record of none.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from anipop.core.input_kinds import FRANCHISE_FIELD
from anipop.data.metadata import MISSING_VALUES, MetadataError, table_years

SCORE_RANGE = (1.0, 10.0)      # MAL's scale
MAX_FRANCHISE_SCORES = 500     # the longest franchises (Doraemon, Conan: films, specials) have a few hundred
NEW_FRANCHISE = "original"     # what a CLI user types for `[]`


def earlier_scores(table: pd.DataFrame) -> list[list[float] | None]:
    """Per row of a table with group_id, premiered and score: the scores of its franchise's anime first aired in
    strictly earlier years, oldest first; None for an undated row (nothing says what came before it) and for a
    table without franchise groups. Unscored anime add nothing."""
    if "group_id" not in table.columns or "score" not in table.columns:
        return [None] * len(table)
    years = table_years(table)
    scores = pd.to_numeric(table["score"], errors="coerce").to_numpy(dtype=float)
    groups = table["group_id"].to_numpy()
    out: list[list[float] | None] = [None] * len(table)
    for rows in pd.Series(np.arange(len(table))).groupby(groups, sort=False).indices.values():
        dated = [r for r in rows if not np.isnan(years[r])]
        scored = sorted((years[r], r) for r in dated if not np.isnan(scores[r]))
        for r in dated:
            out[r] = [float(scores[s]) for year, s in scored if year < years[r]]
    return out


def parse_franchise_scores(value: object) -> list[float] | None:
    """A pitch's `franchise_scores`: a list of numbers, a JSON list or comma-separated text of them, `[]` or
    "original" for a new franchise; missing -> None. MetadataError naming the field for anything else."""
    if isinstance(value, float) and math.isnan(value) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == NEW_FRANCHISE:
            return []
        if text.lower() in MISSING_VALUES:
            return None
        if len(text) > MAX_FRANCHISE_SCORES * 12:
            raise MetadataError(f"field {FRANCHISE_FIELD!r}: {len(text):,} characters is more than "
                                f"{MAX_FRANCHISE_SCORES} scores")
        try:
            items = json.loads(text) if text.startswith("[") else [p for p in text.split(",") if p.strip()]
        except (json.JSONDecodeError, RecursionError):
            raise MetadataError(f"field {FRANCHISE_FIELD!r}: not a JSON list of scores: {text[:40]!r}") from None
        if not items and not text.startswith("["):  # only commas: not a claim of a new franchise
            raise MetadataError(f"field {FRANCHISE_FIELD!r}: no score in {text[:40]!r}; send "
                                f"'{NEW_FRANCHISE}' for a new franchise")
    elif isinstance(value, (list, tuple, np.ndarray)):
        items = list(value)
    else:
        raise MetadataError(f"field {FRANCHISE_FIELD!r}: expected a list of MAL scores such as '7.9, 8.2', got "
                            f"{type(value).__name__}")
    if not isinstance(items, list):
        raise MetadataError(f"field {FRANCHISE_FIELD!r}: expected a list of MAL scores such as [7.9, 8.2]")
    if len(items) > MAX_FRANCHISE_SCORES:
        raise MetadataError(f"field {FRANCHISE_FIELD!r}: {len(items):,} scores (limit {MAX_FRANCHISE_SCORES})")
    return [_score(item) for item in items]


def _score(item: object) -> float:
    """One earlier anime's MAL score: a finite number on MAL's 1-10 scale."""
    if isinstance(item, bool):
        raise MetadataError(f"field {FRANCHISE_FIELD!r}: expected scores, got {item!r}")
    try:
        score = float(item.strip()) if isinstance(item, str) else float(item)
    except (TypeError, ValueError):
        raise MetadataError(f"field {FRANCHISE_FIELD!r}: {str(item).strip()[:40]!r} is not a MAL score such as "
                            f"7.9") from None
    if not SCORE_RANGE[0] <= score <= SCORE_RANGE[1]:  # NaN fails too
        raise MetadataError(f"field {FRANCHISE_FIELD!r}: {str(item).strip()[:40]!r} is not a MAL score in "
                            f"{SCORE_RANGE[0]:.0f}-{SCORE_RANGE[1]:.0f}")
    return score


def franchise_features(earlier: list[list[float] | None] | None, n: int) -> np.ndarray:
    """(n, 2): the mean of the earlier scores (NaN with none) and log(1 + how many); both NaN where not said."""
    out = np.full((n, 2), np.nan)
    for i, scores in enumerate(earlier if earlier is not None else [None] * n):
        if scores is None:
            continue
        out[i, 1] = np.log1p(len(scores))
        if scores:
            out[i, 0] = float(np.mean(scores))
    return out


def stored(scores: list[float] | None) -> str:
    """The text form a table of pitches carries (serving.scoring): a JSON list, "" when not said."""
    return "" if scores is None else json.dumps(scores)
