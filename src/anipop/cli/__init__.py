"""The `anipop` command: one sub-command per step, each a thin caller of the step's function.

The commands sit in one module per part of the project they drive (pipeline, studies, registry, serving), merged
here into one command; `python -m anipop.cli` runs the same command as the `anipop` console script.
"""

from __future__ import annotations

import sys

import typer

from anipop.cli import pipeline, registry, serving, studies

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                  help="anipop: predict an anime's MyAnimeList score from its pitch.")
app.add_typer(pipeline.app)
app.add_typer(studies.app)
app.add_typer(serving.app)
app.add_typer(registry.app, name="registry")


def main() -> None:  # console-script entry point
    sys.exit(app())
