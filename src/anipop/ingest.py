"""The ingest step: read a source into the raw tables under `paths.raw_dir`."""

from __future__ import annotations

import logging
from pathlib import Path

from anipop.config import Params
from anipop.schema import QUARANTINE, RAW_ANIME, RAW_CHARACTERS, write_table
from anipop.sources import Source
from anipop.utils import write_json

log = logging.getLogger(__name__)


def make_source(params: Params) -> Source:
    """The source that params.yaml names; imported lazily so `local` never needs the HTTP stack."""
    if params.ingest.source == "local":
        from anipop.sources.local import LocalSource

        return LocalSource(path=params.ingest.local_path, limit=params.ingest.limit,
                           characters_dir=params.ingest.characters_dir)
    if params.ingest.source == "jikan":
        from anipop.sources.jikan import JikanSource

        return JikanSource(limit=params.ingest.limit, cache_dir=params.paths.http_cache_dir,
                           **params.ingest.jikan.model_dump())
    raise NotImplementedError(f"params.yaml ingest.source={params.ingest.source!r} is not implemented yet")


def run_ingest(params: Params, source: Source | None = None) -> dict:
    """Write raw anime, characters and quarantine tables plus ingest_report.json; return the report."""
    raw_dir = Path(params.paths.raw_dir)
    source = source or make_source(params)
    result = source.ingest(raw_dir)
    write_table(RAW_ANIME, result.anime, raw_dir / "anime.parquet")
    write_table(RAW_CHARACTERS, result.characters, raw_dir / "characters.parquet")
    write_table(QUARANTINE, result.quarantine, raw_dir / "quarantine.parquet")
    report = {
        "source": source.name,
        "anime": len(result.anime),
        "characters": len(result.characters),
        "quarantined": len(result.quarantine),
        "quarantined_by_rule": result.quarantine["rule"].value_counts().to_dict(),
        "notes": result.notes,
    }
    write_json(raw_dir / "ingest_report.json", report)
    log.info("ingest (%s): %d anime, %d characters, %d quarantined", source.name, report["anime"], report["characters"], report["quarantined"])
    return report
