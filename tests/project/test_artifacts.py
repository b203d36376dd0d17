"""The hand-off contract (anipop.core.artifacts): a typed, versioned model bundle and every artefact path in one place."""

from __future__ import annotations

from dataclasses import replace

import joblib
import pytest
from fixtures_training import toy_params

from anipop.core.artifacts import BUNDLE_VERSION, ArtifactPaths, ModelBundle, load_bundle, save_bundle
from anipop.modeling.models import RidgeRegressor


def _bundle(**changes) -> ModelBundle:
    fields = dict(name="ridge", model=RidgeRegressor(1.0), inputs=["synopsis"], input_set="synopsis",
                  input_type="embeddings", train_mean=0.5, aggregation="mean", image_size=32)
    return ModelBundle(**{**fields, **changes})


def test_a_bundle_round_trips_with_its_version(tmp_path):
    save_bundle(_bundle(), tmp_path / "model.joblib")
    loaded = load_bundle(tmp_path / "model.joblib")
    assert loaded.version == BUNDLE_VERSION and loaded.inputs == ["synopsis"] and loaded.name == "ridge"


def test_a_dict_bundle_of_the_old_code_is_upgraded_as_it_is_read(tmp_path):
    """Registered versions pickled before ModelBundle hold dicts with the same field names."""
    old = {"name": "ridge", "model": RidgeRegressor(1.0), "inputs": ["synopsis"], "input_set": "synopsis",
           "input_type": "embeddings", "train_mean": 0.4, "aggregation": "max", "feature_dim": 8,
           "image_size": 16, "encoders": {"text": "x"}}
    joblib.dump(old, tmp_path / "old.joblib")
    loaded = load_bundle(tmp_path / "old.joblib")
    assert isinstance(loaded, ModelBundle) and loaded.version == BUNDLE_VERSION
    assert (loaded.aggregation, loaded.image_size, loaded.train_mean, loaded.feature_dim) == ("max", 16, 0.4, 8)
    baseline = {"name": "train_mean", "model": None, "inputs": [], "input_type": "constant", "train_mean": 0.5}
    joblib.dump(baseline, tmp_path / "baseline.joblib")  # the old train-mean bundle had no input set
    assert load_bundle(tmp_path / "baseline.joblib").input_set == "-"


@pytest.mark.parametrize("content", [{"model": 1}, ["not", "a", "bundle"], "future"])
def test_anything_else_fails_in_one_line_naming_the_file(tmp_path, content):
    path = tmp_path / "model.joblib"
    joblib.dump(replace(_bundle(), version=BUNDLE_VERSION + 1) if content == "future" else content, path)
    with pytest.raises(ValueError) as caught:
        load_bundle(path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message and "retrain" in message


def test_a_corrupt_file_fails_in_one_line(tmp_path):
    path = tmp_path / "model.joblib"
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(ValueError, match="not a readable anipop model bundle"):
        load_bundle(path)


def test_every_artefact_lives_under_the_folder_params_names(tmp_path):
    paths = ArtifactPaths.of(toy_params(tmp_path).paths)
    folders = {paths.raw_dir, paths.prepared_dir, paths.validation_dir, paths.embeddings_dir, paths.models_dir,
               paths.reports_dir}
    files = [getattr(paths, name) for name, value in vars(ArtifactPaths).items() if isinstance(value, property)]
    assert len(files) == len(set(files)) > 20  # no two artefacts share a file
    assert all(any(folder in file.parents for folder in folders) for file in files)


def test_a_missing_interval_calibration_names_the_stage_to_rerun(tmp_path):
    from anipop.core.artifacts import IntervalCalibration, read_calibration
    from anipop.core.utils import write_json

    paths = ArtifactPaths.of(toy_params(tmp_path).paths)
    with pytest.raises(ValueError, match="no interval calibration for all_inputs/ridge; rerun `dvc repro evaluate`"):
        read_calibration(paths, "all_inputs/ridge")
    write_json(paths.calibration, {"all_inputs/ridge": IntervalCalibration(0.9, 0.1, None).to_dict()})
    assert read_calibration(paths, "all_inputs/ridge") == IntervalCalibration(0.9, 0.1, None)
