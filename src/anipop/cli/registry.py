"""`anipop registry ...`: the model registry's champion history."""

from __future__ import annotations

from pathlib import Path

import typer

from anipop.cli.running import ParamsOption, params_from, run_step

app = typer.Typer(add_completion=False, help="The model registry: champion history.")


@app.command("history")
def registry_history(
    params: Path = ParamsOption,
    at: str = typer.Option(None, "--at", help="YYYY-MM-DD[THH:MM]: which version was champion then (UTC)"),
    as_of: str = typer.Option(None, "--as-of", help="YYYY-MM-DD: which version served data as of that date "
                              "(a replay's steps)"),
    model: str = typer.Option(None, "--model", help="registered model name (default: registry.model_name)"),
) -> None:
    """Every change of the champion (version, previous, time, data as-of and hash, reason), or the one in force."""
    from datetime import date, datetime

    from mlflow import MlflowClient

    from anipop.registry.champion_history import champion_on, read_history, render_history
    from anipop.tracking import tracking_uri, use_tracking_store

    loaded = params_from(params)
    name = model or loaded.registry.model_name
    use_tracking_store(loaded)
    client = MlflowClient(tracking_uri=tracking_uri(loaded), registry_uri=tracking_uri(loaded))
    history = run_step(lambda _: read_history(client, name), loaded)
    if at is None and as_of is None:
        typer.echo(render_history(name, history))
        return
    try:  # a day means the whole day (its end): what was champion that day
        text = at or as_of
        when = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
    except ValueError as err:
        typer.echo(f"error: {at or as_of!r} is not a date (YYYY-MM-DD)", err=True)
        raise typer.Exit(2) from err
    change = champion_on(history, when, by="time" if at else "as_of")
    if change is None:
        typer.echo(f"{name}: no champion on {at or as_of}")
        raise typer.Exit(1)
    typer.echo(f"{name} v{change.version} was champion on {at or as_of} (since {change.time}, data as of "
               f"{change.as_of or 'all'}: {change.reason})")
