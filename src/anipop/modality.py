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

from anipop.features import ANIME_KINDS


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
