"""A logged model scored as a producer would use it: anime sent as raw pitches through its served interface.

Why: the registry judges a challenger against the champion, and the drift check and the replay score champions,
through the very pyfunc that serves, not through the training bundle; each (model, pitches) pair once.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from anipop.core.artifacts import ArtifactPaths
from anipop.core.config import Params, Paths
from anipop.core.utils import atomic_path
from anipop.data.franchise_scores import FRANCHISE_FIELD, earlier_scores, stored
from anipop.data.metadata import METADATA_FIELDS
from anipop.data.schema import PREPARED_ANIME, PREPARED_CHARACTERS, read_table
from anipop.serving.model_loading import load_model
from anipop.serving.pitch import portrait_data_uri, request_chunks
from anipop.serving.predict import OUTPUT_COLUMNS, served_limits
from anipop.serving.text_vectors import keep_text_vectors


def anime_pitches(params: Params, anime: pd.DataFrame) -> pd.DataFrame:
    """Prepared anime rows as the raw pitches a producer would have sent: synopsis, main characters with their
    portraits inlined (the served model takes image bytes only, like a client), the pitch metadata and the
    first-air year; nothing known only after release."""
    paths = ArtifactPaths.of(params.paths)
    characters = read_table(PREPARED_CHARACTERS, paths.prepared_characters)
    wanted = set(anime["anime_id"].astype(int))
    by_anime: dict[int, list[dict]] = {}
    for row in characters[characters["anime_id"].isin(wanted)].itertuples():
        image = None if pd.isna(row.portrait_path) else portrait_data_uri(paths.raw_dir / row.portrait_path)
        by_anime.setdefault(int(row.anime_id), []).append(
            {"name": row.name, "description": row.description, **({"image": image} if image else {})})
    anime = anime.reset_index(drop=True)
    return pd.DataFrame({"synopsis": anime["synopsis"].astype(str),
                         "characters": [json.dumps(by_anime.get(int(a), [])) for a in anime["anime_id"]],
                         # the pitch metadata a producer would give (absent in old tables: left out)
                         **{f: anime[f].fillna("").astype(str) for f in METADATA_FIELDS if f in anime},
                         "year": anime["premiered"].astype("string").str[:4].fillna("").astype(str),
                         **({"duration": anime["duration"].astype("Float64").astype(str).replace("<NA>", "")}
                            if "duration" in anime else {}),
                         # what the producer of each would have read off MAL: its franchise's earlier scores
                         FRANCHISE_FIELD: [stored(s) for s in _earlier_scores(paths, anime)]})


def _earlier_scores(paths: ArtifactPaths, anime: pd.DataFrame) -> list[list[float] | None]:
    """franchise_scores of `anime`'s rows over them and the prepared table beside them (a new anime's prequel
    may be one the model trained on); None where a row has no franchise group or date."""
    if "group_id" not in anime.columns:
        return [None] * len(anime)
    pool = anime
    if paths.prepared_anime.exists():
        prepared = read_table(PREPARED_ANIME, paths.prepared_anime)
        pool = pd.concat([anime, prepared[~prepared["anime_id"].isin(anime["anime_id"])]], ignore_index=True)
    return earlier_scores(pool)[:len(anime)]


def score_pitches(model, pitches: pd.DataFrame) -> pd.DataFrame:
    """A loaded model's answers for a table of any length, sent through its own interface in requests its
    limits admit (pitch.request_chunks): what a client scoring a whole table would do."""
    limits = served_limits(model)
    answers = [model.predict(chunk.reset_index(drop=True)) for chunk in request_chunks(pitches, limits)]
    return pd.concat(answers, ignore_index=True) if answers else pd.DataFrame(columns=list(OUTPUT_COLUMNS))


def model_identity(model_uri: str) -> str:
    """The logged model behind a URI: `models:/<name>/<version>` resolves to the version's source, so one model
    registered under several names (the replay's policies) is loaded and scored once."""
    parts = model_uri.removeprefix("models:/").split("/")
    if not model_uri.startswith("models:/") or len(parts) != 2 or not parts[1].isdigit():
        return model_uri
    from mlflow import MlflowClient

    return MlflowClient().get_model_version(parts[0], parts[1]).source or model_uri


@lru_cache(maxsize=16)
def _loaded(identity: str):
    return load_model(identity)


_SCORED: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_SCORED_MAX = 64


def _runtime() -> str:
    """What besides the model decides its scores: the libraries that run it."""
    from importlib.metadata import version

    return ",".join(f"{name}={version(name)}" for name in ("onnxruntime", "torch", "scikit-learn", "lightgbm"))


def served_scores(model_uri: str, pitches: pd.DataFrame, caches: Paths | None = None) -> np.ndarray:
    """A registered model's scores (1-10) for raw pitches, through its served interface.

    Each (model, pitches) pair is scored once: in the process, and across processes when the project's `caches`
    are given (paths.served_scores_dir: a file per pair, keyed by the logged model behind the URI, the pitches'
    bytes and the runtime's versions). Why: the replay's registry, drift check and live judgement ask for the same
    champion's scores on the same anime in different processes and under several registered names; scoring is
    deterministic, so a stored answer is the answer. In paths.embedding_cache_dir the model's text encoder finds
    the vectors the embed stage made for the same texts (serving.text_vectors says when they are the same).
    """
    if pitches.empty:
        return np.zeros(0)
    identity = model_identity(model_uri)
    digest = hashlib.sha256("|".join([identity, _runtime(), pitches.to_json(orient="split", index=False)])
                            .encode()).hexdigest()
    key = (identity, digest)
    if key not in _SCORED:
        stored = Path(caches.served_scores_dir) / f"{digest}.npy" if caches is not None else None
        if stored is not None and stored.exists():
            scores = np.load(stored)
        else:
            keep_text_vectors(caches.embedding_cache_dir if caches is not None else None)  # the next model scored on these pitches reuses their texts' vectors
            scores = score_pitches(_loaded(identity), pitches)["score"].to_numpy(dtype=float)
            if stored is not None:
                stored.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(stored) as tmp, open(tmp, "wb") as handle:
                    np.save(handle, scores)
        _SCORED[key] = scores
        while len(_SCORED) > _SCORED_MAX:
            _SCORED.popitem(last=False)
    return _SCORED[key].copy()
