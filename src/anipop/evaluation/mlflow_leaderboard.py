"""Which model is best, by how much over the baselines: the order, tags and texts that make MLflow's runs view say so.

Why here and not in the UI: MLflow's runs table opens sorted by creation time, newest first, with no metric
column shown, and keeps column choices in each browser. What the server can set is the order the children are
created in, their tags and descriptions, and a link whose URL carries a filter and a sort. So:
- children are logged ablations first, then the baselines, then the main input set's models worst to best:
  the default view (newest first) opens on the best model, the rest of the ranking and both baselines;
- the main models and the baselines carry `anipop.headline = true` and `anipop.rank` (1 = best on CV
  Spearman, the number the project ranks on; never the test split), each with a one-line description;
- the parent run's description and its `leaderboard.md` hold the ranked table and the link to a view of just
  those runs, sorted by CV Spearman.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import quote

from anipop.core.model_catalog import BASELINES

HEADLINE_TAG = "anipop.headline"
RANK_TAG = "anipop.rank"
SORT_METRIC = "cv_spearman_mean"  # the flattened CV Spearman (mlflow_runs.child_metrics)
NO_CV = float("-inf")


def cv_spearman(cv: Mapping[str, Mapping] | None, model: str) -> float:
    """The model's CV Spearman mean, or -inf when the backtest did not score it."""
    value = ((cv or {}).get(model) or {}).get("spearman", {})
    value = value.get("mean") if isinstance(value, Mapping) else value
    return float(value) if isinstance(value, (int, float)) else NO_CV


def label_cv(cv: Mapping[str, Mapping] | None, label: str) -> float:
    """cv_spearman of a child's label: 'all_inputs/pitch_stack' or a bare baseline name ('train_mean')."""
    return cv_spearman(cv, label.rpartition("/")[2])


def ranked_main_models(labels: Sequence[str], main_set: str, cv: Mapping[str, Mapping] | None) -> list[str]:
    """The main input set's labels ('all_inputs/pitch_stack'), best first on CV Spearman; ties keep their order."""
    main = [label for label in labels if label.startswith(f"{main_set}/")]
    return sorted(main, key=lambda label: -label_cv(cv, label))


def logging_order(labels: Sequence[str], main_set: str, cv: Mapping[str, Mapping] | None) -> list[str]:
    """The order to create the child runs in so that newest-first lists the best model first.

    Created last, shown first: ablations (in their given order), then the baselines and the main models, each
    from worst to best on CV Spearman.
    """
    main = ranked_main_models(labels, main_set, cv)
    baselines = sorted((label for label in labels if label in BASELINES), key=lambda label: -label_cv(cv, label))
    ablations = [label for label in labels if label not in main and label not in baselines]
    return [*ablations, *reversed(baselines), *reversed(main)]


def headline_ranks(labels: Sequence[str], main_set: str, cv: Mapping[str, Mapping] | None) -> dict[str, int]:
    """label -> rank on CV Spearman among the main models and the baselines together (1 = best)."""
    headline = [*ranked_main_models(labels, main_set, cv), *(label for label in labels if label in BASELINES)]
    ordered = sorted(headline, key=lambda label: -label_cv(cv, label))
    return {label: rank for rank, label in enumerate(ordered, start=1)}


def _figure(value: float) -> str:
    return "-" if value == NO_CV else f"{value:.3f}"


def child_description(label: str, ranks: Mapping[str, int], cv: Mapping[str, Mapping] | None,
                      test: Mapping[str, Mapping[str, float]]) -> str:
    """One line for the run's Description column: its rank, its CV Spearman beside the baselines', its test one."""
    spearman = test.get("spearman", {})
    test_text = (f"test Spearman {spearman['value']:.3f} [{spearman['low']:.3f}, {spearman['high']:.3f}]"
                 if {"value", "low", "high"} <= set(spearman) else "")
    if label not in ranks:
        return f"Ablation: this input set alone, for comparison; not ranked. {test_text}".strip()
    bars = [f"{name} {_figure(cv_spearman(cv, name))}" for name in BASELINES if name != label]
    return (f"Rank {ranks[label]} of {len(ranks)} on CV Spearman ({_figure(label_cv(cv, label))}; baselines: "
            f"{', '.join(bars)}); "
            f"{test_text}").rstrip("; ")


def view_link(ui_base: str, experiment_id: str, parent_run_id: str) -> str:
    """The runs view of one pipeline run's main models and baselines, sorted by CV Spearman, best first."""
    search = f"tags.mlflow.parentRunId = '{parent_run_id}' and tags.`{HEADLINE_TAG}` = 'true'"
    return (f"{ui_base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
            f"&searchFilter={quote(search, safe='')}&orderByKey={quote(f'metrics.`{SORT_METRIC}`', safe='')}"
            f"&orderByAsc=false")


def leaderboard_markdown(results: Mapping[str, Mapping[str, Mapping[str, float]]], ranks: Mapping[str, int],
                         cv: Mapping[str, Mapping] | None, folds: int, primary: str, link: str | None) -> str:
    """The parent run's description: the ranked models and baselines with CV and test figures. `folds`:
    evaluate.cv_folds (0 or 1: CV was not run, and the rows are not ranked)."""
    basis = (f"Ranked on {folds}-fold grouped CV Spearman (franchises never split)" if folds >= 2 else
             "Not ranked: cross-validation was not run (evaluate.cv_folds < 2), rows in the order trained")
    lines = ["## Which model is best", "", f"{basis}; the test split's figures beside it.", "",
             "| rank | run | CV Spearman | test Spearman [95 % CI] | test MAE (1-10) | test R² |",
             "|---|---|---|---|---|---|"]
    for label, rank in sorted(ranks.items(), key=lambda item: item[1]):
        test = results.get(label, {})
        spearman, mae, r2 = test.get("spearman", {}), test.get("mae_1_10", {}), test.get("r2", {})
        name = f"**{label}** (champion candidate)" if label == primary else label
        cells = [f"{spearman['value']:.3f} [{spearman['low']:.3f}, {spearman['high']:.3f}]"
                 if {"value", "low", "high"} <= set(spearman) else "-",
                 f"{mae['value']:.3f}" if "value" in mae else "-", f"{r2['value']:.3f}" if "value" in r2 else "-"]
        lines.append(f"| {rank} | {name} | {_figure(label_cv(cv, label))} | {' | '.join(cells)} |")
    if link:
        lines += ["", f"[These runs, sorted by CV Spearman]({link}) (add metric columns with **Columns**: "
                      f"`{SORT_METRIC}`, `spearman`, `mae_1_10`)."]
    lines += ["", "Children named `<input set>/<model>` outside this table are ablations (one input set alone)."]
    return "\n".join(lines) + "\n"
