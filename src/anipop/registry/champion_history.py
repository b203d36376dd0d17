"""Which version served when: every move of the `champion` alias, recorded durably in the registry itself.

Why: MLflow keeps only where an alias points now, not where it pointed before (its issue #2169), so "which
model answered the studio on 3 March?" had no answer. Each change is a tag of the registered model,
`anipop.champion.<sequence>`, holding one JSON entry: written under the registration lock right after the alias
moves, in the same store as the versions, so it travels with the registry (sqlite file or team server) and needs
no other database. A registration killed before it completes is rolled back, and that restore is recorded too.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime

TAG_PREFIX = "anipop.champion."
_SEQUENCE_DIGITS = 6
_REASON_CHARS = 1000


@dataclass(frozen=True)
class ChampionChange:
    """One move of the alias: to `version` from `previous` (None: there was no champion)."""

    sequence: int
    version: str
    previous: str | None
    time: str               # when the alias moved, ISO 8601 UTC
    as_of: str | None       # the data's as-of date (ingest.as_of); None: all the source had
    data_newest: str | None  # the newest first-air date in the data the version was trained on
    data_hash: str
    reason: str

    def to_tag(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_tag(cls, value: str) -> "ChampionChange":
        return cls(**json.loads(value))


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_history(client, name: str) -> list[ChampionChange]:
    """Every recorded change of `name`'s champion, oldest first ([] for a model never promoted)."""
    from mlflow.exceptions import MlflowException

    try:
        tags = client.get_registered_model(name).tags
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise
    changes = [ChampionChange.from_tag(value) for key, value in tags.items() if key.startswith(TAG_PREFIX)]
    return sorted(changes, key=lambda change: change.sequence)


def record_change(client, name: str, version: str, previous: str | None, as_of: str | None,
                  data_newest: str | None, data_hash: str, reason: str) -> ChampionChange:
    """Append one change (call it under the registration lock: the sequence is the last one plus one)."""
    history = read_history(client, name)
    change = ChampionChange(sequence=(history[-1].sequence + 1) if history else 1, version=str(version),
                            previous=None if previous is None else str(previous), time=now_utc(), as_of=as_of,
                            data_newest=data_newest, data_hash=data_hash, reason=reason[:_REASON_CHARS])
    client.set_registered_model_tag(name, f"{TAG_PREFIX}{change.sequence:0{_SEQUENCE_DIGITS}d}", change.to_tag())
    return change


def champion_on(history: list[ChampionChange], when: datetime | date, by: str = "time") -> ChampionChange | None:
    """The change in force on `when`: by the wall-clock time the alias moved (`time`, the default: what served
    a request on that date), or by the data's as-of date (`as_of`: a replay, whose steps all ran today)."""
    if by not in ("time", "as_of"):
        raise ValueError(f"by must be 'time' or 'as_of', got {by!r}")
    moment = when if isinstance(when, datetime) else datetime.combine(when, datetime.max.time())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    current = None
    for change in history:
        stamp = change.time if by == "time" else change.as_of
        if stamp is None:
            continue
        moved = datetime.fromisoformat(stamp)
        if moved.tzinfo is None:
            moved = moved.replace(tzinfo=UTC)
        if moved <= moment:
            current = change
    return current


def render_history(name: str, history: list[ChampionChange]) -> str:
    """The history as a table a person reads in a terminal."""
    if not history:
        return f"{name}: no champion has been recorded yet"
    lines = [f"{name}: {len(history)} champion change(s)", "",
             "| # | time (UTC) | champion | previous | data as of | newest first-air | data hash | reason |",
             "|---|---|---|---|---|---|---|---|"]
    for change in history:
        lines.append(f"| {change.sequence} | {change.time} | v{change.version} | "
                     f"{'v' + change.previous if change.previous else '-'} | {change.as_of or 'all'} | "
                     f"{change.data_newest or '-'} | {change.data_hash} | {change.reason} |")
    return "\n".join(lines)
