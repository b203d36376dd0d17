"""Serving the schedule polls the Prefect server every few seconds; httpx must not log one INFO line per poll."""

from __future__ import annotations

import logging

from conftest import params_in

from anipop import orchestration as orch


class RecordingFlow:
    def __init__(self):
        self.served = None

    def serve(self, **options):
        self.served = options
        self.httpx_level = logging.getLogger("httpx").getEffectiveLevel()


def test_serving_the_schedule_keeps_httpx_request_lines_out_of_the_log(tmp_path, monkeypatch):
    monkeypatch.setattr(logging.getLogger("httpx"), "level", logging.NOTSET)  # as Prefect leaves it: INFO via root
    flow = RecordingFlow()
    orch.serve_retrain(flow, tmp_path, params_in(tmp_path), cron="0 3 * * 1")
    assert flow.httpx_level >= logging.WARNING
    assert flow.served["name"] == "weekly-retrain" and flow.served["parameters"] == {"project_dir": str(tmp_path)}
