"""MLflow tracking: the store, the experiment (opened as a model-training one) and provenance helpers.

What the evaluation logs (a parent run, one child per input set and model) lives in anipop.evaluation.mlflow_runs.

Default store is local (sqlite `mlflow.db`, artifacts under `mlruns/`); MLFLOW_TRACKING_URI switches to a
team server without touching params.yaml.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import yaml

from anipop.core.config import Params
from anipop.core.utils import hash_files, redact

log = logging.getLogger(__name__)

# MLflow 3's UI opens an experiment on its GenAI overview (traces, tokens) unless this tag says otherwise;
# its model-training kind opens on the runs table. Values as in MLflow 3.17's UI: genai_development,
# custom_model_development, finetuning.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"


class TrackingUnavailable(ConnectionError):
    """The MLflow tracking store cannot be reached or answers with an error; the message names its URI.

    A ConnectionError, so the CLI prints it as one line and the Prefect flows retry it as transient.
    """


def tracking_uri(params: Params) -> str:
    """MLFLOW_TRACKING_URI when the user set it, else params.yaml's store. May hold credentials: show it only
    through `shown_tracking_uri`."""
    return os.environ.get("MLFLOW_TRACKING_URI") or params.mlflow.tracking_uri


def anchored_store(uri: str, root: Path) -> str:
    """A sqlite store given relative to a project, made absolute, so it means the same from any folder."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return f"sqlite:///{(Path(root) / uri.removeprefix('sqlite:///')).resolve()}"
    return uri


def shown_tracking_uri(params: Params) -> str:
    """The tracking URI as it may be printed, logged, stored or linked: credentials redacted."""
    return redact(tracking_uri(params))


def ui_base_url(params: Params) -> str:
    """Where the MLflow UI of this store answers: the tracking server itself when it is http(s), else
    `orchestration.mlflow_ui_url` (a local sqlite store has no UI until `mlflow ui` is started on it).
    Credentials redacted: it goes into links."""
    uri = tracking_uri(params)
    return redact(uri if uri.startswith(("http://", "https://")) else params.orchestration.mlflow_ui_url).rstrip("/")


def bound_requests(params: Params) -> None:
    """Make an unreachable tracking server fail fast instead of MLflow's default of minutes of retries.

    MLflow reads MLFLOW_HTTP_REQUEST_TIMEOUT and MLFLOW_HTTP_REQUEST_MAX_RETRIES per request; a value the
    user exported wins over params.yaml.
    """
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, round(params.mlflow.request_timeout_s))))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(params.mlflow.request_max_retries))
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bar per artifact read in step logs


def use_tracking_store(params: Params) -> None:
    """Point MLflow (runs and registry) at the configured store, leaving the environment as it was.

    mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI. Left there, the first store used in a process (a
    served retraining flow, a test session) would read as the user's choice and stick for every later params
    file; MLflow's own setting, which it consults first, is unaffected by restoring the variable.
    """
    import mlflow

    bound_requests(params)
    uri = tracking_uri(params)
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


def use_experiment(params: Params) -> str:
    """Point MLflow at the store and experiment; create the experiment with its artifact folder if new."""
    import mlflow
    from mlflow.exceptions import MlflowException

    use_tracking_store(params)
    try:  # the first request: an unreachable store fails here, before anything is logged or registered
        experiment = mlflow.get_experiment_by_name(params.mlflow.experiment)
        if experiment is None:
            location = params.mlflow.artifact_location
            if tracking_uri(params).startswith(("http://", "https://")):
                location = None  # a tracking server decides where artifacts go (its --artifacts-destination)
            elif "://" not in location:  # a local folder: absolute URI so runs from any cwd land in the same place
                location = Path(location).resolve().as_uri()
            experiment_id = mlflow.create_experiment(params.mlflow.experiment, artifact_location=location,
                                                     tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND})
        else:
            experiment_id = experiment.experiment_id
            rebase_moved_project(params, experiment.artifact_location)
            if EXPERIMENT_KIND_TAG not in experiment.tags:  # created before the tag, or by hand: never overrides
                mlflow.MlflowClient().set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
    except MlflowException as err:  # also a read-only store: "attempt to write a readonly database"
        raise TrackingUnavailable(f"MLflow tracking store {shown_tracking_uri(params)} is unreachable or failing "
                                  f"(nothing was logged): {redact(str(err).splitlines()[0][:300])}") from err
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def rebase_moved_project(params: Params, stored_location: str) -> None:
    """A project copied or moved elsewhere: re-base its local store's artifact locations onto the new folder.

    Why: MLflow stores absolute artifact URIs (file:///old/project/mlruns/...) in mlflow.db, so a copied project
    would read and write its artifacts in the original folder. When the store is a sqlite file given by a
    relative path and the experiment's folder is not the configured one but ends like it, every stored URI and
    path under the old folder is rewritten to the new one, once, in one transaction.
    """
    import sqlite3

    uri = tracking_uri(params)
    configured = params.mlflow.artifact_location
    if not uri.startswith("sqlite:///") or uri.startswith("sqlite:////") or "://" in configured:
        return  # a server, an absolute store path, or a remote artifact root: nothing project-relative
    new_root = Path(configured).resolve()
    if not stored_location.startswith("file://"):
        return
    old_root = Path(stored_location.removeprefix("file://"))
    if old_root == new_root or old_root.name != new_root.name or old_root.exists() and not new_root.exists():
        return
    pairs = [(old_root.as_uri(), new_root.as_uri()), (str(old_root), str(new_root))]
    with sqlite3.connect(uri.removeprefix("sqlite:///")) as db:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
            columns = [row[1] for row in db.execute(f'PRAGMA table_info("{table}")') if "CHAR" in row[2].upper()
                       or "TEXT" in row[2].upper()]
            for column in columns:
                for old, new in pairs:
                    db.execute(f'UPDATE "{table}" SET "{column}" = ? || substr("{column}", ?) '
                               f'WHERE substr("{column}", 1, ?) = ?', (new, len(old) + 1, len(old), old))
    log.info("MLflow store %s: artifact locations re-based from %s to %s (the project moved)", uri, old_root, new_root)


def flatten(payload: dict, prefix: str = "") -> dict[str, object]:
    """{'a': {'b': 1}} -> {'a.b': 1}: MLflow params and metrics are flat."""
    flat: dict[str, object] = {}
    for key, value in payload.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def data_hash(params: Params) -> str:
    """DVC's md5 of the prepared data (from the dvc.lock of the project holding it) when DVC ran the pipeline,
    else a content hash. The project is found from the prepared folder itself (its dvc.lock in a parent), so the
    hash is right from any working folder (the replay registers in-process for its workspace)."""
    prepared = Path(params.paths.prepared_dir)
    candidates = [(Path("dvc.lock"), prepared)] if not prepared.is_absolute() else []
    for root in prepared.parents if prepared.is_absolute() else ():
        if (root / "dvc.lock").exists():
            candidates.append((root / "dvc.lock", prepared.relative_to(root)))
            break
    for lock, relative in candidates:
        if not lock.exists():
            continue
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
        for out in stages.get("prepare", {}).get("outs", []):
            if out.get("path", "").rstrip("/") == str(relative).rstrip("/") and "md5" in out:
                return f"dvc:{out['md5']}"
    files = sorted(p for p in prepared.glob("*") if p.is_file())
    return f"md5:{hash_files(files)}" if files else "unknown"
