"""Judging the replay: each step's champion on the anime that aired before the next step, from their pitch fields.

Those are the live metrics a studio would have seen. Beside each policy's champion, on the same anime and the same
bootstrap resamples: the first step's model never retrained (frozen), the train mean and the synopsis-length line
of that step's training data. Pooled over all steps (every anime scored once, by whatever served when it aired)
they answer "does retraining help?" and "which promotion policy serves best?".
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from anipop.core.artifacts import MinMaxScaler
from anipop.core.config import Paths
from anipop.core.metrics import paired_difference
from anipop.core.model_catalog import BASELINE, LENGTH_BASELINE
from anipop.evaluation.live_metrics import live_metrics
from anipop.monitoring.replay import LIVE_ANIME, LIVE_PITCHES, SNAPSHOT_ANIME, ReplayPlan, read_step
from anipop.serving.scoring import served_scores

log = logging.getLogger(__name__)

FROZEN = "frozen"
PAIRED = ("spearman", "mae")


def baseline_scores(view: pd.DataFrame, live_pitches: pd.DataFrame) -> dict[str, np.ndarray]:
    """The two baselines fitted on the step's training rows, on the 1-10 scale."""
    from anipop.modeling.models import baseline_model

    train = view[view["split"] == "train"]
    scaler = MinMaxScaler.fit(train["score"])
    target = scaler.transform(train["score"].to_numpy(dtype=float))
    out = {}
    for name in (BASELINE, LENGTH_BASELINE):
        model = baseline_model(name).fit({"synopsis": train["synopsis"].astype(str).tolist()}, target)
        out[name] = np.asarray(scaler.inverse(model.predict({"synopsis": live_pitches["synopsis"].tolist()})), float)
    return out


class Scorer:
    """Each registered model's scores on each step's live anime, through its served interface (several policies
    often share a champion, and the frozen model is every step's comparison: serving.scoring scores each pair
    once; the drift check of the next step already scored the serving champion on these anime)."""

    def __init__(self, caches: Paths | None) -> None:
        self.caches = caches

    def __call__(self, model_name: str, version: str, run_id: str, step: int, pitches: pd.DataFrame) -> np.ndarray:
        return served_scores(f"models:/{model_name}/{version}", pitches, self.caches)


def step_predictions(plan: ReplayPlan, index: int, scorer: Scorer, frozen: dict) -> tuple[pd.DataFrame, dict] | None:
    """(live anime, label -> scores) of step `index`; None when no anime aired before the next step."""
    folder = plan.step_dir(index)
    if not (folder / LIVE_ANIME).exists():
        return None
    live = pd.read_parquet(folder / LIVE_ANIME)
    if live.empty:
        return None
    pitches = pd.read_parquet(folder / LIVE_PITCHES)
    record = read_step(plan, index)
    predictions: dict[str, np.ndarray] = {}
    for policy in plan.policies:
        champion = record["policies"][policy]["champion"]
        predictions[policy] = scorer(plan.model_name(policy), champion["version"], champion["run_id"], index, pitches)
    predictions[FROZEN] = scorer(frozen["model_name"], frozen["version"], frozen["run_id"], index, pitches)
    predictions.update(baseline_scores(pd.read_parquet(folder / SNAPSHOT_ANIME), pitches))
    return live, predictions


def judge(live: pd.DataFrame, predictions: dict[str, np.ndarray], policies: tuple[str, ...], samples: int,
          confidence: float, seed: int) -> dict:
    """Live metrics of every label, and each policy's champion minus the frozen model (paired)."""
    truth = live["score"].to_numpy(dtype=float)
    result = {"anime": len(live), "metrics": live_metrics(truth, predictions, samples, confidence, seed),
              "vs_frozen": {policy: {metric: paired_difference(truth, predictions[policy], predictions[FROZEN], metric,
                                                               samples, confidence, seed) for metric in PAIRED}
                            for policy in policies}}
    new = live["new_franchise"].to_numpy(dtype=bool)
    if new.sum() >= 3:
        result["new_franchises"] = {"anime": int(new.sum()), "metrics": live_metrics(
            truth[new], {label: values[new] for label, values in predictions.items()}, samples, confidence, seed)}
    return result


def evaluate_replay(plan: ReplayPlan, samples: int, confidence: float, seed: int,
                    caches: Paths | None = None) -> dict:
    """Per step and pooled over the steps: live metrics, retrained minus frozen, policy against policy."""
    scorer = Scorer(caches)
    first = read_step(plan, 0)["policies"][plan.policies[0]]
    frozen = {"model_name": plan.model_name(plan.policies[0]), "version": first["version"], "run_id": first["run_id"]}
    steps, pooled_live, pooled_predictions = [], [], []
    for index in range(len(plan.dates)):
        found = step_predictions(plan, index, scorer, frozen)
        record = read_step(plan, index)
        if found is None:
            steps.append({**record, "live": None})
            continue
        live, predictions = found
        log.info("replay: step %s judged on %d anime", plan.dates[index], len(live))
        steps.append({**record, "live": judge(live, predictions, plan.policies, samples, confidence, seed + index)})
        pooled_live.append(live)
        pooled_predictions.append(predictions)
    pooled = None
    if pooled_live:
        live = pd.concat(pooled_live, ignore_index=True)
        predictions = {label: np.concatenate([p[label] for p in pooled_predictions]) for label in pooled_predictions[0]}
        pooled = judge(live, predictions, plan.policies, samples, confidence, seed)
        truth = live["score"].to_numpy(dtype=float)
        pooled["policy_vs_policy"] = {
            f"{a} - {b}": {metric: paired_difference(truth, predictions[a], predictions[b], metric, samples, confidence,
                                                     seed) for metric in PAIRED}
            for i, a in enumerate(plan.policies) for b in plan.policies[i + 1:]}
    return {"frozen": frozen, "steps": steps, "pooled": pooled, "best_policy": best_policy(pooled, plan.policies)}


def best_policy(pooled: dict | None, policies: tuple[str, ...]) -> dict | None:
    """The policy whose champions served the pooled live anime best: highest Spearman, ties (policies that
    crowned the same models) going to the earlier-listed one."""
    if not pooled:
        return None
    spearman = {p: round(pooled["metrics"][p]["spearman"]["value"], 6) for p in policies}
    winner = max(policies, key=lambda p: (spearman[p], -policies.index(p)))
    return {"policy": winner, "spearman": spearman,
            "mae": {p: round(pooled["metrics"][p]["mae"]["value"], 6) for p in policies}}
