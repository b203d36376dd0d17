"""Real MLflow servers on 127.0.0.1: a tracking server that train + register run against, then
`mlflow models serve` of the champion answering REST requests with a score, or a 400 naming the field.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import CHARACTERS_SAMPLE
from fixtures_pipeline import PITCH, pipeline_params, run_pipeline
from fixtures_servers import free_port, model_server, start, stop, tracking_server_env, wait_until_up
from mlflow import MlflowClient

MLFLOW = [sys.executable, "-m", "mlflow"]


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tracking-server")
    port = free_port()
    log = tmp / "server.log"
    process = start([*MLFLOW, "server", "--backend-store-uri", f"sqlite:///{tmp / 'server.db'}",
                     "--artifacts-destination", str(tmp / "artifacts"), "--host", "127.0.0.1",
                     "--port", str(port), "--workers", "1"], log, tracking_server_env())
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health", process, log, timeout_s=240)  # slow on a busy machine
        yield f"http://127.0.0.1:{port}", tmp
    finally:
        stop(process)


@pytest.fixture(scope="module")
def registered_on_server(tracking_server):
    uri, tmp = tracking_server
    os.environ["MLFLOW_TRACKING_URI"] = uri  # what a team sets; params.yaml stays untouched
    try:
        # with the real characters sample when present: the champion then reads portraits
        sample = CHARACTERS_SAMPLE if (CHARACTERS_SAMPLE / "characters.csv.gz").exists() else None
        params = pipeline_params(tmp / "work", tracking_uri="sqlite:///unused.db", characters_dir=sample)
        result = run_pipeline(params)
    finally:
        del os.environ["MLFLOW_TRACKING_URI"]
    return uri, result, params


def test_train_and_register_against_a_tracking_server(registered_on_server):
    uri, result, _ = registered_on_server
    assert result["promoted"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version_by_alias("anipop", "champion")
    run = client.get_run(version.run_id)
    assert run.data.tags["registered_version"] == str(version.version)
    experiment = client.get_experiment_by_name("anipop-test")
    runs = client.search_runs([experiment.experiment_id])
    assert any(r.info.run_name == "train_mean" and "mse" in r.data.metrics for r in runs)  # evaluation too
    assert not (Path.cwd() / "unused.db").exists()


@pytest.fixture(scope="module")
def served(registered_on_server, tmp_path_factory):
    """`mlflow models serve` of the champion on 127.0.0.1, as the README starts it."""
    if importlib.util.find_spec("uvicorn") is None or importlib.util.find_spec("fastapi") is None:
        pytest.skip("the MLflow serving extra (uvicorn, fastapi) is not installed")
    uri, _, _ = registered_on_server
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with model_server("models:/anipop@champion", {**os.environ, "MLFLOW_TRACKING_URI": uri}, log) as url:
        yield url, log


def test_models_serve_answers_a_pitch_and_rejects_bad_input(served):
    url, _ = served
    good = httpx.post(url, timeout=60, json={
        "dataframe_records": [{"synopsis": PITCH, "characters": '[{"name": "Aoi", "description": "a drummer"}]'}]})
    assert good.status_code == 200, good.text
    (prediction,) = good.json()["predictions"]
    assert prediction["score_low"] <= prediction["score"] <= prediction["score_high"]
    assert 1 <= prediction["score"] <= 10

    bad = httpx.post(url, timeout=60, json={"dataframe_records": [{"synopsis": "   "}]})
    assert bad.status_code == 400
    assert "field 'synopsis': empty" in bad.json()["message"]


def test_served_champion_scores_pitches_with_a_real_base64_portrait_and_without(served, registered_on_server):
    """The joint model: one champion for a synopsis alone and for a synopsis with a character and portrait."""
    import base64

    if not (CHARACTERS_SAMPLE / "portraits" / "1.jpg").exists():
        pytest.skip("the real characters sample is not here")
    uri, _, params = registered_on_server
    from anipop.core.artifacts import load_bundle

    assert "portrait" in load_bundle(params.paths.models_dir / "model.joblib").inputs  # the registered primary
    url, _ = served
    portrait = base64.b64encode((CHARACTERS_SAMPLE / "portraits" / "1.jpg").read_bytes()).decode()  # Spike Spiegel
    spike = {"name": "Spike Spiegel", "description": "A lazy, laid-back bounty hunter with a deadly past.",
             "image": portrait}
    answer = httpx.post(url, timeout=60, json={"dataframe_records": [
        {"synopsis": PITCH, "characters": json.dumps([spike])}, {"synopsis": PITCH, "characters": "[]"}]})
    assert answer.status_code == 200, answer.text
    with_portrait, synopsis_only = answer.json()["predictions"]
    for prediction in (with_portrait, synopsis_only):
        assert 1 <= prediction["score_low"] <= prediction["score"] <= prediction["score_high"] <= 10
    assert with_portrait["score"] != synopsis_only["score"]  # the character branch is read, not ignored


def test_cli_predict_with_a_real_portrait_file(registered_on_server, tmp_path):
    """`anipop predict --character NAME::DESCRIPTION::IMAGE` with a portrait of the sample (PNG named .jpg)."""
    import yaml
    from typer.testing import CliRunner

    from anipop.cli import app

    portrait = CHARACTERS_SAMPLE / "portraits" / "171858.jpg"
    if not portrait.exists():
        pytest.skip("the real characters sample is not here")
    uri, _, params = registered_on_server
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))
    result = CliRunner().invoke(app, [
        "predict", "--params", str(params_file), "--model-uri", "models:/anipop@champion", "--synopsis", PITCH,
        "--character", f"Kou Minamoto::A kind exorcist who guards the school's mysteries::{portrait}"],
        env={"MLFLOW_TRACKING_URI": uri})
    assert result.exit_code == 0, result.output
    assert "score_low" in result.output and "models:/anipop@champion" in result.output


def _png(width: int, height: int) -> str:
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (40, 90, 160)).save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode()


def _character(image: str | None = None, index: int = 0) -> dict:
    return {"name": f"C{index}", "description": "a drummer", **({"image": image} if image else {})}


@pytest.mark.parametrize("record, message", [
    ({"synopsis": PITCH, "characters": json.dumps([_character("/etc/shadow")])},
     "not base64 image data or a data: URI (file paths are not accepted"),
    ({"synopsis": PITCH, "characters": json.dumps([_character("/no/such/file.png")])},
     "not base64 image data or a data: URI (file paths are not accepted"),
    ({"synopsis": "word " * 5000}, "exceed the limit prepare.max_synopsis_chars = 20000"),
    ({"synopsis": PITCH, "charaters": "[]"}, "unknown field(s) ['charaters']"),
    ({"synopsis": PITCH, "characters": json.dumps([_character(index=i) for i in range(21)])},
     "21 characters exceed the limit serving.max_characters_per_pitch = 20"),
    ({"synopsis": PITCH, "characters": json.dumps([_character(_png(6000, 6000))])},
     "pixel limit (decompression-bomb guard; serving.max_image_pixels)"),
    ({"synopsis": PITCH, "characters": json.dumps([_character(_png(1900, 1900), i) for i in range(6)])},
     "exceed what is left of the limit serving.max_request_pixels = 20000000"),
    ({"synopsis": PITCH, "characters": "[" * 50_000 + "]" * 50_000}, "JSON nested too deeply"),
    ({"synopsis": PITCH, "characters": json.dumps([_character("A" * 6000)])}, "cannot decode image data"),
    ({"synopsis": PITCH, "characters": json.dumps([_character("x" * 6_000_000)])},
     "exceeds the limit serving.max_request_bytes = 5000000"),
])
def test_served_model_bounds_requests_and_never_reads_server_files(served, record, message):
    url, log = served
    answer = httpx.post(url, timeout=120, json={"dataframe_records": [record]})
    assert answer.status_code == 400, answer.text[:2000]
    body = answer.json()
    assert message in body["message"], body["message"][:2000]
    assert "stack_trace" not in body and "Traceback" not in answer.text


def test_served_model_answers_garbage_without_a_stack_trace(served):
    url, _ = served
    for payload in ({"dataframe_records": [{"synopsis": PITCH, "characters": {"deep": [[[[1]]]]}}]},
                    {"inputs": [[1, 2, 3]]}, {"dataframe_split": {"columns": ["synopsis"], "data": [[None]]}},
                    {"dataframe_records": [{"synopsis": 42}]}):
        answer = httpx.post(url, timeout=60, json=payload)
        assert answer.status_code == 400, (payload, answer.text[:2000])
        assert "stack_trace" not in answer.json() and "Traceback" not in answer.text, answer.text[:2000]


def test_two_racing_registrations_leave_the_better_model_champion(tracking_server, tmp_path):
    """Two real `anipop register` processes against one server, the worse one started second: with a plain
    read-decide-set both would promote and the alias would end on whichever set it last."""
    import shutil

    import numpy as np
    import yaml

    from anipop.data.schema import PREPARED_ANIME, read_table, write_table
    from anipop.evaluation.evaluate import run_evaluate
    from anipop.modeling.train import run_train

    uri, _ = tracking_server
    good = pipeline_params(tmp_path / "good", tracking_uri=uri)
    good = good.model_copy(update={"registry": good.registry.model_copy(update={"model_name": "anipop-race"})})
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        from anipop.data.prepare import run_prepare
        from anipop.embedding.embed import run_embed
        from anipop.sources.ingest import run_ingest
        from anipop.steps import call_step

        for step in (run_ingest, run_prepare, run_embed, run_train, run_evaluate):
            call_step(step, good)
        # the worse model: the same data (same test ids, labels and scaler), trained on shuffled train targets
        bad_dir = tmp_path / "bad"
        shutil.copytree(good.paths.prepared_dir, bad_dir / "prepared")
        bad = good.model_copy(update={"paths": good.paths.model_copy(update={
            "prepared_dir": bad_dir / "prepared", "models_dir": bad_dir / "models", "reports_dir": bad_dir / "reports"})})
        anime = read_table(PREPARED_ANIME, bad.paths.prepared_dir / "anime.parquet")
        train = anime["split"] == "train"
        anime.loc[train, "score_norm"] = np.random.default_rng(0).permutation(anime.loc[train, "score_norm"].to_numpy())
        write_table(PREPARED_ANIME, anime, bad.paths.prepared_dir / "anime.parquet")
        run_train(bad)
        run_evaluate(bad)
    finally:
        del os.environ["MLFLOW_TRACKING_URI"]

    files = {}
    for label, params in (("good", good), ("bad", bad)):
        files[label] = tmp_path / f"{label}.yaml"
        files[label].write_text(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    processes = {}
    for label in ("good", "bad"):  # the worse one second, so without a lock its alias would land last
        processes[label] = subprocess.Popen([sys.executable, "-m", "anipop.cli", "register", "--params",
                                             str(files[label])], env=env, stdout=subprocess.PIPE,
                                            stderr=subprocess.STDOUT, text=True)
        time.sleep(1.0)
    outputs = {label: process.communicate(timeout=400)[0] for label, process in processes.items()}
    for label, process in processes.items():
        assert process.returncode == 0, outputs[label][-3000:]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = client.search_model_versions("name='anipop-race'")
    assert len(versions) == 2
    best = max(versions, key=lambda v: float(v.tags["test.spearman"]))
    champion = client.get_model_version_by_alias("anipop-race", "champion")
    assert str(champion.version) == str(best.version), outputs
    assert float(best.tags["test.spearman"]) > float(min(versions, key=lambda v: float(v.tags["test.spearman"])).tags["test.spearman"])
