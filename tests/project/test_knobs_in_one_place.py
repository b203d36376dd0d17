"""Every knob has its value in params.yaml and nowhere else: config.py declares types and bounds only."""

from __future__ import annotations

import typing

from conftest import PARAMS_FILE
from pydantic import BaseModel

from anipop.core import config
from anipop.serving.pitch import PitchLimits


def _models(root: type[BaseModel]) -> set[type[BaseModel]]:
    """`root` and every settings model reachable from its fields (inside tuples, dicts and unions too)."""
    seen, todo = set(), [root]
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for field in model.model_fields.values():
            stack = [field.annotation]
            while stack:
                kind = stack.pop()
                if isinstance(kind, type) and issubclass(kind, BaseModel):
                    todo.append(kind)
                stack.extend(typing.get_args(kind))
    return seen


def test_no_settings_field_has_a_default_so_params_yaml_is_the_one_place_of_values():
    models = _models(config.Params) | {PitchLimits}
    assert len(models) > 25  # the walk reaches the nested sections
    defaulted = sorted(f"{model.__name__}.{name}" for model in models
                       for name, field in model.model_fields.items() if not field.is_required())
    assert defaulted == []


def test_a_knob_missing_from_params_yaml_is_named_with_its_path(tmp_path):
    import pytest

    text = PARAMS_FILE.read_text(encoding="utf-8").replace("    tfidf_min_df: 2", "    # tfidf_min_df removed")
    (tmp_path / "params.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(config.ConfigError, match=r"train\.pitch\.tfidf_min_df: Field required"):
        config.load_params(tmp_path / "params.yaml")
