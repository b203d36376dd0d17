"""Prefect plumbing for the flows in flows/: each task runs one DVC stage; retries, task runner, artifacts.

Why Prefect runs DVC stages instead of the step functions: DVC is the single judge of what is stale. A task
runs `dvc repro --single-item <stage>`, so DVC compares the stage's deps, params and outs with dvc.lock exactly
as `dvc repro` does, skips it when nothing changed, and records what it ran in dvc.lock. A flow run and a
`dvc repro` therefore leave the same workspace, `dvc status` is clean after either, and the stage list, its
deps and its params are written once, in dvc.yaml. What Prefect adds: scheduling, retries of transient
failures (a stage whose command exits with TRANSIENT_EXIT), the embedding shards on a task runner (Dask), logs
and artifacts in its UI.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prefect.task_runners import ThreadPoolTaskRunner

from anipop.core.config import OrchestrationParams, Params
from anipop.core.utils import TRANSIENT_EXIT, redact

log = logging.getLogger(__name__)

_EXIT_CODE = re.compile(r"exited with (-?\d+)")
_ANIPOP_MESSAGE = ("error:", "validation failed:", "Data Docs:")  # the one-line messages `anipop` prints


@dataclass(frozen=True)
class StageRun:
    """What one `dvc repro --single-item <stage>` did: ran the command, or found the stage up to date."""

    stage: str
    ran: bool


class StageFailed(RuntimeError):
    """A stage's command failed; `transient` when it exited with TRANSIENT_EXIT (worth a retry)."""

    def __init__(self, stage: str, message: str, exit_code: int | None) -> None:
        super().__init__(f"stage {stage} failed: {message}")
        self.stage, self.message, self.exit_code = stage, message, exit_code

    @property
    def transient(self) -> bool:
        return self.exit_code == TRANSIENT_EXIT


def project_problem(project: Path) -> str | None:
    """Why `project` cannot be run (no dvc.yaml, a missing or invalid params.yaml) in one line, or None.

    The flows' command lines check this before Prefect starts, so a mistyped --project is one line, not a
    temporary server's start-up and shutdown around a traceback."""
    from anipop.core.config import ConfigError

    if not (Path(project) / "dvc.yaml").is_file():
        return f"{Path(project) / 'dvc.yaml'}: not found (--project names the folder holding dvc.yaml and params.yaml)"
    try:
        project_params(Path(project))
    except ConfigError as err:
        return str(err)
    return None


def project_params(project: Path) -> Params:
    """The project's params.yaml (the one its DVC stages read), with its folders and a relative sqlite MLflow
    store anchored at the project, so in-process work of the flow (the embedding shards, the drift report's
    logging, the replay's registrations) reads and writes where the stages do, whatever the cwd is."""
    from anipop.core.config import load_params

    params = load_params(Path(project) / "params.yaml")

    def anchored(path: Path | str) -> Path:
        return Path(path) if Path(path).is_absolute() else Path(project) / path

    from anipop.tracking import anchored_store

    paths = params.paths.model_copy(update={k: anchored(v) for k, v in params.paths.model_dump().items()})
    orchestration = params.orchestration.model_copy(update={"prefect_dir": anchored(params.orchestration.prefect_dir)})
    location = params.mlflow.artifact_location
    mlflow = params.mlflow.model_copy(update={
        "tracking_uri": anchored_store(params.mlflow.tracking_uri, Path(project)),
        "artifact_location": location if "://" in location else str(anchored(location))})
    return params.model_copy(update={"paths": paths, "orchestration": orchestration, "mlflow": mlflow})


def _stage_graph(project: Path):
    """DVC's own graph of the project's stages; its edges point from a stage to the stages it depends on."""
    from dvc.repo import Repo

    with Repo(str(project)) as repo:
        return repo.index.graph


def pipeline_stages(project: Path) -> list[str]:
    """dvc.yaml's stages in the order DVC runs them (dependencies first)."""
    import networkx as nx

    return [stage.name for stage in reversed(list(nx.topological_sort(_stage_graph(project))))]


def stage_and_its_ancestors(project: Path, name: str) -> set[str]:
    """Stage `name` and every stage it depends on, directly or not (what running it may need)."""
    import networkx as nx

    graph = _stage_graph(project)
    stage = next(node for node in graph if getattr(node, "name", None) == name)
    return {name} | {node.name for node in nx.descendants(graph, stage)}


def stage_is_stale(project: Path, stage: str) -> bool:
    """True when `dvc status` reports a changed dep, param or out of this one stage."""
    from dvc.repo import Repo

    with Repo(str(project)) as repo:
        return bool(repo.status(targets=[stage]))


def _environment() -> dict[str, str]:
    """The stage commands (`anipop <step>`) come from this interpreter's environment, venv active or not."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "TOKENIZERS_PARALLELISM": os.environ.get("TOKENIZERS_PARALLELISM", "false")}


def _streamed(command: list[str], project: Path, logger: logging.Logger) -> tuple[list[str], int]:
    """Run `command` in `project`, each output line redacted and sent to `logger` as it comes; (lines, exit code)."""
    process = subprocess.Popen(command, cwd=project, env=_environment(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        line = redact(line.rstrip())
        lines.append(line)
        if line:
            logger.info("%s", line)
    return lines, process.wait()


def run_stage(project: Path, stage: str, force: bool = False, logger: logging.Logger | None = None) -> StageRun:
    """`dvc repro --single-item [--force] <stage>` in `project`, its output streamed to `logger` line by line."""
    logger = logger or log
    command = [sys.executable, "-m", "dvc", "repro", "--single-item", *(["--force"] if force else []), stage]
    lines, code = _streamed(command, project, logger)
    if code != 0:
        raise _failure(stage, lines)
    return StageRun(stage=stage, ran=any(f"Running stage '{stage}'" in line for line in lines))


def _failure(stage: str, lines: list[str]) -> StageFailed:
    """The stage's own message (from `anipop`'s first `error:`/`validation failed:` line up to DVC's ERROR line,
    so multi-line messages such as the failed checks keep their details), else DVC's last ERROR line, and the
    command's exit code."""
    codes = [int(match.group(1)) for line in lines for match in [_EXIT_CODE.search(line)] if match]
    start = next((i for i, line in enumerate(lines) if line.startswith(_ANIPOP_MESSAGE)), None)
    messages: list[str] = []
    if start is not None:
        for line in lines[start:]:
            if line.startswith("ERROR"):
                break
            if line:
                messages.append(line)
    errors = [line for line in lines if line.startswith("ERROR")]
    message = "\n".join(messages) or (errors[-1] if errors else (lines[-1] if lines else "no output"))
    return StageFailed(stage, message, codes[-1] if codes else None)


def stale_stages(project: Path) -> list[str]:
    """The stages `dvc status` reports with a changed dep, param or out (in dvc.yaml's order)."""
    from dvc.repo import Repo

    with Repo(str(project)) as repo:
        stale = {key.split(":")[-1] for key in repo.status()}
    return [name for name in pipeline_stages(project) if name in stale]


def raw_data_version(project: Path, params: Params) -> str | None:
    """The md5 dvc.lock records for the ingest stage's output (the raw data), None before the first ingest.

    Why dvc.lock: DVC already hashes the raw folder after each ingest, so "did the source change?" is one
    comparison of what it recorded before and after the scheduled re-read.
    """
    import yaml

    lock = Path(project) / "dvc.lock"
    if not lock.exists():
        return None
    raw = str(Path(params.paths.raw_dir).relative_to(project) if Path(params.paths.raw_dir).is_absolute()
              else params.paths.raw_dir).rstrip("/")
    for out in ((yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {})
                .get("ingest", {}).get("outs", [])):
        if str(out.get("path", "")).rstrip("/") == raw:
            return out.get("md5")
    return None


def run_step(project: Path, step: str, logger: logging.Logger | None = None) -> None:
    """`anipop <step>` in `project` (a step that is not a DVC stage, such as the drift check), its output
    streamed to `logger`; StageFailed with the step's own message when it fails."""
    logger = logger or log
    lines, code = _streamed([sys.executable, "-m", "anipop.cli", step], project, logger)
    if code != 0:
        failure = _failure(step, [*lines, f"exited with {code}"])
        raise StageFailed(step, failure.message, code)


@dataclass(frozen=True)
class RetrainDecision:
    retrain: bool
    reason: str


def retrain_decision(trigger: str, data_changed: bool, stale: list[str], drift: dict) -> RetrainDecision:
    """Whether the scheduled run retrains, and why, from what changed and what the drift check found.

    new_data: new or changed data retrains; drift: only drift does. Either way a stale pipeline (changed code or
    params) is run, and a project without a champion trains its first one.
    """
    reasons = "; ".join(drift.get("reasons", []))
    if drift.get("status") == "no_champion":
        return RetrainDecision(True, reasons)
    later = [name for name in stale if name not in ("ingest", "prepare", "validate", "embed")]
    if not data_changed and not drift.get("new_anime"):
        if later:
            return RetrainDecision(True, f"no new data; stages {', '.join(later)} are stale (code or params changed)")
        return RetrainDecision(False, "no new data, no drift: nothing to retrain")
    if trigger == "drift" and not drift.get("drift"):
        if later and not data_changed:
            return RetrainDecision(True, f"stages {', '.join(later)} are stale (code or params changed); {reasons}")
        return RetrainDecision(False, f"new data, but no drift (retrain.trigger: drift): not retrained; {reasons}")
    why = "drift" if drift.get("drift") else "new data"
    return RetrainDecision(True, f"{why}: {reasons}" if reasons else why)


def retry_if_transient(task, task_run, state) -> bool:
    """Prefect retry_condition_fn: retry a stage that exited as transient (network), never bad data or config."""
    error = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    return isinstance(error, StageFailed) and error.transient


def retry_options(cfg: OrchestrationParams) -> dict:
    """Task options: `retries` attempts after the first, with the configured backoff (the last delay repeats)."""
    delays = [cfg.retry_delays_s[min(i, len(cfg.retry_delays_s) - 1)] for i in range(cfg.retries)]
    return {"retries": cfg.retries, "retry_delay_seconds": delays or 0, "retry_condition_fn": retry_if_transient}


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
    """Send the anipop.* logs (the shards' embed step) to the Prefect run's log (the UI) while a flow runs.

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
    """The MLflow UI page of a run (tracking.ui_base_url: the server, or `mlflow_ui_url` for a local store)."""
    from mlflow.tracking import MlflowClient

    from anipop.tracking import tracking_uri, ui_base_url

    experiment_id = MlflowClient(tracking_uri=tracking_uri(params)).get_run(run_id).info.experiment_id
    # MLflow 3.17's UI picks GenAI or model-training pages from this parameter (else the browser's last choice);
    # a link carries no password
    return f"{ui_base_url(params)}/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"


def publish_retrain_summary(params: Params, project: Path, decision: RetrainDecision, drift: dict | None,
                            ran: dict[str, bool]) -> None:
    """One markdown artifact on the retraining run: the decision and why, drift, live metrics, registration."""
    from prefect.artifacts import create_markdown_artifact

    from anipop.core.artifacts import ArtifactPaths
    from anipop.core.utils import read_json

    paths = ArtifactPaths.of(params.paths, project)
    lines = [f"## Retraining: {'retrained' if decision.retrain else 'not retrained'}", "", decision.reason, ""]
    if drift and drift.get("status") == "compared":
        share = drift["drifted_columns"]
        lines += [f"**Drift** ({drift['new_anime']} anime new to champion v{drift['champion_version']}, against its "
                  f"{drift['reference_anime']} training anime): {share['count']} of the counted columns drifted "
                  f"({share['share']:.0%}); drift: {drift['drift']}.", "",
                  "| column | method | score | drifted |", "|---|---|---|---|",
                  *[f"| {name} | {c['method']} | {c['score']:.3f} | {c['drifted']} |"
                    for name, c in drift["columns"].items()]]
        if drift.get("synopsis_embedding"):
            e = drift["synopsis_embedding"]
            lines.append(f"| synopsis_embedding | {e['method']} | {e['score']:.3f} | {e['drifted']} |")
        if drift.get("live"):
            live = drift["live"]
            lines += ["", f"**Live metrics** of champion v{drift['champion_version']} on {live['anime']} newly scored "
                          f"anime (test split in brackets): Spearman {live['spearman']['value']:.3f} "
                          f"[{drift['champion_test'].get('spearman', float('nan')):.3f}], R² {live['r2']['value']:.3f} "
                          f"[{drift['champion_test'].get('r2', float('nan')):.3f}], MAE {live['mae']['value']:.3f} points."]
        lines += ["", f"HTML report: `{(paths.reports_dir / 'drift' / 'index.html')}`"]
    if decision.retrain and paths.registration.exists():
        registration = read_json(paths.registration)
        status = "promoted to champion" if registration.get("promoted") else "kept as challenger"
        lines += ["", f"**Registration**: {registration.get('model_name')} v{registration.get('version')} "
                      f"{status}: {registration.get('reason')}"]
    lines += ["", "Stages: " + ", ".join(f"{name} ({'ran' if did else 'up to date'})" for name, did in ran.items())]
    create_markdown_artifact(markdown="\n".join(lines), key="anipop-retrain",
                             description="What this scheduled retraining decided, and why")


def publish_artifacts(params: Params, project: Path) -> str | None:
    """Flow-run artifacts for the Prefect UI: the metrics table and a link to the evaluation's parent MLflow
    run (read from the evaluate stage's outputs, which exist whether the stage ran now or earlier)."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact

    from anipop.core.artifacts import ArtifactPaths
    from anipop.core.utils import read_json
    from anipop.tracking import shown_tracking_uri

    paths = ArtifactPaths.of(params.paths, project)
    create_markdown_artifact(markdown=paths.metrics_table.read_text(encoding="utf-8"), key="anipop-metrics",
                             description=f"Test-split metrics ({paths.metrics_table})")
    run_id = read_json(paths.mlflow_runs).get("parent_run_id") if paths.mlflow_runs.exists() else None
    if run_id:
        uri = shown_tracking_uri(params)
        hint = "" if uri.startswith("http") else f"; open it with `mlflow ui --backend-store-uri {uri}`"
        create_link_artifact(link=mlflow_run_link(params, run_id), link_text=f"MLflow pipeline run {run_id}",
                             key="anipop-mlflow-run", description=f"The evaluation's parent run, one child run per "
                                                                  f"input set and model, in {uri}{hint}")
    return run_id


def publish_validation_failure(error: StageFailed) -> str:
    """A markdown artifact naming the failed checks and the Data Docs; returns the flow's failure message."""
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(markdown=f"## Validation failed\n\n```\n{error.message}\n```",
                             key="anipop-validation", description="Great Expectations checks that failed")
    return error.message


def prefect_server_problem() -> str | None:
    """Why a deployment cannot be served here (Prefect refuses on its temporary server), or None."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if url:
        return _unreachable(url)
    return ("serving the retraining deployment needs a Prefect server: start one with `prefect server start` "
            "and `export PREFECT_API_URL=http://127.0.0.1:4200/api` in this shell (see docs/retraining.md)")


def _unreachable(api_url: str, timeout_s: float = 10.0) -> str | None:
    """Why the Prefect server at `api_url` cannot be used (it does not answer its health check), or None."""
    import httpx

    try:
        response = httpx.get(f"{api_url.rstrip('/')}/health", timeout=timeout_s)
        if response.status_code == 200:
            return None
        reason = f"HTTP {response.status_code}"
    except httpx.HTTPError as err:
        reason = type(err).__name__
    return (f"the Prefect server at PREFECT_API_URL={redact(api_url)} does not answer ({reason}): start it with "
            f"`prefect server start`, or fix PREFECT_API_URL")


def serve_retrain(flow, project: Path, params: Params, cron: str | None = None) -> None:
    """Serve the retraining flow as a deployment on the `orchestration.schedule` cron (blocks until stopped).

    The deployment's runs run the DVC stages of `project`; they execute in subprocesses of this process.
    """
    from prefect.schedules import Cron

    schedule = params.orchestration.schedule
    logging.getLogger("httpx").setLevel(logging.WARNING)  # else one INFO line per poll of the server
    flow.serve(name=schedule.deployment, schedules=[Cron(cron or schedule.cron, timezone=schedule.timezone)],
               parameters={"project_dir": str(Path(project).resolve())}, tags=["anipop", "retrain"],
               description="Re-ingest, validate, retrain and evaluate; the registry decides promotion.")


def load_flow(project_root: Path, script: str, name: str):
    """A flow of flows/ (`anipop schedule`, `anipop replay`): the flows live beside the package, not inside it."""
    from prefect.flows import load_flow_from_entrypoint

    entrypoint = Path(project_root) / "flows" / script
    if not entrypoint.exists():
        raise FileNotFoundError(f"{entrypoint}: not found (run anipop from the project root)")
    return load_flow_from_entrypoint(f"{entrypoint}:{name}")


def load_retrain_flow(project_root: Path = Path(".")):
    """flows/retrain.py's flow, for `anipop schedule`."""
    return load_flow(project_root, "retrain.py", "retrain")
