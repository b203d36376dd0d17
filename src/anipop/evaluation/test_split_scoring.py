"""A logged model scored as a producer would use it: the test split's anime sent as raw pitches.

Why: the registry judges a challenger against the champion, and the drift check and the replay score champions,
through the very pyfunc that serves, not through the training bundle.
"""

from __future__ import annotations

import json

import pandas as pd

from anipop.core.artifacts import ArtifactPaths, MinMaxScaler
from anipop.core.config import Params
from anipop.data.metadata import METADATA_FIELDS
from anipop.data.schema import PREPARED_ANIME, read_table
from anipop.serving.model_loading import load_model
from anipop.serving.pitch import portrait_data_uri, request_chunks
from anipop.serving.predict import OUTPUT_COLUMNS, served_limits


def test_pitches(params: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The test split as raw pitches (synopsis + characters JSON with portraits inlined) and its true scores."""
    anime = read_table(PREPARED_ANIME, ArtifactPaths.of(params.paths).prepared_anime)
    test = anime[anime["split"] == "test"].reset_index(drop=True)
    return anime_pitches(params, test), test


def anime_pitches(params: Params, anime: pd.DataFrame) -> pd.DataFrame:
    """Prepared anime rows as the raw pitches a producer would have sent: synopsis, main characters with their
    portraits inlined (the served model takes image bytes only, like a client), the pitch metadata and the
    first-air year; nothing known only after release."""
    from anipop.data.schema import PREPARED_CHARACTERS

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
                            if "duration" in anime else {})})


def score_pitches(model, pitches: pd.DataFrame) -> pd.DataFrame:
    """A loaded model's answers for a table of any length, sent through its own interface in requests its
    limits admit (pitch.request_chunks): what a client scoring a whole table would do."""
    limits = served_limits(model)
    answers = [model.predict(chunk.reset_index(drop=True)) for chunk in request_chunks(pitches, limits)]
    return pd.concat(answers, ignore_index=True) if answers else pd.DataFrame(columns=list(OUTPUT_COLUMNS))


def score_model_on_test_split(model_uri: str, params: Params) -> dict[str, float]:
    """Score a registered model through its raw-pitch interface on this data's test split."""
    from anipop.core.metrics import point_metrics

    pitches, test = test_pitches(params)
    scaler = MinMaxScaler.read(ArtifactPaths.of(params.paths).scaler)
    predicted = score_pitches(load_model(model_uri), pitches)
    return point_metrics(test["score_norm"].to_numpy(), scaler.transform(predicted["score"].to_numpy()),
                         scaler.high - scaler.low)
