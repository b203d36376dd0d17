"""The data card: where the data comes from, what cleaning removed and why, and what the numbers can speak for.

Written by `prepare` from the same counts it reports (data/prepared/report.json), so the card never disagrees
with the pipeline; registered versions link it through their model card.
"""

from __future__ import annotations

import pandas as pd

from anipop.core.config import IngestParams, PrepareParams

_SOURCES = """\
- MyAnimeList 2023 scrape, `{path}`: from the MIT-licensed repository Matthew1906/MyAnimeListScraper (licence in
  `LICENSE.source` beside the file). Scores are MAL's weighted scores (1-10).
- Main characters, descriptions and portraits (when ingested): AniList descriptions and MAL "about" texts and
  portraits belong to their rights holders. Use them to build and evaluate only; never redistribute them.
"""

_PITCH_TIME = """\
Inputs are limited to what a pitch has before production: synopsis, main characters, portraits, and the pitch
metadata decided before the big money is spent: genres, themes, format (`type`: TV, Movie, OVA, ONA...), source
material, target demographic, studios, producers, age rating, key staff (director, series composition, script,
character design, music, original creator), the voice cast and the planned first-air year. MAL's "Award Winning"
genre is given after a show wins an award: it is dropped. Never members,
favorites, rank, popularity (counted after release), episode counts (a long-running show gets more episodes
*because* it is popular) or licensors (foreign distributors license shows that already did well), and never
scraping artefacts: source credits such as "(Source: ANN)" are stripped from every text, at training and at
serving time. MAL's "not given" markers (`Unknown`, `N/A`, `NOT_EXIST`, `['None found', 'add some']`) are
missing values; a metadata value prepare cannot parse is quarantined (`unparseable_metadata`, with the reason)
and that field is missing for the anime, which is kept.
"""


_CHARACTER_TERMS = """\
Sources of the shared sample (public GitHub snapshots): LyeZinho/char-lib (AniList main characters and
descriptions; code MIT, AniList data terms: non-commercial use), npm @kawaiioverflow/arm (MIT, AniList to MAL
ids), KevinMorrison-629/HakaribotImages (MAL portraits, no licence stated), WaifuRain/sylok_the_defiled (MAL
"about" texts, no licence stated). Portraits and descriptions belong to their rights holders: use them to build
and evaluate only; never redistribute them with the product (models, reports and registered versions carry
vectors and counts, never the images or texts).
"""


def characters_summary(raw: pd.DataFrame, kept: pd.DataFrame, anime: pd.DataFrame,
                       quarantine: pd.DataFrame) -> dict:
    """Counts for the data card's characters section: what was ingested, kept, quarantined, and its bias."""
    chars_quarantine = quarantine[quarantine["table"] == "characters"]
    with_chars = anime["anime_id"].isin(set(kept["anime_id"]))
    scores = anime["score"].astype(float)
    return {
        "ingested_rows": len(raw), "ingested_anime": int(raw["anime_id"].nunique()),
        "ingested_distinct": int(raw["character_id"].nunique()),
        "ingested_with_portrait": int(raw["portrait_path"].notna().sum()),
        "ingested_with_description": int(raw["description"].fillna("").str.strip().ne("").sum()),
        "kept_rows": len(kept), "kept_distinct": int(kept["character_id"].nunique()),
        "recurring": int((kept.groupby("character_id")["anime_id"].nunique() > 1).sum()),
        "anime_with_characters": int(with_chars.sum()), "anime": len(anime),
        "score_with_characters": {"mean": round(float(scores[with_chars].mean()), 2) if with_chars.any() else None,
                                  "sd": round(float(scores[with_chars].std()), 2) if with_chars.sum() > 1 else None},
        "score_without_characters": round(float(scores[~with_chars].mean()), 2) if (~with_chars).any() else None,
        "quarantined_by_rule": {f"{stage}:{rule}": int(n) for (stage, rule), n
                                in chars_quarantine.groupby(["stage", "rule"]).size().items()},
    }


def _characters_section(ingest: IngestParams, prepare: PrepareParams, summary: dict | None) -> list[str]:
    if not summary or not summary["ingested_rows"]:
        return []
    s, rule = summary, prepare.drop_anime_without_main_character
    folder = ingest.characters_dir if ingest.source == "local" else "the Jikan API"
    quarantined = ", ".join(f"`{rule}` {n}" for rule, n in s["quarantined_by_rule"].items()) or "none"
    return [
        "## Main characters and portraits", "",
        f"- Source: `{folder}`. Ingested {s['ingested_rows']} (anime, main character) rows of {s['ingested_anime']} "
        f"anime, {s['ingested_distinct']} distinct characters, {s['ingested_with_portrait']} rows with a portrait "
        f"that decodes (checked by content: PNG data under a .jpg name and RGBA portraits are read as RGB) and "
        f"{s['ingested_with_description']} with a description.",
        f"- Kept after cleaning: {s['kept_rows']} rows, {s['kept_distinct']} distinct characters ({s['recurring']} "
        f"recur across anime: sequels share their leads, so splits and CV folds group franchises); "
        f"{s['anime_with_characters']} of {s['anime']} kept anime have characters. Anime without characters are "
        f"kept (prepare.drop_anime_without_main_character: {str(rule).lower()}): "
        f"the joint model masks the missing modality.",
        f"- Quarantined character rows (stage:rule -> rows): {quarantined}.",
        f"- Bias: the anime with characters are popular shows: mean score {s['score_with_characters']['mean']} "
        f"(sd {s['score_with_characters']['sd']}) against {s['score_without_characters']} for the kept anime "
        f"without. Anything measured on the character branch speaks for popular anime, with wide intervals "
        f"(reports/multimodal.md uses grouped cross-validation, not a 10 % split).", "",
        _CHARACTER_TERMS]


def _share(entry: dict | None) -> str:
    return "n/a" if not entry else f"{entry['anime']} of {entry['of']} ({entry['share']:.1%})"


def _metadata_coverage(anime: pd.DataFrame) -> list[str]:
    """One line: the share of kept anime that give each metadata field (missing = encoded as missing)."""
    from anipop.data.metadata import METADATA_FIELDS

    shares = [f"{field} {anime[field].notna().mean():.0%}" for field in METADATA_FIELDS if field in anime]
    return [f"- Pitch metadata given (share of kept anime): {', '.join(shares)}."] if shares else []


def _post_release_line(dropped: dict | None) -> list[str]:
    if not dropped:
        return []
    return ["- Dropped as known only after release (no pitch has them): "
            + ", ".join(f"{value} ({count} anime)" for value, count in dropped.items()) + "."]


def _as_of_section(view: dict | None) -> list[str]:
    """The as-of view's counts (ingest.as_of), and the warning that the scores are not of that date."""
    if not view:
        return []
    return [f"- As of {view['as_of']} (ingest.as_of): only anime first aired on or before "
            f"{view['first_aired_on_or_before']} ({view['score_lag_days']} days for a score to settle); "
            f"{view['left_out_aired_later']} aired later and {view['left_out_undated']} without a first-air date "
            f"were left out at ingest. The scores are still the source's (the 2023 scrape's), not the ones these "
            f"anime had on {view['as_of']}: a replay over history sees each show's later reputation."]


def render_data_card(ingest: IngestParams, prepare: PrepareParams, report: dict, anime: pd.DataFrame) -> str:
    """Markdown from prepare's report and the kept anime table (and where ingest read them)."""
    scores = anime["score"].astype(float)
    quantiles = scores.quantile([0.05, 0.25, 0.5, 0.75, 0.95]).round(2).tolist()
    credits = report.get("source_credits") or {}
    franchises = report["franchises"]
    lines = [
        "# Data card", "", "## Sources", "", _SOURCES.format(path=ingest.local_path), "## Pitch-time inputs",
        "", _PITCH_TIME, "## Counts", "",
        f"- Kept: {report['anime_kept']} anime, {report['characters_kept']} main characters; "
        f"split {report['split_sizes']} by {report['split_by']}.",
        "- Quarantined (stage:rule -> rows): "
        + ", ".join(f"`{rule}` {count}" for rule, count in report["quarantined_by_rule"].items()) + ".",
        f"- Score of the kept anime: mean {scores.mean():.2f}, sd {scores.std():.2f}, "
        f"5/25/50/75/95 % quantiles {quantiles}.",
        *_metadata_coverage(anime),
        *_post_release_line(report.get("post_release_values_dropped")),
        *_as_of_section(report.get("as_of")),
        "", "## Franchise groups", "",
        f"{franchises['groups']} groups; {franchises['anime_in_multi_anime_groups']} anime share theirs with another. "
        f"Test anime with a franchise sibling in train: {_share(report['test_with_train_sibling'])} "
        f"(a per-anime hash split would give {_share(report.get('test_with_train_sibling_if_split_by_anime'))}).",
        "Largest groups: " + "; ".join(f"{g['size']} anime ({', '.join(g['titles'][:2])}, ...)"
                                       for g in franchises["largest"]) + ".",
        "",
    ]
    lines += _characters_section(ingest, prepare, report.get("characters"))
    if credits:
        lines += ["## Source credits stripped", "",
                  f"{credits['anime_with_credit']} of {credits['anime']} ingested synopses carried a credit. By source:",
                  "", "| source | synopses |", "|---|---|",
                  *[f"| {source} | {count} |" for source, count in credits["by_source"].items()],
                  f"| (other sources) | {credits['other_sources']} |", ""]
    if report.get("notes"):
        lines += ["## Notes", "", *[f"- {note}" for note in report["notes"]], ""]
    return "\n".join(lines)
