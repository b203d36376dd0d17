"""Ingest sources behind one interface: each turns its origin into tables in the raw schema.

`local` reads the shared MyAnimeList 2023 file (offline default); `jikan` pages the online Jikan v4 API.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pandas as pd

from anipop.schema import QUARANTINE, RAW_CHARACTERS

if TYPE_CHECKING:
    from anipop.config import Params


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



def _local(params: Params) -> Source:
    from anipop.sources.local import LocalSource

    return LocalSource(path=params.ingest.local_path, limit=params.ingest.limit,
                       characters_dir=params.ingest.characters_dir)


def _jikan(params: Params) -> Source:
    from anipop.sources.jikan import JikanSource

    return JikanSource(limit=params.ingest.limit, cache_dir=params.paths.http_cache_dir,
                       **params.ingest.jikan.model_dump())


# ingest.source -> the factory of that source; each imports its module lazily, so `local` never loads the HTTP
# stack. config.IngestParams.source lists the same names (a test holds them equal): importing this registry from
# the config would make every stage depend on the sources' code.
SOURCES: dict[str, Callable[[Params], Source]] = {"local": _local, "jikan": _jikan}


def make_source(params: Params) -> Source:
    """The source that params.yaml names."""
    return SOURCES[params.ingest.source](params)
