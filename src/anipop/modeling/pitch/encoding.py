"""The pitch fields as both pitch models read them, fitted once on the training rows: the metadata multi-hot,
the planned year and runtime (raw for the trees, binned for the linear model), the standardised synopsis embedding.
"""

from __future__ import annotations

import numpy as np

from anipop.core.input_kinds import TEXT_KIND
from anipop.data.metadata import DURATION_FIELD, METADATA_FIELDS, YEAR_FIELD, MetadataEncoder
from anipop.modeling.features import PitchInputs

# runtime classes for the linear model (minutes): spots and shorts, half-length, a TV episode, double, a feature
DURATION_BINS = ((0, 8), (8, 16), (16, 35), (35, 70), (70, 100000))


class PitchEncoding:
    """Which kinds a pitch model reads and their encodings, with what was learned from the training rows."""

    def __init__(self, owner: str, kinds: list[str], min_count: int) -> None:
        self.owner = owner  # the model's name, for errors
        self.fields = [k for k in kinds if k in METADATA_FIELDS]
        self.uses_text = TEXT_KIND in kinds
        self.uses_year = YEAR_FIELD in kinds
        self.uses_duration = DURATION_FIELD in kinds
        self.min_count = min_count
        self.uses_embedding = False  # set by fit: the synopsis embedding is read when the training rows carry one
        self.encoder: MetadataEncoder | None = None

    def fit(self, inputs: PitchInputs) -> PitchEncoding:
        if self.fields:
            self.encoder = MetadataEncoder(self.fields, self.min_count).fit(
                {f: inputs.values(f) for f in self.fields})
        self.uses_embedding = self.uses_text and inputs.embedding is not None
        if self.uses_year:
            years = inputs.years()
            known = years[~np.isnan(years)]
            self.year_centre = float(np.median(known)) if len(known) else 2000.0
            self.year_bins = list(range(int(known.min()) // 5 * 5, int(known.max()) + 1, 5)) if len(known) else []
        if self.uses_duration:
            minutes = inputs.durations()
            known = minutes[~np.isnan(minutes)]
            self.duration_centre = float(np.median(np.log(known))) if len(known) else 0.0
        if self.uses_embedding:
            emb = np.asarray(inputs.embedding, dtype=np.float32)
            self.emb_mean, self.emb_scale = emb.mean(axis=0), np.where(emb.std(axis=0) < 1e-6, 1.0, emb.std(axis=0))
        return self

    @property
    def vocabulary(self) -> dict[str, list[str]]:
        return self.encoder.vocabulary if self.encoder is not None else {}

    def metadata(self, inputs: PitchInputs):
        """The fields' multi-hot CSR matrix (unknown and missing columns included)."""
        return self.encoder.transform({f: inputs.values(f) for f in self.fields})

    def embedding(self, inputs: PitchInputs) -> np.ndarray:
        """The synopsis embedding z-scored with the training rows' mean and spread."""
        if inputs.embedding is None:
            raise ValueError(f"{self.owner} was trained on the synopsis embedding, but the inputs carry none")
        return (np.asarray(inputs.embedding, dtype=np.float32) - self.emb_mean) / self.emb_scale

    def year_linear(self, inputs: PitchInputs) -> np.ndarray:
        """The year for a linear model: centred slope, 5-year bins learned on train, and a missing flag."""
        years = inputs.years()
        known = ~np.isnan(years)
        slope = np.where(known, (years - self.year_centre) / 10.0, 0.0)
        bins = np.stack([known & (years >= low) & (years < low + 5) for low in self.year_bins], axis=1)
        return np.column_stack([slope, bins, ~known]).astype(np.float32)

    def duration_linear(self, inputs: PitchInputs) -> np.ndarray:
        """The runtime for a linear model: log minutes (centred), its bins on the log scale, a missing flag."""
        minutes = inputs.durations()
        known = ~np.isnan(minutes)
        logged = np.where(known, np.log(np.where(known, minutes, 1.0)) - self.duration_centre, 0.0)
        bins = np.stack([known & (minutes >= low) & (minutes < high) for low, high in DURATION_BINS], axis=1)
        return np.column_stack([logged, bins, ~known]).astype(np.float32)
