"""Missing modalities: where each kind sits in a feature row, and modality dropout for the network.

Most pitches (and ~97 % of the anime the model trains on) have no characters or portraits. features.assemble
gives every character kind a block (aggregated vectors, zeros when absent) followed by a presence column
(1 present, 0 masked). Ridge learns a separate offset from that column; the network additionally sees training
rows whose characters were hidden on purpose (modality dropout), so the same weights score a synopsis alone
as well as a full pitch, instead of treating "no characters" as an input it never met among the anime that
have them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anipop.modeling.features import ANIME_KINDS


def kind_dims(embeddings_dir: str | Path, kinds: list[str]) -> dict[str, int]:
    """Each kind's vector width, read from the saved matrices' headers (no data loaded)."""
    return {kind: int(np.load(Path(embeddings_dir) / f"{kind}.npy", mmap_mode="r").shape[1]) for kind in kinds}


def kind_slices(kinds: list[str], dims: dict[str, int]) -> dict[str, slice]:
    """Columns of each kind in an assembled row; a character kind's slice includes its presence column (last)."""
    slices, start = {}, 0
    for kind in kinds:
        width = dims[kind] + (0 if kind in ANIME_KINDS else 1)
        slices[kind] = slice(start, start + width)
        start += width
    return slices


def maskable_slices(kinds: list[str], dims: dict[str, int]) -> list[slice]:
    """The slices modality dropout may hide: every character kind's block with its presence column."""
    return [cut for kind, cut in kind_slices(kinds, dims).items() if kind not in ANIME_KINDS]


def present(features: np.ndarray, cut: slice) -> np.ndarray:
    """Rows whose modality at `cut` is present (its presence column, the slice's last, is 1)."""
    return np.asarray(features)[:, cut.stop - 1] > 0.5


def with_characters(features: np.ndarray, kinds: list[str], dims: dict[str, int]) -> np.ndarray:
    """Rows that have at least one character modality (all False when the model reads none)."""
    cuts = maskable_slices(kinds, dims)
    if not cuts:
        return np.zeros(len(features), dtype=bool)
    return np.any([present(features, cut) for cut in cuts], axis=0)


def modality_dropout(batch, missing_row, slices: list[slice], rate: float, generator):
    """Hide each maskable modality of each row with probability `rate` (a torch batch, in place on a copy).

    `missing_row` is what an absent modality looks like after the network's standardisation (zeros and a 0
    presence column, standardised), so a dropped modality is indistinguishable from one the pitch never had.
    """
    import torch

    if rate <= 0 or not slices:
        return batch
    batch = batch.clone()
    for cut in slices:
        drop = torch.rand(len(batch), generator=generator) < rate
        if drop.any():
            batch[drop, cut] = missing_row[cut]
    return batch


class PresenceNeutral:
    """Character blocks centred on the training rows that have them, presence columns zeroed.

    Why: in the real sample, HAVING characters marks a popular show (mean score 8.0 against 6.6), so a model
    that reads the presence column (or the mean of a block, which is non-zero only when present) learns "+1.4
    points for any pitch with characters", a selection artefact that says nothing about a new pitch. Centred,
    the character branch has zero mean effect over the anime that have characters: it can move a pitch only by
    what its characters are like compared with the others. Fitted on train rows, stored in the model.
    Exact for linear models (ridge, the primary): a network can still tell a zero block from a non-zero one
    through its non-linearities, so for the networks this only removes the direct route (measured in
    reports/multimodal.md: R2 on the anime with characters, which presence alone inflates).
    """

    def __init__(self, slices: list[slice]) -> None:
        self.slices = list(slices)
        self.means: list[np.ndarray] = []

    def fit(self, features: np.ndarray) -> "PresenceNeutral":
        self.means = []
        for cut in self.slices:
            rows = present(features, cut)
            block = np.asarray(features)[rows, cut.start:cut.stop - 1]
            self.means.append(block.mean(axis=0) if len(block) else np.zeros(cut.stop - 1 - cut.start, np.float32))
        return self

    def transform(self, features: np.ndarray) -> np.ndarray:
        out = np.array(features, dtype=np.float32, copy=True)
        for cut, mean in zip(self.slices, self.means, strict=True):
            rows = present(out, cut)
            out[np.ix_(rows, np.arange(cut.start, cut.stop - 1))] -= mean
            out[:, cut.stop - 1] = 0.0
        return out


class PresenceNeutralModel:
    """A fitted model fed PresenceNeutral features: the bundle's model, so predict paths need no change."""

    def __init__(self, model, neutral: PresenceNeutral) -> None:
        self.model, self.neutral = model, neutral

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.model.predict(self.neutral.transform(features))

    def __getattr__(self, name: str):
        """Everything else (a network's weights, its input width) is the wrapped model's."""
        if name in ("model", "neutral") or name.startswith("__"):  # not set yet while unpickling
            raise AttributeError(name)
        return getattr(self.model, name)
