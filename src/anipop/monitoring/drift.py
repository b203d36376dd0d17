"""Drift: the data the champion was trained on against the anime that arrived since, measured by Evidently.

Why: a champion trained before a shift (anime first aired from 2018 average 6.87 on MAL against 6.57 before)
keeps answering as if nothing moved. Every retraining compares, per column, the champion's training anime
(its registered reference ids) with the prepared anime it never knew: each metadata field (list fields such as
studios as the distribution of their values), the first-air year (reported, not counted: new anime are newer by
definition), synopsis length, the synopsis embedding, and the champion's own predicted score. Where those new
anime already have scores, the champion's live metrics stand beside its test metrics. `drift.share` of drifted
columns, or a live Spearman `drift.live_drop` below the test one, is drift: with `retrain.trigger: drift` the
retraining flow then retrains, and says why.

Evidently computes every distance and draws the HTML; this module only shapes the tables and decides.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from anipop.core.artifacts import ArtifactPaths, load_embeddings
from anipop.core.config import Params
from anipop.core.input_kinds import LIST_FIELDS, SINGLE_FIELDS, TEXT_KIND
from anipop.core.utils import write_json
from anipop.data.schema import PREPARED_ANIME, read_table

log = logging.getLogger(__name__)

YEAR, WORDS, PREDICTED = "first_air_year", "synopsis_words", "predicted_score"
NUMERIC_COLUMNS = (YEAR, WORDS, PREDICTED)
NOT_COUNTED = (YEAR,)  # reported, never part of the drift share: the new anime are newer by construction
EMBEDDING = "synopsis_embedding"
RARE = "(rare)"


def evidently():
    """Import Evidently (0.7), which still imports a helper that pandas 3 removed.

    The helper (`pandas.core.dtypes.common.infer_dtype_from_object`) is used by one of Evidently's legacy column
    type *tests*, which anipop never runs; the drift metrics use pandas' public API. It is restored with its
    pandas 2 meaning (the dtype's scalar type) before the import, so nothing of pandas changes for anyone else.
    """
    import pandas.core.dtypes.common as common

    if not hasattr(common, "infer_dtype_from_object"):
        common.infer_dtype_from_object = lambda dtype: common.pandas_dtype(dtype).type
    os.environ.setdefault("DO_NOT_TRACK", "1")  # iterative-telemetry: no usage reports from a drift check
    import evidently as module

    return module


@dataclass(frozen=True)
class Comparison:
    """What one drift check compares: prepared rows of the champion's training anime and of the new anime."""

    reference: pd.DataFrame
    current: pd.DataFrame
    champion_version: str | None
    champion_test: dict[str, float]


def _values(rows: pd.DataFrame, field: str) -> list[str]:
    """Every value of a metadata field over `rows`: one entry per anime and value for list fields."""
    present = rows[field].dropna().astype(str)
    if field in LIST_FIELDS:
        return [value.strip() for text in present for value in text.split(",") if value.strip()]
    return present.str.strip().tolist()


def column_frames(reference: pd.DataFrame, current: pd.DataFrame, predicted: tuple[np.ndarray, np.ndarray],
                  min_value_count: int) -> tuple[pd.DataFrame, pd.DataFrame, list[str], list[str]]:
    """(reference frame, current frame, numerical columns, categorical columns) for Evidently.

    Columns have different lengths (a list field has one entry per anime and value; the predicted score is a
    sample): each is padded with missing values, which Evidently's column drift leaves out, so every column is
    compared as the distribution of its own values. A value seen fewer than min_value_count times in the reference
    (a studio with one show) is pooled as "(rare)", so a hundred one-show studios read as one category.
    """
    fields = [f for f in (*SINGLE_FIELDS, *LIST_FIELDS) if f in reference and f in current]

    def columns(rows: pd.DataFrame, scores: np.ndarray) -> dict[str, list]:
        from anipop.data.franchise import first_year

        return {YEAR: first_year(rows["premiered"]).dropna().astype(float).tolist(),
                WORDS: rows["synopsis"].astype(str).str.split().str.len().astype(float).tolist(),
                PREDICTED: [float(v) for v in scores],
                **{field: _values(rows, field) for field in fields}}

    reference_columns, current_columns = columns(reference, predicted[0]), columns(current, predicted[1])
    for field in fields:
        counts = pd.Series(reference_columns[field]).value_counts()
        common = set(counts[counts >= min_value_count].index)
        for table in (reference_columns, current_columns):
            table[field] = [value if value in common else RARE for value in table[field]]
    numerical = [c for c in NUMERIC_COLUMNS if reference_columns[c] and current_columns[c]]
    categorical = [c for c in fields if reference_columns[c] and current_columns[c]]
    used = [*numerical, *categorical]

    def padded(table: dict[str, list]) -> pd.DataFrame:
        length = max(len(table[c]) for c in used)
        return pd.DataFrame({c: pd.Series(table[c] + [None] * (length - len(table[c])),
                                          dtype="float64" if c in numerical else "object") for c in used})

    return padded(reference_columns), padded(current_columns), numerical, categorical


def _embedding_rows(embeddings_dir: Path, rows: pd.DataFrame, limit: int, seed: int) -> pd.DataFrame:
    ids, matrix = load_embeddings(embeddings_dir, TEXT_KIND)
    position = {str(anime_id): i for i, anime_id in enumerate(ids)}
    wanted = [position[str(a)] for a in rows["anime_id"] if str(a) in position]
    if len(wanted) > limit:
        wanted = sorted(np.random.default_rng(seed).choice(wanted, limit, replace=False).tolist())
    return pd.DataFrame(matrix[wanted], columns=[f"e{k}" for k in range(matrix.shape[1])])


def evidently_reports(params: Params, comparison: Comparison, predicted: tuple[np.ndarray, np.ndarray]):
    """(column snapshot, embedding snapshot or None): Evidently's reports on the two samples."""
    evidently()
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import DriftedColumnsCount, EmbeddingsDrift, ValueDrift

    cfg = params.drift
    reference, current, numerical, categorical = column_frames(comparison.reference, comparison.current, predicted,
                                                               cfg.min_value_count)
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    counted = [c for c in (*numerical, *categorical) if c not in NOT_COUNTED]
    # method None: Evidently picks by sample size (a statistical test up to 1,000 reference rows, a distance above)
    options = {"method": cfg.method, "threshold": cfg.threshold}
    metrics = [DriftedColumnsCount(columns=counted, drift_share=cfg.share, **options),
               *[ValueDrift(column=c, **options) for c in (*numerical, *categorical)]]
    columns = Report(metrics, include_tests=True).run(Dataset.from_pandas(current, data_definition=definition),
                                                      Dataset.from_pandas(reference, data_definition=definition))
    paths = ArtifactPaths.of(params.paths)
    seed = params.seed
    reference_vectors = _embedding_rows(paths.embeddings_dir, comparison.reference, cfg.max_reference_rows, seed)
    current_vectors = _embedding_rows(paths.embeddings_dir, comparison.current, cfg.max_reference_rows, seed)
    embedding = None
    if len(reference_vectors) >= cfg.min_new_anime and len(current_vectors) >= cfg.min_new_anime:
        vectors = DataDefinition(numerical_columns=list(reference_vectors.columns),
                                 embeddings={EMBEDDING: list(reference_vectors.columns)})
        embedding = Report([EmbeddingsDrift(embeddings_name=EMBEDDING)]).run(
            Dataset.from_pandas(current_vectors, data_definition=vectors),
            Dataset.from_pandas(reference_vectors, data_definition=vectors))
    return columns, embedding, {"numerical": numerical, "categorical": categorical, "counted": counted}


def summarise(columns_snapshot, embedding_snapshot) -> dict:
    """The drift figures of Evidently's snapshots: the share of drifted columns, and each column's method, score
    and verdict (Evidently's own test of that column: a p-value under, or a distance over, the method's threshold)."""
    payload = columns_snapshot.dict()
    verdicts = {test["metric_config"]["metric_id"]: test["status"] == "FAIL" for test in payload.get("tests", [])
                if test["metric_config"]["params"]["type"].endswith("ValueDrift")}
    share, per_column = None, {}
    for metric in payload["metrics"]:
        config = metric["config"]
        if config["type"].endswith("DriftedColumnsCount"):
            share = {"count": int(metric["value"]["count"]), "share": float(metric["value"]["share"])}
        elif config["type"].endswith("ValueDrift"):
            per_column[config["column"]] = {"method": config["method"], "score": round(float(metric["value"]), 4),
                                            "threshold": config.get("threshold"),
                                            "drifted": bool(verdicts.get(metric["id"], False))}
    embedding = None
    if embedding_snapshot is not None:
        value = float(embedding_snapshot.dict()["metrics"][0]["value"])
        # Evidently's default embedding method: a classifier told to separate the two samples; its ROC AUC is the
        # score, and above 0.55 the samples are told apart (drift)
        embedding = {"method": "model (ROC AUC of a classifier separating the samples)", "score": round(value, 4),
                     "drifted": value > 0.55}
    return {"drifted_columns": share, "columns": per_column, "synopsis_embedding": embedding}


def write_html(folder: Path, columns_snapshot, embedding_snapshot) -> Path:
    """Evidently's two reports, and an index page that shows both (the file a user opens)."""
    folder.mkdir(parents=True, exist_ok=True)
    columns_snapshot.save_html(str(folder / "columns.html"))
    parts = ['<iframe src="columns.html" title="columns" style="width:100%;height:70vh;border:0"></iframe>']
    if embedding_snapshot is not None:
        embedding_snapshot.save_html(str(folder / "embedding.html"))
        parts.append('<iframe src="embedding.html" title="synopsis embedding" '
                     'style="width:100%;height:60vh;border:0"></iframe>')
    index = folder / "index.html"
    index.write_text("<!doctype html><meta charset=utf-8><title>anipop drift</title>"
                     "<h1>Drift: the champion's training anime against the anime that arrived since</h1>"
                     "<p>Summary and decision: <code>drift.json</code> beside this folder.</p>"
                     + "".join(parts), encoding="utf-8")
    return index


def decide_drift(summary: dict, live: dict | None, champion_test: dict[str, float], share: float,
                 live_drop: float) -> tuple[bool, list[str]]:
    """Whether the figures are drift under params (`drift.share`, `drift.live_drop`), and the reasons."""
    reasons = []
    drifted = summary.get("drifted_columns")
    if drifted and drifted["share"] >= share:
        names = [c for c, v in summary["columns"].items() if v["drifted"] and c not in NOT_COUNTED]
        reasons.append(f"{drifted['share']:.0%} of the compared columns drifted (>= drift.share {share:.0%}): "
                       f"{', '.join(names)}")
    if live and "spearman" in champion_test:
        drop = champion_test["spearman"] - live["spearman"]["value"]
        if drop >= live_drop:
            reasons.append(f"the champion's Spearman on {live['anime']} newly scored anime is "
                           f"{live['spearman']['value']:.3f}, {drop:.3f} below its test {champion_test['spearman']:.3f} "
                           f"(>= drift.live_drop {live_drop})")
    return bool(reasons), reasons


def report_paths(params: Params) -> tuple[Path, Path]:
    """reports/drift.json and the folder of its HTML report."""
    reports = ArtifactPaths.of(params.paths).reports_dir
    return reports / "drift.json", reports / "drift"


def write_drift(params: Params, result: dict) -> None:
    write_json(report_paths(params)[0], result)


def prepared_anime(params: Params) -> pd.DataFrame:
    return read_table(PREPARED_ANIME, ArtifactPaths.of(params.paths).prepared_anime)
