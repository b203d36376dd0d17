"""What every pitch model offers its callers, declared once: serving, calibration and the model card read these
members and nothing else, so a new pitch model is served by giving it this shape (no name checks, no getattr)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from anipop.modeling.features import PitchInputs
    from anipop.modeling.track_records import TrackRecords


@runtime_checkable
class PitchModel(Protocol):
    """A model over a whole pitch (synopsis, its embedding, metadata, characters) -> normalised scores in [0, 1]."""

    name: str         # its PITCH_MODELS name
    kinds: list[str]  # the input kinds it was built on

    def fit(self, inputs: PitchInputs, target: np.ndarray) -> PitchModel: ...

    def predict(self, inputs: PitchInputs) -> np.ndarray: ...

    @property
    def uses_embedding(self) -> bool:
        """Whether it reads the synopsis embedding (the predictor embeds a pitch's synopsis only then)."""

    @property
    def reads_characters(self) -> bool:
        """Whether a pitch's characters can move its score (the predictor embeds them and sizes their interval
        only then, and tells the producer when they cannot)."""

    @property
    def character_weight(self) -> float:
        """The weight of its character correction (0: characters move no score)."""

    @property
    def vocabulary(self) -> dict[str, list[str]]:
        """Each metadata field's known values (the rest are encoded as unknown, which a producer is told)."""

    @property
    def records(self) -> TrackRecords | None:
        """Its track-record table (saved beside the bundle as data), None when it reads none."""

    @property
    def reads_franchise_scores(self) -> bool:
        """Whether a pitch's franchise_scores can move its score (the producer is told when they cannot)."""


def reads_characters(model: object) -> bool:
    """Whether `model`'s characters can move a score: a pitch model says so; every other model that was given
    character kinds reads them."""
    return model.reads_characters if isinstance(model, PitchModel) else True
