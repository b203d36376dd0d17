"""The red team's smaller findings, each held: what a stranger sends that looks like input but is not."""

from __future__ import annotations

import logging

import pandas as pd
import pytest
from conftest import request_limits

from anipop.core.utils import redact_log_records
from anipop.serving.pitch import PitchError, parse_pitches
from anipop.sources.parsing import ParseError, parse_id


@pytest.mark.parametrize("synopsis", ["\u200b\u200c\u2060", "\x01\x02\x7f", "NA", "n/a", " None ", "?!..."])
def test_a_synopsis_without_a_story_is_refused(synopsis):
    with pytest.raises(PitchError, match="row 0, field 'synopsis'"):
        parse_pitches(pd.DataFrame({"synopsis": [synopsis]}), request_limits())


def test_a_short_real_synopsis_is_still_scored():
    assert parse_pitches(pd.DataFrame({"synopsis": ["Na-chan's café opens."]}), request_limits())[0].synopsis == "Na-chan's café opens."


@pytest.mark.parametrize("value", ["1e3", "1,000", "0x10", "٣", "+5", "1.0 "])
def test_an_id_that_only_parses_as_a_number_is_not_an_anime(value):
    with pytest.raises(ParseError, match="mal_id"):
        parse_id(value)


def test_plain_ids_parse():
    assert parse_id("1000") == 1000 and parse_id(" 42 ") == 42 and parse_id(7) == 7


def test_a_token_in_a_retry_warning_is_redacted_before_any_handler(caplog):
    redact_log_records()
    with caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"):
        logging.getLogger("urllib3.connectionpool").warning(
            "Retrying (Retry(total=1)) after connection broken by '%s': %s", "timeout",
            "/api/2.0/mlflow/runs/get?run_id=1&token=s3cr3t")
    assert "s3cr3t" not in caplog.text and "token=***" in caplog.text
