"""The prepare step: text hygiene, the paper's cleaning rules, quarantine, franchise groups, the split.

Every rule is a param, every dropped row lands in the quarantine table with the rule that dropped it. The
split assigns whole franchises (anipop.data.franchise): a seeded hash of the group id, so no sequel sits in test
while its prequel trains, and a franchise keeps its split when the dataset grows. `prepare.split_by: anime`
restores the old per-id hash split, only to measure how much it leaked.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pandas as pd

from anipop.core.artifacts import ArtifactPaths, MinMaxScaler, quarantine_record
from anipop.core.config import IngestParams, Paths, PrepareParams, SplitRatios
from anipop.data.data_card import characters_summary, render_data_card
from anipop.data.franchise import franchise_groups, group_summary, hash_position
from anipop.data.images import image_problem
from anipop.data.metadata import parse_table as parse_metadata
from anipop.data.schema import (
    PREPARED_ANIME,
    PREPARED_CHARACTERS,
    QUARANTINE,
    RAW_ANIME,
    RAW_CHARACTERS,
    SPLITS,
    character_key,
    read_table,
    write_table,
)
from anipop.data.text import credits_in, strip_credits
from anipop.core.utils import read_json, write_json, write_text

log = logging.getLogger(__name__)


def assign_split(key: int, seed: int, ratios: SplitRatios) -> str:
    """Deterministic split of one id (a franchise's group id, or an anime id): cut the hash at the ratios."""
    position = hash_position(key, seed)
    if position < ratios.train:
        return "train"
    if position < ratios.train + ratios.val:
        return "val"
    return "test"


def _drop(frame: pd.DataFrame, mask: pd.Series, rule: str, reason: str | pd.Series, table: str, field: str,
          quarantine: list[dict]) -> pd.DataFrame:
    """Remove rows where `mask` holds, recording each in `quarantine` with the rule and the field's value.

    `reason` is one text for all rows, or a Series aligned with `frame` when each row has its own.
    """
    for index, row in frame[mask].iterrows():
        key = row["anime_id"] if table == "anime" else character_key(row["anime_id"], row["character_id"])
        value = row[field]
        why = reason if isinstance(reason, str) else str(reason[index])
        quarantine.append(quarantine_record("prepare", table, key, rule, why, field, None if pd.isna(value) else value))
    return frame[~mask]


def strip_source_credits(anime: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Synopses without "(Source: ...)" credits (text.strip_credits), and how many credits of which source."""
    found = anime["synopsis"].fillna("").map(credits_in)
    by_source = Counter(source for credits in found for source in credits)
    anime = anime.copy()
    stripped = anime["synopsis"].map(lambda text: strip_credits(text) if isinstance(text, str) else text)
    anime["synopsis"] = stripped.where(stripped.fillna("x") != "", None)
    summary = {"anime_with_credit": int((found.map(len) > 0).sum()), "anime": len(anime),
               "by_source": dict(by_source.most_common(25)),
               "other_sources": int(sum(by_source.values()) - sum(n for _, n in by_source.most_common(25)))}
    return anime, summary


def clean_anime(anime: pd.DataFrame, rules: PrepareParams, quarantine: list[dict]) -> pd.DataFrame:
    """The paper's anime-level rules (score present, synopsis long enough), each reject quarantined by name."""
    if rules.drop_unscored:
        anime = _drop(anime, anime["score"].isna(), "unscored", "no MAL score", "anime", "score", quarantine)
    anime = _drop(anime, anime["synopsis"].isna(), "no_synopsis", "synopsis missing or placeholder",
                  "anime", "synopsis", quarantine)
    limit = rules.max_synopsis_chars
    chars = anime["synopsis"].str.len()
    anime = _drop(anime, chars > limit, "synopsis_too_long",
                  chars.map(lambda n: f"synopsis has {n} characters, over max_synopsis_chars={limit}"),
                  "anime", "synopsis", quarantine)
    words = anime["synopsis"].str.split().str.len()
    anime = _drop(anime, words < rules.min_synopsis_words, "short_synopsis",
                  f"synopsis shorter than {rules.min_synopsis_words} words", "anime", "synopsis", quarantine)
    return anime


def clean_characters(characters: pd.DataFrame, kept_anime_ids: set[int], raw_dir: Path,
                     rules: PrepareParams, quarantine: list[dict]) -> pd.DataFrame:
    """Keep main characters of kept anime with a description and a portrait that decodes; quarantine the rest."""
    chars = _drop(characters, ~characters["anime_id"].isin(kept_anime_ids), "anime_dropped",
                  "its anime was dropped or is unknown", "characters", "anime_id", quarantine)
    chars = _drop(chars, chars["role"].fillna("").str.lower() != "main", "not_main_character",
                  "the paper uses main characters only", "characters", "role", quarantine)
    if rules.drop_characters_without_description:
        empty = chars["description"].fillna("").str.strip() == ""
        chars = _drop(chars, empty, "character_without_description", "no description",
                      "characters", "description", quarantine)
    if rules.drop_characters_without_portrait:
        chars = _drop(chars, chars["portrait_path"].isna(), "character_without_portrait", "no portrait",
                      "characters", "portrait_path", quarantine)
        problems = chars["portrait_path"].map(lambda rel: image_problem(raw_dir / rel))
        chars = _drop(chars, problems.notna(), "unreadable_portrait", problems,
                      "characters", "portrait_path", quarantine)
    return chars


def sibling_share(anime: pd.DataFrame, split: str, splits: pd.Series | None = None) -> dict:
    """How many anime of `split` have a franchise sibling in train: 0 under the franchise split, by design.

    `splits` (default: the anime's own split column) lets the report show what another split would leak.
    """
    splits = anime["split"] if splits is None else splits
    train_groups = set(anime.loc[splits == "train", "group_id"])
    rows = anime[splits == split]
    count = int(rows["group_id"].isin(train_groups).sum())
    return {"anime": count, "of": len(rows), "share": round(count / len(rows), 4) if len(rows) else 0.0}


def run_prepare(prepare: PrepareParams, ingest: IngestParams, seed: int, paths: Paths) -> dict:
    """Clean raw tables, quarantine rejects, split, normalise; write tables, splits, scaler and a report."""
    files = ArtifactPaths.of(paths)
    raw_dir = files.raw_dir
    rules = prepare
    anime = read_table(RAW_ANIME, files.raw_anime)
    characters = read_table(RAW_CHARACTERS, files.raw_characters)
    ingest_quarantine = read_table(QUARANTINE, files.raw_quarantine)
    quarantine: list[dict] = []
    notes: list[str] = []

    source_has_no_characters, raw_characters = characters.empty, characters
    credits = None
    if rules.strip_source_credits:
        anime, credits = strip_source_credits(anime)
        characters = characters.assign(description=characters["description"].map(
            lambda text: strip_credits(text) if isinstance(text, str) else text))
    anime = clean_anime(anime, rules, quarantine)
    post_release: dict[str, int] = {}  # values only known after release (the "Award Winning" genre), dropped
    anime, metadata_problems = parse_metadata(anime, dropped=post_release)  # unparseable: that field missing
    quarantine.extend(quarantine_record("prepare", "anime", p["anime_id"], "unparseable_metadata", p["reason"],
                                        p["field"], p["value"]) for p in metadata_problems)
    characters = clean_characters(characters, set(anime["anime_id"]), raw_dir, rules, quarantine)
    if rules.drop_anime_without_main_character:
        if source_has_no_characters:
            notes.append("source has no characters: rule drop_anime_without_main_character skipped")
        else:
            anime = _drop(anime, ~anime["anime_id"].isin(set(characters["anime_id"])), "no_main_character",
                          "no main character left after cleaning", "anime", "anime_id", quarantine)

    anime = anime.copy()
    anime["group_id"] = franchise_groups(anime, characters, rules.franchise).to_numpy()
    split_key = anime["group_id"] if rules.split_by == "franchise" else anime["anime_id"]
    anime["split"] = [assign_split(key, seed, rules.split) for key in split_key]
    scaler = MinMaxScaler.fit(anime.loc[anime["split"] == "train", "score"])
    anime["score_norm"] = scaler.transform(anime["score"].astype("float64"))
    anime = anime.sort_values("anime_id")

    prepare_quarantine = pd.DataFrame(quarantine, columns=QUARANTINE.column_names)
    all_quarantine = pd.concat([ingest_quarantine, QUARANTINE.conform(prepare_quarantine)], ignore_index=True)
    write_table(PREPARED_ANIME, anime, files.prepared_anime)
    write_table(PREPARED_CHARACTERS, characters, files.prepared_characters)
    write_table(QUARANTINE, all_quarantine, files.prepared_quarantine)
    splits = {name: anime.loc[anime["split"] == name, "anime_id"].tolist() for name in SPLITS}
    write_json(files.splits, splits)
    write_json(files.scaler, scaler.to_dict())
    report = {
        "anime_kept": len(anime),
        "characters_kept": len(characters),
        "split_sizes": {name: len(ids) for name, ids in splits.items()},
        "quarantined_by_rule": {f"{stage}:{rule}": int(count) for (stage, rule), count
                                in all_quarantine.groupby(["stage", "rule"]).size().items()},
        "score_scaler": scaler.to_dict(),
        "split_by": rules.split_by,
        "test_with_train_sibling": sibling_share(anime, "test"),
        "test_with_train_sibling_if_split_by_anime": sibling_share(
            anime, "test", pd.Series([assign_split(i, seed, rules.split) for i in anime["anime_id"]],
                                     index=anime.index)),
        "franchises": group_summary(anime),
        "source_credits": credits,
        "notes": notes,
        "post_release_values_dropped": post_release,
        "as_of": read_json(files.ingest_report).get("as_of") if files.ingest_report.exists() else None,
        "characters": characters_summary(raw_characters, characters, anime, all_quarantine),
    }
    write_json(files.prepare_report, report)
    write_text(Path(paths.reports_dir) / "data_card.md", render_data_card(ingest, prepare, report, anime))
    log.info("prepare: %d anime kept %s; quarantined %s", len(anime), report["split_sizes"], report["quarantined_by_rule"])
    log.info("prepare: %d franchise groups (largest: %s); split by %s; test anime with a train sibling: %s",
             report["franchises"]["groups"],
             ", ".join(f"{g['titles'][0]} ({g['size']})" for g in report["franchises"]["largest"][:3]),
             rules.split_by, report["test_with_train_sibling"])
    for note in notes:
        log.info("prepare: %s", note)
    return report
