"""What a stranger can make one request cost: every bound checked before work that grows faster than the input.

The red team's shapes: one `studios` field of 110,000 distinct values (768 KB: 60 s and a busy worker before the
fix), a 4.9 MB Python-literal list (570 MB RSS through ast.literal_eval), a body nested 100,000 deep (a bare 500),
an EPS portrait (Pillow would start Ghostscript). Oversized fields are checked to be refused on their length before
anything reads them (a fixed cost, whatever their size), not against a clock; the CPU figures are a benchmark's.
"""

from __future__ import annotations

import base64
import io
import json

import pytest
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import scoring_server
from PIL import Image
from test_rest_errors import ServedPitchModel

from anipop.data.literal_lists import ListSyntaxError, parse_text_list
from anipop.data.metadata import MAX_VALUE_CHARS, MAX_VALUES_PER_FIELD, MetadataError, parse_values
from anipop.serving.pitch import PitchError, decode_portrait
from anipop.serving.rest_guard import _bounded_invocations

ATTACKS = {
    "110k distinct comma values": ", ".join(f"Studio {i}" for i in range(110_000)),
    "4.9 MB python literal": "[" + ", ".join(repr(f"Genre {i}") for i in range(300_000)) + "]",
    "100k-item JSON list": [f"s{i}" for i in range(100_000)],
    "100k duplicates": ["Madhouse"] * 100_000,
    "one huge value": "x" * 5_000_000,
}


class _TextNobodyMayRead(str):
    """A text whose every scan fails the test: refusing it must rest on its length alone."""

    def _read(self, *args, **kwargs):
        raise AssertionError("the oversized text was read before its length was checked")

    strip = lower = split = startswith = replace = encode = __iter__ = __getitem__ = __contains__ = _read


class _ListNobodyMayRead(list):
    """A list whose items must not be walked (or copied) before its length is checked."""

    def __iter__(self):
        raise AssertionError("the oversized list was walked before its length was checked")

    __getitem__ = __iter__


def _valid_maximal() -> str:
    return ", ".join(f"{i:03d}" + "s" * (MAX_VALUE_CHARS - 3) for i in range(MAX_VALUES_PER_FIELD))


def test_the_largest_valid_field_is_accepted():
    assert len(parse_values("studios", _valid_maximal())) == MAX_VALUES_PER_FIELD


@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_attack_shape_is_refused_naming_the_field(name):
    with pytest.raises(MetadataError, match="field 'studios'"):
        parse_values("studios", ATTACKS[name])


@pytest.mark.parametrize("name", list(ATTACKS))
def test_an_oversized_field_is_refused_on_its_length_before_anything_reads_it(name):
    """Deterministic form of "no attack costs more than a valid field": nothing scans the oversized value.

    (CPU-time figures for the same shapes: `python benchmarks/run_all.py --only request_bounds`.)
    """
    attack = ATTACKS[name]
    unreadable = _TextNobodyMayRead(attack) if isinstance(attack, str) else _ListNobodyMayRead(attack)
    with pytest.raises(MetadataError, match="field 'studios'"):
        parse_values("studios", unreadable)


def test_python_literal_lists_parse_as_before_without_ast():
    assert parse_text_list("['Action', \"Director's Cut\", 'Caf\\xe9', None]") == ["Action", "Director's Cut",
                                                                                   "Café", None]
    assert parse_text_list('["A\\u00e9", "B\\"q"]') == ["Aé", 'B"q']
    assert parse_text_list("[ ]") == [] and parse_text_list("['a',]") == ["a"]
    for bad in ("[1, 2]", "[['a']]", "['a'", "['a'] trailing", "{'a': 1}", "[__import__('os')]"):
        with pytest.raises(ListSyntaxError):
            parse_text_list(bad)


def test_a_body_nested_100k_deep_is_a_400_and_a_malformed_one_is_not_echoed_back():
    invocations = _bounded_invocations(scoring_server.invocations)
    deep = '{"dataframe_records": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(MlflowException) as raised:
        invocations(deep, "application/json", ServedPitchModel(), None)
    assert raised.value.get_http_status_code() == 400 and "nested too deeply" in raised.value.message
    with pytest.raises(MlflowException) as raised:
        invocations('{"dataframe_records": [' + "x" * 1_000_000, "application/json", ServedPitchModel(), None)
    assert raised.value.get_http_status_code() == 400 and len(raised.value.message) < 1100


def _image(fmt: str) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, fmt)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@pytest.mark.parametrize("fmt", ["TIFF", "PCX", "SGI", "TGA", "ICO", "PPM"])
def test_formats_the_pipeline_does_not_train_on_are_refused_before_decoding(fmt):
    with pytest.raises(PitchError, match="accepted formats \\(JPEG, PNG, WEBP, GIF, BMP\\)"):
        decode_portrait(_image(fmt), "row 0, character 0, field 'image'", 1_000_000)


def test_an_eps_portrait_never_reaches_ghostscript():
    eps = base64.b64encode(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n").decode("ascii")
    with pytest.raises(PitchError, match="accepted formats"):
        decode_portrait(eps, "row 0, character 0, field 'image'", 1_000_000)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP"])
def test_the_trained_formats_decode_and_base64_wrapped_at_76_columns_too(fmt):
    text = _image(fmt)
    wrapped = "\n".join(text[i:i + 76] for i in range(0, len(text), 76)) + "\n"
    assert decode_portrait(wrapped, "row 0", 1_000_000).size == (8, 8)


def test_a_json_list_field_of_records_is_still_one_line():
    body = json.dumps({"dataframe_records": [{"synopsis": "a pitch", "studios": ATTACKS["100k-item JSON list"]}]})
    invocations = _bounded_invocations(scoring_server.invocations)
    with pytest.raises(MlflowException) as raised:
        invocations(body, "application/json", ServedPitchModel(), None)
    assert raised.value.get_http_status_code() == 400 and "field 'studios'" in raised.value.message
