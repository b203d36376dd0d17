"""The train and evaluate steps on a small learnable dataset: bundles, ablations, skipped inputs, outputs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import PARAMS_FILE
from fixtures_training import toy_params, write_toy_dataset

from anipop.core.artifacts import BUNDLE_VERSION, ModelBundle, load_bundle, load_embeddings
from anipop.core.config import ConfigError, Params, load_params
from anipop.core.metrics import METRIC_NAMES
from anipop.data.schema import PREPARED_ANIME, PREPARED_CHARACTERS, read_table
from anipop.evaluation.evaluate import run_evaluate
from anipop.modeling.features import (
    INPUT_SETS,
    build_features,
    features_from_vectors,
    raw_inputs,
)
from anipop.modeling.models import BASELINES
from anipop.modeling.train import input_sets_to_train, reads_input_set, run_train

ALL_KINDS = ["synopsis", "character_description", "character_name", "portrait"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Params, dict, dict]:
    """Every default model on every input set (the whole ablation grid) of the full toy dataset, evaluated."""
    params = toy_params(tmp_path_factory.mktemp("trained"))
    write_toy_dataset(params)
    report = run_train(params, ablation="all")
    return params, report, run_evaluate(params, track=False)


@pytest.mark.parametrize("aggregation", ["mean", "max"])
def test_one_pitch_is_featurised_like_the_dataset(tmp_path, aggregation):
    params = toy_params(tmp_path)
    anime = write_toy_dataset(params, count=20)
    ids = anime["anime_id"].to_numpy()
    dataset = build_features(params.paths.embeddings_dir, ids, ALL_KINDS, aggregation)
    loaded = {kind: load_embeddings(params.paths.embeddings_dir, kind) for kind in ALL_KINDS}
    for row, anime_id in enumerate(ids):
        vectors = {}
        for kind, (row_ids, matrix) in loaded.items():
            owned = [i for i, r in enumerate(row_ids) if int(r.split(":")[0]) == anime_id]
            vectors[kind] = matrix[owned[0]] if kind == "synopsis" else matrix[owned]
        np.testing.assert_array_equal(features_from_vectors(vectors, ALL_KINDS, aggregation)[0], dataset[row])


def test_a_pitch_without_characters_gets_masked_zero_blocks_and_a_missing_kind_is_named():
    vectors = {"synopsis": np.ones(3), "character_name": np.zeros((0, 2))}
    np.testing.assert_array_equal(features_from_vectors(vectors, ["synopsis", "character_name"]),
                                  [[1, 1, 1, 0, 0, 0]])  # the zero block and its presence column (0: masked)
    with pytest.raises(KeyError, match="portrait"):
        features_from_vectors(vectors, ["synopsis", "portrait"])


def test_raw_inputs_read_portraits_as_scaled_pixels_and_join_character_texts(tmp_path):
    params = toy_params(tmp_path)
    write_toy_dataset(params, count=10)
    anime = read_table(PREPARED_ANIME, params.paths.prepared_dir / "anime.parquet")
    characters = read_table(PREPARED_CHARACTERS, params.paths.prepared_dir / "characters.parquet")
    ids = [*anime["anime_id"].head(3), 999_999]  # the last id has no characters
    inputs = raw_inputs(ids, anime, characters, params.paths.raw_dir, ["character_name", "portrait"], 4)
    assert inputs["character_name"][0] == f"Name{ids[0]}x1 Name{ids[0]}x2"
    assert inputs["character_name"][3] == ""
    pixels = inputs["portrait"]
    assert pixels.shape == (4, 3 * 4 * 4) and pixels.min() >= 0 and 0 < pixels.max() <= 1
    assert not pixels[3].any()


def test_input_sets_follow_params_and_the_ablation_override(tmp_path):
    params = toy_params(tmp_path, ablations=("images",))
    assert input_sets_to_train(params) == ["all_inputs", "images"]
    assert input_sets_to_train(params, "synopsis") == ["all_inputs", "synopsis"]
    assert set(input_sets_to_train(params, "all")) == set(INPUT_SETS)
    with pytest.raises(ValueError, match="--ablation 'portraits'"):
        input_sets_to_train(params, "portraits")


def test_primary_model_must_be_trained(tmp_path):
    raw = yaml.safe_load(PARAMS_FILE.read_text())
    raw["train"].update(model="ridge", models=["mlp_wide"])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="train: .*'ridge' must also be listed"):
        load_params(tmp_path / "params.yaml")


def test_the_primary_bundle_keeps_the_predict_contract(trained):
    params, report, _ = trained
    bundle = load_bundle(params.paths.models_dir / "model.joblib")
    assert isinstance(bundle, ModelBundle) and bundle.version == BUNDLE_VERSION
    assert bundle.name == params.train.model and bundle.input_set == params.train.inputs
    assert bundle.inputs == ALL_KINDS == report["inputs"]
    anime = read_table(PREPARED_ANIME, params.paths.prepared_dir / "anime.parquet")
    features = build_features(params.paths.embeddings_dir, anime["anime_id"], bundle.inputs, bundle.aggregation)
    scores = bundle.model.predict(features)
    assert scores.shape == (len(anime),) and scores.min() >= 0 and scores.max() <= 1
    assert bundle.train_mean == pytest.approx(anime.loc[anime["split"] == "train", "score_norm"].mean())


def test_every_model_runs_on_every_input_set_with_early_stopping(trained):
    params, report, _ = trained
    pairs = {(run["input_set"], run["model"]) for run in report["runs"]}
    baselines = {(params.train.inputs, name) for name in BASELINES}  # beside the models, on the main set only
    assert pairs == {(s, m) for s in INPUT_SETS for m in params.train.models if reads_input_set(m, s)} | baselines
    assert not report["skipped"]
    for run in report["runs"]:
        assert (params.paths.models_dir / run["path"]).exists()
        if run["model"].startswith("mlp"):
            history = run["history"]
            assert 1 <= history["best_epoch"] <= history["epochs_run"] <= params.train.network.max_epochs
            assert len(history["train_loss"]) == len(history["val_loss"]) == history["epochs_run"]
            assert history["val_loss"][history["best_epoch"] - 1] == min(history["val_loss"])


def test_the_network_keeps_the_weights_of_its_best_validation_epoch(trained):
    params, report, _ = trained
    anime = read_table(PREPARED_ANIME, params.paths.prepared_dir / "anime.parquet")
    val = anime[anime["split"] == "val"]
    for run in (r for r in report["runs"] if r["model"].startswith("mlp")):
        bundle = load_bundle(params.paths.models_dir / run["path"])
        features = build_features(params.paths.embeddings_dir, val["anime_id"], bundle.inputs)
        val_mse = np.mean((bundle.model.predict(features) - val["score_norm"].to_numpy()) ** 2)
        assert val_mse == pytest.approx(min(run["history"]["val_loss"]), rel=1e-4), run["path"]


def test_missing_modalities_are_skipped_and_equal_input_sets_reuse_the_fit(tmp_path, caplog):
    params = toy_params(tmp_path, models=("ridge", "tfidf_benchmark"), model="ridge")
    write_toy_dataset(params, count=60, characters=False, portraits=False)
    with caplog.at_level("INFO", logger="anipop"):
        report = run_train(params, ablation="all")
    skipped = {(entry["input_set"], entry["model"]) for entry in report["skipped"]}
    assert skipped == {(s, m) for s in ("characters", "images") for m in ("ridge", "tfidf_benchmark")}
    assert "the data has none of ['portrait']; skipped" in caplog.text
    synopsis_runs = [run for run in report["runs"] if run["input_set"] == "synopsis"]
    assert {run["reused_from"] for run in synopsis_runs} == {"all_inputs"}
    summary = run_evaluate(params, track=False)
    assert set(summary["ablation"]) == {"all_inputs", "synopsis"}


def test_evaluate_writes_every_model_and_the_baseline(trained):
    params, report, summary = trained
    reports = params.paths.reports_dir
    metrics = json.loads((reports / "metrics.json").read_text())
    assert set(metrics) == {"test_rows", *params.train.models, *BASELINES}
    for values in (v for k, v in metrics.items() if k != "test_rows"):
        assert set(values) == set(METRIC_NAMES)
    ablation = json.loads((reports / "ablation.json").read_text())
    assert set(ablation) == {s for s in INPUT_SETS if any(reads_input_set(m, s) for m in params.train.models)}
    intervals = json.loads((reports / "intervals.json").read_text())
    for model, values in intervals["models"].items():
        assert set(values) == set(METRIC_NAMES)
        assert all(entry["low"] <= entry["high"] for entry in values.values()), model
    table = (reports / "metrics.md").read_text()
    assert all(f"| {model} |" in table for model in metrics if model != "test_rows")
    assert "| images/mlp_wide |" in table
    for name in ("predictions.csv", "predicted_vs_true.png", "residuals.png", "learning_curves.csv",
                 "learning_curves.png", "ablation.csv", "ablation.png"):
        assert (reports / "plots" / name).stat().st_size > 0, name
    curve = pd.read_csv(reports / "plots" / "learning_curves.csv")
    primary_run = next(r for r in report["runs"] if r["input_set"] == "all_inputs" and r["model"] == "mlp_wide")
    assert curve["val_loss"].tolist() == pytest.approx(primary_run["history"]["val_loss"])
    # on this learnable data every model must beat the baseline: a broken pipeline would not
    for model in params.train.models:
        assert metrics[model]["mse"] < metrics["train_mean"]["mse"] / 2, model


def test_a_bundle_loads_and_predicts_without_the_training_code(trained):
    params, _, _ = trained
    script = (
        "import sys, joblib, numpy as np\n"
        "sys.modules['anipop.modeling.train'] = None  # importing the training code would now fail\n"
        f"bundle = joblib.load({str(params.paths.models_dir / 'model.joblib')!r})\n"
        "from anipop.modeling.features import build_features\n"
        f"x = build_features({str(params.paths.embeddings_dir)!r}, [7, 14], bundle.inputs)\n"
        "print(bundle.model.predict(x).round(6).tolist())\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    bundle = load_bundle(params.paths.models_dir / "model.joblib")
    expected = bundle.model.predict(build_features(params.paths.embeddings_dir, [7, 14], bundle.inputs))
    assert json.loads(result.stdout) == pytest.approx(expected.round(6).tolist())


def test_the_steps_that_fit_no_network_do_not_import_torch():
    """torch is the slowest import of a stage's process; a ridge-only train, a backtest or rolling origin with
    nothing to fit and paper mode switched off must not pay for it (it is imported where a network is built)."""
    code = ("import sys\n"
            "import anipop.modeling.train, anipop.modeling.models, anipop.evaluation.backtest, "
            "anipop.studies.paper_mode\n"
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr[-2000:]
