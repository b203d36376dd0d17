"""The prepare step: each cleaning rule quarantines with its name, the split is stable, the scaler is train-only."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import params_in
from PIL import Image

from anipop.core.config import SplitRatios
from anipop.data.prepare import assign_split, run_prepare
from anipop.data.schema import (
    PREPARED_ANIME,
    PREPARED_CHARACTERS,
    QUARANTINE,
    RAW_ANIME,
    RAW_CHARACTERS,
    read_table,
    write_table,
)
from anipop.core.utils import read_json
from anipop.steps import call_step

LONG = " ".join(["word"] * 25)


def _raw(params, anime_rows: list[dict], character_rows: list[dict] | None = None) -> None:
    raw = params.paths.raw_dir
    anime = pd.DataFrame([{"title": f"A{r['anime_id']}", "synopsis": LONG, "score": 5.0 + r["anime_id"] % 40 / 10, **r}
                          for r in anime_rows])
    anime = anime.reindex(columns=RAW_ANIME.column_names)
    chars = pd.DataFrame(character_rows or [], columns=RAW_CHARACTERS.column_names)
    write_table(RAW_ANIME, anime, raw / "anime.parquet")
    write_table(RAW_CHARACTERS, chars, raw / "characters.parquet")
    write_table(QUARANTINE, QUARANTINE.empty(), raw / "quarantine.parquet")


def _rules(quarantine: pd.DataFrame) -> dict[str, str]:
    return dict(zip(quarantine["row_key"], quarantine["rule"]))


def test_anime_rules_quarantine_each_reject(tmp_path):
    params = params_in(tmp_path, prepare={"drop_anime_without_main_character": True})  # the paper's rule
    _raw(params, [{"anime_id": i, "score": 5.0 + i * 0.1} for i in range(1, 41)]
         + [{"anime_id": 100, "score": None}, {"anime_id": 101, "synopsis": "too short"}, {"anime_id": 102, "synopsis": None}])
    report = call_step(run_prepare, params)
    quarantine = read_table(QUARANTINE, params.paths.prepared_dir / "quarantine.parquet")
    assert _rules(quarantine) == {"100": "unscored", "101": "short_synopsis", "102": "no_synopsis"}
    assert report["anime_kept"] == 40
    assert "source has no characters" in report["notes"][0]


def test_rules_are_params(tmp_path):
    params = params_in(tmp_path, prepare={"min_synopsis_words": 1, "drop_unscored": True})
    _raw(params, [{"anime_id": i} for i in range(1, 30)] + [{"anime_id": 101, "synopsis": "too short"}])
    call_step(run_prepare, params)
    kept = read_table(PREPARED_ANIME, params.paths.prepared_dir / "anime.parquet")
    assert 101 in set(kept["anime_id"])


def test_scaler_is_fitted_on_train_only_and_split_saved(tmp_path):
    params = params_in(tmp_path)
    _raw(params, [{"anime_id": i, "score": 1.0 + (i % 90) / 10} for i in range(1, 301)])
    call_step(run_prepare, params)
    anime = read_table(PREPARED_ANIME, params.paths.prepared_dir / "anime.parquet")
    train = anime[anime["split"] == "train"]
    scaler = read_json(params.paths.prepared_dir / "scaler.json")
    assert scaler == {"min": train["score"].min(), "max": train["score"].max()}
    assert train["score_norm"].min() == 0.0 and train["score_norm"].max() == 1.0
    splits = read_json(params.paths.prepared_dir / "splits.json")
    assert sorted(sum(splits.values(), [])) == sorted(anime["anime_id"])
    assert 0.7 < len(splits["train"]) / len(anime) < 0.9


def test_split_is_deterministic_and_stable_when_rows_are_added():
    ratios = SplitRatios(train=0.8, val=0.1, test=0.1)
    first = {i: assign_split(i, 42, ratios) for i in range(1, 1001)}
    grown = {i: assign_split(i, 42, ratios) for i in range(1, 2001)}
    assert all(grown[i] == first[i] for i in first)
    assert {i: assign_split(i, 7, ratios) for i in range(1, 1001)} != first  # the seed matters


def test_character_rules(tmp_path):
    params = params_in(tmp_path, prepare={"drop_anime_without_main_character": True})  # the paper's rule
    images = params.paths.raw_dir / "images"
    images.mkdir(parents=True)
    Image.new("RGB", (8, 8), (200, 10, 10)).save(images / "1.png")
    Image.new("RGB", (8, 8), (10, 200, 10)).save(images / "5.png")
    (images / "2.png").write_bytes(b"not an image at all")
    chars = [
        {"anime_id": 1, "character_id": 1, "name": "Ok", "role": "Main", "description": "hero", "portrait_path": "images/1.png"},
        {"anime_id": 1, "character_id": 2, "name": "Bad img", "role": "Main", "description": "x", "portrait_path": "images/2.png"},
        {"anime_id": 1, "character_id": 3, "name": "Side", "role": "Supporting", "description": "x", "portrait_path": "images/1.png"},
        {"anime_id": 2, "character_id": 4, "name": "No desc", "role": "Main", "description": None, "portrait_path": "images/1.png"},
        {"anime_id": 99, "character_id": 5, "name": "Orphan", "role": "Main", "description": "x", "portrait_path": "images/5.png"},
        {"anime_id": 3, "character_id": 6, "name": "No img", "role": "Main", "description": "x", "portrait_path": None},
    ] + [{"anime_id": a, "character_id": 100 + a, "name": f"C{a}", "role": "Main", "description": "d",
          "portrait_path": "images/1.png"} for a in range(10, 25)]
    _raw(params, [{"anime_id": i} for i in range(1, 30)], chars)
    report = call_step(run_prepare, params)
    quarantine = read_table(QUARANTINE, params.paths.prepared_dir / "quarantine.parquet")
    rules = _rules(quarantine)
    assert rules["1:2"] == "unreadable_portrait" and rules["1:3"] == "not_main_character"
    assert rules["2:4"] == "character_without_description" and rules["99:5"] == "anime_dropped"
    assert rules["3:6"] == "character_without_portrait"
    # anime 2 and 3 lost their only main character; 4..9 and 25..29 never had one
    assert rules["2"] == rules["3"] == rules["4"] == rules["29"] == "no_main_character"
    kept = read_table(PREPARED_CHARACTERS, params.paths.prepared_dir / "characters.parquet")
    assert kept["character_id"].tolist() == [1] + [100 + a for a in range(10, 25)]
    assert report["anime_kept"] == 16


def test_empty_train_split_is_a_clear_error(tmp_path):
    params = params_in(tmp_path)
    _raw(params, [{"anime_id": 1, "score": None}])
    with pytest.raises(ValueError, match="train split is empty"):
        call_step(run_prepare, params)
