"""The side studies' commands: paper mode, the field and multimodal ablations, blend tuning, the results table."""

from __future__ import annotations

from pathlib import Path

import typer

from anipop.cli.running import ParamsOption, params_from, run_step
from anipop.steps import on_params

app = typer.Typer()


@app.command("paper-mode")
def paper_mode(params: Path = ParamsOption) -> None:
    """The paper's setup on our data with each of its flaws switched on and off (reports/paper_mode.md)."""
    from anipop.studies.paper_mode import run_paper_mode

    run_step(on_params(run_paper_mode), params_from(params))


@app.command("field-ablation")
def field_ablation(params: Path = ParamsOption) -> None:
    """Each input set alone (every metadata field, all metadata, the synopsis) on the CV folds, temporal and test."""
    from anipop.studies.field_ablation import run_field_ablation

    run_step(run_field_ablation, params_from(params))


@app.command()
def report(params: Path = ParamsOption) -> None:
    """reports/results.md: every report's figures in one table next to the baselines (nothing recomputed)."""
    from anipop.studies.results_table import run_report

    run_step(on_params(run_report), params_from(params))


@app.command()
def tune(params: Path = ParamsOption,
         track: bool = typer.Option(True, "--track/--no-track", help="one MLflow child run per trial"),
         write_params: bool = typer.Option(False, "--write-params",
                                           help="put the winner into --params (train.pitch.blend_linear)")) -> None:
    """Grid for pitch_stack's blend weight on the grouped CV folds of train+val (the test split is not read)."""
    from anipop.studies.tuning import run_tune, write_winner

    loaded = params_from(params)
    result = run_step(lambda p: run_tune(p, track=track), loaded)
    if write_params:
        best = result["best"]["blend_linear"]
        run_step(lambda _: write_winner(params, best), loaded)
        typer.echo(f"{params}: train.pitch.blend_linear = {best:g} (was {result['current']:g})")


@app.command()
def multimodal(params: Path = ParamsOption) -> None:
    """The multimodal ablation on the anime with characters: synopsis vs +descriptions/+portraits/all, grouped CV."""
    from anipop.studies.multimodal_ablation import run_multimodal_ablation

    run_step(run_multimodal_ablation, params_from(params))
