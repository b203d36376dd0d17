"""The drift step of every retraining (`anipop drift`): which anime are new to the champion, how they differ
from what it learned on, how it scores them, and whether that is drift.

It reads the registry (the champion and its recorded training anime), so it is a step of the retraining flow,
not a DVC stage: DVC cannot see the registry, and a stage whose answer changes with it would look up to date
when it is not. Its report (reports/drift.json, reports/drift/index.html) is logged to the retraining's MLflow
run and published on its Prefect run.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from anipop.core.config import Params
from anipop.evaluation.live_metrics import live_metrics
from anipop.monitoring.drift import (
    Comparison,
    decide_drift,
    evidently_reports,
    prepared_anime,
    report_paths,
    summarise,
    write_drift,
    write_html,
)
from anipop.serving.scoring import served_scores

log = logging.getLogger(__name__)


def _sample(rows: pd.DataFrame, limit: int, seed: int) -> pd.DataFrame:
    return rows if len(rows) <= limit else rows.sample(limit, random_state=seed).sort_values("anime_id")


def comparison(params: Params) -> tuple[Comparison | None, dict]:
    """The champion's training anime and the anime new to it, or None with the reason there is nothing to compare."""
    from mlflow import MlflowClient

    from anipop.registry.register import current_champion, reference_ids
    from anipop.tracking import tracking_uri, use_tracking_store

    use_tracking_store(params)
    name = params.registry.model_name
    client = MlflowClient(tracking_uri=tracking_uri(params), registry_uri=tracking_uri(params))
    champion = current_champion(client, name, params)
    anime = prepared_anime(params)
    if champion is None:
        return None, {"status": "no_champion", "new_anime": len(anime),
                      "reasons": [f"{name} has no champion yet: the first training"]}
    ids = reference_ids(client, champion.run_id)
    version = str(champion.version)
    if not ids:
        return None, {"status": "no_reference", "champion_version": version,
                      "reasons": [f"champion v{version} has no recorded training anime (registered before they were "
                                  f"kept): nothing to compare; the next registration records them"]}
    known = {i for split in ids.values() for i in split}
    seen = set(ids.get("train", [])) | set(ids.get("val", []))
    current = anime[~anime["anime_id"].astype(int).isin(known)]
    reference = anime[anime["anime_id"].astype(int).isin(seen)]
    test = {key.removeprefix("test."): float(value) for key, value in champion.tags.items()
            if key.startswith("test.")}
    base = {"champion_version": version, "reference_anime": len(reference), "new_anime": len(current),
            "champion_data_as_of": champion.tags.get("as_of") or None}
    if current.empty:
        return None, {**base, "status": "no_new_data",
                      "reasons": [f"no anime new to champion v{version} (its {len(known)} anime are all there is)"]}
    return Comparison(reference=reference, current=current, champion_version=version, champion_test=test), base


def run_drift(params: Params) -> dict:
    """Compare, decide, write reports/drift.json and the HTML report; return the summary."""
    from anipop.serving.scoring import anime_pitches

    cfg = params.drift
    compared, base = comparison(params)
    if compared is None:
        result = {**base, "drift": base["status"] == "no_champion", "live": None}
        write_drift(params, result)
        log.info("drift: %s", "; ".join(result["reasons"]))
        return result
    uri = f"models:/{params.registry.model_name}/{compared.champion_version}"
    current = _sample(compared.current, cfg.max_new_rows, params.seed)
    reference_sample = _sample(compared.reference, cfg.prediction_rows, params.seed)
    current_predicted = served_scores(uri, anime_pitches(params, current), params.paths)
    reference_predicted = served_scores(uri, anime_pitches(params, reference_sample), params.paths)
    live = None
    if len(current) >= cfg.min_new_anime:
        live = {"anime": len(current), **live_metrics(current["score"].to_numpy(float), {"": current_predicted},
                                                      params.evaluate.bootstrap_samples, params.evaluate.confidence,
                                                      params.seed)[""]}
    columns, embedding, used = evidently_reports(
        params, Comparison(_sample(compared.reference, cfg.max_reference_rows, params.seed), current,
                           compared.champion_version, compared.champion_test),
        (reference_predicted, current_predicted))
    summary = summarise(columns, embedding)
    drift, reasons = decide_drift(summary, live, compared.champion_test, cfg.share, cfg.live_drop)
    if not reasons:
        share = summary["drifted_columns"]
        reasons = [f"{base['new_anime']} anime new to champion v{compared.champion_version}; "
                   f"{share['share']:.0%} of the compared columns drifted (below drift.share {cfg.share:.0%})"
                   + ("" if live is None else f"; live Spearman {live['spearman']['value']:.3f} against test "
                                             f"{compared.champion_test.get('spearman', float('nan')):.3f}")]
    result = {**base, "status": "compared", "drift": drift, "reasons": reasons, **summary, "columns_used": used,
              "live": live, "champion_test": compared.champion_test,
              "predicted_score_mean": {"reference": float(np.mean(reference_predicted)),
                                       "new": float(np.mean(current_predicted))}}
    write_drift(params, result)
    write_html(report_paths(params)[1], columns, embedding)
    log.info("drift: %s", "; ".join(reasons))
    return result


def log_drift(params: Params, run_id: str) -> None:
    """Attach reports/drift.json and the HTML report to an MLflow run (the retraining's evaluation run)."""
    from mlflow import MlflowClient

    from anipop.tracking import tracking_uri

    summary, folder = report_paths(params)
    client = MlflowClient(tracking_uri=tracking_uri(params))
    if summary.exists():
        client.log_artifact(run_id, str(summary), "drift")
    if folder.is_dir():
        client.log_artifacts(run_id, str(folder), "drift/html")
