"""The pitch-metadata champion end to end: a real small pipeline run whose primary is pitch_stack,
registered as the pyfunc; it takes metadata as optional pitch fields, scores a synopsis-only pitch, and rejects
a misspelt field with a 400."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import params_in
from fixtures_mal import learnable_rows, write_mal_csv
from fixtures_pipeline import PITCH, run_pipeline
from mlflow.exceptions import MlflowException

from anipop.core.utils import read_json
from anipop.serving.model_loading import load_model


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("pitch-metadata")
    rows = learnable_rows(160)
    for row in rows:  # the studio carries signal too: good shows come from one studio
        row["studios"] = "Gold Studio" if float(row["score"]) > 7 else "Tin Studio"
        row["producers"] = "['Aniplex', 'Dentsu']"
        row["demographic"] = "Shounen"
    csv = write_mal_csv(tmp_path / "mal.csv", rows)
    base = params_in(tmp_path)
    pitch = base.train.pitch.model_copy(update={"min_count": 2, "gbm_n_estimators": 50, "stack_folds": 3})
    params = params_in(
        tmp_path, ingest={"local_path": csv},
        train={"model": "pitch_stack", "models": ("ridge", "meta_ridge", "pitch_stack"), "ablations": ("studios",),
               "pitch": pitch},
        evaluate={"bootstrap_samples": 20},
        mlflow={"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "artifact_location": str(tmp_path / "mlruns"),
                "experiment": "anipop-test"})
    result = run_pipeline(params)
    return params, result


def test_pitch_stack_is_trained_on_synopsis_and_metadata_with_ablation_rows(champion):
    params, result = champion
    report = read_json(params.paths.models_dir / "train_report.json")
    primary = next(r for r in report["runs"] if r["model"] == "pitch_stack" and r["input_set"] == "all_inputs")
    assert primary["input_type"] == "pitch"
    assert {"synopsis", "studios", "producers", "demographic", "type", "source", "genres", "rating", "year"} \
        <= set(primary["kinds"])
    assert {r["input_set"] for r in report["runs"] if r["model"] == "meta_ridge"} == {"all_inputs", "studios"}
    ablation = read_json(params.paths.reports_dir / "ablation.json")
    assert ablation["studios"]["meta_ridge"]["spearman"] > 0.5  # the studio alone ranks these shows
    assert result["promoted"]


def test_champion_takes_metadata_and_scores_a_synopsis_only_pitch(champion):
    model = load_model("models:/anipop@champion")
    frame = pd.DataFrame({"synopsis": [PITCH, PITCH, PITCH],
                          "studios": ["Gold Studio", "Tin Studio", "A Studio Founded Yesterday"],
                          "genres": ["Action, Drama", "Action", ""], "year": ["2024", "2024", ""]})
    scored = model.predict(frame)
    assert scored["score"].between(1, 10).all()
    assert scored["score"].iloc[0] > scored["score"].iloc[1]  # the studio moves the score
    only_synopsis = model.predict(pd.DataFrame({"synopsis": [PITCH]}))
    assert only_synopsis["score"].between(1, 10).all()
    # a studio the model never saw is encoded as unknown, and the answer says so for that row only
    assert scored["notes"].iloc[2] == "new to this model, encoded as unknown: studios A Studio Founded Yesterday"
    assert scored["notes"].iloc[0] == "" and only_synopsis["notes"].iloc[0] == ""


def test_misspelt_metadata_field_is_a_400_naming_it(champion):
    model = load_model("models:/anipop@champion")
    with pytest.raises(MlflowException, match=r"unknown field\(s\) \['studio'\] \(did you mean 'studios'\?\)") as raised:
        model.predict(pd.DataFrame({"synopsis": [PITCH], "studio": ["Gold Studio"]}))
    assert raised.value.get_http_status_code() == 400


def test_franchise_scores_are_an_optional_field_and_a_bad_one_is_a_400_naming_row_and_field(champion):
    model = load_model("models:/anipop@champion")
    scored = model.predict(pd.DataFrame({"synopsis": [PITCH, PITCH, PITCH],
                                         "franchise_scores": ["8.1, 7.6", "original", ""]}))
    assert scored["score"].between(1, 10).all()
    assert not scored["notes"].str.contains("franchise_scores").any()  # the champion reads them
    with pytest.raises(MlflowException, match=r"row 1, field 'franchise_scores': '12' is not a MAL score") as raised:
        model.predict(pd.DataFrame({"synopsis": [PITCH, PITCH], "franchise_scores": ["7", "12"]}))
    assert raised.value.get_http_status_code() == 400


def test_tuning_scores_a_grid_on_cv_folds_with_one_child_run_per_trial(champion):
    from mlflow import MlflowClient

    from anipop.studies.tuning import DEFAULT_GRID, run_tune

    params, _ = champion
    anime_path = params.paths.prepared_dir / "anime.parquet"
    before = anime_path.read_bytes()
    result = run_tune(params, track=True)
    assert [t["blend_linear"] for t in result["trials"]] == list(DEFAULT_GRID)
    assert result["best"] == max(result["trials"], key=lambda t: t["cv_spearman_mean"])
    assert result["best"]["cv_spearman_mean"] > 0.5
    assert read_json(params.paths.reports_dir / "tuning.json")["best"] == result["best"]
    client = MlflowClient(tracking_uri=params.mlflow.tracking_uri)
    children = client.search_runs([r.experiment_id for r in client.search_experiments()],
                                  filter_string=f"tags.mlflow.parentRunId = '{result['mlflow_run_id']}'")
    assert sorted(float(c.data.params["blend_linear"]) for c in children) == list(DEFAULT_GRID)
    assert all("cv_spearman_mean" in c.data.metrics for c in children)
    assert anime_path.read_bytes() == before


def test_tuning_never_reads_the_test_split(champion, monkeypatch):
    from anipop.studies import tuning

    params, _ = champion
    seen = []
    original = tuning.fit_and_predict

    def spy(p, anime, characters, rows, test):
        seen.extend([*rows["train"]["split"], *rows["val"]["split"], *test["split"]])
        return original(p, anime, characters, rows, test)

    monkeypatch.setattr(tuning, "fit_and_predict", spy)
    tuning.fold_predictions(params)
    assert seen and "test" not in set(seen)


def test_a_pitch_model_has_one_interval_whatever_the_pitch_brings(tmp_path):
    """Its inputs (synopsis + metadata fields) are no character kinds: no per-modality interval is sized."""
    from anipop.core.artifacts import ModelBundle
    from anipop.evaluation.calibration import conformal_half_width_with_characters

    bundle = ModelBundle(name="pitch_stack", model=None, inputs=["synopsis", "genres", "studios"], input_set="all_inputs",
                         input_type="pitch", train_mean=0.5, aggregation="mean", image_size=32)
    assert conformal_half_width_with_characters(None, bundle, 0.9) is None


def test_the_registered_champion_loads_and_scores_without_unpickling_anything(champion):
    """The champion (LightGBM trees, ridges, TF-IDF vocabularies, track records) is data. A fresh process
    records every class an unpickler resolves (Python's `pickle.find_class` audit event) while it loads and
    scores the registered model through anipop's loader: none. The same check sees a planted pickle
    (test_served_bundle.py)."""
    import os

    from test_served_bundle import load_without_unpickling

    params, _ = champion
    env = {**os.environ, "MLFLOW_TRACKING_URI": params.mlflow.tracking_uri}
    env.pop("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", None)
    seen = load_without_unpickling("models:/anipop@champion", {"synopsis": [PITCH], "studios": ["Gold Studio"]}, env)
    assert seen["unpickled"] == []
    in_process = load_model("models:/anipop@champion").predict(pd.DataFrame({"synopsis": [PITCH],
                                                                            "studios": ["Gold Studio"]}))
    assert seen["scores"] == in_process["score"].tolist()
