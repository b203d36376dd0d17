"""The replay's results a person reads: reports/replay.{json,md}, the plot, the docs/retraining.md block, the MLflow runs.

Everything here is rendered from what the replay measured (reports/replay.json), so `anipop replay --report-only`
redraws it without retraining, and a test holds that block equal to what this module renders.
"""

from __future__ import annotations

import logging
from pathlib import Path

from anipop.core import readme_blocks
from anipop.core.artifacts import ArtifactPaths
from anipop.core.config import Params
from anipop.core.model_catalog import BASELINE, LENGTH_BASELINE
from anipop.core.utils import read_json, write_json, write_text
from anipop.monitoring.replay import ReplayPlan, replay_plan
from anipop.monitoring.replay_eval import FROZEN, evaluate_replay

log = logging.getLogger(__name__)

README_BEGIN, README_END = readme_blocks.markers("replay", "anipop replay")
RETRAINING_PAGE = Path("docs") / "retraining.md"  # holds the marked block, beside the project's reports/
REPORT, PLOT = "replay.md", "plots/replay.png"


def _ci(entry: dict | None, digits: int = 3, signed: bool = False) -> str:
    if not entry:
        return "-"
    sign = "+" if signed else ""
    interval = f" [{entry['low']:{sign}.{digits}f}, {entry['high']:{sign}.{digits}f}]" if "low" in entry else ""
    return f"{entry['value']:{sign}.{digits}f}{interval}"


def _verdict(difference: dict, metric: str) -> str:
    """Whether the interval of (retrained - frozen) excludes 0, in words, for a higher- or lower-is-better metric."""
    if "low" not in difference:
        return "no interval"
    better = (difference["low"] > 0) if metric != "mae" else (difference["high"] < 0)
    worse = (difference["high"] < 0) if metric != "mae" else (difference["low"] > 0)
    return "better" if better else "worse" if worse else "cannot tell"


def step_rows(result: dict, policies: list[str]) -> list[str]:
    first = policies[0]
    lines = [f"| as of | train anime | anime judged (new franchises) | {first}: promoted | champion | live Spearman: "
             f"champion | frozen | length | champion - frozen | MAE: champion | frozen | train mean | drift share | "
             f"embedding drift | wall s |", "|" + "---|" * 15]
    for step in result["steps"]:
        registration = step["policies"][first]
        champion = registration.get("champion") or {}
        drift = step.get("drift") or {}
        share = (drift.get("drifted_columns") or {}).get("share")
        embedding = (drift.get("synopsis_embedding") or {}).get("score")
        live = step.get("live")
        if live:
            m = live["metrics"]
            judged = f"{live['anime']} ({(live.get('new_franchises') or {}).get('anime', 0)})"
            cells = [_ci(m[first]["spearman"]), _ci(m[FROZEN]["spearman"]), _ci(m[LENGTH_BASELINE]["spearman"]),
                     _ci(live["vs_frozen"][first]["spearman"], signed=True), _ci(m[first]["mae"]),
                     _ci(m[FROZEN]["mae"]), _ci(m[BASELINE]["mae"])]
        else:
            judged, cells = "0", ["-"] * 7
        lines.append(f"| {step['as_of']} | {step.get('train_anime', '-')} | {judged} | "
                     f"{'yes' if registration.get('promoted') else 'no'} (v{registration.get('version')}) | "
                     f"v{champion.get('version')} ({champion.get('as_of')}) | " + " | ".join(cells) +
                     f" | {'-' if share is None else f'{share:.0%}'} | {'-' if embedding is None else f'{embedding:.2f}'}"
                     f" | {step.get('wall_seconds', 0):.0f} |")
    return lines


def pooled_rows(pooled: dict, policies: list[str]) -> list[str]:
    lines = ["| served by | Spearman | R² | MAE (points) |", "|---|---|---|---|"]
    labels = [*[(p, f"champion under `{p}`") for p in policies], (FROZEN, "frozen (first step's model, never retrained)"),
              (LENGTH_BASELINE, "synopsis length (refitted each step)"), (BASELINE, "train mean (refitted each step)")]
    for label, text in labels:
        m = pooled["metrics"][label]
        # each step's train mean is a constant, so it ranks nothing; pooled over steps its levels would rank by era
        spearman = "- (a constant ranks nothing)" if label == BASELINE else _ci(m["spearman"])
        lines.append(f"| {text} | {spearman} | {_ci(m['r2'])} | {_ci(m['mae'])} |")
    return lines


def time_rows(result: dict) -> list[str]:
    stages: list[str] = []
    for step in result["steps"]:
        stages += [name for name, _ in step.get("stage_seconds", []) if name not in stages]
    lines = ["| as of | " + " | ".join(stages) + " | other policies | step wall |", "|" + "---|" * (len(stages) + 3)]
    for step in result["steps"]:
        seconds = dict(step.get("stage_seconds", []))
        lines.append(f"| {step['as_of']} | " + " | ".join(f"{seconds[s]:.0f}" if s in seconds else "-" for s in stages)
                     + f" | {sum(step.get('policy_seconds', {}).values()):.0f} | {step.get('wall_seconds', 0):.0f} |")
    return lines


def render_markdown(result: dict) -> str:
    policies = result["policies"]
    first = policies[0]
    pooled = result["pooled"]
    lines = ["# Does retraining help? The scheduled retraining replayed over history", "",
             f"`anipop replay` ran the scheduled retraining flow (`flows/retrain.py`: re-ingest, drift check, DVC "
             f"stages, registration) at {len(result['steps'])} steps, `ingest.as_of` from {result['dates'][0]} to "
             f"{result['dates'][-1]} every {result['every_months']} months, in a workspace and registry of its own. "
             f"An anime is in a step's data once it first aired {result['score_lag_days']} days before the step. "
             f"After each step, the champion that served was scored on the anime that entered the data before the "
             f"next step, from their pitch fields only (synopsis, characters, metadata, planned year), through the "
             f"served model: the live metrics a studio would have seen. Beside it, on the same anime and bootstrap "
             f"resamples ({result['bootstrap_samples']}, 95 %): the first step's model never retrained (*frozen*), "
             f"and the train mean and synopsis-length line of that step's data. Scores are the 2023 scrape's for "
             f"every step (a replay sees each show's later reputation).", "",
             f"The retraining flow's own policy is `{first}`; every other policy (`registry.policy`) decided on the "
             f"same retrained models against its own champion.", ""]
    if pooled:
        lines += ["## All steps together", "",
                  f"{pooled['anime']} anime, each scored once by the model that served when it aired.", "",
                  *pooled_rows(pooled, policies), "", "Retrained champion minus frozen model, paired on the same anime:", "",
                  "| policy | Spearman | MAE (points) |", "|---|---|---|",
                  *[f"| `{p}` | {_ci(pooled['vs_frozen'][p]['spearman'], signed=True)} "
                    f"({_verdict(pooled['vs_frozen'][p]['spearman'], 'spearman')}) | "
                    f"{_ci(pooled['vs_frozen'][p]['mae'], signed=True)} ({_verdict(pooled['vs_frozen'][p]['mae'], 'mae')}) |"
                    for p in policies], ""]
        if pooled.get("policy_vs_policy"):
            lines += ["Policy against policy, paired:", "", "| a - b | Spearman | MAE (points) |", "|---|---|---|",
                      *[f"| {pair} | {_ci(d['spearman'], signed=True)} | {_ci(d['mae'], signed=True)} |"
                        for pair, d in pooled["policy_vs_policy"].items()], ""]
        best = result.get("best_policy") or {}
        lines += [f"Best pooled live Spearman: `{best.get('policy')}` (ties go to the policy listed first).", ""]
    lines += [f"## Step by step (policy `{first}`)", "",
              "*Promoted*: whether that step's retrained model took `champion`; *champion*: the version that served "
              "until the next step and the as-of date of its data. Drift: share of compared columns that drifted "
              "between the champion's training anime and the anime new to it, and the synopsis-embedding "
              "classifier's ROC AUC (anipop drift).", "", *step_rows(result, policies), ""]
    lines += ["## Champion changes per policy", "",
              *[f"- `{p}`: " + ", ".join(f"{s['as_of']} v{s['policies'][p].get('version')}"
                                          for s in result["steps"] if s["policies"][p].get("promoted")) for p in policies],
              ""]
    lines += ["## Where the time goes (seconds)", "",
              f"Whole replay: {result['wall_seconds'] / 60:.1f} min ({result['judge_seconds']:.0f} s of it judging and "
              f"reporting).", "", *time_rows(result), ""]
    return "\n".join(lines)


def render_readme_block(result: dict) -> str:
    """docs/retraining.md's "Does retraining help?" figures: a few lines generated from reports/replay.json
    (links relative to docs/)."""
    pooled, policies = result["pooled"], result["policies"]
    if not pooled:
        return f"{README_BEGIN}\nThe replay judged no anime (see [reports/replay.md](../reports/replay.md)).\n{README_END}"
    first = policies[0]
    m, d = pooled["metrics"], pooled["vs_frozen"][first]
    best = result["best_policy"]["policy"]
    judged = [s["live"]["vs_frozen"][first]["spearman"] for s in result["steps"][1:] if s.get("live")]
    ahead = sum(1 for diff in judged if diff["value"] > 0)
    surely = sum(1 for diff in judged if diff.get("low", 0) > 0)
    lines = [README_BEGIN,
             f"Replayed yearly from {result['dates'][0]} to {result['dates'][-1]} ({len(result['steps'])} retrainings; "
             f"{pooled['anime']} anime judged, each by the model that served when it first aired; 95 % bootstrap "
             f"intervals):", "",
             "| served by | live Spearman | live MAE (points) |", "|---|---|---|",
             *[f"| champion, policy `{p}` | {_ci(m[p]['spearman'])} | {_ci(m[p]['mae'])} |" for p in policies],
             f"| frozen first model | {_ci(m[FROZEN]['spearman'])} | {_ci(m[FROZEN]['mae'])} |",
             f"| synopsis length | {_ci(m[LENGTH_BASELINE]['spearman'])} | {_ci(m[LENGTH_BASELINE]['mae'])} |",
             f"| train mean | - | {_ci(m[BASELINE]['mae'])} |", "",
             f"Retrained (`{first}`, the default policy) minus frozen, paired: Spearman {_ci(d['spearman'], signed=True)} "
             f"({_verdict(d['spearman'], 'spearman')}), MAE {_ci(d['mae'], signed=True)} ({_verdict(d['mae'], 'mae')}); "
             f"on the new shows of each year after the first (whose champion is the frozen model itself), ahead on live "
             f"Spearman in {ahead} of {len(judged)}, with an interval wholly above 0 in {surely}. Best policy on pooled live Spearman: `{best}`. Per year, per policy, and where the "
             f"{result['wall_seconds'] / 60:.0f} minutes went: [reports/replay.md](../reports/replay.md).", README_END]
    return "\n".join(lines)


def update_readme(readme: Path, block: str) -> bool:
    """Replace the replay's marked block in `readme` (docs/retraining.md); False when the markers are absent."""
    return readme_blocks.update_readme(readme, block, README_BEGIN, README_END)


def plot(result: dict, path: Path) -> None:
    """Live Spearman and MAE per step: each policy's champion, frozen, baselines; a marker where `champion` moved."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [s for s in result["steps"] if s.get("live")]
    dates = [int(s["as_of"][:4]) for s in steps]
    first = result["policies"][0]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, metric, title in ((axes[0], "spearman", "live Spearman (higher is better)"),
                              (axes[1], "mae", "live MAE, points (lower is better)")):
        for label, style in ([(p, "-o") for p in result["policies"]] + [(FROZEN, "--s"), (LENGTH_BASELINE, ":^")]
                             + ([(BASELINE, ":x")] if metric == "mae" else [])):
            values = [s["live"]["metrics"][label][metric]["value"] for s in steps]
            ax.plot(dates, values, style, label=label if label not in result["policies"] else f"champion ({label})")
        promoted = [i for i, s in enumerate(steps) if s["policies"][first].get("promoted")]
        ax.plot([dates[i] for i in promoted], [steps[i]["live"]["metrics"][first][metric]["value"] for i in promoted],
                "*", markersize=14, color="gold", markeredgecolor="black", label=f"champion moved ({first})")
        ax.set_title(title)
        ax.set_xlabel("step (data as of): scored on the shows that aired before the next step")
        ax.set_xticks(dates)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def log_to_mlflow(params: Params, result: dict, files: list[Path]) -> str:
    """A parent run per replay in replay.experiment, one child per step; the report and plot on the parent."""
    import mlflow

    from anipop.tracking import use_tracking_store

    use_tracking_store(params)
    mlflow.set_experiment(params.replay.experiment)
    first = result["policies"][0]
    with mlflow.start_run(run_name=f"replay {result['dates'][0]}..{result['dates'][-1]}") as parent:
        mlflow.log_params({"start": result["dates"][0], "end": result["dates"][-1], "steps": len(result["steps"]),
                           "every_months": result["every_months"], "policies": ",".join(result["policies"])})
        if result["pooled"]:
            for label, metrics in result["pooled"]["metrics"].items():
                mlflow.log_metrics({f"pooled.{label}.{name}": v["value"] for name, v in metrics.items()})
        mlflow.log_metric("wall_minutes", result["wall_seconds"] / 60)
        for file in files:
            mlflow.log_artifact(str(file))
        for step in result["steps"]:
            with mlflow.start_run(run_name=f"as of {step['as_of']}", nested=True):
                mlflow.log_params({"as_of": step["as_of"], **{f"{p}.promoted": r.get("promoted")
                                                              for p, r in step["policies"].items()},
                                   **{f"{p}.champion": (r.get("champion") or {}).get("version")
                                      for p, r in step["policies"].items()}})
                mlflow.log_metric("wall_seconds", step.get("wall_seconds", 0))
                if step.get("live"):
                    mlflow.log_metric("judged_anime", step["live"]["anime"])
                    for label, metrics in step["live"]["metrics"].items():
                        mlflow.log_metrics({f"live.{label}.{name}": v["value"] for name, v in metrics.items()})
                    mlflow.log_metric(f"live.{first}_minus_frozen.spearman",
                                      step["live"]["vs_frozen"][first]["spearman"]["value"])
        return parent.info.run_id


def replay_paths(params: Params) -> tuple[Path, Path, Path]:
    reports = ArtifactPaths.of(params.paths).reports_dir
    return reports / "replay.json", reports / REPORT, reports / PLOT


def write_replay(params: Params, plan: ReplayPlan, steps_seconds: float) -> dict:
    """Judge the replay's steps and write every report; return the result (reports/replay.json)."""
    import time

    import pandas as pd

    from anipop.monitoring.replay import SNAPSHOT_ANIME

    started = time.monotonic()
    result = evaluate_replay(plan, params.replay.bootstrap_samples, params.evaluate.confidence, params.seed,
                             params.paths)
    for index, step in enumerate(result["steps"]):
        view = pd.read_parquet(plan.step_dir(index) / SNAPSHOT_ANIME, columns=["split"])
        step["train_anime"] = int((view["split"] == "train").sum())
    cfg = params.replay
    result.update({"dates": [d.isoformat() for d in plan.dates], "every_months": cfg.every_months,
                   "policies": list(plan.policies), "score_lag_days": params.ingest.score_lag_days,
                   "bootstrap_samples": cfg.bootstrap_samples, "judge_seconds": round(time.monotonic() - started, 1)})
    result["wall_seconds"] = round(steps_seconds + result["judge_seconds"], 1)
    write_json(replay_paths(params)[0], result)
    files = render(params, result)
    result["mlflow_run_id"] = log_to_mlflow(params, result, [replay_paths(params)[0], *files])
    write_json(replay_paths(params)[0], result)
    return result


def render(params: Params, result: dict) -> list[Path]:
    """replay.md, the plot and the block of docs/retraining.md, from a replay result."""
    _, markdown, figure = replay_paths(params)
    write_text(markdown, render_markdown(result))
    if any(s.get("live") for s in result["steps"]):
        plot(result, figure)
    page = Path(params.paths.reports_dir).resolve().parent / RETRAINING_PAGE
    if update_readme(page, render_readme_block(result)):
        log.info("replay: the figures' block rewritten in %s", page)
    return [markdown, figure]


def run_replay_report(params: Params) -> dict:
    """`anipop replay --report-only`: redraw everything from reports/replay.json."""
    result = read_json(replay_paths(params)[0])
    render(params, result)
    return result


__all__ = ["write_replay", "run_replay_report", "render_readme_block", "replay_plan"]
