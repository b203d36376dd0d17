"""MLflow registry: log the trained model as a pitch-taking pyfunc, register it, and decide promotion.

A new version takes the `champion` alias only if it beats the current champion on the promotion metric
*on the same test split*; otherwise it is tagged `challenger` with the reason. A worse model never becomes
champion, and a model evaluated on a different split is never compared by its stored numbers alone.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from anipop.config import Params
from anipop.mlflow_runs import evaluation_runs
from anipop.model_card import render_model_card
from anipop.models import BASELINE
from anipop.tracking import TrackingUnavailable, data_hash, tracking_uri, use_experiment
from anipop.utils import git_commit, read_json, write_json, write_text

log = logging.getLogger(__name__)

CHAMPION = "champion"
# what the registry answers when there is simply no champion yet (no such model, or no such alias)
_NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})
LOWER_IS_BETTER = frozenset({"mse", "mae", "rmse_1_10"})


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def split_fingerprint(prepared_dir: str | Path) -> str:
    """A hash of the test ids: two versions are comparable by stored metrics only if this matches."""
    splits = read_json(Path(prepared_dir) / "splits.json")
    return hashlib.sha256(",".join(map(str, sorted(splits["test"]))).encode()).hexdigest()[:16]


def decide(metric: str, candidate: float, champion: float | None, champion_version: str | None) -> Decision:
    """Promote when there is no champion, or the candidate is strictly better on `metric`."""
    if champion is None:
        return Decision(True, f"no current champion; {metric}={candidate:.4f}")
    better = candidate < champion if metric in LOWER_IS_BETTER else candidate > champion
    relation = "beats" if better else "does not beat"
    return Decision(better, f"{metric}={candidate:.4f} {relation} champion v{champion_version} ({metric}={champion:.4f})")


def _champion_metric(client, name: str, metric: str, fingerprint: str, params: Params) -> tuple[float | None, str | None]:
    """The current champion's metric on this split: its tag when the split matches, else re-scored here."""
    from mlflow.exceptions import MlflowException

    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as err:
        if err.error_code in _NOT_FOUND:
            return None, None
        # anything else (a server that is down or failing) must not read as "no champion": that would promote
        raise TrackingUnavailable(f"MLflow tracking store {tracking_uri(params)}: cannot read the {CHAMPION} "
                                  f"of {name}: {str(err).splitlines()[0][:300]}") from err
    tags = champion.tags
    if tags.get("test_split") == fingerprint and f"test.{metric}" in tags:
        return float(tags[f"test.{metric}"]), str(champion.version)
    from anipop.predict import score_model_on_test_split

    log.info("registry: champion v%s was tested on another split; re-scoring it on this one", champion.version)
    rescored = score_model_on_test_split(f"models:/{name}@{CHAMPION}", params)
    return rescored[metric], str(champion.version)


def _withdraw(client, name: str, version: str) -> str:
    """Delete a version whose registration failed half-way; say what happened (the server may be down too)."""
    try:
        client.delete_model_version(name, version)
    except Exception as err:  # noqa: BLE001 - clean-up must not hide the original error
        log.error("registry: %s v%s is registered but incomplete and could not be deleted (%s); delete it with "
                  "MlflowClient().delete_model_version(%r, %r)", name, version, err, name, version)
        return f"v{version} left incomplete: delete it by hand"
    log.warning("registry: %s v%s withdrawn: its registration did not complete", name, version)
    return f"v{version} withdrawn"


def run_register(params: Params) -> dict:
    """Log + register the primary model; move `champion` only on improvement. Writes registration.json."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from anipop.predict import log_pitch_model

    cfg = params.registry
    reports = Path(params.paths.reports_dir)
    intervals = read_json(reports / "intervals.json")
    bundle_name = read_json(Path(params.paths.models_dir) / "train_report.json")["model"]
    metrics = {name: entry["value"] for name, entry in intervals["models"][bundle_name].items()}
    baseline = {name: entry["value"] for name, entry in intervals["models"][BASELINE].items()}
    fingerprint = split_fingerprint(params.paths.prepared_dir)
    use_experiment(params)
    client = MlflowClient(tracking_uri=tracking_uri(params))
    champion_value, champion_version = _champion_metric(client, cfg.model_name, cfg.promotion_metric, fingerprint, params)

    logged = evaluation_runs(reports)  # the evaluation's child run of the primary model, with its model logged
    primary = logged["children"].get(logged["primary"], {}) if logged else {}
    with (mlflow.start_run(run_id=primary["run_id"]) if primary.get("model_uri")
          else mlflow.start_run(run_name=f"register-{bundle_name}")) as run:
        model_uri = primary.get("model_uri") or log_pitch_model(params).model_uri  # registered below with its tags
        decision = decide(cfg.promotion_metric, metrics[cfg.promotion_metric], champion_value, champion_version)
        tags = {
            "git_commit": git_commit(), "data_hash": data_hash(params), "test_split": fingerprint,
            "model": bundle_name, "text_encoder": params.embed.text.model,
            "image_encoder": params.embed.image.model, "ablation": params.train.inputs,
            **{f"test.{k}": f"{v:.6f}" for k, v in metrics.items()},
            **{f"baseline.{k}": f"{v:.6f}" for k, v in baseline.items()},
            **({} if decision.promote else {"challenger": decision.reason}),
        }
        version = str(mlflow.register_model(model_uri, cfg.model_name,
                                            tags={k: str(v) for k, v in tags.items()}).version)
        try:  # the alias goes last: whatever fails before it withdraws the version, so none is half-registered
            card = render_model_card(params, version, intervals, bundle_name, decision.reason)
            mlflow.log_text(card, "model_card.md")
            client.update_model_version(cfg.model_name, version, description=card)
            mlflow.set_tags({"registered_version": version, "promoted": str(decision.promote)})
            if decision.promote:
                client.set_registered_model_alias(cfg.model_name, CHAMPION, version)
        except Exception as err:
            outcome = _withdraw(client, cfg.model_name, version)
            if isinstance(err, MlflowException):
                raise TrackingUnavailable(f"MLflow tracking store {tracking_uri(params)} failed while registering "
                                          f"{cfg.model_name} v{version} ({outcome}): "
                                          f"{str(err).splitlines()[0][:300]}") from err
            raise

    result = {"model_name": cfg.model_name, "version": version, "promoted": decision.promote,
              "reason": decision.reason, "metric": cfg.promotion_metric, "run_id": run.info.run_id}
    write_json(reports / "registration.json", result)
    write_text(reports / "model_card.md", card)
    status = "is now champion" if decision.promote else "stays challenger"
    print(f"{cfg.model_name} v{version} {status}: {decision.reason}")
    return result
