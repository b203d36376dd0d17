"""The model card of a registered version: data, metrics with intervals next to the baseline, use and limits."""

from __future__ import annotations

from pathlib import Path

from anipop.config import Params
from anipop.metrics import markdown_table
from anipop.model_catalog import BASELINES
from anipop.utils import read_json

_LIMITS = """\
- The paper this reproduces (Armenta-Segura & Sidorov, 2025) finds synopsis, character and portrait features
  *relevant but not decisive*: the score also depends on studio, marketing, timing and execution, none of which a
  pitch contains. Read a prediction as a prior, not a verdict.
- Trained on MyAnimeList weighted scores of finished and airing anime; MAL's audience is not every audience.
- The interval is a split-conformal interval from validation residuals: it holds on average over anime like the
  training data, not for every single pitch, and not for pitches unlike anything in the data.
- Do not use it to judge people (creators, voice actors); it was never evaluated for that.
"""


def _backtest_lines(reports: Path, model_name: str) -> list[str]:
    """Franchise-grouped CV and temporal backtest rows of the model and the baselines, when they were run."""
    lines = []
    for file, title in (("cv.json", "Franchise-grouped cross-validation (mean over folds)"),
                        ("temporal.json", "Temporal backtest (new franchises after the cut year)")):
        path = reports / file
        table = read_json(path) if path.exists() else {}
        rows = [name for name in (model_name, *BASELINES) if isinstance(table.get(name), dict)]
        if not rows:
            continue
        lines += [f"## {title}", "", "| model | r2 | spearman | rmse_1_10 |", "|---|---|---|---|"]
        lines += [f"| {name} | {table[name]['r2']:.4f} | {table[name]['spearman']:.4f} | "
                  f"{table[name]['rmse_1_10']:.4f} |" for name in rows]
        lines.append("")
    return lines


def render_model_card(params: Params, version: str, intervals: dict, model_name: str, decision: str) -> str:
    """Markdown for one registered version; every number comes from the evaluation files of this run."""
    report = read_json(Path(params.paths.prepared_dir) / "report.json")
    encoders = params.embed
    lines = [
        f"# {params.registry.model_name} v{version} ({model_name})",
        "",
        "Predicts the MyAnimeList weighted score (1-10) of an anime from its pitch: synopsis, main characters "
        "(name, description) and their portraits, with an interval.",
        "",
        "## Data",
        f"- Source: `{params.ingest.source}`; {report['anime_kept']} anime after cleaning, "
        f"split {report['split_sizes']} by {report.get('split_by', 'anime')} (seeded hash; no franchise in two "
        f"splits when by franchise: test anime with a train sibling {report.get('test_with_train_sibling')}).",
        f"- Score min-max scaled over the train split: {report['score_scaler']}.",
        f"- Text encoder `{encoders.text.model}` ({encoders.text.pooling} pooling); "
        f"image encoder `{encoders.image.model}`.",
        "",
        f"## Test metrics ({intervals['test_rows']} anime, {params.evaluate.confidence:.0%} bootstrap intervals)",
        "",
        markdown_table({model_name: intervals["models"][model_name],
                        **{f"{name} (baseline)": intervals["models"][name] for name in BASELINES
                           if name in intervals["models"]}}).rstrip("\n"),
        "",
        "MSE/MAE are on the normalised score, RMSE on the 1-10 scale.",
        "",
        *_backtest_lines(Path(params.paths.reports_dir), model_name),
        f"## Promotion\n{decision}",
        "",
        "## Intended use and limits",
        _LIMITS,
    ]
    return "\n".join(lines)
