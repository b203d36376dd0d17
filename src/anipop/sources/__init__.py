"""Ingest sources behind one interface: each turns its origin into tables in the raw schema.

`local` reads the shared MyAnimeList 2023 file (offline default); `jikan` pages the online Jikan v4 API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pandas as pd

from anipop.data.schema import QUARANTINE, RAW_CHARACTERS


@dataclass
class IngestResult:
    """What a source hands back: raw tables; images are already written under the raw folder."""

    anime: pd.DataFrame
    characters: pd.DataFrame = field(default_factory=RAW_CHARACTERS.empty)
    quarantine: pd.DataFrame = field(default_factory=QUARANTINE.empty)
    notes: list[str] = field(default_factory=list)


class Source(Protocol):
    name: str

    def ingest(self, raw_dir: Path) -> IngestResult:
        """Fetch or read the data, write any images under raw_dir/images, return the tables."""
        ...


class IngestIncomplete(RuntimeError):
    """More items failed than the configured share allows; the message is the run's summary.

    Everything fetched is cached, so rerunning resumes and retries only what failed.
    """

