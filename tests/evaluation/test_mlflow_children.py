"""Which evaluation children log a servable model (mlflow.log_models): the rule, without a tracking server.

The end-to-end check on a real server is tests/integration/test_mlflow_ui.py; this pins the knob's two values."""

from __future__ import annotations

from conftest import params_in

from anipop.evaluation.mlflow_runs import NO_INPUT_SET, logs_model


def test_main_logs_the_main_input_sets_models_and_the_baselines_only(tmp_path):
    params = params_in(tmp_path, mlflow={"log_models": "main"})
    assert logs_model(params, "all_inputs", "all_inputs")
    assert logs_model(params, NO_INPUT_SET, "all_inputs")  # train_mean, length_only
    assert not logs_model(params, "synopsis", "all_inputs")
    assert logs_model(params, "synopsis", "synopsis")  # whatever set is the main one


def test_all_logs_every_child(tmp_path):
    params = params_in(tmp_path, mlflow={"log_models": "all"})
    assert logs_model(params, "studios", "all_inputs")
