"""Feature assembly: each anime's inputs as one row, built by the same code for the dataset and for one pitch.

Two featurisations live here:
- embeddings (the MLPs, paper_head, ridge): per-kind vectors concatenated in a fixed order; the several main
  characters of an anime are aggregated (train.aggregation) so every anime gets one fixed-size block;
- raw inputs (the paper's TF-IDF + PILToTensor benchmark): the texts themselves and resized portrait pixels.
A kind the data lacks (the offline sample has no characters or portraits) is skipped with a logged notice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from anipop.core.artifacts import load_embeddings
from anipop.core.input_kinds import (  # noqa: F401 - the kinds and input sets, read through here by the steps
    ALL_INPUTS,
    ANIME_KINDS,
    CHARACTER_KINDS,
    DURATION_FIELD,
    FRANCHISE_FIELD,
    IMAGE_KIND,
    INPUT_SETS,
    KINDS,
    PITCH_INPUT,
    RAW_INPUT,
    TEXT_KIND,
)
from anipop.data.franchise_scores import earlier_scores
from anipop.data.metadata import METADATA_FIELDS, fields_with_values, table_durations, table_values, table_years

log = logging.getLogger(__name__)

AGGREGATIONS = ("mean", "max")


def input_set_kinds(input_set: str) -> tuple[str, ...]:
    """The kinds an input set asks for, before checking which the data has."""
    if input_set not in INPUT_SETS:
        raise ValueError(f"unknown input set {input_set!r}; expected one of {sorted(INPUT_SETS)}")
    return INPUT_SETS[input_set]


def available_kinds(embeddings_dir: str | Path, wanted: tuple[str, ...]) -> list[str]:
    """The wanted kinds that have embeddings on disk; each missing one is logged, not an error."""
    folder = Path(embeddings_dir)
    present = [kind for kind in wanted if (folder / f"{kind}.npy").exists()]
    for kind in wanted:
        if kind not in present:
            log.info("features: no %s embeddings in %s; that input is skipped", kind, folder)
    return present


def _per_anime(kind: str, owners: np.ndarray, matrix: np.ndarray, anime_ids: np.ndarray,
               aggregation: str) -> np.ndarray:
    """One row per anime id: direct lookup for anime kinds, aggregation over its characters otherwise.

    An anime with no character rows gets zeros: the network sees "no character" rather than a crash.
    """
    if kind in ANIME_KINDS:
        index = {int(owner): i for i, owner in enumerate(owners)}
        missing = [int(a) for a in anime_ids if int(a) not in index]
        if missing:
            raise KeyError(f"{kind} embeddings lack anime_id(s) {missing[:5]}; rerun `anipop embed`")
        return matrix[[index[int(a)] for a in anime_ids]]
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}; expected one of {AGGREGATIONS}")
    grouped = pd.DataFrame(matrix).groupby(owners).agg(aggregation)
    return grouped.reindex(anime_ids).fillna(0.0).to_numpy(dtype=np.float32)


def assemble(per_kind: dict[str, tuple[np.ndarray, np.ndarray]], anime_ids, kinds: list[str],
             aggregation: str = "mean") -> np.ndarray:
    """Concatenate the kinds' per-anime blocks in `kinds` order; per_kind maps kind -> (owner ids, rows).

    Each character kind's block is followed by one presence column (1: the anime has that modality, 0: it is
    masked, its block all zeros), so one model scores pitches with and without characters and can tell a
    missing modality from a zero vector (anipop.modeling.modality documents the layout).
    """
    anime_ids = np.asarray(anime_ids, dtype=np.int64)
    if not kinds:
        raise ValueError("no input kinds to build features from; run `anipop embed` first")
    blocks = []
    for kind in kinds:
        owners, matrix = per_kind[kind]
        owners = np.asarray(owners, dtype=np.int64)
        blocks.append(_per_anime(kind, owners, np.asarray(matrix, dtype=np.float32), anime_ids, aggregation))
        if kind not in ANIME_KINDS:
            blocks.append(np.isin(anime_ids, owners).astype(np.float32).reshape(-1, 1))
    return np.hstack(blocks).astype(np.float32)


def features_from_vectors(kind_vectors: dict[str, np.ndarray], kinds: list[str],
                          aggregation: str = "mean") -> np.ndarray:
    """One pitch's feature row (shape (1, D)) from in-memory vectors, by the code the dataset uses.

    kind_vectors maps each kind to its embedding: shape (d,) for an anime kind (synopsis), shape (n, d) for a
    character kind (one row per main character; (0, d) when the pitch has none, which gives zeros).
    """
    per_kind = {}
    for kind in kinds:
        if kind not in kind_vectors:
            raise KeyError(f"the pitch lacks the {kind!r} vector the model was trained on (inputs: {kinds})")
        vectors = np.asarray(kind_vectors[kind], dtype=np.float32)
        rows = vectors.reshape(1, -1) if kind in ANIME_KINDS or vectors.ndim == 1 else vectors
        if rows.ndim != 2:
            raise ValueError(f"the pitch's {kind!r} vectors have shape {vectors.shape}; expected (d,) or (n, d)")
        per_kind[kind] = (np.zeros(len(rows), dtype=np.int64), rows)
    return assemble(per_kind, [0], kinds, aggregation)


def build_features(embeddings_dir: str | Path, anime_ids, kinds: list[str], aggregation: str = "mean") -> np.ndarray:
    """The chosen kinds' per-anime vectors from `embeddings_dir`, concatenated, in the order of `anime_ids`."""
    per_kind = {}
    for kind in kinds:
        row_ids, matrix = load_embeddings(embeddings_dir, kind)
        owners = np.array([int(str(r).split(":")[0]) for r in row_ids], dtype=np.int64)
        per_kind[kind] = (owners, matrix)
    return assemble(per_kind, anime_ids, kinds, aggregation)


# --- raw inputs for the TF-IDF + PILToTensor benchmark -------------------------------------------------------

_CHARACTER_TEXT = {name: kind.column for name, kind in KINDS.items() if kind.owner == "character" and kind.modality == "text"}


def raw_kinds_available(characters: pd.DataFrame, wanted: tuple[str, ...]) -> list[str]:
    """The wanted kinds the prepared tables can feed the benchmark; the rest are logged and skipped."""
    has = {"synopsis": True, IMAGE_KIND: bool(characters["portrait_path"].notna().any()),
           **{kind: not characters.empty for kind in _CHARACTER_TEXT}}
    present = [kind for kind in wanted if has.get(kind, False)]
    for kind in wanted:
        if kind not in present:
            log.info("features: the prepared data has no %s; the benchmark skips that input", kind)
    return present


def portrait_pixels(path: Path, image_size: int) -> np.ndarray:
    """A portrait as the paper's benchmark sees it: RGB, resized, PILToTensor, flattened, scaled to [0, 1]."""
    from PIL import Image
    from torchvision.transforms import PILToTensor

    try:
        with Image.open(path) as image:
            tensor = PILToTensor()(image.convert("RGB").resize((image_size, image_size)))
    except (OSError, ValueError) as err:
        raise OSError(f"{path}: cannot read portrait for the benchmark: {err}") from err
    return tensor.numpy().reshape(-1).astype(np.float32) / 255.0


def raw_inputs(anime_ids, anime: pd.DataFrame, characters: pd.DataFrame, raw_dir: str | Path, kinds: list[str],
               image_size: int, aggregation: str = "mean") -> dict[str, object]:
    """Per kind, the benchmark's input for each anime in `anime_ids` order: texts, or aggregated pixels.

    A character text kind joins the anime's main characters' texts into one document; portraits are read from
    prepared characters' portrait_path relative to `raw_dir`.
    """
    anime_ids = np.asarray(anime_ids, dtype=np.int64)
    inputs: dict[str, object] = {}
    for kind in kinds:
        if kind == "synopsis":
            inputs[kind] = anime.set_index("anime_id")["synopsis"].reindex(anime_ids).fillna("").tolist()
        elif kind in _CHARACTER_TEXT:
            column = characters[_CHARACTER_TEXT[kind]].fillna("").astype(str)
            joined = column.groupby(characters["anime_id"].to_numpy()).agg(" ".join)
            inputs[kind] = joined.reindex(anime_ids).fillna("").tolist()
        elif kind == IMAGE_KIND:
            rows = characters[characters["portrait_path"].notna() & characters["anime_id"].isin(anime_ids)]
            pixels = np.stack([portrait_pixels(Path(raw_dir) / rel, image_size) for rel in rows["portrait_path"]]) \
                if len(rows) else np.zeros((0, 3 * image_size * image_size), dtype=np.float32)
            inputs[kind] = _per_anime(kind, rows["anime_id"].to_numpy(dtype=np.int64), pixels, anime_ids, aggregation)
        else:
            raise ValueError(f"the benchmark has no raw input for kind {kind!r}")
    return inputs


def model_inputs(input_type: str, kinds: list[str], anime_ids, anime: pd.DataFrame, characters: pd.DataFrame,
                 embeddings_dir: str | Path, raw_dir: str | Path, aggregation: str, image_size: int):
    """What a model of `input_type` reads for `anime_ids`: embedding rows, or the raw texts and pixels.

    One function for training, evaluation and backtests, so every model is fed the same way everywhere.
    """
    if input_type == RAW_INPUT:
        return raw_inputs(anime_ids, anime, characters, raw_dir, kinds, image_size, aggregation)
    if input_type == PITCH_INPUT:  # synopsis + metadata (+ characters when present) models (anipop.modeling.pitch)
        return pitch_inputs(anime_ids, anime, embeddings_dir, kinds, aggregation)
    return build_features(embeddings_dir, anime_ids, kinds, aggregation)


# The pitch models' inputs (anipop.modeling.pitch): built here for the dataset, by the predictor for a pitch.
# The character kinds a pitch model reads when train.pitch.character_feature is on: each main character's
# description embedding and portrait descriptor (names are left out: a name says who, not what the show is).
PITCH_CHARACTER_KINDS = ("character_description", IMAGE_KIND)


@dataclass
class PitchInputs:
    """What a pitch model reads for n anime: texts, optional (n, d) embeddings, per-field value lists, and
    per character kind the anime's aggregated block with its presence column (features.assemble's layout)."""

    synopsis: list[str]
    embedding: np.ndarray | None = None
    metadata: dict[str, list[list[str]]] = field(default_factory=dict)
    groups: np.ndarray | None = None  # franchise ids (training rows only): the inner folds keep them whole
    year: np.ndarray | None = None    # planned first-air year per row, NaN where not given
    duration: np.ndarray | None = None  # planned minutes an episode (or the film) runs, NaN where not given
    characters: dict[str, np.ndarray] = field(default_factory=dict)  # kind -> (n, d + 1); absent: no characters
    # per row the MAL scores of its franchise's earlier anime ([]: a new franchise; None: not said), or None for all
    earlier_scores: list[list[float] | None] | None = None

    def __len__(self) -> int:
        return len(self.synopsis)

    def take(self, rows: np.ndarray) -> "PitchInputs":
        return PitchInputs(synopsis=[self.synopsis[i] for i in rows],
                           embedding=None if self.embedding is None else self.embedding[rows],
                           metadata={f: [v[i] for i in rows] for f, v in self.metadata.items()},
                           groups=None if self.groups is None else self.groups[rows],
                           year=None if self.year is None else self.year[rows],
                           duration=None if self.duration is None else self.duration[rows],
                           characters={kind: block[rows] for kind, block in self.characters.items()},
                           earlier_scores=None if self.earlier_scores is None
                           else [self.earlier_scores[i] for i in rows])

    def values(self, field_name: str) -> list[list[str]]:
        """A field's values; a field the pitch does not give is missing for every row."""
        return self.metadata.get(field_name) or [[] for _ in range(len(self))]

    def years(self) -> np.ndarray:
        return np.full(len(self), np.nan) if self.year is None else np.asarray(self.year, dtype=float)

    def durations(self) -> np.ndarray:
        return np.full(len(self), np.nan) if self.duration is None else np.asarray(self.duration, dtype=float)


def pitch_kinds_available(anime: pd.DataFrame, wanted, enabled_fields, embeddings_dir: str | Path | None = None,
                          character_feature: bool = False) -> list[str]:
    """The wanted kinds a pitch model can read: the synopsis, and switched-on metadata fields the data has; with
    character_feature, also the wanted PITCH_CHARACTER_KINDS embedded in `embeddings_dir` (never alone: a pitch
    model needs the synopsis or a metadata field to score the pitches that have no characters)."""
    kinds = [TEXT_KIND] if TEXT_KIND in wanted else []
    kinds += fields_with_values(anime, [k for k in wanted if k in enabled_fields])
    if kinds and character_feature and embeddings_dir is not None:
        kinds += available_kinds(embeddings_dir, tuple(k for k in PITCH_CHARACTER_KINDS if k in wanted))
    return kinds


def pitch_inputs(anime_ids, anime: pd.DataFrame, embeddings_dir: str | Path, kinds: list[str],
                 aggregation: str = "mean") -> PitchInputs:
    """PitchInputs of `anime_ids` from the prepared table (and the synopsis embeddings, when on disk); the
    character kinds among `kinds` are aggregated per anime by build_features, as the embedding models get them."""
    ids = np.asarray(anime_ids, dtype=np.int64)
    table = anime.set_index("anime_id").reindex(ids)
    embedding = None
    if TEXT_KIND in kinds and (Path(embeddings_dir) / f"{TEXT_KIND}.npy").exists():
        embedding = build_features(embeddings_dir, ids, [TEXT_KIND])
    synopsis = table["synopsis"].fillna("").astype(str).tolist() if TEXT_KIND in kinds else [""] * len(ids)
    characters = {kind: build_features(embeddings_dir, ids, [kind], aggregation)
                  for kind in kinds if kind in PITCH_CHARACTER_KINDS}
    return PitchInputs(synopsis=synopsis, embedding=embedding,
                       metadata={f: table_values(table, f) for f in kinds if f in METADATA_FIELDS},
                       groups=table["group_id"].to_numpy() if "group_id" in table else None,
                       # the year is also what track records are cut at, so it is given whether or not it is a feature
                       year=table_years(table), characters=characters,
                       duration=table_durations(table) if DURATION_FIELD in kinds else None,
                       # from the whole table: a row's earlier franchise anime may sit in another split (never
                       # in a grouped one) or be held out; only strictly earlier years count (franchise_scores)
                       earlier_scores=_earlier_scores_of(anime, ids) if FRANCHISE_FIELD in kinds else None)


def _earlier_scores_of(anime: pd.DataFrame, ids: np.ndarray) -> list[list[float] | None]:
    """The franchise_scores of `ids`, derived over the whole prepared table (None for an id it lacks)."""
    by_id = dict(zip(anime["anime_id"].to_numpy(dtype=np.int64).tolist(), earlier_scores(anime), strict=True))
    return [by_id.get(int(i)) for i in ids]
