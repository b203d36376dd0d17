"""The retraining replay: the scheduled retraining run year by year over the data's air dates.

Why: the question "does retraining help, and which promotion rule serves best?" can only be answered on shows that
did not exist when each model was trained. The data has first-air dates, so history is a test bench: at each step
the real retraining flow (the schedule's, with its DVC stages) runs on the data as of that date
(`ingest.as_of`), the registry decides as it would for real, and the champion that served is judged on the anime
that aired before the next step (anipop.monitoring.replay_eval).

Everything happens apart from the user's work: a DVC workspace of its own (`replay.workspace`, ignored by git),
registered models of its own (`<replay.model_name>-<policy>`) and an MLflow experiment of its own, in the user's
tracking store so the runs show in the same UI. The per-item embedding cache is the project's, so a step embeds
only the anime new to it. Side studies are switched off in the workspace (`replay.overrides`).

This module builds the workspace and keeps each step's snapshot; flows/replay.py drives the steps.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import yaml

from anipop.core.artifacts import ArtifactPaths
from anipop.core.config import Params, load_params, set_dotted
from anipop.core.utils import read_json, write_json
from anipop.data.schema import PREPARED_ANIME, read_table
from anipop.tracking import anchored_store

log = logging.getLogger(__name__)

WORKSPACE, STEPS = "workspace", "steps"
SNAPSHOT_ANIME = "anime.parquet"     # the step's prepared anime (its view of the data)
LIVE_PITCHES = "live_pitches.parquet"  # the anime that aired before the next step, as the pitches they were
LIVE_ANIME = "live_anime.parquet"    # ... and their ids, scores and whether their franchise is new
STEP_RESULT = "step.json"


@dataclass(frozen=True)
class ReplayPlan:
    """The steps' dates, the view after the last one, the policies and their registered models."""

    dates: tuple[date, ...]
    future: date
    policies: tuple[str, ...]
    model_prefix: str
    root: Path
    user_params: str  # the project's params.yaml as it was when the replay began: edits during a replay change nothing

    def model_name(self, policy: str) -> str:
        return f"{self.model_prefix}-{policy}"

    @property
    def workspace(self) -> Path:
        return self.root / WORKSPACE

    def step_dir(self, index: int) -> Path:
        return self.root / STEPS / f"{index:02d}-{self.dates[index].isoformat()}"


def add_months(day: date, months: int) -> date:
    """The same day `months` later (the month's last day when it is shorter)."""
    import calendar

    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def replay_plan(params: Params, project: Path) -> ReplayPlan:
    cfg = params.replay
    dates = [cfg.start]
    while add_months(dates[-1], cfg.every_months) <= cfg.end:
        dates.append(add_months(dates[-1], cfg.every_months))
    root = cfg.workspace if Path(cfg.workspace).is_absolute() else Path(project) / cfg.workspace
    # the retraining flow's own policy (registry.policy) first: it is the one the workspace's DVC stage registers
    # with, and the one the drift check's champion comes from
    own = params.registry.policy
    policies = (own, *[policy for policy in cfg.policies if policy != own])
    return ReplayPlan(dates=tuple(dates), future=add_months(dates[-1], cfg.every_months), policies=policies,
                      model_prefix=cfg.model_name, root=Path(root),
                      user_params=(Path(project) / "params.yaml").read_text(encoding="utf-8"))


def _set(tree: dict, dotted: str, value: object) -> None:
    try:
        set_dotted(tree, dotted, value)
    except ValueError as error:
        raise ValueError(f"replay.overrides: {error}") from None


def _absolute(project: Path, value: str | None) -> str | None:
    return None if value is None else str(Path(value) if Path(value).is_absolute() else (project / value).resolve())


def workspace_params(project: Path, plan: ReplayPlan, as_of: date) -> dict:
    """The workspace's params.yaml: the user's, with the overrides, the replay's names, shared caches and data."""
    raw = yaml.safe_load(plan.user_params)
    cfg = raw.get("replay", {})
    for key, value in (cfg.get("overrides") or {}).items():
        _set(raw, key, value)
    for key in ("embedding_cache_dir", "onnx_dir", "http_cache_dir", "served_scores_dir"):  # shared with the project
        raw["paths"][key] = _absolute(project, raw["paths"][key])
    raw["ingest"]["local_path"] = _absolute(project, raw["ingest"]["local_path"])
    raw["ingest"]["characters_dir"] = _absolute(project, raw["ingest"].get("characters_dir"))
    raw["ingest"]["as_of"] = as_of.isoformat()
    raw["mlflow"]["tracking_uri"] = anchored_store(raw["mlflow"]["tracking_uri"], project)
    location = raw["mlflow"]["artifact_location"]
    raw["mlflow"]["artifact_location"] = location if "://" in location else _absolute(project, location)
    raw["mlflow"]["experiment"] = f"{cfg.get('experiment', plan.model_prefix)}-steps"
    raw["registry"]["model_name"] = plan.model_name(plan.policies[0])
    raw["registry"]["policy"] = plan.policies[0]
    return raw


def prepare_workspace(project: Path, plan: ReplayPlan) -> Path:
    """The replay's DVC project: the project's dvc.yaml and code (DVC hashes them as stage deps), DVC initialised
    without git. Kept between replays, so DVC's run cache can restore a step that did not change."""
    workspace = plan.workspace
    workspace.mkdir(parents=True, exist_ok=True)
    stages = yaml.safe_load((project / "dvc.yaml").read_text(encoding="utf-8"))
    if yaml.safe_load(plan.user_params)["ingest"].get("characters_dir") is None:
        stages["stages"]["ingest"]["deps"].remove("${ingest.characters_dir}")
    (workspace / "dvc.yaml").write_text(yaml.safe_dump(stages, sort_keys=False), encoding="utf-8")
    shutil.rmtree(workspace / "src", ignore_errors=True)
    shutil.copytree(project / "src", workspace / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    if not (workspace / ".dvc").is_dir():
        subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=workspace, check=True,
                       capture_output=True)
    from anipop.orchestration import stage_and_its_ancestors

    set_as_of(project, plan, plan.dates[0])  # DVC resolves the stages' ${...} from the workspace's params.yaml
    # what the retraining loop decides with: register and what it reads; the side studies (paper mode, the
    # multimodal and field ablations, the results table) feed no decision, so a step spends no time on them
    needed = stage_and_its_ancestors(workspace, "register")
    stages["stages"] = {name: stage for name, stage in stages["stages"].items() if name in needed}
    (workspace / "dvc.yaml").write_text(yaml.safe_dump(stages, sort_keys=False), encoding="utf-8")
    shutil.rmtree(plan.root / STEPS, ignore_errors=True)
    return workspace


def set_as_of(project: Path, plan: ReplayPlan, as_of: date) -> Params:
    """Write the workspace's params.yaml for the step of `as_of`; return them, validated."""
    path = plan.workspace / "params.yaml"
    path.write_text(yaml.safe_dump(workspace_params(project, plan, as_of), sort_keys=False), encoding="utf-8")
    return load_params(path)


def workspace_params_loaded(plan: ReplayPlan) -> Params:
    """The workspace's params with its paths anchored at the workspace (read from any folder)."""
    from anipop.orchestration import project_params

    return project_params(plan.workspace)


def reset_registry(params: Params, plan: ReplayPlan) -> list[str]:
    """Delete the replay's own registered models (left by an earlier replay): each replay starts with no champion.
    Only names under replay.model_name are touched (config keeps it apart from registry.model_name)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from anipop.registry.lock import LOCK_SUFFIX
    from anipop.tracking import tracking_uri, use_tracking_store

    use_tracking_store(params)
    client = MlflowClient(tracking_uri=tracking_uri(params), registry_uri=tracking_uri(params))
    removed = []
    for policy in plan.policies:
        for name in (plan.model_name(policy), plan.model_name(policy) + LOCK_SUFFIX):
            try:
                client.delete_registered_model(name)
                removed.append(name)
            except MlflowException as err:
                if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
    return removed


def register_policy(workspace: Params, plan: ReplayPlan, policy: str) -> dict:
    """Register this step's evaluated model under another policy's registered model: the same candidate, judged
    by that policy against that policy's own champion (anipop.registry.register, unchanged)."""
    from anipop.registry.register import run_register

    registry = workspace.registry.model_copy(update={"model_name": plan.model_name(policy), "policy": policy})
    return run_register(workspace.model_copy(update={"registry": registry}), write_reports=False)


def champion_of(params: Params, model_name: str) -> dict:
    """The version holding champion now and the as-of date of the data it was trained on."""
    from mlflow import MlflowClient

    from anipop.registry.register import current_champion
    from anipop.tracking import tracking_uri

    client = MlflowClient(tracking_uri=tracking_uri(params), registry_uri=tracking_uri(params))
    champion = current_champion(client, model_name, params)
    if champion is None:
        return {"version": None, "as_of": None}
    return {"version": str(champion.version), "as_of": champion.tags.get("as_of") or None,
            "run_id": champion.run_id}


def snapshot(plan: ReplayPlan, index: int, workspace: Params, record: dict) -> None:
    """Keep the step's view of the data (its prepared anime) and what happened at it."""
    folder = plan.step_dir(index)
    folder.mkdir(parents=True, exist_ok=True)
    paths = ArtifactPaths.of(workspace.paths)
    shutil.copy2(paths.prepared_anime, folder / SNAPSHOT_ANIME)
    write_json(folder / STEP_RESULT, record)


def snapshot_live(plan: ReplayPlan, index: int, workspace: Params) -> int:
    """The anime that entered the data after step `index` (the workspace now holds the next view): their pitches
    as a producer would have sent them, their scores, and whether their franchise already existed."""
    from anipop.serving.scoring import anime_pitches

    folder = plan.step_dir(index)
    before = pd.read_parquet(folder / SNAPSHOT_ANIME)
    now = read_table(PREPARED_ANIME, ArtifactPaths.of(workspace.paths).prepared_anime)
    new = now[~now["anime_id"].isin(set(before["anime_id"]))].sort_values("anime_id").reset_index(drop=True)
    known_groups = set(now.loc[now["anime_id"].isin(set(before["anime_id"])), "group_id"])
    live = pd.DataFrame({"anime_id": new["anime_id"].astype(int), "score": new["score"].astype(float),
                         "premiered": new["premiered"].astype(str), "group_id": new["group_id"].astype(int),
                         "new_franchise": ~new["group_id"].isin(known_groups)})
    live.to_parquet(folder / LIVE_ANIME, index=False)
    anime_pitches(workspace, new).to_parquet(folder / LIVE_PITCHES, index=False)
    return len(live)


def read_json_if(path: Path) -> dict | None:
    return read_json(path) if Path(path).exists() else None


def read_step(plan: ReplayPlan, index: int) -> dict:
    return read_json(plan.step_dir(index) / STEP_RESULT)
