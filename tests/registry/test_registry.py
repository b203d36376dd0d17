"""Registry and prediction: a real pipeline run on a small learnable dataset, registered and scored as a pitch.

The steps run for real (ingest of a MAL-shaped CSV, prepare, embed with the packaged MiniLM encoder,
train, evaluate, register) against a sqlite MLflow store in tmp; then a worse model must not take `champion`.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from fixtures_pipeline import PITCH, pipeline_params, run_pipeline
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from anipop.core.artifacts import ArtifactPaths
from anipop.data.schema import PREPARED_ANIME, read_table, write_table
from anipop.evaluation.evaluate import run_evaluate
from anipop.modeling.train import run_train
from anipop.registry.promotion import decide
from anipop.registry.register import run_register, split_fingerprint
from anipop.serving.model_loading import load_model


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("registry")
    params = pipeline_params(tmp_path)
    first = run_pipeline(params)
    return params, first


def test_first_version_becomes_champion_with_tags_and_card(registered):
    params, first = registered
    assert first["promoted"] and first["version"] == "1"
    client = MlflowClient(tracking_uri=params.mlflow.tracking_uri, registry_uri=params.mlflow.tracking_uri)
    version = client.get_model_version_by_alias("anipop", "champion")
    assert str(version.version) == "1"
    for tag in ("git_commit", "data_hash", "test_split", "text_encoder", "image_encoder", "ablation",
                "test.spearman", "baseline.mse"):
        assert tag in version.tags, tag
    assert "train_mean (baseline)" in version.description and "relevant but not decisive" in version.description


def test_champion_scores_a_raw_pitch_with_an_interval(registered):
    params, _ = registered
    model = load_model("models:/anipop@champion")
    scores = model.predict(pd.DataFrame({"synopsis": [PITCH, "A boring generic forgettable school story."],
                                         "characters": ["[]", None]}))
    assert list(scores.columns) == ["score", "score_low", "score_high", "baseline_score", "coverage", "notes"]
    assert ((scores["score_low"] <= scores["score"]) & (scores["score"] <= scores["score_high"])).all()
    assert scores["score"].between(1, 10).all()
    assert scores["score"].iloc[0] > scores["score"].iloc[1]  # the learnable words drive the score


def test_the_served_answer_says_per_pitch_what_the_model_did_not_read(registered):
    """REST clients get the note the CLI prints: a champion that ignores the characters sent says so, per row."""
    model = load_model("models:/anipop@champion")
    character = '[{"name": "Kaede", "description": "a tired bounty hunter"}]'
    scores = model.predict(pd.DataFrame({"synopsis": [PITCH, PITCH], "characters": [character, "[]"],
                                         "studios": ["A Studio Nobody Knows", None],
                                         "franchise_scores": ["8.2", None]}))
    assert scores["notes"].iloc[0] == ("this model (ridge) reads only synopsis: the 1 character(s) given and the "
                                       "field(s) franchise_scores, studios did not change the score")
    assert scores["notes"].iloc[1] == ""


def test_the_served_interval_is_the_one_evaluate_sized(registered):
    """Calibration is an evaluation job: evaluate writes calibration.json, the registered model carries it."""
    from anipop.core.artifacts import PrimaryModel, load_bundle
    from anipop.core.utils import read_json
    from anipop.evaluation.calibration import conformal_half_width

    params, _ = registered
    paths = ArtifactPaths.of(params.paths)
    sized = read_json(paths.calibration)[PrimaryModel.read(paths).label]
    bundle = load_bundle(paths.primary_bundle)
    assert sized["coverage"] == params.registry.interval_coverage
    assert sized["half_width"] == conformal_half_width(params, bundle, sized["coverage"]) > 0
    scaler = read_json(paths.scaler)
    scores = load_model("models:/anipop@champion").predict(pd.DataFrame({"synopsis": [PITCH]})).iloc[0]
    unclipped = scaler["min"] < scores["score_low"] and scores["score_high"] < scaler["max"]
    assert not unclipped or scores["score_high"] - scores["score_low"] == pytest.approx(
        2 * sized["half_width"] * (scaler["max"] - scaler["min"]), abs=1e-3)


def test_bad_pitch_is_a_clear_invalid_parameter_error(registered):
    model = load_model("models:/anipop@champion")
    with pytest.raises(MlflowException, match=r"row 0, field 'synopsis': empty") as raised:
        model.predict(pd.DataFrame({"synopsis": ["  "]}))
    assert raised.value.get_http_status_code() == 400


def test_a_worse_model_never_takes_champion(registered):
    params, _ = registered
    anime_path = params.paths.prepared_dir / "anime.parquet"
    anime = read_table(PREPARED_ANIME, anime_path)
    train = anime["split"] == "train"
    anime.loc[train, "score_norm"] = np.random.default_rng(0).permutation(anime.loc[train, "score_norm"].to_numpy())
    write_table(PREPARED_ANIME, anime, anime_path)  # train on shuffled targets: a model that learned nothing
    run_train(params)
    run_evaluate(params)
    second = run_register(params)
    assert second["version"] == "2" and not second["promoted"]
    assert "does not beat champion v1" in second["reason"]
    client = MlflowClient(tracking_uri=params.mlflow.tracking_uri, registry_uri=params.mlflow.tracking_uri)
    assert str(client.get_model_version_by_alias("anipop", "champion").version) == "1"
    assert "does not beat" in client.get_model_version("anipop", "2").tags["challenger"]


@pytest.mark.parametrize("metric, candidate, champion, promote", [
    ("spearman", 0.5, 0.4, True), ("spearman", 0.4, 0.4, False), ("spearman", 0.3, 0.4, False),
    ("mse", 0.010, 0.012, True), ("mse", 0.013, 0.012, False), ("r2", 0.1, None, True),
    ("spearman", 0.7680291106833315, 0.768029, False),  # the same model: its full value against its own tag
    ("mse", 0.0110000004, 0.011, False),
])
def test_decide(metric, candidate, champion, promote):
    assert decide(metric, candidate, champion, "3").promote is promote


def test_predict_cli_reads_a_csv_of_pitches(registered, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from anipop.cli import app

    params, _ = registered
    params_file = tmp_path / "params.yaml"
    params_file.write_text(json.dumps(params.model_dump(mode="json")))  # JSON is YAML
    pitches = tmp_path / "pitches.csv"
    pd.DataFrame({"synopsis": [PITCH], "characters": ['[{"name": "Aoi", "description": "a drummer"}]']}).to_csv(
        pitches, index=False)
    runner = CliRunner()
    result = runner.invoke(app, ["predict", "--file", str(pitches), "--params", str(params_file)])
    assert result.exit_code == 0, result.output
    assert "models:/anipop@champion" in result.output and "score_high" in result.output
    bad = runner.invoke(app, ["predict", "--synopsis", "", "--params", str(params_file)])
    assert bad.exit_code == 2 and "field 'synopsis': empty" in bad.output


def test_fingerprint_covers_test_labels_and_the_scaler_not_only_the_ids(registered, tmp_path):
    import shutil

    params, _ = registered
    copy = tmp_path / "prepared"
    shutil.copytree(params.paths.prepared_dir, copy)
    paths = replace(ArtifactPaths.of(params.paths), prepared_dir=copy)
    original = split_fingerprint(paths)
    scaler = json.loads((copy / "scaler.json").read_text())
    (copy / "scaler.json").write_text(json.dumps({**scaler, "low": 1.0}))  # a "1,000" row read as 1.0
    assert split_fingerprint(paths) != original
    shutil.copy(params.paths.prepared_dir / "scaler.json", copy / "scaler.json")
    assert split_fingerprint(paths) == original
    anime = read_table(PREPARED_ANIME, copy / "anime.parquet")
    anime.loc[anime.index[anime["split"] == "test"][0], "score"] += 0.5  # one relabelled test anime
    write_table(PREPARED_ANIME, anime, copy / "anime.parquet")
    assert split_fingerprint(paths) != original


def test_a_scale_change_never_lets_a_worse_model_win_on_mse(registered, caplog):
    """The issue's case: a changed scaler (same test ids) shrank the new version's MSE; the champion's stored
    MSE, measured on the old scale, lost to it. Now the champion is re-scored on the candidate's data."""
    import logging

    from anipop.core.artifacts import MinMaxScaler

    params, _ = registered
    params = params.model_copy(update={"registry": params.registry.model_copy(update={"promotion_metric": "mse"})})
    client = MlflowClient(tracking_uri=params.mlflow.tracking_uri, registry_uri=params.mlflow.tracking_uri)
    champion_before = client.get_model_version_by_alias("anipop", "champion")
    prepared = params.paths.prepared_dir
    anime = read_table(PREPARED_ANIME, prepared / "anime.parquet")
    train = anime["split"] == "train"
    wide = MinMaxScaler(low=1.0, high=float(anime["score"].max()) * 4)  # a far wider scale: every MSE shrinks
    anime["score_norm"] = wide.transform(anime["score"])
    rng = np.random.default_rng(1)
    anime.loc[train, "score_norm"] = rng.permutation(anime.loc[train, "score_norm"].to_numpy())  # learns nothing
    write_table(PREPARED_ANIME, anime, prepared / "anime.parquet")
    (prepared / "scaler.json").write_text(json.dumps(wide.to_dict()))
    run_train(params)
    run_evaluate(params)
    with caplog.at_level(logging.INFO, logger="anipop.registry.register"):
        result = run_register(params)
    assert not result["promoted"], result["reason"]
    assert "judging v1 (champion) against the candidate on the" in caplog.text
    assert str(client.get_model_version_by_alias("anipop", "champion").version) == str(champion_before.version)
