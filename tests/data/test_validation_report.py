"""The offline validation page: every suite and expectation, failures marked, nothing loaded from the web."""

from __future__ import annotations

import re

from anipop.data.validation_report import offline_report_html

SUMMARY = {"success": False, "data_docs": "x/index.html", "suites": {
    "prepared_anime": {"key": "anime_id", "rows": 3, "success": False, "expectations": [
        {"expectation": "expect_column_values_to_not_be_null", "column": "anime_id", "kwargs": {}, "success": True,
         "unexpected_count": 0, "sample_keys": [], "error": None},
        {"expectation": "expect_column_values_to_be_between", "column": "score",
         "kwargs": {"min_value": 1, "max_value": 10}, "success": False, "unexpected_count": 1,
         "sample_keys": ["2<script>"], "error": None}]}}}


def test_the_offline_page_lists_each_expectation_and_loads_nothing():
    page = offline_report_html(SUMMARY)
    assert "validation FAILED" in page and "prepared_anime: 1 of 2 expectations met" in page
    assert "<tr class='fail'><td><code>expect_column_values_to_be_between</code></td><td>score</td>" in page
    assert "2&lt;script&gt;" in page and "<script" not in page  # data is escaped, and the page has no script
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", page)  # no CDN, no remote asset
    assert offline_report_html(SUMMARY) == page  # deterministic: a rerun rewrites the same bytes
