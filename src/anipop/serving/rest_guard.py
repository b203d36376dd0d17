"""Guards on the scoring server `mlflow models serve` runs: no stack trace and no echoed body in an answer.

Why apart from the predictor: these patch MLflow's scoring server in the serving process (served_pyfunc calls
no_tracebacks_to_clients when the model loads); the predictor itself never sees a request body.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def no_tracebacks_to_clients() -> None:
    """Stop `mlflow models serve` from sending stack traces in its error answers.

    MLflow's scoring server attaches the traceback of a request it cannot parse (a malformed CSV or parquet
    body) to the JSON it answers with; tracebacks show a stranger file paths and library versions. The
    model is loaded inside the serving process, so this is the one place that can switch that off; the
    traceback still goes to the server's log.
    """
    try:
        from mlflow.pyfunc import scoring_server
    except ImportError:  # serving extras absent: nothing is served from this process
        return
    original = scoring_server._handle_serving_error
    if getattr(original, "_anipop_guarded", False):
        return

    def without_traceback(error_message, error_code, include_traceback=True):
        log.warning("scoring server: %s", error_message[:500], exc_info=True)
        return original(error_message=error_message, error_code=error_code, include_traceback=False)

    without_traceback._anipop_guarded = True
    scoring_server._handle_serving_error = without_traceback
    scoring_server.invocations = _bounded_invocations(scoring_server.invocations)




MAX_ERROR_CHARS = 1000  # MLflow quotes a malformed body whole in its error ("Input: ..."): megabytes echoed back


def _bounded_invocations(invocations):
    """The scoring server's request handler, answering what it cannot parse with a short 400.

    A body nested 100,000 deep makes Python's json raise RecursionError, which MLflow does not catch (a bare 500);
    a malformed body is quoted back whole in MLflow's message. The `/invocations` route looks the handler up in
    its module at each request, so wrapping it here covers every request of the served model."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import BAD_REQUEST, ErrorCode

    def bounded(data, content_type, model, input_schema):
        try:
            return invocations(data, content_type, model, input_schema)
        except RecursionError:
            raise MlflowException("the request body is nested too deeply: a pitch request is a JSON object "
                                  "with flat records", error_code=BAD_REQUEST) from None
        except MlflowException as err:
            if len(err.message) <= MAX_ERROR_CHARS:
                raise
            raise MlflowException(err.message[:MAX_ERROR_CHARS] + " ... (truncated)",
                                  error_code=ErrorCode.Value(err.error_code)) from None

    return bounded
