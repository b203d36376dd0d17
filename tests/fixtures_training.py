"""A small learnable dataset written where train/evaluate read it: prepared tables, embeddings, portraits.

Each anime has a hidden quality q in [0, 1]; its score, its synopsis words, its synopsis and character
description embeddings and its portraits' brightness all follow q, so every modality carries signal and a
working model beats the train mean. Names carry no signal (a control input).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from conftest import params_in
from PIL import Image

from anipop.core.artifacts import MinMaxScaler, save_embeddings
from anipop.core.config import Params
from anipop.core.utils import write_json
from anipop.data.schema import PREPARED_ANIME, PREPARED_CHARACTERS, character_key, write_table

FILLER = "story hero school city friend rival journey secret power night".split()
TINY_NETWORK = {"wide": {"hidden": (32, 16), "dropout": 0.1}, "small": {"hidden": (8,), "dropout": 0.0},
                "learning_rate": 0.01, "max_epochs": 25, "patience": 5, "batch_size": 16, "threads": 1}


def toy_params(tmp_path: Path, **train_updates) -> Params:
    """Params under tmp_path with a tiny network (fast on CPU), few bootstrap resamples, train_updates applied."""
    base = params_in(tmp_path, evaluate={"bootstrap_samples": 50})
    train = base.train.model_dump()
    # the paper's models on the paper's input sets (the pitch-metadata models have their own tests)
    train.update(model="ridge", models=("mlp_wide", "mlp_small", "ridge", "tfidf_benchmark"),
                 ablations=("synopsis", "characters", "images"))
    train["network"].update(TINY_NETWORK)
    train["benchmark"].update(max_features=200, image_size=4)
    return Params.model_validate(base.model_dump() | {"train": train | train_updates})


def write_toy_dataset(params: Params, count: int = 160, characters: bool = True, portraits: bool = True,
                      dim: int = 6, seed: int = 0) -> pd.DataFrame:
    """Write prepared tables, scaler, embeddings (and portraits) for `count` anime; return the anime table."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, count + 1) * 7  # not 0..n-1, so an index/id mix-up shows
    quality = rng.random(count)
    split = np.where(np.arange(count) % 10 == 0, "test", np.where(np.arange(count) % 10 == 1, "val", "train"))
    split[np.arange(count) % 10 == 2] = "test"
    score = 2.0 + 7.0 * quality + rng.normal(0, 0.2, count)
    scaler = MinMaxScaler.fit(pd.Series(score[split == "train"]))
    synopsis = [" ".join(["great"] * int(q * 6) + ["dull"] * int((1 - q) * 6)
                         + list(rng.choice(FILLER, 12))) for q in quality]
    anime = pd.DataFrame({"anime_id": ids, "title": [f"Anime{i}" for i in ids], "synopsis": synopsis,
                          "score": score, "score_norm": scaler.transform(score), "split": split,
                          "group_id": ids, "premiered": [f"{2000 + i % 24}-04-01" for i in range(count)]})
    prepared, embeddings = Path(params.paths.prepared_dir), Path(params.paths.embeddings_dir)
    write_table(PREPARED_ANIME, anime, prepared / "anime.parquet")
    write_json(prepared / "scaler.json", scaler.to_dict())
    synopsis_vectors = np.column_stack([quality + rng.normal(0, 0.05, count), rng.normal(0, 1, (count, dim - 1))])
    save_embeddings(embeddings, "synopsis", [str(i) for i in ids], synopsis_vectors.astype(np.float32))

    rows = []
    if characters:
        for anime_id, q in zip(ids, quality):
            for character_id in (1, 2):
                path = None
                if portraits:
                    path = f"images/{anime_id}_{character_id}.png"
                    (Path(params.paths.raw_dir) / "images").mkdir(parents=True, exist_ok=True)
                    shade = int(40 + 200 * q)
                    Image.new("RGB", (10, 14), (shade, shade, shade)).save(Path(params.paths.raw_dir) / path)
                rows.append({"anime_id": anime_id, "character_id": character_id, "role": "Main",
                             "name": f"Name{anime_id}x{character_id}", "portrait_path": path,
                             "description": "brave " * int(q * 4) + "ordinary person", "quality": q})
    chars = pd.DataFrame(rows, columns=[*PREPARED_CHARACTERS.column_names, "quality"])
    write_table(PREPARED_CHARACTERS, chars.drop(columns="quality"), prepared / "characters.parquet")
    if characters:
        keys = [character_key(a, c) for a, c in zip(chars["anime_id"], chars["character_id"])]
        n = len(chars)
        quality_rows = chars["quality"].to_numpy()
        description = np.column_stack([quality_rows + rng.normal(0, 0.05, n), rng.normal(0, 1, (n, dim - 1))])
        save_embeddings(embeddings, "character_description", keys, description.astype(np.float32))
        save_embeddings(embeddings, "character_name", keys, rng.normal(0, 1, (n, dim)).astype(np.float32))
        if portraits:
            portrait = np.column_stack([quality_rows, rng.normal(0, 0.1, (n, 3))])
            save_embeddings(embeddings, "portrait", keys, portrait.astype(np.float32))
    write_json(embeddings / "manifest.json", {"text_model": "toy", "kinds": {}})
    return anime
