"""Names live once, in a registry beside their code; the config accepts exactly what the registries hold."""

from __future__ import annotations

import typing

import pytest
from conftest import knobs
from pydantic import ValidationError

from anipop.core.config import IngestParams, MultimodalParams, PitchModelParams, TrainParams
from anipop.core.input_kinds import EMBEDDED_KINDS, INPUT_SETS, INPUT_TYPES, KINDS, PITCH_METADATA_KINDS
from anipop.core.model_catalog import MODELS, MULTIMODAL, NETWORK_SHAPES, SERVABLE, TRAINABLE, spec_of
from anipop.sources.registry import SOURCES


def allowed(model_field) -> set[str]:
    """The values a Literal (or a tuple of Literals) annotation accepts."""
    annotation = model_field.annotation
    while typing.get_origin(annotation) is tuple:
        annotation = typing.get_args(annotation)[0]
    return set(typing.get_args(annotation))


def test_config_model_names_are_the_catalogs():
    fields = TrainParams.model_fields
    assert allowed(fields["models"]) == set(TRAINABLE) == set(MODELS) - {"train_mean", "length_only"}
    assert allowed(fields["model"]) == set(SERVABLE) and "finetune" not in SERVABLE  # it scores no raw pitch
    assert allowed(MultimodalParams.model_fields["models"]) == set(MULTIMODAL)
    assert allowed(fields["inputs"]) == allowed(fields["ablations"]) == set(INPUT_SETS)
    assert allowed(PitchModelParams.model_fields["metadata_fields"]) == set(PITCH_METADATA_KINDS)


def test_every_model_has_a_fitter_an_input_type_and_its_params():
    from anipop.modeling.train import FITTERS

    for name, spec in MODELS.items():
        assert spec.fitter in FITTERS and spec.input_type in INPUT_TYPES, name
        if spec.params_section:
            assert spec.params_section in TrainParams.model_fields, name
    assert set(NETWORK_SHAPES) == {n for n, s in MODELS.items() if s.fitter == "network"}
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        spec_of("nope")


def test_the_embed_step_features_and_predict_read_one_list_of_kinds():
    from anipop.embedding import embed
    from anipop.modeling import features

    assert embed.KINDS == EMBEDDED_KINDS
    assert set(features.ANIME_KINDS + features.CHARACTER_KINDS) == set(EMBEDDED_KINDS)
    assert all(kind in KINDS for kinds in INPUT_SETS.values() for kind in kinds)


def test_the_config_accepts_the_registered_sources_only():
    assert allowed(IngestParams.model_fields["source"]) == set(SOURCES)
    with pytest.raises(ValidationError, match="source"):
        knobs("ingest", source="web")
