"""The ingest step: read a source into the raw tables under `paths.raw_dir`."""

from __future__ import annotations

import logging
import shutil
from dataclasses import replace
from pathlib import Path

from anipop.core.artifacts import ArtifactPaths
from anipop.core.config import IngestParams, Paths
from anipop.core.utils import write_json
from anipop.data.schema import QUARANTINE, RAW_ANIME, RAW_CHARACTERS, write_table
from anipop.sources import Source
from anipop.sources.as_of import as_of_view
from anipop.sources.registry import make_source

log = logging.getLogger(__name__)


def run_ingest(ingest: IngestParams, paths: Paths, source: Source | None = None) -> dict:
    """Write raw anime, characters and quarantine tables plus ingest_report.json; return the report.

    The new raw folder is built beside the old one and swapped in only once complete (dvc.yaml keeps the
    out with `persist: true`, so DVC does not delete it first): a failed ingest (offline, a bad file, a
    kill) leaves the previous raw data in place, usable by the next stages.
    """
    raw_dir = Path(paths.raw_dir)
    staging = raw_dir.with_name(f".{raw_dir.name}.incoming")
    if staging.exists():
        shutil.rmtree(staging)
    if raw_dir.is_dir() and (raw_dir / "images").is_dir():  # portraits already fetched stay (sources skip them)
        shutil.copytree(raw_dir / "images", staging / "images")
    staging.mkdir(parents=True, exist_ok=True)
    source = source or make_source(ingest, paths)
    try:
        result = source.ingest(staging)
    except BaseException:
        kept = "the previous raw data is unchanged" if raw_dir.exists() else "no raw data yet"
        log.error("ingest (%s) failed: %s at %s", ingest.source, kept, raw_dir)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    as_of = None
    if ingest.as_of is not None:
        anime, characters, view = as_of_view(result.anime, result.characters, ingest.as_of, ingest.score_lag_days)
        result = replace(result, anime=anime, characters=characters)
        as_of = view.to_dict()
        log.info("ingest: as of %s, %d anime first aired by %s; %d aired later and %d undated left out",
                 view.as_of, view.kept, view.cutoff, view.later, view.undated)
    staged = replace(ArtifactPaths.of(paths), raw_dir=staging)  # the raw files, written beside raw_dir first
    write_table(RAW_ANIME, result.anime, staged.raw_anime)
    write_table(RAW_CHARACTERS, result.characters, staged.raw_characters)
    write_table(QUARANTINE, result.quarantine, staged.raw_quarantine)
    report = {
        "source": source.name,
        "anime": len(result.anime),
        "characters": len(result.characters),
        "quarantined": len(result.quarantine),
        "quarantined_by_rule": result.quarantine["rule"].value_counts().to_dict(),
        "notes": result.notes,
        "as_of": as_of,
    }
    write_json(staged.ingest_report, report)
    _swap_in(staging, raw_dir)
    log.info("ingest (%s): %d anime, %d characters, %d quarantined", source.name, report["anime"], report["characters"], report["quarantined"])
    return report


def _swap_in(staging: Path, raw_dir: Path) -> None:
    """Replace raw_dir by staging with two renames (the old folder is removed only after)."""
    old = raw_dir.with_name(f".{raw_dir.name}.previous")
    shutil.rmtree(old, ignore_errors=True)
    if raw_dir.exists():
        raw_dir.rename(old)
    staging.rename(raw_dir)
    shutil.rmtree(old, ignore_errors=True)
