"""Fits side by side on processes (train.workers, evaluate.workers) give the very same models and figures.

The suite runs everything in-process (conftest sets workers 1); these tests take the spawned path once each
on tiny data and compare with the in-process result."""

from __future__ import annotations

import numpy as np
from fixtures_training import toy_params, write_toy_dataset

from anipop.evaluation.backtest import run_backtest
from anipop.modeling.train import TrainingData, fit_all, input_type_of, planned_fits


def test_train_fits_on_two_processes_equal_the_in_process_fits(tmp_path):
    params = toy_params(tmp_path, models=("mlp_small", "ridge", "meta_ridge", "pitch_gbm", "pitch_stack"),
                        model="ridge", ablations=("synopsis",))
    params = params.model_copy(update={"train": params.train.model_copy(update={
        "pitch": params.train.pitch.model_copy(update={"gbm_n_estimators": 20, "stack_folds": 2, "min_count": 1})})})
    write_toy_dataset(params, count=120)
    data = TrainingData.from_prepared(params)
    keys = planned_fits(params, data, [params.train.inputs, "synopsis"])
    assert ("pitch_stack", ("synopsis",)) in keys
    here = fit_all(params.model_copy(update={"train": params.train.model_copy(update={"workers": 1})}), data, keys)
    spawned = fit_all(params.model_copy(update={"train": params.train.model_copy(update={"workers": 2})}), data, keys)
    assert list(here) == list(spawned) == keys
    for (name, kinds), (model, _, _) in here.items():
        inputs = data.inputs("val", input_type_of(name), list(kinds))
        np.testing.assert_array_equal(model.predict(inputs), spawned[(name, kinds)][0].predict(inputs), err_msg=name)


def test_backtest_on_two_processes_gives_the_in_process_figures(tmp_path):
    """CV folds on spawned processes, the temporal fit in a thread beside them: the same numbers as serially."""
    params = toy_params(tmp_path, models=("mlp_small", "ridge"), ablations=())
    write_toy_dataset(params, count=120)
    one = run_backtest(params)
    two = run_backtest(params.model_copy(update={"evaluate": params.evaluate.model_copy(update={"workers": 2})}))
    assert len(one["cv"]["folds"]) == 5 and "models" in one["temporal"]
    assert one == two
