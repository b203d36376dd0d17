"""The model card of a registered version: data, metrics with intervals next to the baseline, use and limits."""

from __future__ import annotations

from pathlib import Path

from anipop.core.config import Params
from anipop.core.metrics import markdown_table
from anipop.core.model_catalog import BASELINES, unsaid_franchise
from anipop.core.utils import read_json
from anipop.modeling.pitch import PitchModel, reads_characters

_LIMITS = """\
- The paper this reproduces (Armenta-Segura & Sidorov, 2025) finds synopsis, character and portrait features
  *relevant but not decisive*: the score also depends on marketing, competition in its season and execution, none
  of which a pitch contains. Read a prediction as a prior, not a verdict.
- Newer shows score higher on MAL on average than older ones, and the model ranks shows of new franchises less
  well than its test split says (the rolling-origin and temporal rows above): retrain as new scores arrive.
- Trained on MyAnimeList weighted scores of finished and airing anime; MAL's audience is not every audience.
- The interval is a split-conformal interval from validation residuals: it holds on average over anime like the
  training data, not for every single pitch, and not for pitches unlike anything in the data.
- Do not use it to judge people (creators, voice actors); it was never evaluated for that.
"""


def _backtest_lines(reports: Path, model_name: str) -> list[str]:
    """Franchise-grouped CV, temporal and rolling-origin rows of the model and the baselines, when they were run."""
    lines = []
    for file, title in (("cv.json", "Franchise-grouped cross-validation (mean over folds)"),
                        ("temporal.json", "Temporal backtest (new franchises after the cut year)"),
                        ("rolling.json", "Rolling origin (mean over years of each year's new franchises)")):
        path = reports / file
        table = read_json(path) if path.exists() else {}
        rows = [name for name in (model_name, unsaid_franchise(model_name), *BASELINES)
                if isinstance(table.get(name), dict)]
        if not rows:
            continue
        lines += [f"## {title}", "", "| model | r2 | spearman | mae (1-10) | rmse_1_10 |", "|---|---|---|---|---|"]
        lines += [f"| {name} | {table[name]['r2']:.4f} | {table[name]['spearman']:.4f} | "
                  f"{table[name].get('mae_1_10', float('nan')):.4f} | {table[name]['rmse_1_10']:.4f} |" for name in rows]
        lines.append("")
    return lines


_KIND_WORDS = {"synopsis": "the synopsis", "year": "the planned first-air year",
               "duration": "the planned runtime of an episode (or the film)",
               "character_description": "the main characters' descriptions", "character_name": "their names",
               "portrait": "their portraits"}


def reads_lines(bundle) -> list[str]:
    """What the registered model reads, from the bundle itself: a card that describes the model it ships with."""
    from anipop.core.input_kinds import CHARACTER_KINDS, METADATA_FIELDS

    kinds = list(bundle.inputs)
    model = bundle.model
    fields = [k for k in kinds if k in METADATA_FIELDS]
    said = [_KIND_WORDS[k] for k in kinds if k in _KIND_WORDS and k not in CHARACTER_KINDS]
    if fields:
        said.append("the pitch metadata " + ", ".join(f"`{f}`" for f in fields))
    lines = [f"- Reads {', '.join(said) or 'nothing'}."]
    characters = [k for k in kinds if k in CHARACTER_KINDS]
    if characters:
        if reads_characters(model):
            weight = f" (character correction weight {model.character_weight:.3f})" \
                if isinstance(model, PitchModel) else ""
            lines.append(f"- Reads {', '.join(_KIND_WORDS[k] for k in characters)} when a pitch gives them{weight}.")
        else:
            lines.append("- Given main characters and portraits do not move its score: the character correction "
                         "fitted to them has weight 0 (they did not predict what the synopsis leaves out-of-fold).")
    records = model.records if isinstance(model, PitchModel) else None
    if records is not None:
        lines.append(f"- Track records of {', '.join(f'`{f}`' for f in records.fields)}: each value's shrunk mean "
                     f"score, anime count and last-{records.recent_years}-years record over the "
                     f"{int((records.history['field'] == '').sum()) if records.history is not None else 0} training "
                     f"anime aired before the pitch's year (anipop.modeling.track_records).")
    if isinstance(model, PitchModel) and model.reads_franchise_scores:
        lines.append("- Reads `franchise_scores` when a pitch gives them: the mean MAL score and count of the "
                     "franchise's earlier anime (`original`: none; not given: unknown, row "
                     f"`{unsaid_franchise(bundle.name)}` in the tables above).")
    return lines


def why_lines(reports: Path, model_name: str, previous_recipe: str | None = None) -> list[str]:
    """Why this model is the one registered, from the backtest's CV means of every trained model (its previous
    recipe, refitted by the backtest only, named as such)."""
    path = reports / "cv.json"
    table = read_json(path) if path.exists() else {}
    ranked = sorted(((n, v["spearman"]) for n, v in table.items() if isinstance(v, dict) and "spearman" in v
                     and n not in BASELINES and n != unsaid_franchise(model_name)), key=lambda item: -item[1])
    if not ranked or model_name not in dict(ranked):
        return [f"- `{model_name}` is train.model in params.yaml (no cross-validation ran to compare models)."]
    others = ", ".join(f"`{n}` {v:.4f}" + (" (its previous recipe)" if n == previous_recipe else "")
                       for n, v in ranked if n != model_name)
    best = ranked[0][0] == model_name
    return [f"- `{model_name}` is train.model in params.yaml; on franchise-grouped CV Spearman it scores "
            f"{dict(ranked)[model_name]:.4f}, " + ("the best of the trained models" if best else "NOT the best")
            + (f" ({others})." if others else ".")]


def render_model_card(params: Params, version: str, intervals: dict, model_name: str, decision: str) -> str:
    """Markdown for one registered version; every number comes from the evaluation files of this run."""
    from anipop.core.artifacts import ArtifactPaths, load_bundle

    report = read_json(Path(params.paths.prepared_dir) / "report.json")
    encoders = params.embed
    bundle = load_bundle(ArtifactPaths.of(params.paths).primary_bundle)
    lines = [
        f"# {params.registry.model_name} v{version} ({model_name})",
        "",
        "Predicts the MyAnimeList weighted score (1-10) of an anime from what a pitch gives, with an interval.",
        "",
        "## What it reads",
        *reads_lines(bundle),
        *why_lines(Path(params.paths.reports_dir), model_name, params.evaluate.previous_recipe.name),
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
        "MSE/MAE are on the normalised score, MAE_1_10 and RMSE on the 1-10 scale.",
        "",
        *_backtest_lines(Path(params.paths.reports_dir), model_name),
        f"## Promotion\n{decision}",
        "",
        "## Intended use and limits",
        _LIMITS,
    ]
    return "\n".join(lines)
