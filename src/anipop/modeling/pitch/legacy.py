"""Pitch models registered before each model had its class: one `PitchRegressor` switched three fits by name.

Such a bundle names `anipop.modeling.pitch_models.PitchRegressor` (served_bundle.FORMER_TYPES maps it here). Its
saved state is loaded into this class, which has no behaviour of its own: `upgrade` rebuilds the current
class from it (the fitted parts are the same objects), so a former champion keeps serving its exact scores.
"""

from __future__ import annotations

from typing import Any

from anipop.modeling.pitch.characters import CharacterCorrection
from anipop.modeling.pitch.encoding import PitchEncoding
from anipop.modeling.pitch.meta_ridge import MetaRidge
from anipop.modeling.pitch.pitch_gbm import PitchGBM
from anipop.modeling.pitch.pitch_stack import PitchStack
from anipop.modeling.pitch.protocol import PitchModel


class PitchRegressor:
    """The former class's saved state (attributes only); `upgrade()` is the model."""

    def upgrade(self) -> PitchModel:
        state: dict[str, Any] = self.__dict__
        name = state["name"]
        if name == MetaRidge.name:
            return _meta_ridge(state)
        if name == PitchGBM.name:
            return _pitch_gbm(state)
        if name == PitchStack.name:
            return PitchStack.of(_meta_ridge(state), _pitch_gbm(state))
        raise ValueError(f"a saved pitch model names an unknown model {name!r}")


def _encoding(owner: str, state: dict[str, Any]) -> PitchEncoding:
    encoding = PitchEncoding.__new__(PitchEncoding)
    encoding.owner = owner
    encoding.fields = list(state["fields"])
    encoding.min_count = state["cfg"].min_count
    encoding.encoder = state.get("encoder")
    for flag in ("uses_text", "uses_year", "uses_duration", "uses_embedding"):
        setattr(encoding, flag, bool(state.get(flag, False)))
    for fitted in ("year_centre", "year_bins", "duration_centre", "emb_mean", "emb_scale"):
        if fitted in state:
            setattr(encoding, fitted, state[fitted])
    return encoding


def _common(model: Any, state: dict[str, Any]) -> None:
    model.kinds, model.cfg, model.seed = list(state["kinds"]), state["cfg"], state["seed"]
    model.encoding = _encoding(model.name, state)


def _meta_ridge(state: dict[str, Any]) -> MetaRidge:
    model = MetaRidge.__new__(MetaRidge)
    _common(model, state)
    model.embedding_weight = state.get("embedding_weight", 0.05)  # the value every former model was fitted with
    if "text_vectorizer" in state:
        model.text_vectorizer = state["text_vectorizer"]
    model.linear = state["linear"]
    return model


def _pitch_gbm(state: dict[str, Any]) -> PitchGBM:
    model = PitchGBM.__new__(PitchGBM)
    _common(model, state)
    model.text_models = state.get("text_models")
    model.track_records = state.get("records")
    model.forest = state["forest"]
    kinds = list(state.get("character_kinds", []))
    model.characters = None
    if kinds:
        model.characters = CharacterCorrection(kinds, state["cfg"].character_alpha)
        model.characters.model = state.get("character_model")
        model.characters.weight = float(state.get("character_weight", 0.0))
    return model
