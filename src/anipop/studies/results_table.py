"""reports/results.md: one table of every result the pipeline wrote, each model next to the baselines.

Why a step of its own: the figures sit in five reports (cv_details.json, temporal_details.json, metrics.json,
field_ablation.json, paper_mode.json) written by four stages; a reader wants them on one page, on the same
rows. This step only reads and formats them: no model is fitted and no metric is computed here.

reports/finetune.json is optional: the encoder fine-tuned end to end is scored outside the pipeline (hours on
CPU, a GPU run). When present it holds {"runs": [{"label": ..., "inputs": "synopsis", "cv": {metric: {"mean",
"sd"}}, "temporal": {metric: value or {"value"}}, "test": {metric: value or {"value"}}, "note": ...}]}, any of
cv/temporal/test may be left out; when absent the table says it was not scored in this run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from anipop.core import readme_blocks
from anipop.core.artifacts import ArtifactPaths
from anipop.core.config import Paths, TrainParams
from anipop.core.input_kinds import PITCH_METADATA_KINDS
from anipop.core.metrics import comparison_lines
from anipop.core.model_catalog import BASELINE, BASELINES, LENGTH_BASELINE, PAPER_HEAD, unsaid_franchise
from anipop.core.utils import read_json, write_json, write_text

SHOWN = ("spearman", "r2", "mae_1_10")  # per part; every metric is in the JSON reports
PARTS = ("cv", "temporal", "rolling", "test")
SPREAD_PARTS = ("cv", "rolling")      # mean ± sd (over folds, over years); the others one value
PART_TITLES = {"cv": "CV", "temporal": "temporal", "rolling": "rolling origin", "test": "test"}
METRIC_TITLES = {"spearman": "Spearman", "r2": "R²", "mae_1_10": "MAE"}
MISSING = "—"
TOLERANCE = 1e-6  # the same fit on the same rows gives the same float; metrics.json rounds to 6 decimals

README_BEGIN, README_END = readme_blocks.markers("results", "anipop report")
HEADLINE = (("test", "spearman"), ("test", "r2"), ("test", "mae_1_10"), ("cv", "spearman"), ("temporal", "spearman"),
            ("temporal", "r2"), ("temporal", "mae_1_10"), ("rolling", "spearman"))  # the README's columns
PAPER_ROW = ("| *paper: GPT-2 + ResNet-50 + deep net, all inputs (their data, a random split)* | *0.362* | *0.142* |"
             + " |" * (len(HEADLINE) - 2))  # Armenta-Segura & Sidorov 2025, Table 5 (../shared/PAPER.md)

GROUP_OF_SET = {"metadata": "all metadata", "synopsis": "text only", "all_inputs": "all pitch-time inputs"}
NOTES = {"pitch_stack": "blend of meta_ridge and pitch_gbm (train.pitch.blend_linear)", "pitch_gbm": "trees over metadata + out-of-fold text",
         "meta_ridge": "ridge on one-hot metadata (+ TF-IDF, embedding when the set has the synopsis)",
         "ridge": "ridge on embeddings", "tfidf_benchmark": "the paper's TF-IDF benchmark",
         PAPER_HEAD: "the paper's head, frozen encoder", "length_only": "synopsis length",
         BASELINE: "the train mean",
         "pitch_stack_before": "pitch_stack's previous recipe (evaluate.previous_recipe), refitted on the same rows",
         unsaid_franchise("pitch_stack"): "the same pitch_stack, on pitches that leave franchise_scores out"}


@dataclass(frozen=True)
class ScoreRow:
    """One table row: which group and input set, which model, and its {cv, temporal, test} metrics."""

    group: str
    inputs: str
    model: str
    entry: dict
    tags: tuple[str, ...] = field(default=())


def value_of(entry) -> float:
    """A point value from either shape the reports use: a number or {"value": ..., "low", "high"}."""
    return float(entry["value"] if isinstance(entry, dict) else entry)


def point(entry: dict, part: str, metric: str) -> float | None:
    """One figure's point value (CV and rolling origin: the mean), or None when not scored."""
    found = (entry.get(part) or {}).get(metric)
    if found is None:
        return None
    return float(found["mean"]) if part in SPREAD_PARTS else value_of(found)


def cell(entry: dict, part: str, metric: str) -> str:
    """One figure as the table prints it (CV: mean ± sd; temporal and test: the value); — when not scored."""
    found = (entry.get(part) or {}).get(metric)
    if found is None:
        return MISSING
    if part in SPREAD_PARTS:
        return f"{found['mean']:.3f} ± {found['sd']:.3f}"
    return f"{value_of(found):.3f}"


def markdown_rows(rows: list[ScoreRow]) -> str:
    titles = [f"{PART_TITLES[p]} {METRIC_TITLES[m]}" for p in PARTS for m in SHOWN]
    lines = ["| group | inputs | model | " + " | ".join(titles) + " |", "|---|---|---|" + "---|" * len(titles)]
    for row in rows:
        model = row.model + (f" ({', '.join(row.tags)})" if row.tags else "")
        cells = [cell(row.entry, p, m) for p in PARTS for m in SHOWN]
        lines.append(f"| {row.group} | {row.inputs} | {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def row_counts_line(rows: dict) -> str:
    """The rows behind each column: CV fold sizes, the temporal backtest's sides, the test split."""
    parts = []
    folds = rows.get("cv_folds")
    if folds:
        parts.append(f"franchise-grouped CV over train+val: {sum(folds):,} anime in {len(folds)} folds "
                     f"({', '.join(f'{n:,}' for n in folds)} per fold)")
    t = rows.get("temporal")
    if t and "train" in t:
        parts.append(f"temporal backtest (cut {t['cut_year']}): trained on {t['train']:,} anime (+{t['val']:,} for "
                     f"early stopping) of franchises begun before it, tested on {t['test']:,} anime of franchises "
                     f"begun in {t['cut_year']} or later ({t['sequels']:,} later sequels and {t['undated']:,} "
                     f"undated anime left out)")
    if rows.get("rolling"):
        years = rows["rolling"]
        parts.append(f"rolling origin: each year {min(years)}-{max(years)} refitted on what came before, scored on its "
                     f"new franchises ({sum(years.values()):,} anime, {min(years.values())}-{max(years.values())} a year)")
    if rows.get("test"):
        parts.append(f"test split: {rows['test']:,} anime")
    return "Rows: " + ("; ".join(parts) if parts else "none scored") + "."


def _read(path: Path, required: bool = True) -> dict | None:
    if not path.exists():
        if required:
            raise FileNotFoundError(f"{path}: not found; run the stage that writes it (`dvc repro`) first")
        return None
    try:
        found = read_json(path)
    except ValueError as err:  # json.JSONDecodeError: say which file, not only where in it
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(found, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(found).__name__}")
    return found


def main_entries(cv: dict, temporal: dict, metrics: dict, rolling: dict | None = None) -> tuple[dict[str, dict], dict]:
    """model -> {cv, temporal, rolling, test} of the main input set, and the rows behind them."""
    cv_models, temporal_models = cv.get("models", {}), temporal.get("models", {})
    rolling_models = (rolling or {}).get("models", {})
    test_models = {k: v for k, v in metrics.items() if isinstance(v, dict)}
    names = list(dict.fromkeys([*cv_models, *temporal_models, *rolling_models, *test_models]))
    entries = {name: {part: found for part, found in (("cv", cv_models.get(name)), ("temporal", temporal_models.get(name)),
                                                      ("rolling", rolling_models.get(name)),
                                                      ("test", test_models.get(name))) if found}
               for name in names}
    rows = {"cv_folds": [f["test"] for f in cv.get("folds", [])],
            "temporal": {"cut_year": temporal.get("cut_year"), **temporal.get("counts", {})},
            "test": metrics.get("test_rows"),
            "rolling": {year: found["counts"]["test"] for year, found in (rolling or {}).get("years", {}).items()}}
    return entries, rows


def finetune_rows(payload: dict | None, path: Path) -> tuple[list[ScoreRow], list[str]]:
    """The rows of reports/finetune.json (see the module docstring), or a line saying it was not scored."""
    if payload is None:
        return [], [f"- finetune (text encoder trained end to end with the paper's head): not scored in this run "
                    f"(no {path.name}; it is scored outside the pipeline)."]
    runs = payload.get("runs")
    if not isinstance(runs, list):
        raise ValueError(f"{path}: field 'runs': expected a list of scored runs, got {type(runs).__name__}")
    rows, notes = [], []
    for i, run in enumerate(runs):
        if not isinstance(run, dict):
            raise ValueError(f"{path}: runs[{i}]: expected an object, got {type(run).__name__}")
        for part in PARTS:
            _check_scores(run.get(part), part, f"{path}: runs[{i}].{part}")
        label = str(run.get("label", "finetune"))
        rows.append(ScoreRow("fine-tuned encoder", str(run.get("inputs", "synopsis")), label,
                             {part: run[part] for part in PARTS if run.get(part)}))
        if run.get("note"):
            notes.append(f"- {label}: {run['note']}")
    return rows, notes


def _check_scores(scores: object, part: str, where: str) -> None:
    """A hand-written part of finetune.json holds what `cell` prints: CV {metric: {mean, sd}}, else numbers or
    {metric: {value}}; anything else is named here rather than failing as a traceback inside the formatting."""
    if scores is None:
        return
    if not isinstance(scores, dict):
        raise ValueError(f"{where}: expected an object of metrics, got {type(scores).__name__}")
    for metric, found in scores.items():
        if part == "cv":
            ok = isinstance(found, dict) and all(isinstance(found.get(k), (int, float)) for k in ("mean", "sd"))
            expected = '{"mean": number, "sd": number}'
        else:
            ok = isinstance(found, (int, float)) or (isinstance(found, dict)
                                                     and isinstance(found.get("value"), (int, float)))
            expected = 'a number or {"value": number}'
        if not ok or isinstance(found, bool):
            raise ValueError(f"{where}.{metric}: expected {expected}, got {found!r}")


def baselines_agree(main: dict[str, dict], ablation: dict) -> str:
    """Whether the field ablation's refitted baselines equal the main backtest's (they must: same rows)."""
    differing = []
    for name, entry in ablation.get("baselines", {}).items():
        for part in PARTS:
            for metric in SHOWN:
                a = (entry.get(part) or {}).get(metric)
                b = (main.get(name, {}).get(part) or {}).get(metric)
                if a is None or b is None:
                    continue
                a, b = (x["mean"] if part in SPREAD_PARTS else value_of(x) for x in (a, b))
                if abs(a - b) > TOLERANCE:
                    differing.append(f"{name} {part} {metric}")
    if differing:
        return f"The field ablation's refitted baselines DIFFER from the main run's ({', '.join(differing)}): " \
               f"the two reports come from different data or folds; rerun `dvc repro`."
    return "The field ablation refits both baselines with every input set; they equal the main run's (same rows)."


def paper_mode_section(report: dict) -> str:
    if not report.get("enabled", True) or "variants" not in report:
        return ("Not run in this run (paper_mode.enabled: false): `dvc exp run -S paper_mode.enabled=true` "
                "(reports/paper_mode.md).\n")
    rows = report.get("rows", {})
    lines = [f"Encoder {report.get('encoder')} (frozen), synopsis at {report.get('max_length')} tokens; trained on "
             f"{rows.get('train', 0):,} anime, scored on the {rows.get('test', 0):,} test anime, each variant with "
             f"its own label scaling (the train mean beside it is scored on the same scaling).\n",
             "| variant | flaws on | epoch kept | test Spearman | test R² | train_mean test R² |", "|---|---|---|---|---|---|"]
    for v in report["variants"]:
        lines.append(f"| {v['label']} | {', '.join(v['flaws']) or 'none'} | {v['best_epoch']} ({v['selected_on']}) | "
                     f"{v['metrics']['spearman']:.3f} | {v['metrics']['r2']:.3f} | {v['train_mean']['r2']:.3f} |")
    return "\n".join(lines) + "\n"


def ranked_models(main: dict[str, dict]) -> list[str]:
    """The main input set's models, best first on CV Spearman (never on the test split); baselines apart."""
    return sorted((n for n in main if n not in BASELINES),
                  key=lambda n: -main[n].get("cv", {}).get("spearman", {}).get("mean", float("-inf")))


def results_markdown(train: TrainParams, cv: dict, temporal: dict, metrics: dict, ablation: dict, paper_mode: dict,
                     finetune: dict | None, finetune_path: Path, rolling: dict | None = None) -> str:
    main, main_rows = main_entries(cv, temporal, metrics, rolling)
    rows = [ScoreRow("baseline", NOTES[name], name, main[name]) for name in reversed(BASELINES) if name in main]
    ablation_sets = ablation.get("input_sets", {})
    for input_set in ablation.get("order", list(ablation_sets)):  # the configured order (JSON keys are sorted)
        models = ablation_sets[input_set]
        group = GROUP_OF_SET.get(input_set, "metadata field alone" if input_set in PITCH_METADATA_KINDS
                                 else "input set alone")
        rows += [ScoreRow(group, input_set, name, entry) for name, entry in models.items()]
    text_rows = [i for i, r in enumerate(rows) if r.inputs == "synopsis" and r.entry.get("cv")]
    if text_rows:
        best = max(text_rows, key=lambda i: rows[i].entry["cv"]["spearman"]["mean"])
        rows[best] = ScoreRow(rows[best].group, "synopsis", rows[best].model, rows[best].entry,
                              ("best text-only on CV",))
    group = GROUP_OF_SET.get(train.inputs, f"main input set ({train.inputs})")
    for name in ranked_models(main):
        entry = main[name]
        tags = tuple(t for t, on in (("stacked", name == "pitch_stack"), ("primary: train.model", name == train.model),
                                     ("frozen", name == PAPER_HEAD)) if on)
        rows.append(ScoreRow(group, train.inputs, name, entry, tags))
    ft_rows, notes = finetune_rows(finetune, finetune_path)
    rows += ft_rows
    if PAPER_HEAD not in main:
        notes.append(f"- {PAPER_HEAD} (frozen): not trained in this run (train.models lacks it; add it to score it).")
    if ablation.get("enabled") is False:
        notes.append("- each input set alone: not run (field_ablation.enabled: false).")
    for skipped in ablation.get("skipped", []):
        notes.append(f"- {skipped['model']} on {skipped['input_set']}: skipped, {skipped['reason']}.")
    agreement = baselines_agree(main, ablation) if ablation.get("baselines") else ""
    legend = "; ".join(f"`{name}`: {NOTES[name]}" for name in dict.fromkeys(r.model for r in rows) if name in NOTES)
    return (
        "# Results: every input set and model next to the baselines\n\n"
        "Assembled by `anipop report` (DVC stage `report`) from reports/cv_details.json, temporal_details.json, "
        "metrics.json (main input set: `backtest`, `evaluate`), field_ablation.json (each input set alone: "
        "`field-ablation`), paper_mode.json and finetune.json when present; nothing here is recomputed. CV: mean ± sd "
        "over folds; temporal: new franchises after the cut year; rolling origin: mean ± sd over the years, each "
        "year's new franchises scored by models refitted on what came before (main input set only); test: the held-out "
        "split; MAE in points on MAL's 1-10 scale. Every row of a column "
        "is scored on the same anime. Per-set and per-model details: field_ablation.md, backtest.md, metrics.md; "
        "characters and portraits: multimodal.md.\n\n"
        f"{row_counts_line(main_rows)}\n\n{markdown_rows(rows)}\nModels: {legend}.\n\n"
        + (f"{agreement}\n\n" if agreement else "")
        + ("\n".join(notes) + "\n\n" if notes else "")
        + f"## Paper-faithful profile, each flaw on and off (test split)\n\n{paper_mode_section(paper_mode)}"
    )


def readme_block(train: TrainParams, cv: dict, temporal: dict, metrics: dict, rolling: dict | None) -> str:
    """The README's results table: the main input set's models (best CV first), both baselines and the paper,
    then the primary model against its previous recipe. Rendered from the same reports as results.md."""
    main, main_rows = main_entries(cv, temporal, metrics, rolling)
    titles = [f"{PART_TITLES[p]} {METRIC_TITLES[m]}" for p, m in HEADLINE]
    lines = [README_BEGIN, f"Main input set `{train.inputs}`. {row_counts_line(main_rows)} MAE in points on "
             "the 1-10 scale; CV and rolling origin: mean ± sd over folds and years.", "",
             "| model | " + " | ".join(titles) + " |", "|---|" + "---|" * len(titles)]
    for name in [*ranked_models(main), *reversed(BASELINES)]:
        if name not in main:
            continue
        label = (f"**`{name}`** (train.model)" if name == train.model
                 else f"`{name}` (the same model, pitches without franchise_scores)"
                 if name == unsaid_franchise(train.model)
                 else f"**`{name}`** (baseline: {NOTES[name]})" if name in BASELINES else f"`{name}`")
        lines.append(f"| {label} | " + " | ".join(cell(main[name], p, m) for p, m in HEADLINE) + " |")
    lines.append(PAPER_ROW)
    comparison = comparison_lines(temporal, rolling)
    if comparison:
        lines += ["", "The primary model against its previous recipe (evaluate.previous_recipe in params.yaml):",
                  comparison.rstrip("\n")]
    lines.append(README_END)
    return "\n".join(lines)


def summary_metrics(train: TrainParams, cv: dict, temporal: dict, metrics: dict, rolling: dict | None) -> dict:
    """The primary model's headline figures beside both baselines': eight numbers, one line of `dvc metrics show`.

    Why so few: DVC prints one row per metrics file and one column per key, so the full tables (every model and
    metric) made a 14,000-character line; they stay files (`dvc metrics show reports/cv.json` shows one).
    """
    main, _ = main_entries(cv, temporal, metrics, rolling)
    primary, length, mean = (main.get(name, {}) for name in (train.model, LENGTH_BASELINE, BASELINE))
    figures = {"spearman": {part: point(primary, part, "spearman") for part in ("test", "cv", "temporal", "rolling")},
               "mae_1_10": {part: point(primary, part, "mae_1_10") for part in ("test", "temporal")},
               LENGTH_BASELINE: {"spearman_test": point(length, "test", "spearman")},
               BASELINE: {"mae_1_10_test": point(mean, "test", "mae_1_10")}}
    return {group: {key: round(number, 4) for key, number in entries.items() if number is not None}
            for group, entries in figures.items()}


def run_report(train: TrainParams, paths: Paths) -> str:
    """Write reports/results.md from the reports the pipeline wrote (finetune.json only when present), and the
    README's results block when the project has one (the README sits beside reports_dir)."""
    readme = Path(paths.reports_dir).parent / "README.md"
    files = ArtifactPaths.of(paths)
    cv, temporal, metrics = _read(files.cv_details), _read(files.temporal_details), _read(files.metrics)
    rolling = _read(files.rolling_details, required=False)
    text = results_markdown(train, cv, temporal, metrics, _read(files.field_ablation_metrics),
                            _read(files.paper_mode_metrics), _read(files.finetune_metrics, required=False),
                            files.finetune_metrics, rolling)
    write_text(files.results_table, text)
    write_json(files.summary_metrics, summary_metrics(train, cv, temporal, metrics, rolling))
    readme_blocks.update_readme(readme, readme_block(train, cv, temporal, metrics, rolling), README_BEGIN, README_END)
    print(text)
    return text
