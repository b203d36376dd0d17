"""The validate step: good data passes, each broken invariant fails with a message naming the rows."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from anipop.core.config import Params, load_params
from anipop.data.schema import PREPARED_ANIME, PREPARED_CHARACTERS, RAW_ANIME, RAW_CHARACTERS, write_table
from anipop.data.validate import ValidationFailed, run_validate
from anipop.steps import call_step

PARAMS_FILE = Path(__file__).resolve().parents[2] / "params.yaml"
SYNOPSIS = "A long enough synopsis about a group of friends who form a band in high school."


def _params(tmp_path: Path) -> Params:
    base = load_params(PARAMS_FILE)
    paths = base.paths.model_copy(update={
        "raw_dir": tmp_path / "raw",
        "prepared_dir": tmp_path / "prepared",
        "validation_dir": tmp_path / "validation",
    })
    return base.model_copy(update={"paths": paths})


def _portrait(path: Path, colour: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 6), colour).save(path)


def _raw_anime(ids: list[int], scores: list[float | None]) -> pd.DataFrame:
    frame = RAW_ANIME.empty()
    frame["anime_id"] = ids
    frame["title"] = [f"Anime {i}" for i in ids]
    frame["synopsis"] = SYNOPSIS
    frame["score"] = scores
    return frame


def _prepared_anime(ids: list[int], scores: list[float]) -> pd.DataFrame:
    splits = ["train", "val", "test"]
    return pd.DataFrame({
        "anime_id": ids,
        "title": [f"Anime {i}" for i in ids],
        "synopsis": SYNOPSIS,
        "score": scores,
        "score_norm": [(s - 1) / 9 for s in scores],
        "split": [splits[i % 3] for i in range(len(ids))],
        "group_id": ids,
        "premiered": "2013-04-07",
    })


def _characters(rows: list[tuple[int, int]]) -> pd.DataFrame:
    return pd.DataFrame({
        "anime_id": [a for a, _ in rows],
        "character_id": [c for _, c in rows],
        "name": [f"Character {c}" for _, c in rows],
        "role": "Main",
        "description": "A character.",
        "portrait_path": [f"images/{c}.png" for _, c in rows],
    })


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Params, dict[str, pd.DataFrame]]:
    """A small valid dataset on disk; tests edit a table with `_write` and rerun validate."""
    params = _params(tmp_path)
    chars = _characters([(1, 10), (1, 11), (2, 20), (3, 30)])
    for i, cid in enumerate(chars["character_id"]):
        _portrait(params.paths.raw_dir / "images" / f"{cid}.png", (i * 40, 100, 200))
    tables = {
        "raw_anime": _raw_anime([1, 2, 3, 4], [8.5, 7.25, 6.0, None]),
        "raw_characters": chars,
        "prepared_anime": _prepared_anime([1, 2, 3], [8.5, 7.25, 6.0]),
        "prepared_characters": chars,
    }
    for name, frame in tables.items():
        _write(params, name, frame)
    return params, tables


def _write(params: Params, name: str, frame: pd.DataFrame) -> None:
    stage, table = name.split("_", 1)
    schema = {"raw_anime": RAW_ANIME, "raw_characters": RAW_CHARACTERS,
              "prepared_anime": PREPARED_ANIME, "prepared_characters": PREPARED_CHARACTERS}[name]
    folder = params.paths.raw_dir if stage == "raw" else params.paths.prepared_dir
    write_table(schema, frame, folder / f"{table}.parquet")


def _fails(params: Params) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as info:
        call_step(run_validate, params)
    err = info.value
    assert err.data_docs.is_file(), "Data Docs must exist after a failed run too"
    assert (params.paths.validation_dir / "summary.json").is_file()
    assert err.summary["success"] is False
    return err


def test_good_dataset_passes_and_writes_summary_and_docs(dataset):
    params, _ = dataset
    summary = call_step(run_validate, params)
    assert summary["success"] is True
    assert set(summary["suites"]) == {"raw_anime", "raw_characters", "prepared_anime", "prepared_characters"}
    on_disk = json.loads((params.paths.validation_dir / "summary.json").read_text())
    assert on_disk["success"] is True
    exp = on_disk["suites"]["prepared_anime"]["expectations"][0]
    assert {"expectation", "column", "success", "unexpected_count", "sample_keys"} <= set(exp)
    assert (params.paths.validation_dir / "data_docs" / "index.html").is_file()
    assert "all suites passed" in (params.paths.validation_dir / "data_docs" / "offline.html").read_text()
    # A rerun rebuilds the docs instead of piling up one validation page per run.
    call_step(run_validate, params)
    pages = list((params.paths.validation_dir / "data_docs" / "validations").rglob("*.html"))
    assert len(pages) == 4


def test_score_out_of_range_names_column_and_anime(dataset):
    params, _ = dataset
    _write(params, "prepared_anime", _prepared_anime([1, 2, 3], [8.5, 11.0, 6.0]))
    err = _fails(params)
    expected = "prepared_anime: expect_column_values_to_be_between(score, 1..10) failed for 1 row: anime_id 2"
    assert expected in str(err)
    failed = [e for e in err.summary["suites"]["prepared_anime"]["expectations"] if not e["success"]]
    assert [(e["column"], e["sample_keys"]) for e in failed] == [("score", ["2"])]


def test_duplicated_anime_id_fails(dataset):
    params, _ = dataset
    _write(params, "prepared_anime", _prepared_anime([1, 2, 2], [8.5, 7.25, 6.0]))
    err = _fails(params)
    expected = "prepared_anime: expect_column_values_to_be_unique(anime_id) failed for 2 rows: anime_id 2, 2"
    assert expected in str(err)
    assert err.summary["suites"]["raw_anime"]["success"] is True


def test_a_franchise_across_splits_and_a_leftover_credit_fail(dataset):
    params, _ = dataset
    anime = _prepared_anime([1, 2, 3], [8.5, 7.25, 6.0]).assign(group_id=[1, 1, 3])  # 1 in train, 2 in val
    anime.loc[2, "synopsis"] = f"{SYNOPSIS} (Source: ANN)"
    _write(params, "prepared_anime", anime)
    err = str(_fails(params))
    assert "expect_column_values_to_be_in_set(franchise_in_one_split, in {True}) failed for 2 rows: anime_id 1, 2" in err
    assert "expect_column_values_to_not_match_regex(synopsis, /(?i)[\\(\\[]\\s*sources?\\s*:/" in err


def test_duplicated_raw_anime_id_fails(dataset):
    params, _ = dataset
    _write(params, "raw_anime", _raw_anime([1, 2, 3, 3], [8.5, 7.25, 6.0, None]))
    err = _fails(params)
    assert "raw_anime: expect_column_values_to_be_unique(anime_id) failed for 2 rows: anime_id 3, 3" in str(err)


def test_character_of_missing_anime_fails_with_compound_key(dataset):
    params, tables = dataset
    chars = pd.concat([tables["prepared_characters"], _characters([(99, 40)])], ignore_index=True)
    _portrait(params.paths.raw_dir / "images" / "40.png", (1, 2, 3))
    _write(params, "prepared_characters", chars)
    err = _fails(params)
    assert "prepared_characters: expect_column_values_to_be_in_set(anime_exists, in {True})" in str(err)
    assert "anime_id:character_id 99:40" in str(err)
    assert err.summary["suites"]["raw_characters"]["success"] is True


def test_corrupt_and_missing_portraits_fail(dataset):
    params, _ = dataset
    images = params.paths.raw_dir / "images"
    (images / "11.png").write_bytes(bytes(range(256)) * 4)  # random bytes with a .png name
    (images / "30.png").unlink()
    err = _fails(params)
    failed = [e for e in err.summary["suites"]["prepared_characters"]["expectations"] if not e["success"]]
    assert [(e["column"], e["sample_keys"]) for e in failed] == [("portrait_opens", ["1:11", "3:30"])]
    assert "portrait_opens" in str(err) and "1:11, 3:30" in str(err)


def test_empty_characters_tables_pass(dataset):
    params, _ = dataset
    _write(params, "raw_characters", RAW_CHARACTERS.empty())
    _write(params, "prepared_characters", PREPARED_CHARACTERS.empty())
    summary = call_step(run_validate, params)
    assert summary["suites"]["prepared_characters"]["rows"] == 0
    assert summary["success"] is True


def test_a_supporting_role_and_a_portrait_path_outside_the_raw_folder_fail(dataset):
    params, tables = dataset
    prepared = tables["prepared_characters"].copy()
    prepared.loc[1, "role"] = "Supporting"
    raw = tables["raw_characters"].copy()
    raw.loc[2, "portrait_path"] = "../../etc/20.png"
    _write(params, "prepared_characters", prepared)
    _write(params, "raw_characters", raw)
    err = _fails(params)
    prepared_failed = [e for e in err.summary["suites"]["prepared_characters"]["expectations"] if not e["success"]]
    raw_failed = [e for e in err.summary["suites"]["raw_characters"]["expectations"] if not e["success"]]
    assert [(e["column"], e["sample_keys"]) for e in prepared_failed] == [("role", ["1:11"])]
    assert [(e["column"], e["sample_keys"]) for e in raw_failed] == [("portrait_path", ["2:20"])]
