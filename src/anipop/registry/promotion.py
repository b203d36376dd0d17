"""Promotion policies: on which anime a candidate is judged against the champion, and the rule that decides.

Why several: the registry promised that a version takes `champion` only when it beats the champion on the same
franchise-grouped test split. When the data drifts, the test split's older franchises may judge badly what
next season's shows need, so `newest_franchises` judges on the test anime of the franchises that began most
recently; `always` serves the newest retrained model whatever it scores (the plain "retrain and deploy").
`anipop replay` runs each policy over history and reports which served the next year's shows best.

Both models are judged on exactly the same anime, through their served interface, when stored metrics cannot be
compared: a champion from another split, or a policy other than the whole test split. Anime the champion was
trained on never judge it (franchise groups can merge as data grows, moving an old training anime into the new
test split): the comparison would favour the champion.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import get_args

import numpy as np
import pandas as pd

from anipop.core.artifacts import ArtifactPaths, MinMaxScaler
from anipop.core.config import Params, PromotionPolicy
from anipop.core.metrics import LOWER_IS_BETTER, point_metrics
from anipop.data.franchise import first_year

log = logging.getLogger(__name__)

POLICIES = get_args(PromotionPolicy)  # registry.policy
JUDGED_ON_TEST_ANIME = ("test_split", "newer_unless_worse")  # policies that judge on the whole (unseen) test split
TAG_DIGITS = 6  # metric values in version tags (test.*, cv.*, baseline.*) keep this many decimals
MIN_JUDGE_ROWS = 20  # fewer judging anime than this: the whole test split judges (said in the reason)


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(metric: str, candidate: float, champion: float | None, champion_version: str | None,
           where: str = "") -> Decision:
    """Promote when there is no champion, or the candidate is strictly better on `metric`."""
    if champion is None:
        return Decision(True, f"no current champion; {metric}={candidate:.4f}")
    # compared at the precision of the version tags the champion's value is read from: otherwise a model
    # identical to the champion (0.76802911 vs its tag "0.768029") would "beat" it by a rounding error
    candidate, champion = round(candidate, TAG_DIGITS), round(champion, TAG_DIGITS)
    better = candidate < champion if metric in LOWER_IS_BETTER else candidate > champion
    relation = "beats" if better else "does not beat"
    return Decision(better, f"{metric}={candidate:.4f} {relation} champion v{champion_version} "
                            f"({metric}={champion:.4f}){where}")


def franchise_start_year(anime: pd.DataFrame) -> pd.Series:
    """Each anime's franchise's first year on air (the year its group's earliest anime aired)."""
    year = first_year(anime["premiered"]).astype("float64")
    return year.groupby(anime["group_id"]).transform("min")


def judging_rows(anime: pd.DataFrame, policy: str, champion_seen: set[int], newest_years: int) -> tuple[pd.DataFrame, str]:
    """The prepared anime a candidate and the champion are compared on, and a phrase saying which they are."""
    test = anime[anime["split"] == "test"]
    unseen = test[~test["anime_id"].astype(int).isin(champion_seen)]
    dropped = len(test) - len(unseen)
    seen_note = f", {dropped} the champion trained on left out" if dropped else ""
    if policy == "newest_franchises":
        start = franchise_start_year(anime).loc[unseen.index]
        newest = float(first_year(anime["premiered"]).max())
        recent = unseen[start >= newest - newest_years + 1]
        if len(recent) >= MIN_JUDGE_ROWS:
            return recent, (f" on the {len(recent)} test anime of franchises first aired "
                            f"{int(newest) - newest_years + 1}-{int(newest)}{seen_note}")
        log.warning("promotion: only %d test anime of franchises from the newest %d years; judging on the whole "
                    "test split", len(recent), newest_years)
        return unseen, (f" on the {len(unseen)} test anime (too few of the newest {newest_years} years' "
                        f"franchises: {len(recent)}){seen_note}")
    return unseen, f" on the {len(unseen)} test anime{seen_note}"  # test_split, newer_unless_worse


def served_scores_on(model_uri: str, params: Params, rows: pd.DataFrame) -> np.ndarray:
    """A registered or logged model's scores (1-10) for prepared `rows`, from their pitch fields, through the
    model's served interface."""
    from anipop.serving.scoring import anime_pitches, served_scores

    return served_scores(model_uri, anime_pitches(params, rows), params.paths)


def metrics_on_rows(params: Params, rows: pd.DataFrame, scores: np.ndarray) -> dict[str, float]:
    """Metrics of served scores (1-10) for `rows`, on this data's score scale (as the test metrics are)."""
    scaler = MinMaxScaler.read(ArtifactPaths.of(params.paths).scaler)
    return point_metrics(scaler.transform(rows["score"].to_numpy(dtype=np.float64)), scaler.transform(scores),
                         scaler.high - scaler.low)


def newer_unless_worse(metric: str, truth: np.ndarray, candidate: np.ndarray, champion: np.ndarray,
                       champion_version: str, where: str, samples: int, confidence: float, seed: int) -> Decision:
    """Promote a model trained on newer data unless it is shown worse than the champion: the paired bootstrap
    interval of (candidate - champion) on `metric` lies wholly on the worse side.

    Why: replayed over history, serving the model retrained on the newest data gave better live metrics than
    keeping a champion that edged it on a test split; a strict "beats" on a few hundred anime mostly decides on
    noise. The promise that a worse model never becomes champion is kept in the only form the data can back:
    never one shown worse.
    """
    from anipop.core.metrics import paired_difference

    difference = paired_difference(truth, candidate, champion, metric, samples, confidence, seed)
    low, high = difference.get("low", difference["value"]), difference.get("high", difference["value"])
    worse = low > 0 if metric in LOWER_IS_BETTER else high < 0
    verdict = "shown worse than" if worse else "trained on newer data and not shown worse than"
    return Decision(not worse, f"{metric} difference {difference['value']:+.4f} [{low:+.4f}, {high:+.4f}]: "
                               f"{verdict} champion v{champion_version}{where} (policy newer_unless_worse)")
