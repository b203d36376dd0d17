"""The shipped examples (README's predict and REST commands use them verbatim) are valid pitches."""

from __future__ import annotations

import json

import pandas as pd
from conftest import REPO_ROOT, request_limits

from anipop.serving.pitch import inline_image_files, parse_pitches, read_pitch_file

EXAMPLES = REPO_ROOT / "examples"


def test_the_pitches_csv_parses_with_its_portrait_file():
    frame = inline_image_files(read_pitch_file(EXAMPLES / "pitches.csv"), base=EXAMPLES)
    pitches = parse_pitches(frame, request_limits())
    assert len(pitches) == 2 and len(pitches[0].characters) == 1 and pitches[0].characters[0].portrait is not None
    assert pitches[1].characters == []


def test_the_rest_request_body_is_one_pitch_with_a_base64_portrait():
    body = json.loads((EXAMPLES / "request.json").read_text(encoding="utf-8"))["dataframe_split"]
    pitches = parse_pitches(pd.DataFrame(body["data"], columns=body["columns"]), request_limits())
    assert len(pitches) == 1 and pitches[0].characters[0].portrait is not None
