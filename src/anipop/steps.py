"""Calling a step with the settings it names: a step's signature lists the params.yaml sections it reads.

Why: a step that takes the whole Params hides which knobs reach it. One that names its sections, as
`run_prepare(prepare: PrepareParams, ingest: IngestParams, seed: int, paths: Paths)` does, shows it, and can be
read against its stage's `params:` in dvc.yaml. The CLI (so every DVC stage) and the tests call steps through
`call_step` (or `on_params`), which passes each parameter the section of that name. A step that rebuilds other
recipes from all of the settings (train's ablations, the backtest's previous recipe, the field ablation) names
`params` and gets them all.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial
from typing import TypeVar

from anipop.core.config import Params

Result = TypeVar("Result")
WHOLE = "params"  # the parameter name that receives every section


def call_step(step: Callable[..., Result], params: Params, **given: object) -> Result:
    """`step` called with, for each of its parameters: the value in `given`, else the section of params.yaml of
    that name (`WHOLE`: all of them); a parameter with a default that names no section keeps its default."""
    arguments: dict[str, object] = {}
    for name, parameter in inspect.signature(step).parameters.items():
        if name in given:
            arguments[name] = given[name]
        elif name == WHOLE:
            arguments[name] = params
        elif name in Params.model_fields:
            arguments[name] = getattr(params, name)
        elif parameter.default is inspect.Parameter.empty:
            raise TypeError(f"{getattr(step, '__name__', step)} takes {name!r}, which is no params.yaml section")
    return step(**arguments)


def on_params(step: Callable[..., Result]) -> Callable[[Params], Result]:
    """`step` as a function of the whole Params (what the CLI's runner calls)."""
    return partial(call_step, step)
