"""Drift (Evidently) between the champion's training anime and the new ones, and the retraining decision it feeds:
an injected shift is drift and retrains (saying why); more of the same is not drift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import params_in

from anipop.core.artifacts import save_embeddings
from anipop.core.input_kinds import TEXT_KIND
from anipop.monitoring.drift import Comparison, column_frames, decide_drift, evidently_reports, summarise
from anipop.orchestration import retrain_decision

RNG = np.random.default_rng(7)
STUDIOS = ["Sunrise", "Madhouse", "Bones", "Toei Animation", "J.C.Staff"]


def anime(first_id: int, count: int, shifted: bool = False) -> pd.DataFrame:
    """Prepared-like rows; `shifted`: longer synopses, other formats, studios, genres and ratings."""
    rng = np.random.default_rng(first_id)
    words = rng.integers(150, 260, count) if shifted else rng.integers(40, 120, count)
    return pd.DataFrame({
        "anime_id": range(first_id, first_id + count),
        "synopsis": [" ".join(["word"] * int(n)) for n in words],
        "premiered": [f"{2021 if shifted else 2015}-0{1 + i % 9}-01" for i in range(count)],
        "type": rng.choice(["Movie", "ONA"] if shifted else ["TV", "TV", "OVA"], count),
        "source": rng.choice(["Game", "Original"] if shifted else ["Manga", "Light novel"], count),
        "rating": rng.choice(["G - All Ages"] if shifted else ["PG-13 - Teens 13 or older", "R - 17+"], count),
        "genres": rng.choice(["Comedy, Slice of Life", "Sports"] if shifted else ["Action, Drama", "Romance"], count),
        "studios": rng.choice(["A New Studio"] if shifted else STUDIOS, count),
        "score": rng.normal(6.6, 0.9, count)})


@pytest.fixture
def params(tmp_path):
    return params_in(tmp_path)


def _embeddings(params, frames: list[pd.DataFrame], shifted_ids: set[int]) -> None:
    ids = [str(i) for frame in frames for i in frame["anime_id"]]
    vectors = RNG.normal(0, 1, (len(ids), 16)).astype(np.float32)
    vectors[[i for i, a in enumerate(ids) if int(a) in shifted_ids], :4] += 3.0  # the new stories are about other things
    save_embeddings(params.paths.embeddings_dir, TEXT_KIND, ids, vectors)


def _drift(params, reference: pd.DataFrame, current: pd.DataFrame, predicted: tuple[np.ndarray, np.ndarray]) -> dict:
    columns, embedding, _ = evidently_reports(params, Comparison(reference, current, "1", {"spearman": 0.7}), predicted)
    return summarise(columns, embedding)


def test_an_injected_shift_is_drift_and_more_of_the_same_is_not(params):
    reference, same, shifted = anime(1, 600), anime(5000, 200), anime(9000, 200, shifted=True)
    _embeddings(params, [reference, same, shifted], set(shifted["anime_id"]))
    scores = RNG.normal(6.6, 0.5, 300)
    quiet = _drift(params, reference, same, (scores, RNG.normal(6.6, 0.5, 200)))
    loud = _drift(params, reference, shifted, (scores, RNG.normal(7.4, 0.5, 200)))
    assert quiet["drifted_columns"]["share"] < params.drift.share and not quiet["synopsis_embedding"]["drifted"]
    assert loud["drifted_columns"]["share"] >= params.drift.share and loud["synopsis_embedding"]["drifted"]
    assert {"synopsis_words", "predicted_score", "type", "studios", "genres"} <= {
        name for name, column in loud["columns"].items() if column["drifted"]}
    assert "first_air_year" in loud["columns"]  # reported; the share leaves it out (new anime are newer)

    drift, reasons = decide_drift(loud, None, {"spearman": 0.7}, params.drift.share, params.drift.live_drop)
    assert drift and "drifted (>= drift.share" in reasons[0] and "studios" in reasons[0]
    decision = retrain_decision("drift", True, [], {"status": "compared", "new_anime": 200, "drift": drift,
                                                    "reasons": reasons})
    assert decision.retrain and decision.reason.startswith("drift: ") and "studios" in decision.reason
    calm, calm_reasons = decide_drift(quiet, None, {"spearman": 0.7}, params.drift.share, params.drift.live_drop)
    held = retrain_decision("drift", True, [], {"status": "compared", "new_anime": 200, "drift": calm,
                                                "reasons": calm_reasons or ["200 new anime"]})
    assert not calm and not held.retrain and "no drift (retrain.trigger: drift)" in held.reason
    assert retrain_decision("new_data", True, [], {"status": "compared", "new_anime": 200, "drift": calm,
                                                   "reasons": ["200 new anime"]}).retrain


def test_a_live_spearman_well_below_the_test_one_is_drift(params):
    live = {"anime": 80, "spearman": {"value": 0.41}}
    drift, reasons = decide_drift({"drifted_columns": {"share": 0.0}, "columns": {}}, live, {"spearman": 0.66},
                                  params.drift.share, params.drift.live_drop)
    assert drift and "0.410, 0.250 below its test 0.660" in reasons[0]


def test_nothing_new_is_no_retraining_unless_the_pipeline_is_stale():
    quiet = {"status": "no_new_data", "new_anime": 0, "reasons": ["no anime new to champion v1"]}
    assert retrain_decision("new_data", False, [], quiet).reason == "no new data, no drift: nothing to retrain"
    stale = retrain_decision("new_data", False, ["train", "evaluate"], quiet)
    assert stale.retrain and "train, evaluate are stale" in stale.reason
    first = retrain_decision("drift", True, [], {"status": "no_champion", "reasons": ["anipop has no champion yet"]})
    assert first.retrain and "no champion" in first.reason


def test_list_fields_compare_their_values_and_rare_values_pool(params):
    reference = anime(1, 40).assign(studios=["Sunrise"] * 30 + [f"Studio {i}" for i in range(10)])
    current = anime(100, 10).assign(studios="Studio 3, Sunrise")
    ref, cur, numerical, categorical = column_frames(reference, current, (np.ones(5), np.ones(3)), min_value_count=5)
    assert "studios" in categorical and "predicted_score" in numerical
    assert cur["studios"].dropna().tolist() == ["(rare)", "Sunrise"] * 10  # one entry per anime and value
    assert ref["studios"].dropna().value_counts().to_dict() == {"Sunrise": 30, "(rare)": 10}
