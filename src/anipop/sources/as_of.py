"""The data as it stood on a past date: the view the retraining replay trains on, step by step.

Why: the retraining loop is judged on the shows that came after each retraining, so a step must never see an
anime that had not aired (and gathered its score) by then. An anime is in the view of `as_of` when its first air
date is at least `score_lag_days` before `as_of`; an anime whose first air date is unknown is out, since nothing
proves it existed. Partial dates are read at their latest possible day ('2013-04' as 2013-04-30, '2013' as
2013-12-31), so a vague date can only push an anime later, never leak it earlier.

The scores are the source's (2023 for the shared file): an anime of 2014 carries the score it had in 2023,
not the one it had in 2014. The data card says so.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd


@dataclass(frozen=True)
class AsOfView:
    """Which anime a date admits, and how many it left out and why."""

    as_of: date
    score_lag_days: int
    kept: int
    later: int
    undated: int

    @property
    def cutoff(self) -> date:
        """The latest first-air date in the view."""
        return view_cutoff(self.as_of, self.score_lag_days)

    def to_dict(self) -> dict:
        return {"as_of": self.as_of.isoformat(), "score_lag_days": self.score_lag_days,
                "first_aired_on_or_before": self.cutoff.isoformat(), "kept": self.kept,
                "left_out_aired_later": self.later, "left_out_undated": self.undated}


def view_cutoff(as_of: date, score_lag_days: int) -> date:
    return as_of - timedelta(days=score_lag_days)


def latest_air_date(premiered: object) -> date | None:
    """The latest day a first-air date may mean: '2013-04-07' itself, '2013-04' its month's last day, '2013'
    its 31 December; None when there is no date."""
    if premiered is None or (not isinstance(premiered, str) and pd.isna(premiered)):
        return None
    text = str(premiered).strip()
    try:
        parts = [int(part) for part in text.split("-")]
    except ValueError:
        return None
    if len(parts) == 3:
        return date(*parts)
    if len(parts) == 2:
        return date(parts[0], parts[1], calendar.monthrange(parts[0], parts[1])[1])
    if len(parts) == 1:
        return date(parts[0], 12, 31)
    return None


def in_view(premiered: pd.Series, as_of: date, score_lag_days: int) -> pd.Series:
    """True for the anime whose first air date is known and at least score_lag_days before as_of."""
    cutoff = view_cutoff(as_of, score_lag_days)
    latest = [latest_air_date(value) for value in premiered.tolist()]
    return pd.Series([day is not None and day <= cutoff for day in latest], index=premiered.index, dtype=bool)


def as_of_view(anime: pd.DataFrame, characters: pd.DataFrame, as_of: date,
               score_lag_days: int) -> tuple[pd.DataFrame, pd.DataFrame, AsOfView]:
    """The anime (and their characters) in the view of `as_of`, with the counts of what was left out."""
    keep = in_view(anime["premiered"], as_of, score_lag_days)
    undated = pd.Series([latest_air_date(v) is None for v in anime["premiered"].tolist()], index=anime.index,
                        dtype=bool)
    kept = anime[keep].reset_index(drop=True)
    chars = characters[characters["anime_id"].isin(set(kept["anime_id"]))].reset_index(drop=True)
    view = AsOfView(as_of=as_of, score_lag_days=score_lag_days, kept=len(kept),
                    later=int((~keep & ~undated).sum()), undated=int(undated.sum()))
    return kept, chars, view
