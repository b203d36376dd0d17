"""The MLflow pyfuncs anipop registers, logged as code (MLflow's models-from-code), never as a pickle.

Why code and not an instance: `mlflow.pyfunc.log_model(python_model=<object>)` cloudpickles the object into the
registry, and loading it runs whatever that pickle says. Logged from code, the model's folder holds a two-line
script (anipop/serving/model_code/) that imports these classes from the installed anipop, and data: predictor.json, the
bundle in skops format (anipop.serving.served_bundle), the ONNX graph. `model_loading.load_model` checks that the script is
exactly one of those two before MLflow runs it.

Importing this module imports mlflow: only the serving process and the logging steps do.
"""

from __future__ import annotations

import logging

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE

from anipop.core.artifacts import MinMaxScaler
from anipop.core.utils import read_json, redact_log_records
from anipop.serving.pitch import UNSAVED_LIMITS, PitchError, parse_pitches
from anipop.serving.predict import PitchPredictor
from anipop.serving.rest_guard import no_tracebacks_to_clients
from anipop.serving.served_bundle import load_served_bundle

log = logging.getLogger(__name__)


class AnswerError(MlflowException):
    """An error answered to the client as exactly its own message.

    MLflow's scoring server rewrites the message of any MlflowException a model raises into
    "Failed to predict data '<the whole request, dumped>'. Error: ..." (mlflow.pyfunc.scoring_server's
    invocations): the promised one line would be buried under the client's own request, up to megabytes
    of base64 portraits echoed back. The first message set is the one kept; later rewrites are ignored.
    """

    @property
    def message(self) -> str:
        return self._answer

    @message.setter
    def message(self, value: str) -> None:
        if not hasattr(self, "_answer"):
            self._answer = value


class PitchModel(mlflow.pyfunc.PythonModel):
    """Takes raw pitches (synopsis, characters JSON); bad input is a 400 naming the field or the limit.

    Anything else is logged here and answered as a generic 500: a client never sees a stack trace, a
    server path or a library's internals.
    """

    def load_context(self, context):
        self.predictor = PitchPredictor.from_dir(context.artifacts["predictor"])
        no_tracebacks_to_clients()
        redact_log_records()  # the serving process logs too: no token from a URI in its log

    def predict(self, context, model_input, params=None):
        if params:
            raise AnswerError(f"unknown params {sorted(params)[:10]}; this model takes none",
                              error_code=INVALID_PARAMETER_VALUE)
        try:
            return self.predictor.predict(parse_pitches(model_input, self.predictor.limits))
        except PitchError as err:
            raise AnswerError(str(err)[:1000], error_code=INVALID_PARAMETER_VALUE) from None
        except Exception:  # noqa: BLE001 - the server's log has the traceback; the client gets one line
            log.exception("pitch model: prediction failed")
            raise AnswerError("internal error while scoring the pitch (see the server log)",
                              error_code=INTERNAL_ERROR) from None


class BundleModel(mlflow.pyfunc.PythonModel):
    """A pyfunc for models that take no embeddings (the TF-IDF benchmark on texts, the baselines).

    Same input as the pitch model (synopsis, characters JSON), so a registered child of any kind is called
    the same way; the score is on MAL's 1-10 scale. Portrait pixels are not rebuilt from pitches here.
    """

    def load_context(self, context):
        self.bundle = load_served_bundle(context.artifacts["bundle"])
        self.scaler = MinMaxScaler.from_dict(read_json(context.artifacts["scaler"]))

    def _raw_inputs(self, pitches) -> dict[str, list[str]]:
        texts = {"synopsis": lambda p: p.synopsis,
                 "character_description": lambda p: " ".join(c.description for c in p.characters),
                 "character_name": lambda p: " ".join(c.name for c in p.characters)}
        missing = [kind for kind in self.bundle.inputs if kind not in texts]
        if missing:
            raise PitchError(f"model {self.bundle.name} needs {missing}, which this model cannot take "
                             f"from a pitch; serve an embedding model instead")
        return {kind: [texts[kind](p) for p in pitches] for kind in self.bundle.inputs}

    def predict(self, context, model_input, params=None):
        try:
            pitches = parse_pitches(model_input, UNSAVED_LIMITS)  # these children save no limits of their own
            if self.bundle.model is None:  # the train-mean baseline: one constant
                normalised = np.full(len(pitches), float(self.bundle.train_mean))
            else:
                normalised = np.clip(self.bundle.model.predict(self._raw_inputs(pitches)), 0.0, 1.0)
        except PitchError as err:
            raise MlflowException(str(err), error_code=INVALID_PARAMETER_VALUE) from err
        return pd.DataFrame({"score": self.scaler.inverse(normalised),
                             "baseline_score": self.scaler.inverse(float(self.bundle.train_mean))}).round(4)
