"""The field-ablation table: each input set alone on the backtest's evaluations (field_ablation), and reports/results.md
assembled from the reports: a row per configured set, the JSON's figures, the baselines beside, an absent
finetune.json named as not scored."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import knobs
from fixtures_training import toy_params, write_toy_dataset

from anipop.core.artifacts import ArtifactPaths
from anipop.core.config import Params
from anipop.core.utils import read_json, write_json
from anipop.data.schema import PREPARED_ANIME, read_table, write_table
from anipop.evaluation.backtest import run_backtest
from anipop.steps import call_step
from anipop.studies.field_ablation import check_plan, run_field_ablation
from anipop.studies.results_table import run_report

SETS = ("studios", "genres", "synopsis")


def _params(tmp_path, **ablation) -> Params:
    raw = toy_params(tmp_path, model="ridge", models=("ridge",), ablations=()).model_dump()
    raw["train"]["pitch"].update(min_count=2, tfidf_max_features=200)
    raw["evaluate"].update(cv_folds=3, bootstrap_samples=0)
    raw["field_ablation"] |= {"input_sets": SETS, "models": ("meta_ridge", "ridge")} | ablation
    return Params.model_validate(raw)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A toy project whose studio carries the score (genres do not), after backtest and field-ablation."""
    tmp_path = tmp_path_factory.mktemp("field-ablation")
    params = _params(tmp_path)
    write_toy_dataset(params, count=120, characters=False)
    paths = ArtifactPaths.of(params.paths)
    anime = read_table(PREPARED_ANIME, paths.prepared_anime)
    rng = np.random.default_rng(1)
    anime["studios"] = np.where(anime["score"] > anime["score"].median(), "Gold Studio", "Tin Studio")
    anime["genres"] = rng.choice(["Action", "Drama", "Action, Drama"], len(anime))
    write_table(PREPARED_ANIME, anime, paths.prepared_anime)
    run_backtest(params)
    report = run_field_ablation(params)
    test = anime[anime["split"] == "test"]
    evaluate_like = {name: {m: round(v, 6) for m, v in report["baselines"][name]["test"].items()}
                     for name in report["baselines"]}  # evaluate's test metrics, rounded as it writes them
    write_json(paths.metrics, {**evaluate_like, "ridge": {"r2": 0.4321, "spearman": 0.6543}, "test_rows": len(test)})
    write_json(paths.paper_mode_metrics, {"enabled": False})
    return params, paths, anime, report


def _table(text: str) -> dict[tuple[str, str], list[str]]:
    """(inputs, model without its tags) -> the figure cells of results.md's main table."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 + 4 * 3 and cells[0] not in ("group", "---"):  # cv, temporal, rolling, test x 3 metrics
            rows[(cells[1], cells[2].split(" (")[0])] = cells[3:]
    return rows


def _expected(entry: dict) -> list[str]:
    """Spearman, R2, MAE (1-10) of CV (mean ± sd), temporal, rolling (not run by the field ablation) and test."""
    cv, temporal, test = entry["cv"], entry["temporal"], entry["test"]
    metrics = ("spearman", "r2", "mae_1_10")
    return ([f"{cv[m]['mean']:.3f} ± {cv[m]['sd']:.3f}" for m in metrics]
            + [f"{temporal[m]['value']:.3f}" for m in metrics] + ["—"] * 3 + [f"{test[m]:.3f}" for m in metrics])


def test_every_configured_set_gets_its_readers_on_cv_temporal_and_test(project):
    params, paths, anime, report = project
    stored = read_json(paths.field_ablation_metrics)
    assert stored["order"] == list(SETS)
    assert {s: sorted(models) for s, models in stored["input_sets"].items()} == {
        "studios": ["meta_ridge"], "genres": ["meta_ridge"], "synopsis": ["meta_ridge", "ridge"]}  # ridge: no metadata
    for models in stored["input_sets"].values():
        for entry in models.values():
            assert set(entry) == {"cv", "temporal", "test"} and set(entry["cv"]["r2"]) == {"mean", "sd"}
    rows = stored["rows"]
    assert sum(rows["cv_folds"]) == int((anime["split"] != "test").sum()) and len(rows["cv_folds"]) == 3
    assert rows["test"] == int((anime["split"] == "test").sum())
    # the studio carries the score, the genres are noise: the per-field rows tell them apart
    studios, genres = stored["input_sets"]["studios"]["meta_ridge"], stored["input_sets"]["genres"]["meta_ridge"]
    assert studios["cv"]["spearman"]["mean"] > genres["cv"]["spearman"]["mean"] + 0.3
    # the baselines are refitted on the same folds as the main backtest's: the same figures
    cv = read_json(paths.cv_details)["models"]
    assert stored["baselines"]["length_only"]["cv"] == cv["length_only"]


def test_results_table_has_a_row_per_configured_set_with_the_jsons_figures(project):
    params, paths, anime, report = project
    text = call_step(run_report, params)
    table = _table(text)
    stored = read_json(paths.field_ablation_metrics)
    for input_set in SETS:
        for name, entry in stored["input_sets"][input_set].items():
            assert table[(input_set, name)] == _expected(entry), (input_set, name)
    cv, temporal = read_json(paths.cv_details)["models"], read_json(paths.temporal_details)["models"]
    ridge = table[("all_inputs", "ridge")]  # the main input set: backtest's CV and temporal, evaluate's test
    assert ridge[0] == f"{cv['ridge']['spearman']['mean']:.3f} ± {cv['ridge']['spearman']['sd']:.3f}"
    assert ridge[4] == f"{temporal['ridge']['r2']['value']:.3f}" and ridge[9:] == ["0.654", "0.432", "—"]
    assert ("synopsis length", "length_only") in table and ("the train mean", "train_mean") in table
    assert "they equal the main run's" in text
    n_cv, n_test = sum(stored["rows"]["cv_folds"]), stored["rows"]["test"]
    assert f"{n_cv:,} anime in 3 folds" in text and f"test split: {n_test:,} anime" in text
    assert "paper_mode.enabled: false" in text


def test_a_missing_finetune_json_is_named_as_not_scored_and_a_present_one_adds_its_rows(project):
    params, paths, _, _ = project
    paths.finetune_metrics.unlink(missing_ok=True)
    assert "finetune (text encoder trained end to end with the paper's head): not scored in this run" in \
        call_step(run_report, params)
    write_json(paths.finetune_metrics, {"runs": [{"label": "finetune gpt2 (GPU)", "test": {"spearman": 0.512, "r2": 0.2},
                                                  "note": "12 s per epoch"}]})
    try:
        text = call_step(run_report, params)
        assert table_row(text, "finetune gpt2 ") == ["—"] * 9 + ["0.512", "0.200", "—"]
        assert "12 s per epoch" in text and "not scored in this run" not in text
        write_json(paths.finetune_metrics, {"rows": []})
        with pytest.raises(ValueError, match="finetune.json: field 'runs'"):
            call_step(run_report, params)
        write_json(paths.finetune_metrics, {"runs": [{"label": "x", "cv": {"spearman": "high"}}]})
        with pytest.raises(ValueError, match=r"finetune.json: runs\[0\].cv.spearman: expected .*'high'"):
            call_step(run_report, params)
        write_json(paths.finetune_metrics, {"runs": [{"label": "x", "test": {"r2": {"low": 0.1}}}]})
        with pytest.raises(ValueError, match=r"runs\[0\].test.r2: expected a number"):
            call_step(run_report, params)
        paths.finetune_metrics.write_text("not json")
        with pytest.raises(ValueError, match="finetune.json: not valid JSON"):
            call_step(run_report, params)
    finally:
        paths.finetune_metrics.unlink()


def table_row(text: str, model_prefix: str) -> list[str]:
    return next(cells for (_, model), cells in _table(text).items() if model.startswith(model_prefix.strip()))


def test_paper_mode_variants_and_differing_baselines_are_shown(project):
    params, paths, _, _ = project
    metrics = read_json(paths.metrics)
    variant = {"label": "paper-faithful", "flaws": ["select_on_test"], "best_epoch": 3, "selected_on": "test",
               "metrics": {"spearman": 0.61, "r2": 0.25}, "train_mean": {"r2": -0.01}}
    write_json(paths.paper_mode_metrics, {"encoder": "toy", "max_length": 128, "rows": {"train": 90, "test": 24},
                                          "variants": [variant]})
    write_json(paths.metrics, {**metrics, "length_only": {**metrics["length_only"], "r2": 0.999}})
    try:
        text = call_step(run_report, params)
        assert "| paper-faithful | select_on_test | 3 (test) | 0.610 | 0.250 | -0.010 |" in text
        assert "DIFFER from the main run's (length_only test r2)" in text
    finally:
        write_json(paths.metrics, metrics)
        write_json(paths.paper_mode_metrics, {"enabled": False})


def test_the_plan_and_its_config_are_checked_before_any_fit(tmp_path):
    with pytest.raises(ValueError, match="reads \\['characters'\\]"):
        check_plan(_params(tmp_path, input_sets=("studios", "characters"), models=("meta_ridge",)))
    for bad in ({"input_sets": ("studios", "studios")}, {"models": ("finetune",)}, {"input_sets": ("studio",)},
                {"models": ()}):
        with pytest.raises(ValueError):
            knobs("field_ablation", **bad)
    assert knobs("field_ablation", enabled=False, models=()).models == ()


def test_switched_off_it_still_writes_its_outputs(tmp_path):
    params = _params(tmp_path, enabled=False)
    assert run_field_ablation(params) == {"enabled": False}
    assert json.loads(ArtifactPaths.of(params.paths).field_ablation_metrics.read_text()) == {"enabled": False}
