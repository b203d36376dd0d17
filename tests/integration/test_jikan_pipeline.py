"""The full multimodal path end to end: a mocked Jikan ingest with main characters and portraits flows through
prepare -> validate -> embed -> train -> evaluate -> register, and the champion scores a pitch with a portrait.

Portrait brightness and synopsis words both follow each anime's score, so the character and image inputs
carry signal; a few characters are broken on purpose (no description, a truncated portrait, a supporting
role) and must end in quarantine, not in the model.
"""

from __future__ import annotations

import base64
import json
import random

import httpx
import pandas as pd
import pytest
import respx
from conftest import knobs, params_in
from fixtures_jikan import AnimeSpec, CharacterSpec, image_bytes, mock_jikan, truncated_image_bytes
from fixtures_training import TINY_NETWORK

from anipop.core.utils import read_json
from anipop.data.prepare import run_prepare
from anipop.data.schema import PREPARED_CHARACTERS, QUARANTINE, read_table
from anipop.data.validate import run_validate
from anipop.embedding.embed import run_embed
from anipop.evaluation.evaluate import run_evaluate
from anipop.modeling.train import run_train
from anipop.registry.register import run_register
from anipop.serving.model_loading import load_model
from anipop.sources.ingest import run_ingest
from anipop.sources.jikan import JikanSource
from anipop.steps import call_step

pytestmark = pytest.mark.e2e


def anime_specs(count: int) -> list[AnimeSpec]:
    rng = random.Random(3)
    specs = []
    for mal_id in range(1, count + 1):
        quality = rng.random()
        shade = int(30 + 200 * quality)
        words = "an acclaimed beloved masterpiece" if quality > 0.5 else "a dull generic forgettable show"
        hero = CharacterSpec(mal_id * 10 + 1, f"Hero, Number{mal_id}", about=f"The hero of {words}.",
                             image=image_bytes(color=(shade, shade, shade)))
        side = CharacterSpec(mal_id * 10 + 2, f"Friend, Number{mal_id}", role="Supporting")
        specs.append(AnimeSpec(mal_id, f"Anime{mal_id}", characters=[hero, side], score=round(3 + 6 * quality, 2),
                               synopsis=f"This is {words} about a journey across a divided world. " * 3))
    specs[0].characters.append(CharacterSpec(13, "No, About", about=None))
    specs[1].characters.append(CharacterSpec(23, "Broken, Portrait", image=truncated_image_bytes()))
    return specs


@pytest.fixture(scope="module")
def jikan_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("jikan-e2e")
    params = params_in(
        tmp_path,
        ingest={"source": "jikan", "limit": 80},
        train={"model": "mlp_small", "models": ("mlp_small", "ridge", "tfidf_benchmark"),
               "ablations": ("synopsis", "characters", "images"),
               "network": knobs("train.network").model_dump() | TINY_NETWORK},
        evaluate={"bootstrap_samples": 20},
        mlflow={"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "artifact_location": str(tmp_path / "mlruns"),
                "experiment": "jikan-e2e"},
    )
    with respx.mock(assert_all_called=False) as router, httpx.Client() as client:
        mock_jikan(router, anime_specs(80))
        source = JikanSource(client=client, limit=80, sleep=lambda _: None, progress=False,
                             cache_dir=params.paths.http_cache_dir)
        ingest_report = call_step(run_ingest, params, source=source)
    reports = {"ingest": ingest_report}
    for name, step in (("prepare", run_prepare), ("validate", run_validate), ("embed", run_embed),
                       ("train", run_train), ("evaluate", run_evaluate), ("register", run_register)):
        reports[name] = call_step(step, params)
    return params, reports


def test_characters_and_portraits_survive_cleaning_and_bad_ones_are_quarantined(jikan_run):
    params, reports = jikan_run
    assert reports["ingest"]["anime"] == 80 and reports["ingest"]["characters"] == 82
    characters = read_table(PREPARED_CHARACTERS, params.paths.prepared_dir / "characters.parquet")
    assert len(characters) == 80 and characters["portrait_path"].notna().all()
    quarantine = read_table(QUARANTINE, params.paths.prepared_dir / "quarantine.parquet")
    rules = quarantine.groupby("row_key")["rule"].apply(set)
    assert rules["1:13"] == {"character_without_description"}
    assert rules["2:23"] == {"portrait_download", "character_without_portrait"}  # ingest, then prepare
    assert reports["validate"]["success"]


def test_every_modality_is_embedded_and_trained(jikan_run):
    params, reports = jikan_run
    manifest = read_json(params.paths.embeddings_dir / "manifest.json")
    assert set(manifest["kinds"]) == {"synopsis", "character_description", "character_name", "portrait"}
    assert manifest["kinds"]["portrait"]["count"] == 80
    ablation = read_json(params.paths.reports_dir / "ablation.json")
    flat = json.dumps(ablation)
    for input_set in ("all_inputs", "synopsis", "characters", "images"):
        assert input_set in flat
    metrics = read_json(params.paths.reports_dir / "metrics.json")
    # portraits alone carry the score (brightness): the images-only ridge must beat the train mean
    images_ridge = next(v for k, v in _flatten(ablation).items() if "images" in k and "ridge" in k and k.endswith("r2"))
    assert images_ridge > 0.3, ablation
    assert metrics["mlp_small"]["spearman"] > 0.5


def _flatten(payload: dict, prefix: str = "") -> dict[str, float]:
    flat: dict[str, float] = {}
    for key, value in payload.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)):
            flat[f"{prefix}{key}"] = value
    return flat


def test_champion_scores_a_pitch_with_a_portrait(jikan_run):
    params, reports = jikan_run
    assert reports["register"]["promoted"]
    model = load_model(f"models:/{params.registry.model_name}@champion")

    def pitch(shade: int, words: str) -> dict:
        portrait = base64.b64encode(image_bytes(color=(shade, shade, shade))).decode()
        return {"synopsis": f"This is {words} about a journey across a divided world.",
                "characters": json.dumps([{"name": "Hero, New", "description": f"The hero of {words}.",
                                           "image": portrait}])}

    scores = model.predict(pd.DataFrame([pitch(225, "an acclaimed beloved masterpiece"),
                                         pitch(35, "a dull generic forgettable show")]))
    assert scores["score"].iloc[0] > scores["score"].iloc[1]
