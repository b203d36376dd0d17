"""The pipeline's commands: one per DVC stage of the production path, plus drift, the replay and the schedule.

Each is a thin caller: it reads params.yaml and runs the step's function (imported when the command runs, so
`anipop --help` loads no step).
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from anipop.cli.running import ParamsOption, params_from, run_step
from anipop.steps import on_params

app = typer.Typer()


@app.command()
def ingest(params: Path = ParamsOption) -> None:
    """Read the configured source into data/raw (anime, characters, images, quarantine)."""
    from anipop.sources import IngestIncomplete
    from anipop.sources.ingest import run_ingest

    run_step(on_params(run_ingest), params_from(params), expected=(IngestIncomplete,))


@app.command()
def prepare(params: Path = ParamsOption) -> None:
    """Apply the cleaning rules, quarantine rejects, normalise the score, split."""
    from anipop.data.prepare import run_prepare

    run_step(on_params(run_prepare), params_from(params))


@app.command()
def validate(params: Path = ParamsOption) -> None:
    """Run the Great Expectations suites on raw and prepared tables; fail before any training."""
    from anipop.data.validate import ValidationFailed, run_validate

    try:
        run_step(on_params(run_validate), params_from(params))
    except ValidationFailed as err:
        typer.echo(f"{err}\nData Docs: {err.data_docs}", err=True)  # str(err) starts "validation failed:"
        raise typer.Exit(1) from err


@app.command()
def embed(params: Path = ParamsOption) -> None:
    """Embed every text of the prepared data (cached, resumable)."""
    from anipop.embedding.embed import run_embed
    from anipop.encoders.text import EncoderUnavailable

    run_step(on_params(run_embed), params_from(params), expected=(EncoderUnavailable,))


@app.command()
def train(
    params: Path = ParamsOption,
    ablation: str = typer.Option(None, "--ablation", help="all (the paper's whole ablation grid) or one input "
                                 "set (synopsis, characters, images, all_inputs); overrides train.ablations"),
) -> None:
    """Fit every configured model (train.models) on the train split, early-stopping on validation."""
    from anipop.modeling.train import run_train

    run_step(lambda loaded: run_train(loaded, ablation=ablation), params_from(params))


@app.command()
def backtest(params: Path = ParamsOption) -> None:
    """Franchise-grouped K-fold CV and the temporal backtest: every model and baseline refitted per fold."""
    from anipop.evaluation.backtest import run_backtest

    run_step(run_backtest, params_from(params))


@app.command()
def rolling(params: Path = ParamsOption) -> None:
    """Rolling-origin backtest: each year's new franchises, every model refitted on what came before."""
    from anipop.evaluation.backtest import write_rolling

    run_step(write_rolling, params_from(params))


@app.command()
def evaluate(params: Path = ParamsOption) -> None:
    """Test-split metrics next to the train-mean baseline; logs the run to MLflow."""
    from anipop.evaluation.evaluate import run_evaluate

    run_step(run_evaluate, params_from(params))


@app.command()
def register(params: Path = ParamsOption) -> None:
    """Log the trained model as a pitch-taking MLflow pyfunc; `champion` moves only on improvement."""
    from anipop.registry.register import JudgingFailed, run_register

    run_step(run_register, params_from(params), expected=(JudgingFailed,))


@app.command()
def drift(params: Path = ParamsOption) -> None:
    """The champion's training anime against the anime new to it (Evidently): reports/drift.json and
    reports/drift/index.html; the retraining flow runs it before deciding to retrain."""
    from anipop.monitoring.check import run_drift

    loaded = params_from(params)
    logging.getLogger("anipop.monitoring").setLevel(logging.WARNING)  # the summary below says it once
    result = run_step(run_drift, loaded)
    typer.echo(f"drift: {result['drift']}: {'; '.join(result['reasons'])}")


@app.command()
def replay(params: Path = ParamsOption,
           report_only: bool = typer.Option(False, "--report-only", help="rewrite reports/replay.md, the plot and "
                                            "the block of docs/retraining.md from reports/replay.json (nothing retrained)")) -> None:
    """Replay the scheduled retraining over history (replay.start..end by replay.every) in a workspace and registry
    of its own; writes reports/replay.{json,md} and reports/plots/replay.png."""
    from anipop.prefect_settings import quiet_local_prefect

    quiet_local_prefect()  # before Prefect is imported (by anipop.orchestration): it reads its settings once
    from anipop.orchestration import load_flow

    loaded = params_from(params)
    if report_only:
        from anipop.monitoring.replay_report import replay_paths, run_replay_report

        run_step(run_replay_report, loaded)
        typer.echo(f"written: {', '.join(str(p) for p in replay_paths(loaded)[1:])} (and the block of docs/retraining.md, "
                   f"when it has its markers)")
        return
    project = params.resolve().parent
    flow = run_step(lambda _: load_flow(project, "replay.py", "replay"), loaded)
    state = flow(project_dir=str(project), return_state=True)
    if not state.is_completed():
        typer.echo(f"error: replay {state.name.lower()}: {state.message}", err=True)
        raise typer.Exit(1)


@app.command()
def schedule(
    params: Path = ParamsOption,
    cron: str = typer.Option(None, "--cron", help='e.g. "0 3 * * 1"; default: orchestration.schedule.cron'),
) -> None:
    """Serve the scheduled retraining deployment (flows/retrain.py) of the project holding --params; needs a
    Prefect server (PREFECT_API_URL); blocks until Ctrl-C."""
    from anipop.orchestration import load_retrain_flow, prefect_server_problem, serve_retrain

    loaded = params_from(params)
    problem = prefect_server_problem()
    if problem:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)
    project = params.resolve().parent
    run_step(lambda _: serve_retrain(load_retrain_flow(project), project, loaded, cron=cron), loaded)
