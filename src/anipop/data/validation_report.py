"""A self-contained HTML page of the validation results, readable offline.

Great Expectations' Data Docs load Bootstrap, jQuery and Vega from CDNs, so without internet they open
unstyled or blank. This page carries its own small stylesheet and no script: every suite, every expectation,
its outcome, the count of offending rows and a sample of their keys, from the same summary as summary.json.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from anipop.core.utils import write_text

STYLE = """body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin-bottom:2em}
td,th{border:1px solid #bbb;padding:.3em .6em;text-align:left;vertical-align:top}.fail{background:#fdd}
.ok{color:#262}.bad{color:#a00;font-weight:bold}code{font-size:90%}"""


def _arguments(kwargs: dict) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in sorted(kwargs.items()))


def offline_report_html(summary: dict) -> str:
    """The page for one validation summary (summary.json's content); deterministic: no time, no paths."""
    verdict = "all suites passed" if summary["success"] else "validation FAILED"
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>anipop validation: {verdict}</title>",
             f"<style>{STYLE}</style></head><body><h1>anipop data validation: "
             f"<span class='{'ok' if summary['success'] else 'bad'}'>{verdict}</span></h1>",
             "<p>The full Great Expectations Data Docs are in <code>index.html</code> beside this page (they need "
             "internet for their styles and scripts).</p>"]
    for name, suite in summary["suites"].items():
        passed = sum(1 for exp in suite["expectations"] if exp["success"])
        parts.append(f"<h2>{escape(name)}: {passed} of {len(suite['expectations'])} expectations met "
                     f"({suite.get('rows', '?')} rows, key <code>{escape(str(suite.get('key')))}</code>)</h2>")
        parts.append("<table><tr><th>expectation</th><th>column</th><th>arguments</th><th>outcome</th>"
                     "<th>rows failing</th><th>sample keys</th></tr>")
        for exp in suite["expectations"]:
            outcome = "met" if exp["success"] else "failed" + (f" ({exp['error']})" if exp.get("error") else "")
            parts.append(
                f"<tr class='{'' if exp['success'] else 'fail'}'><td><code>{escape(exp['expectation'])}</code></td>"
                f"<td>{escape(str(exp.get('column') or ''))}</td><td>{escape(_arguments(exp.get('kwargs') or {}))}"
                f"</td><td>{escape(outcome)}</td><td>{exp.get('unexpected_count') or 0}</td>"
                f"<td>{escape(', '.join(map(str, exp.get('sample_keys') or [])))}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_offline_report(summary: dict, path: Path) -> Path:
    write_text(path, offline_report_html(summary))
    return path
