"""The validate step: Great Expectations suites over the raw and prepared tables, with Data Docs.

Why a separate step: `prepare` enforces its own rules row by row, but nothing checks that its output (and
the raw input it was given) still holds the invariants later steps rely on: unique keys, scores in 1..10,
non-empty synopses, characters pointing at existing anime, portraits that decode. A failure here stops the
pipeline before a model is trained on broken data, and the message names the table, column and rows.

Suites are built in code (one function per suite) on an ephemeral GX context: nothing is stored between
runs except `summary.json` and the HTML Data Docs, which are rebuilt from scratch every run. Cross-table and
file checks are computed in pandas as boolean helper columns (`anime_exists`, `portrait_opens`) and then
expected to be True, so every check is reported the same way, in the summary and in the Data Docs.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pandas as pd

# GX must never try the network (analytics) and its import-time INFO chatter is noise; set both first.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
logging.getLogger("great_expectations").setLevel(logging.WARNING)

import great_expectations as gx  # noqa: E402
import great_expectations.expectations as gxe  # noqa: E402
from great_expectations.data_context import EphemeralDataContext  # noqa: E402
from great_expectations.data_context.types.base import (  # noqa: E402
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)

from anipop.core.artifacts import ArtifactPaths  # noqa: E402
from anipop.core.config import Paths, PrepareParams  # noqa: E402
from anipop.data.images import image_problem  # noqa: E402
from anipop.data.schema import (  # noqa: E402
    PREPARED_ANIME,
    PREPARED_CHARACTERS,
    RAW_ANIME,
    RAW_CHARACTERS,
    SPLITS,
    TableSchema,
    read_table,
)
from anipop.core.utils import write_json  # noqa: E402
from anipop.data.validation_report import write_offline_report  # noqa: E402

log = logging.getLogger(__name__)

SITE_NAME = "anipop"
SAMPLE_KEYS = 5  # offending row keys kept per expectation (summary and error message)
_SHOWN_KWARGS = ("min_value", "max_value", "value_set", "regex")  # expectation arguments worth reporting

Suite = tuple[gx.ExpectationSuite, pd.DataFrame, TableSchema]


class ValidationFailed(RuntimeError):
    """At least one suite failed; `summary` is what summary.json holds, `data_docs` the HTML report."""

    def __init__(self, message: str, summary: dict, data_docs: Path) -> None:
        super().__init__(message)
        self.summary = summary
        self.data_docs = data_docs


def _suite(name: str, *expectations: gxe.Expectation) -> gx.ExpectationSuite:
    return gx.ExpectationSuite(name=name, expectations=list(expectations))


def raw_anime_suite(anime: pd.DataFrame) -> Suite:
    """Raw anime: a usable key and title; a score, when MAL has one, on its 1-10 scale."""
    return _suite(
        "raw_anime",
        gxe.ExpectColumnValuesToNotBeNull(column="anime_id"),
        gxe.ExpectColumnValuesToBeUnique(column="anime_id"),
        gxe.ExpectColumnValuesToNotBeNull(column="title"),
        gxe.ExpectColumnValuesToBeBetween(column="score", min_value=1, max_value=10),  # nulls are skipped
    ), anime, RAW_ANIME


def raw_characters_suite(chars: pd.DataFrame, anime: pd.DataFrame) -> Suite:
    """Raw characters: one row per (anime, character), each pointing at an anime the raw table has."""
    frame = chars.assign(anime_exists=chars["anime_id"].isin(anime["anime_id"]))
    return _suite(
        "raw_characters",
        gxe.ExpectCompoundColumnsToBeUnique(column_list=list(RAW_CHARACTERS.key)),
        gxe.ExpectColumnValuesToBeInSet(column="anime_exists", value_set=[True]),
        gxe.ExpectColumnValuesToNotBeNull(column="name"),
        gxe.ExpectColumnValuesToMatchRegex(column="portrait_path", regex=r"^images/[^/\\]+$"),  # inside raw_dir
    ), frame, RAW_CHARACTERS


def prepared_anime_suite(anime: pd.DataFrame, split_by: str = "franchise", credits_stripped: bool = True) -> Suite:
    """Prepared anime: what training needs, a unique id, a real score and synopsis, a known split.

    Under the franchise split every franchise sits in one split (helper column `franchise_in_one_split`), and
    with credit stripping on no synopsis still carries a "(Source: ...)" credit.
    """
    in_one_split = anime.groupby("group_id")["split"].transform("nunique") == 1
    frame = anime.assign(franchise_in_one_split=in_one_split)
    extra = []
    if split_by == "franchise":
        extra.append(gxe.ExpectColumnValuesToBeInSet(column="franchise_in_one_split", value_set=[True]))
    if credits_stripped:
        extra.append(gxe.ExpectColumnValuesToNotMatchRegex(column="synopsis", regex=r"(?i)[\(\[]\s*sources?\s*:"))
    return _suite(
        "prepared_anime",
        gxe.ExpectColumnValuesToNotBeNull(column="anime_id"),
        gxe.ExpectColumnValuesToBeUnique(column="anime_id"),
        gxe.ExpectColumnValuesToNotBeNull(column="score"),
        gxe.ExpectColumnValuesToBeBetween(column="score", min_value=1, max_value=10),
        gxe.ExpectColumnValuesToNotBeNull(column="synopsis"),
        # At least one non-space character, i.e. length >= 1 after strip.
        gxe.ExpectColumnValuesToMatchRegex(column="synopsis", regex=r"\S"),
        gxe.ExpectColumnValuesToNotBeNull(column="score_norm"),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS)),
        gxe.ExpectColumnValuesToNotBeNull(column="group_id"),
        *extra,
        *metadata_expectations(),
    ), frame, PREPARED_ANIME


def metadata_expectations() -> list[gxe.Expectation]:
    """Pitch metadata as prepare leaves it (anipop.data.metadata): parsed, never a raw list literal, an empty item
    or one of MAL's "not given" markers (those are missing); one value in a single-valued field."""
    from anipop.data.metadata import LIST_FIELDS, METADATA_FIELDS, SINGLE_FIELDS

    markers = ["Unknown", "unknown", "N/A", "NOT_EXIST", "None found, add some", "None found", "add some", ""]
    checks: list[gxe.Expectation] = []
    for field in METADATA_FIELDS:
        checks.append(gxe.ExpectColumnValuesToNotBeInSet(column=field, value_set=markers))
        checks.append(gxe.ExpectColumnValuesToNotMatchRegex(column=field, regex=r"^\s*\[|\]\s*$|^\s*,|,\s*,|,\s*$"))
    for field in LIST_FIELDS:
        checks.append(gxe.ExpectColumnValuesToNotMatchRegex(
            column=field, regex=r"(?i)(?:^|, )(?:unknown|n/a|not_exist|none found|add some)(?:,|$)"))
    for field in SINGLE_FIELDS:
        checks.append(gxe.ExpectColumnValuesToNotMatchRegex(column=field, regex=r"^\s|\s$"))
    # minutes an episode (or the film) runs: parsed at ingest; a parser slip (hours read as minutes) lands outside
    checks.append(gxe.ExpectColumnValuesToBeBetween(column="duration", min_value=0.01, max_value=600))
    return checks


def prepared_characters_suite(chars: pd.DataFrame, anime: pd.DataFrame, raw_dir: Path,
                              require_portrait: bool) -> Suite:
    """Prepared characters: each belongs to a prepared anime and its portrait decodes (embed reads it).

    A missing portrait_path is an error only when prepare was told to drop such characters; the
    portrait_opens helper is null for it, which GX skips.
    """
    problems = chars["portrait_path"].map(lambda rel: None if pd.isna(rel) else image_problem(raw_dir / rel))
    for problem in problems.dropna().head(SAMPLE_KEYS):
        log.warning("validate: %s", problem)
    opens = pd.Series(problems.isna(), dtype="boolean").mask(chars["portrait_path"].isna())
    frame = chars.assign(anime_exists=chars["anime_id"].isin(anime["anime_id"]), portrait_opens=opens)
    expectations = [
        gxe.ExpectColumnValuesToBeInSet(column="anime_exists", value_set=[True]),
        gxe.ExpectColumnValuesToBeInSet(column="portrait_opens", value_set=[True]),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=list(PREPARED_CHARACTERS.key)),
        gxe.ExpectColumnValuesToMatchRegex(column="role", regex=r"(?i)^main$"),  # prepare keeps main roles only
    ]
    if require_portrait:
        expectations.insert(1, gxe.ExpectColumnValuesToNotBeNull(column="portrait_path"))
    return _suite("prepared_characters", *expectations), frame, PREPARED_CHARACTERS


def _context(docs_dir: Path) -> EphemeralDataContext:
    """An in-memory GX context whose only Data Docs site is `docs_dir`; no analytics, no progress bars."""
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        data_docs_sites={SITE_NAME: {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(docs_dir.resolve())},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }},
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def _error(info: dict | None) -> str | None:
    """The message of an exception GX caught while computing an expectation (a missing column, a bad
    dtype); GX nests it per metric, so search the dict."""
    if not isinstance(info, dict):
        return None
    if info.get("exception_message"):
        return str(info["exception_message"])
    return next((msg for sub in info.values() if (msg := _error(sub))), None)


def _row_key(row: dict, key: tuple[str, ...]) -> str:
    return ":".join(str(row.get(col)) for col in key)


def _run_suite(context: EphemeralDataContext, suite: gx.ExpectationSuite, frame: pd.DataFrame,
               schema: TableSchema) -> dict:
    """Validate `frame` against `suite`, storing the result for Data Docs; return its summary entry."""
    suite = context.suites.add(suite)
    batch = context.data_sources.add_pandas(suite.name).add_dataframe_asset(suite.name)
    definition = context.validation_definitions.add(gx.ValidationDefinition(
        name=suite.name, data=batch.add_batch_definition_whole_dataframe("all"), suite=suite))
    result = definition.run(
        batch_parameters={"dataframe": frame},
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": list(schema.key),
                       "partial_unexpected_count": SAMPLE_KEYS},
    )
    entries = []
    for res in result.results:
        kwargs = res.expectation_config.kwargs
        detail = res.result or {}
        rows = detail.get("unexpected_index_list") or []
        entries.append({
            "expectation": res.expectation_config.type,
            "column": kwargs.get("column") or ", ".join(kwargs.get("column_list") or []),
            "kwargs": {k: v for k, v in kwargs.items() if k in _SHOWN_KWARGS},
            "success": bool(res.success),
            "unexpected_count": int(detail.get("unexpected_count") or 0),
            "sample_keys": [_row_key(row, schema.key) for row in rows[:SAMPLE_KEYS]],
            "error": None if res.success else _error(res.exception_info),
        })
    return {"success": bool(result.success), "rows": len(frame), "key": ":".join(schema.key),
            "expectations": entries}


def _describe(kwargs: dict) -> str:
    if "min_value" in kwargs or "max_value" in kwargs:
        low, high = (kwargs.get(k) for k in ("min_value", "max_value"))
        return f"{'' if low is None else f'{low:g}'}..{'' if high is None else f'{high:g}'}"
    if "value_set" in kwargs:
        return "in {" + ",".join(map(str, kwargs["value_set"])) + "}"
    return f"/{kwargs['regex']}/" if "regex" in kwargs else ""


def failure_message(summary: dict) -> str:
    """One line per failed expectation, e.g. 'prepared_anime: expect_..._between(score, 1..10) failed
    for 2 rows: anime_id 5, 9'."""
    lines = []
    for name, suite in summary["suites"].items():
        for exp in suite["expectations"]:
            if exp["success"]:
                continue
            count = exp["unexpected_count"]
            args = ", ".join(a for a in (exp["column"], _describe(exp["kwargs"])) if a)
            line = f"{name}: {exp['expectation']}({args}) failed for {count} row{'' if count == 1 else 's'}"
            if exp["sample_keys"]:
                more = ", ..." if count > len(exp["sample_keys"]) else ""
                line += f": {suite['key']} {', '.join(exp['sample_keys'])}{more}"
            if exp["error"]:
                line += f" (error: {exp['error']})"
            lines.append(line)
    return "validation failed:\n" + "\n".join(lines)


def run_validate(prepare: PrepareParams, paths: Paths) -> dict:
    """Run all four suites, write summary.json and Data Docs, return the summary.

    Raises ValidationFailed (after writing both) when any suite fails. Schema problems (missing columns,
    nulls in non-nullable columns) are caught earlier by read_table and raise schema.SchemaError.
    """
    files = ArtifactPaths.of(paths)
    raw_dir = files.raw_dir
    raw_anime = read_table(RAW_ANIME, files.raw_anime)
    raw_chars = read_table(RAW_CHARACTERS, files.raw_characters)
    anime = read_table(PREPARED_ANIME, files.prepared_anime)
    chars = read_table(PREPARED_CHARACTERS, files.prepared_characters)

    docs_dir = files.data_docs
    shutil.rmtree(docs_dir, ignore_errors=True)  # only this run's results, never an accumulating history
    context = _context(docs_dir)
    suites = [
        raw_anime_suite(raw_anime),
        raw_characters_suite(raw_chars, raw_anime),
        prepared_anime_suite(anime, prepare.split_by, prepare.strip_source_credits),
        prepared_characters_suite(chars, anime, raw_dir, prepare.drop_characters_without_portrait),
    ]
    results = {suite.name: _run_suite(context, suite, frame, schema) for suite, frame, schema in suites}
    context.build_data_docs(site_names=[SITE_NAME])
    index = docs_dir / "index.html"
    summary = {
        "success": all(r["success"] for r in results.values()),
        "data_docs": str(index),
        "suites": results,
    }
    write_json(files.validation_summary, summary)
    offline = write_offline_report(summary, docs_dir / "offline.html")  # Data Docs need CDNs; this page does not
    failed = [name for name, r in results.items() if not r["success"]]
    log.info("validate: %d suites, %s; Data Docs at %s (offline: %s)", len(results),
             f"failed: {', '.join(failed)}" if failed else "all passed", index, offline)
    if failed:
        raise ValidationFailed(failure_message(summary), summary, index)
    return summary
