"""Prefect plumbing for the flows in flows/: which steps a rerun may skip, retries, task runner, artifacts.

Why a step cache keyed on dvc.yaml: `dvc repro` and the Prefect flow run the same step functions, so they
should skip a step for the same reasons. A step's cache key is what DVC compares: the values of the params
the stage declares, the content of its deps (data and code) and the paths of its outs, read from dvc.yaml
itself, so a stage that gains a dep or a param changes both pipelines at once and nothing is listed twice.
Results are persisted under `orchestration.prefect_dir` (project-local), so the cache outlives the process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prefect.cache_policies import INPUTS, NO_CACHE, CachePolicy
from prefect.task_runners import ThreadPoolTaskRunner

from anipop.config import OrchestrationParams, Params
from anipop.utils import hash_files

log = logging.getLogger(__name__)

DVC_FILE = Path("dvc.yaml")  # relative to the project root, the folder every anipop command runs from
RETRIED_STEPS = ("evaluate", "register")  # they talk to the MLflow tracking server; ingest too when online
# Errors that a retry cannot fix: bad config, bad data, missing files. Anything else (connection resets,
# timeouts, 5xx from MLflow or Jikan) is worth another try.
PERMANENT_ERRORS = (ValueError, KeyError, TypeError, AttributeError, NotImplementedError, FileNotFoundError,
                    PermissionError, ImportError)
_TEMPLATE = re.compile(r"\$\{\s*([\w.]+)\s*\}")


@dataclass(frozen=True)
class StepSpec:
    """One dvc.yaml stage with its templates resolved: the params keys, deps and outs DVC tracks."""

    name: str
    params: tuple[str, ...]
    deps: tuple[Path, ...]
    outs: tuple[Path, ...]


def _lookup(values: dict, dotted: str, where: str) -> Any:
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ValueError(f"{where}: {dotted!r} is not a key of params.yaml")
        node = node[part]
    return node


def _entry_path(entry: str | dict) -> str:
    """dvc.yaml lists a dep/out as 'path' or {'path': {options}}."""
    return entry if isinstance(entry, str) else next(iter(entry))


def read_stages(params: Params, dvc_file: Path = DVC_FILE) -> dict[str, StepSpec]:
    """The stages of dvc.yaml, `${key}` templates filled from `params`, relative paths anchored at its folder."""
    try:
        stages = (yaml.safe_load(dvc_file.read_text(encoding="utf-8")) or {}).get("stages", {})
    except FileNotFoundError:
        log.warning("%s not found: steps will not be cached (run flows from the project root)", dvc_file)
        return {}
    values = params.model_dump(mode="json")
    root = dvc_file.parent

    def resolve(text: str, where: str) -> Path:
        path = Path(_TEMPLATE.sub(lambda m: str(_lookup(values, m.group(1), where)), text))
        return path if path.is_absolute() else root / path

    specs = {}
    for name, stage in stages.items():
        where = f"{dvc_file}: stage {name}"
        keys, extra_deps = [], []
        for entry in stage.get("params", []):
            if isinstance(entry, str):
                keys.append(entry)
            else:  # {file: [keys]}: another params file is tracked as a whole
                extra_deps += [resolve(file, where) for file in entry]
        outs = [resolve(_entry_path(e), where) for kind in ("outs", "metrics", "plots") for e in stage.get(kind, [])]
        specs[name] = StepSpec(
            name=name, params=tuple(keys),
            deps=tuple(resolve(_entry_path(e), where) for e in stage.get("deps", [])) + tuple(extra_deps),
            outs=tuple(outs))
    return specs


def content_hash(path: Path) -> str:
    """md5 of a file, or of every file under a folder (hidden temp files excluded); 'missing' if absent."""
    if path.is_file():
        return hash_files([path])
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")]
        return hash_files(files) if files else "empty"
    return "missing"


def step_key(spec: StepSpec, params: Params) -> str:
    """The cache key of a step: its params' values, its deps' content and its outs' paths."""
    values = params.model_dump(mode="json")
    payload = {
        "step": spec.name,
        "params": {key: _lookup(values, key, f"stage {spec.name}") for key in spec.params},
        "deps": {str(dep): content_hash(dep) for dep in spec.deps},
        "outs": sorted(str(out) for out in spec.outs),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(kw_only=True)  # keyword-only: CachePolicy's own fields come first positionally
class StepCache(CachePolicy):
    """Prefect cache policy: the step's dvc.yaml key, computed from the task's `params` argument."""

    step: str
    dvc_file: Path = field(default=DVC_FILE)

    def compute_key(self, task_ctx, inputs: dict[str, Any], flow_parameters: dict[str, Any],
                    **kwargs: Any) -> str | None:
        params = inputs.get("params")
        spec = read_stages(params, self.dvc_file).get(self.step) if isinstance(params, Params) else None
        return None if spec is None else step_key(spec, params)


def is_transient(error: BaseException) -> bool:
    return not isinstance(error, PERMANENT_ERRORS)


def retry_if_transient(task, task_run, state) -> bool:
    """Prefect retry_condition_fn: retry a network hiccup, not a bad config or bad data."""
    error = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    return not isinstance(error, BaseException) or is_transient(error)


def results_dir(params: Params) -> Path:
    return (Path(params.orchestration.prefect_dir) / "results").resolve()


def retried_steps(params: Params) -> tuple[str, ...]:
    return RETRIED_STEPS + (("ingest",) if params.ingest.source != "local" else ())


def step_options(step: str, params: Params, refresh: bool = False, dvc_file: Path = DVC_FILE) -> dict[str, Any]:
    """Task options for one step (`task.with_options(**step_options(...))`): cache, result storage, retries.

    A step is cached on its dvc.yaml key plus any task input other than `params` (register: the MLflow run
    it registers). It is recomputed when `refresh` is set or when one of its outs is missing (deleted data
    must not be "restored" from a cache that only holds the step's report). Online ingest is never cached:
    its input is the network, which no hash describes.
    """
    cfg = params.orchestration
    spec = read_stages(params, dvc_file).get(step)
    options: dict[str, Any] = {"persist_result": True, "result_storage": results_dir(params)}
    if step == "ingest" and params.ingest.source != "local":
        options["cache_policy"] = NO_CACHE
    elif spec is not None:
        missing = [str(out) for out in spec.outs if not out.exists()]
        if missing and not refresh:
            log.info("%s: reruns, its outputs are missing (%s)", step, ", ".join(missing[:3]))
        options["cache_policy"] = INPUTS - "params" + StepCache(step=step, dvc_file=dvc_file)
        options["refresh_cache"] = refresh or bool(missing)
    else:
        options["cache_policy"] = INPUTS - "params"
        options["refresh_cache"] = refresh
    if step in retried_steps(params):
        delays = [cfg.retry_delays_s[min(i, len(cfg.retry_delays_s) - 1)] for i in range(cfg.retries)]
        options.update(retries=cfg.retries, retry_delay_seconds=delays or 0, retry_condition_fn=retry_if_transient)
    return options


def task_runner(cfg: OrchestrationParams):
    """The task runner `orchestration.task_runner` names: a thread pool, or Dask through prefect-dask."""
    if cfg.task_runner == "thread":
        return ThreadPoolTaskRunner(max_workers=cfg.max_workers)
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as err:
        raise RuntimeError("params.yaml orchestration.task_runner=dask needs prefect-dask "
                           "(pip install prefect-dask)") from err
    if cfg.dask_address:
        return DaskTaskRunner(address=cfg.dask_address)
    cluster = {"n_workers": cfg.max_workers, "threads_per_worker": 1, "processes": cfg.dask_processes,
               "dashboard_address": None}
    if cfg.dask_processes:  # worker processes talk over TCP: loopback only; threads use in-process comms
        cluster["host"] = "127.0.0.1"
        # Workers report task runs to this run's API; without it each would start its own temporary server.
        cluster["env"] = {"PREFECT_API_URL": _current_api_url()}
    return DaskTaskRunner(cluster_kwargs=cluster)


def _current_api_url() -> str:
    """The API this process talks to: PREFECT_API_URL, or the temporary server of an ephemeral run."""
    from prefect.client.orchestration import get_client

    return str(get_client(sync_client=True).api_url).rstrip("/")


@contextlib.contextmanager
def step_logs_to_prefect() -> Iterator[None]:
    """Send the anipop.* step logs to the Prefect run's log (the UI) while a flow runs, at INFO.

    Same handlers as Prefect's PREFECT_LOGGING_EXTRA_LOGGERS, but only for the flow's duration: outside a
    run they would warn about a missing run context on every log line.
    """
    logger = logging.getLogger("anipop")
    handlers = [h for h in logging.getLogger("prefect.extra").handlers if h not in logger.handlers]
    previous_level = logger.level
    for handler in handlers:
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
        logger.setLevel(previous_level)


def mlflow_run_link(params: Params, run_id: str) -> str:
    """The MLflow UI page of a run: the tracking server itself when it is http(s), else `mlflow_ui_url`
    (a local sqlite store has no UI until `mlflow ui` is started on it)."""
    from mlflow.tracking import MlflowClient

    from anipop.tracking import tracking_uri
    from anipop.utils import redact

    uri = tracking_uri(params)
    base = uri if uri.startswith(("http://", "https://")) else params.orchestration.mlflow_ui_url
    experiment_id = MlflowClient(tracking_uri=uri).get_run(run_id).info.experiment_id
    # MLflow 3.17's UI picks GenAI or model-training pages from this parameter (else the browser's last choice);
    # a link carries no password
    return redact(f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning")


def publish_artifacts(params: Params, evaluation: dict) -> None:
    """Flow-run artifacts for the Prefect UI: the metrics table and a link to the evaluation's parent MLflow run."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact

    from anipop.tracking import shown_tracking_uri

    table = Path(params.paths.reports_dir) / "metrics.md"
    create_markdown_artifact(markdown=table.read_text(encoding="utf-8"), key="anipop-metrics",
                             description=f"Test-split metrics ({table})")
    run_id = evaluation.get("mlflow_run_id")
    if run_id:
        uri = shown_tracking_uri(params)
        hint = "" if uri.startswith("http") else f"; open it with `mlflow ui --backend-store-uri {uri}`"
        create_link_artifact(link=mlflow_run_link(params, run_id), link_text=f"MLflow pipeline run {run_id}",
                             key="anipop-mlflow-run", description=f"The evaluation's parent run, one child run per "
                                                                  f"input set and model, in {uri}{hint}")


def publish_validation_failure(error) -> str:
    """A markdown artifact naming the failed checks and the Data Docs; returns the flow's failure message."""
    from prefect.artifacts import create_markdown_artifact

    docs = Path(error.data_docs)
    message = f"validation failed: {error}. Data Docs: {docs}"
    create_markdown_artifact(markdown=f"## Validation failed\n\n{error}\n\nData Docs: [{docs}]({docs.resolve().as_uri()})",
                             key="anipop-validation", description="Great Expectations checks that failed")
    return message


def serve_retrain(flow, params_file: str | Path, params: Params, cron: str | None = None) -> None:
    """Serve the retraining flow as a deployment on the `orchestration.schedule` cron (blocks until stopped).

    The deployment's runs read `params_file`; runs execute in subprocesses of this process, from its cwd.
    """
    from prefect.schedules import Cron

    schedule = params.orchestration.schedule
    flow.serve(name=schedule.deployment, schedules=[Cron(cron or schedule.cron, timezone=schedule.timezone)],
               parameters={"params_file": str(params_file)}, tags=["anipop", "retrain"],
               description="Re-ingest, validate, retrain and evaluate; the registry decides promotion.")


def load_retrain_flow(project_root: Path = Path(".")):
    """flows/retrain.py's flow, for `anipop schedule` (the flows live beside the package, not inside it)."""
    from prefect.flows import load_flow_from_entrypoint

    entrypoint = project_root / "flows" / "retrain.py"
    if not entrypoint.exists():
        raise FileNotFoundError(f"{entrypoint}: not found (run `anipop schedule` from the project root)")
    return load_flow_from_entrypoint(f"{entrypoint}:retrain")
