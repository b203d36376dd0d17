"""The ingest sources by name: `ingest.source` in params.yaml picks one of SOURCES.

Why a module of its own, above the sources: the factories import their source lazily (`local` never loads the
HTTP stack), and the sources import the shared types from the package; kept apart, nothing imports in a circle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from anipop.sources import Source

if TYPE_CHECKING:
    from anipop.config import Params


def _local(params: Params) -> Source:
    from anipop.sources.local import LocalSource

    return LocalSource(path=params.ingest.local_path, limit=params.ingest.limit,
                       characters_dir=params.ingest.characters_dir, staff_roles=params.ingest.staff_roles)


def _jikan(params: Params) -> Source:
    from anipop.sources.jikan import JikanSource

    return JikanSource(limit=params.ingest.limit, cache_dir=params.paths.http_cache_dir,
                       staff_roles=params.ingest.staff_roles, **params.ingest.jikan.model_dump())


# ingest.source -> the factory of that source; each imports its module lazily, so `local` never loads the HTTP
# stack. config.IngestParams.source lists the same names (a test holds them equal): importing this registry from
# the config would make every stage depend on the sources' code.
SOURCES: dict[str, Callable[[Params], Source]] = {"local": _local, "jikan": _jikan}


def make_source(params: Params) -> Source:
    """The source that params.yaml names."""
    return SOURCES[params.ingest.source](params)
