"""The retraining replay as a Prefect flow: the scheduled retraining (flows/retrain.py) run at each step of history.

Each step writes `ingest.as_of` into the replay's own DVC workspace and runs the real retraining flow there as a
subflow: re-ingest, drift check against the champion, DVC reruns what the new view makes stale, the registry
decides under the first policy. The same evaluated model is then registered under every other policy's own
registered model, each deciding against its own champion. After the last step, the view one step later gives the
last shows to judge on. anipop.monitoring.replay_eval scores every champion on the anime that aired before the next
step; anipop.monitoring.replay_report writes reports/replay.{json,md}, the plot, the README block and the MLflow runs.

Run it from the project root (an ephemeral Prefect server starts and stops with it):
    anipop replay          # or: python flows/replay.py [--project .]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from anipop.prefect_settings import quiet_local_prefect, run_flow_or_exit

quiet_local_prefect()  # before Prefect is imported: it reads its settings once, at import

from pipeline import run_stages  # noqa: E402 - flows/ is on sys.path as a script and under Prefect's loader
from prefect import flow, get_run_logger, task  # noqa: E402
from retrain import retrain  # noqa: E402

from anipop import orchestration as orch  # noqa: E402
from anipop.monitoring import replay as rp  # noqa: E402


@task(name="register-policy")
def register_policy(workspace: str, plan: rp.ReplayPlan, policy: str) -> dict:
    return rp.register_policy(orch.project_params(Path(workspace)), plan, policy)


@task(name="live-anime")
def keep_live_anime(workspace: str, plan: rp.ReplayPlan, index: int) -> int:
    return rp.snapshot_live(plan, index, orch.project_params(Path(workspace)))


@task(name="judge-and-report")
def judge_and_report(project: str, plan: rp.ReplayPlan, steps_seconds: float) -> dict:
    from anipop.monitoring.replay_report import write_replay

    return write_replay(orch.project_params(Path(project)), plan, steps_seconds)


@flow(name="anipop-replay")
def replay(project_dir: str = ".") -> dict:
    """Every step of replay.start..replay.end, the future view, the judgement and the reports."""
    logger = get_run_logger()
    project = Path(project_dir).resolve()
    params = orch.project_params(project)
    plan = rp.replay_plan(params, project)
    workspace = rp.prepare_workspace(project, plan)
    removed = rp.reset_registry(params, plan)
    logger.info("replay: %d steps %s..%s, policies %s; workspace %s%s", len(plan.dates), plan.dates[0],
                plan.dates[-1], ", ".join(plan.policies), workspace,
                f"; removed the last replay's models {removed}" if removed else "")
    started = time.monotonic()
    for index, as_of in enumerate(plan.dates):
        step_started = time.monotonic()
        rp.set_as_of(project, plan, as_of)
        outcome = retrain.with_options(flow_run_name=f"retrain-as-of-{as_of}")(project_dir=str(workspace))
        if index > 0:
            keep_live_anime(str(workspace), plan, index - 1)
        loaded = orch.project_params(workspace)
        policies = {plan.policies[0]: outcome.get("registration") or {}}
        policy_seconds = {}
        for policy in plan.policies[1:]:
            begun = time.monotonic()
            policies[policy] = register_policy.with_options(task_run_name=f"register-{policy}")(str(workspace),
                                                                                                 plan, policy)
            policy_seconds[policy] = round(time.monotonic() - begun, 1)
        for policy in plan.policies:
            policies[policy]["champion"] = rp.champion_of(loaded, plan.model_name(policy))
        report = rp.read_json_if(workspace / "data" / "raw" / "ingest_report.json")
        rp.snapshot(plan, index, loaded, {
            "as_of": as_of.isoformat(), "retrained": outcome["retrained"], "reason": outcome["reason"],
            "view": (report or {}).get("as_of"), "drift": outcome.get("drift"), "policies": policies,
            "stage_seconds": list(outcome.get("seconds", {}).items()), "policy_seconds": policy_seconds,
            "wall_seconds": round(time.monotonic() - step_started, 1)})
        logger.info("replay: step %s done in %.0f s: %s", as_of, time.monotonic() - step_started,
                    "; ".join(f"{p}: v{r.get('version')} {'promoted' if r.get('promoted') else 'challenger'}"
                              for p, r in policies.items()))
    rp.set_as_of(project, plan, plan.future)  # the view one step after the last: the shows that came next
    run_stages(str(workspace), ["ingest", "prepare"], force=("ingest",))
    keep_live_anime(str(workspace), plan, len(plan.dates) - 1)
    result = judge_and_report(str(project), plan, time.monotonic() - started)
    logger.info("replay: %d steps in %.1f min; best policy %s", len(plan.dates), (time.monotonic() - started) / 60,
                (result.get("best_policy") or {}).get("policy"))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="Replay the scheduled retraining over the data's history.")
    parser.add_argument("--project", default=".", help="the project folder: dvc.yaml, params.yaml (default: %(default)s)")
    args = parser.parse_args()
    problem = orch.project_problem(Path(args.project))
    if problem:
        raise SystemExit(f"error: {problem}")
    run_flow_or_exit("replay", lambda: replay(project_dir=args.project, return_state=True))


if __name__ == "__main__":
    main()
