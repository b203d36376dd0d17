"""Promotion when the data changed: the champion re-judged through its served interface on the new test split
(over 100 anime, more than one request admits), the policies, and a champion restored after an interrupted
registration, each recorded in the champion history."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import params_in
from fixtures_mal import learnable_rows, write_mal_csv
from fixtures_pipeline import run_pipeline
from mlflow import MlflowClient

from anipop.core.artifacts import ArtifactPaths
from anipop.data.schema import PREPARED_ANIME, read_table
from anipop.registry.champion_history import read_history
from anipop.registry.promotion import judging_rows
from anipop.registry.register import reference_ids, roll_back_interrupted, run_register
from anipop.tracking import use_experiment


def _params(tmp_path, rows: int, name: str = "anipop", **registry):
    csv = write_mal_csv(tmp_path / "source" / "anime.csv", learnable_rows(rows))  # the first rows never change
    return params_in(tmp_path, ingest={"local_path": csv},
                     prepare={"split": {"train": 0.4, "val": 0.1, "test": 0.5}},
                     train={"model": "ridge", "models": ("ridge",), "ridge_alpha": 1.0, "ablations": ()},
                     evaluate={"bootstrap_samples": 20},
                     registry={"model_name": name, **registry},
                     mlflow={"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
                             "artifact_location": str(tmp_path / "mlruns"), "experiment": "anipop-test"})


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    """v1 trained on 120 anime; then the source grows to 320 anime (a refresh), and v2 is registered on it."""
    tmp_path = tmp_path_factory.mktemp("promotion")
    first = run_pipeline(_params(tmp_path, 120))
    params = _params(tmp_path, 320)
    second = run_pipeline(params)
    return params, first, second


def test_a_grown_dataset_rejudges_the_champion_on_a_test_split_over_100_anime(grown):
    """Was: `133 pitches exceed the limit serving.max_pitches_per_request = 100`, blamed on the tracking store."""
    params, first, second = grown
    anime = read_table(PREPARED_ANIME, ArtifactPaths.of(params.paths).prepared_anime)
    client = MlflowClient(tracking_uri=params.mlflow.tracking_uri, registry_uri=params.mlflow.tracking_uri)
    seen = reference_ids(client, first["run_id"])
    judged = anime[(anime["split"] == "test") & ~anime["anime_id"].isin(seen["train"] + seen["val"])]
    assert first["promoted"] and second["version"] == "2"
    assert len(judged) > params.serving.max_pitches_per_request  # more than one request: sent in chunks
    assert f"on the {len(judged)} test anime" in second["reason"]
    assert second["reason"].startswith("spearman=") and "champion v1" in second["reason"]
    history = read_history(client, "anipop")
    assert [c.version for c in history] == (["1", "2"] if second["promoted"] else ["1"])
    assert history[0].data_hash.startswith(("dvc:", "md5:")) and history[0].reason.startswith("no current champion")


def test_the_always_policy_promotes_and_newest_franchises_judges_recent_test_franchises(grown):
    params, *_ = grown
    always = params.model_copy(update={"registry": params.registry.model_copy(update={"model_name": "anipop-always",
                                                                                       "policy": "always"})})
    client = MlflowClient(tracking_uri=params.mlflow.tracking_uri, registry_uri=params.mlflow.tracking_uri)
    client.create_registered_model("anipop-always")
    v1 = client.get_model_version("anipop", "1")
    old = client.create_model_version("anipop-always", v1.source, run_id=v1.run_id,
                                      tags={"anipop.registration": "complete"})
    client.set_registered_model_alias("anipop-always", "champion", old.version)
    result = run_register(always, write_reports=False)
    assert result["promoted"] and result["reason"].startswith("policy always: the newest retrained model serves")
    anime = pd.DataFrame({"anime_id": range(1, 9), "split": ["test"] * 7 + ["train"],
                          "group_id": [1, 1, 3, 4, 5, 6, 7, 8],
                          "premiered": ["2010-01-01", "2021-05-01", "2021-01-01", "2022-02-02", "2019-03-03",
                                        "2020-01-01", "2022-07-07", "2022-01-01"]})
    import anipop.registry.promotion as promotion

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(promotion, "MIN_JUDGE_ROWS", 1)
        rows, where = judging_rows(anime, "newest_franchises", {7}, newest_years=2)
    # franchise 1 began in 2010 (its 2021 sequel is not a new franchise); 7 was in the champion's training data
    assert sorted(rows["anime_id"]) == [3, 4] and "2021-2022" in where and "1 the champion trained on" in where


def test_an_interrupted_registration_gives_champion_back_to_the_version_it_displaced(grown):
    """A kill between the alias move and 'complete' left no champion (the pending version was deleted, the alias
    with it); the rollback now restores the previous champion first, and records that."""
    params, *_ = grown
    client = MlflowClient(tracking_uri=params.mlflow.tracking_uri, registry_uri=params.mlflow.tracking_uri)
    before = client.get_model_version_by_alias("anipop", "champion")
    source = client.get_model_version("anipop", before.version)
    pending = client.create_model_version("anipop", source.source, run_id=source.run_id,
                                          tags={"anipop.registration": "pending",
                                                "anipop.previous_champion": str(before.version)})
    client.set_registered_model_alias("anipop", "champion", pending.version)  # killed right after this
    outcomes = roll_back_interrupted(client, "anipop", use_experiment(params))
    assert f"champion restored to v{before.version}" in outcomes
    assert str(client.get_model_version_by_alias("anipop", "champion").version) == str(before.version)
    last = read_history(client, "anipop")[-1]
    assert last.version == str(before.version) and last.reason.startswith("restored:")
