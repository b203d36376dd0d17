"""Track records at pitch time: how each studio, producer, director, genre... had scored before the show.

Why: the pitch models learn one static weight per studio from every year they were trained on, but a studio's
record moves, and next season's show is judged by it as it stands then. For each row and each configured field,
the records of the row's values over the anime that began airing in strictly earlier years, its own franchise
left out (a sequel's prequel is the franchise, not the studio's record): so no row ever sees its own score or a
later anime's. A value's mean score is shrunk towards the mean of that same history (rare values say little),
and beside it: how many anime the record rests on, and the record of the last `recent_years` only.

A served pitch gives its planned year (none: everything the model knew counts); its records come from the same
table of training anime, kept with the model as data (`history`), and refreshed by every retraining.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

FEATURES_PER_FIELD = ("record", "anime", "recent")  # shrunk mean, log(1 + count), shrunk mean of the recent years
HISTORY_COLUMNS = ("field", "value", "year", "group", "score")


@dataclass
class _Cumulative:
    """Entries of one key sorted by year, with running sums: the count and sum of scores before any year."""

    years: list[float]
    counts: np.ndarray
    sums: np.ndarray

    @classmethod
    def of(cls, years: np.ndarray, scores: np.ndarray) -> "_Cumulative":
        order = np.argsort(years, kind="stable")
        return cls(years=years[order].tolist(), counts=np.arange(1, len(order) + 1, dtype=float),
                   sums=np.cumsum(scores[order]))

    def before(self, year: float) -> tuple[float, float]:
        """(count, sum of scores) of the entries of years strictly before `year`."""
        index = bisect_left(self.years, year)
        return (0.0, 0.0) if index == 0 else (float(self.counts[index - 1]), float(self.sums[index - 1]))


@dataclass
class TrackRecords:
    """Per field, every (value, year, franchise, score) of the training anime, queried by row."""

    fields: list[str]
    shrink: float = 10.0
    recent_years: int = 5
    relative: bool = False  # records of each score minus its year's mean: a studio is judged against its contemporaries
    history: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(HISTORY_COLUMNS)))

    def fit(self, values: dict[str, list[list[str]]], years: np.ndarray, groups: np.ndarray | None,
            scores: np.ndarray) -> "TrackRecords":
        """Keep the training anime's values, years, franchises and (normalised) scores; undated anime never count
        for another row (nothing says they came before it)."""
        years = np.asarray(years, dtype=float)
        groups = np.full(len(years), -1) if groups is None else np.asarray(groups)
        scores = np.asarray(scores, dtype=float)
        if self.relative:
            dated = pd.Series(scores[~np.isnan(years)], index=years[~np.isnan(years)])
            year_mean = dated.groupby(level=0).mean()
            scores = scores - np.array([year_mean.get(y, 0.0) if not np.isnan(y) else 0.0 for y in years])
        rows = [(f, v, years[i], int(groups[i]), float(scores[i]))
                for f in self.fields for i, row_values in enumerate(values.get(f, [[]] * len(years)))
                for v in row_values if not np.isnan(years[i])]
        anime = [("", "", years[i], int(groups[i]), float(scores[i])) for i in range(len(years)) if not np.isnan(years[i])]
        self.history = pd.DataFrame(rows + anime, columns=list(HISTORY_COLUMNS))
        self._index()
        return self

    def _index(self) -> None:
        """Running sums per (field, value), per (field, value, franchise), and over all anime ("", "")."""
        table = self.history
        years, scores = table["year"].to_numpy(float), table["score"].to_numpy(float)
        # row positions per key, in table order (one flat groupby each: a nested one built ~50k small frames)
        by_value = table.groupby(["field", "value"], sort=False).indices
        by_group = table.groupby(["field", "value", "group"], sort=False).indices
        self._by_value: dict[tuple[str, str], _Cumulative] = {
            (name, value): _Cumulative.of(years[rows], scores[rows]) for (name, value), rows in by_value.items()}
        self._by_group: dict[tuple[str, str, int], _Cumulative] = {
            (name, value, int(group)): _Cumulative.of(years[rows], scores[rows])
            for (name, value, group), rows in by_group.items()}

    def __getstate__(self) -> dict:  # the indexes are rebuilt from the history on load
        return {"fields": self.fields, "shrink": self.shrink, "recent_years": self.recent_years,
                "relative": self.relative, "history": self.history}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.history is not None:  # saved apart (artifacts.save_bundle): attached by whoever loads the bundle
            self._index()

    def attach(self, history: pd.DataFrame) -> "TrackRecords":
        """The table of training anime read back from its file (artifacts.load_bundle)."""
        missing = [c for c in HISTORY_COLUMNS if c not in history.columns]
        if missing:
            raise ValueError(f"track-record table lacks column(s) {missing}")
        self.history = history[list(HISTORY_COLUMNS)].astype({"field": str, "value": str, "year": float,
                                                              "group": "int64", "score": float})
        self._index()
        return self

    def _stats(self, name: str, value: str, year: float, group: int | None, since: float | None = None
               ) -> tuple[float, float]:
        """(count, sum) of `value`'s anime of years before `year` (and from `since` on), its franchise left out."""
        total = self._by_value.get((name, value))
        if total is None:
            return 0.0, 0.0
        count, summed = total.before(year)
        if since is not None:
            early_count, early_sum = total.before(since)
            count, summed = count - early_count, summed - early_sum
        own = self._by_group.get((name, value, group)) if group is not None else None
        if own is not None:
            own_count, own_sum = own.before(year)
            if since is not None:
                early_count, early_sum = own.before(since)
                own_count, own_sum = own_count - early_count, own_sum - early_sum
            count, summed = count - own_count, summed - own_sum
        return count, summed

    def features(self, values: dict[str, list[list[str]]], years: np.ndarray,
                 groups: np.ndarray | None = None) -> np.ndarray:
        """(n, 3 x fields): per field the row's values' mean shrunk record, log(1 + anime behind them) and mean
        shrunk record of the recent years; NaN where the row gives no value (LightGBM's missing).

        `groups` given: rows of the data set, each leaving its own franchise out; an undated one gets no record
        (nothing says which anime came before it). None: pitches, for which a missing year means "now": every
        anime the model knew counts."""
        years = np.asarray(years, dtype=float)
        n = len(years)
        out = np.full((n, len(FEATURES_PER_FIELD) * len(self.fields)), np.nan, dtype=np.float64)
        for i in range(n):
            if np.isnan(years[i]) and groups is not None:
                continue
            year = np.inf if np.isnan(years[i]) else years[i]
            group = None if groups is None else int(groups[i])
            count, summed = self._stats("", "", year, group)
            prior = summed / count if count else (0.0 if self.relative else 0.5)
            for j, name in enumerate(self.fields):
                row_values = values.get(name, [[]] * n)[i]
                if not row_values:
                    out[i, 3 * j + 1] = 0.0
                    continue
                records, recents, anime = [], [], 0.0
                for value in row_values:
                    c, s = self._stats(name, value, year, group)
                    records.append(self._shrunk(c, s, prior))
                    rc, rs = self._stats(name, value, year, group, since=year - self.recent_years)
                    recents.append(self._shrunk(rc, rs, prior))
                    anime += c
                out[i, 3 * j:3 * j + 3] = (np.mean(records), np.log1p(anime), np.mean(recents))
        return out

    def _shrunk(self, count: float, summed: float, prior: float) -> float:
        """The value's mean pulled towards `prior` as if `shrink` more anime had scored it; `prior` with none."""
        return (summed + self.shrink * prior) / (count + self.shrink) if count + self.shrink > 0 else prior

    def feature_names(self) -> list[str]:
        return [f"{name}.{what}" for name in self.fields for what in FEATURES_PER_FIELD]
