"""The ingest sources by name: `ingest.source` in params.yaml picks one of SOURCES.

Why a module of its own, above the sources: the factories import their source lazily (`local` never loads the
HTTP stack), and the sources import the shared types from the package; kept apart, nothing imports in a circle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from anipop.sources import Source

if TYPE_CHECKING:
    from anipop.core.config import IngestParams, Paths


def _local(ingest: IngestParams, paths: Paths) -> Source:
    from anipop.sources.local import LocalSource

    return LocalSource(path=ingest.local_path, limit=ingest.limit, characters_dir=ingest.characters_dir,
                       staff_roles=ingest.staff_roles)


def _jikan(ingest: IngestParams, paths: Paths) -> Source:
    from anipop.sources.jikan import JikanSource

    return JikanSource(limit=ingest.limit, cache_dir=paths.http_cache_dir, staff_roles=ingest.staff_roles,
                       **ingest.jikan.model_dump())


# ingest.source -> the factory of that source; each imports its module lazily, so `local` never loads the HTTP
# stack. config.IngestParams.source lists the same names (a test holds them equal): importing this registry from
# the config would make every stage depend on the sources' code.
SOURCES: dict[str, Callable[[IngestParams, Paths], Source]] = {"local": _local, "jikan": _jikan}


def make_source(ingest: IngestParams, paths: Paths) -> Source:
    """The source that params.yaml names (ingest.source); paths: where an online source caches its answers."""
    return SOURCES[ingest.source](ingest, paths)
