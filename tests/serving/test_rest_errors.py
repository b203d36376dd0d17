"""A bad pitch sent to `mlflow models serve` is answered with the one line that names the row and field.

MLflow's scoring server (mlflow.pyfunc.scoring_server.invocations) rewrites the message of an MlflowException
raised by a model into "Failed to predict data '<the request, dumped>'. Error: ..."; the pitch model's error
keeps its own message. This drives that real server function in-process with the pitch model (no server start);
tests/integration/test_readme_commands.py checks the same answer from a real `mlflow models serve`.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from conftest import request_limits
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import scoring_server

from anipop.serving.served_pyfunc import PitchModel


class ServedPitchModel:
    """What the scoring server holds: a pyfunc whose predict is the pitch model's (no encoder is needed to
    reject a pitch, so no predictor is loaded)."""

    metadata = SimpleNamespace()

    def __init__(self):
        self.python_model = PitchModel()
        self.python_model.predictor = SimpleNamespace(limits=request_limits(), predict=lambda pitches: None)

    def predict(self, data, params=None):
        return self.python_model.predict(None, data, params)


def answer(body: dict) -> dict:
    with pytest.raises(MlflowException) as raised:
        scoring_server.invocations(json.dumps(body), "application/json", ServedPitchModel(), None)
    return json.loads(raised.value.serialize_as_json()) | {"status": raised.value.get_http_status_code()}


def test_a_bad_pitch_is_answered_with_its_own_line_not_mlflows_wrapper_with_the_request():
    body = answer({"dataframe_records": [{"synopsis": " " * 5000}]})  # the request is not echoed back
    assert body["status"] == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert body["message"] == "row 0, field 'synopsis': empty"


def test_unknown_params_are_one_line_too():
    body = answer({"dataframe_records": [{"synopsis": "a pitch"}], "params": {"temperature": 1}})
    assert body["status"] == 400 and body["message"] == "unknown params ['temperature']; this model takes none"


def test_mlflows_wrapper_is_what_a_plain_mlflow_exception_gets():
    """The behaviour the pitch model's error class exists for; if MLflow stops wrapping, this says so."""
    class Plain(ServedPitchModel):
        def predict(self, data, params=None):
            raise MlflowException.invalid_parameter_value("row 0, field 'synopsis': empty")

    with pytest.raises(MlflowException) as raised:
        scoring_server.invocations(json.dumps({"dataframe_records": [{"synopsis": " "}]}), "application/json",
                                   Plain(), None)
    assert raised.value.message.startswith("Failed to predict data")
