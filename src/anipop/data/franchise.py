"""Franchise groups: every anime of one franchise (seasons, sequels, movies, spin-offs) shares a `group_id`.

Why: sequels share names, casts and words with their prequels. A split that puts season 1 in train and season 2
in test measures franchise memory, not what a producer gets for a show that does not exist yet. Every split,
fold and backtest therefore assigns whole groups.

The rule (union-find; two anime are in one group when any link joins them, directly or through others):
(a) title base: the title before ':', ' - ', '/', '~', '!' or '?', lower-cased, with season / part / movie / OVA /
    special markers, ordinal words, numbers and roman numerals removed ("Shingeki no Kyojin Season 3 Part 2"
    and "Shingeki no Kyojin: Kuinaki Sentaku" -> "shingeki no kyojin"; a trailing Japanese ordinal too). A base of fewer than
    `min_base_letters` letters ("Re" of "Re:Zero") is too generic to link on: the whole title is used instead.
(b) rare proper names in the synopses: two consecutive capitalised words neither of which ever occurs in lower
    case anywhere in the corpus (so "High School" is not a name, "Naruto Uzumaki" is), found in at least
    `name_min_anime` and at most `name_max_anime` anime ("Shippuuden"-style renames share their heroes).
(c) shared main characters (the same MAL character id in two anime), when the source has characters.
Over-merging is the safe error here: it only makes the test harder; under-merging leaks.
The group id is the smallest anime id of the group, so reruns on the same data give the same ids.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from collections.abc import Iterable

import pandas as pd

from anipop.core.config import FranchiseParams

_SEPARATOR = re.compile(r"\s*(?::|\s-\s|/|~|～|\s–\s|[!?](?=\s|$))\s*")
_MARKERS = re.compile(
    r"\b(?:(?:\d+(?:st|nd|rd|th)|first|second|third|fourth|fifth|final|new|last)\s+(?:season|part|cour|stage)"
    r"|(?:season|part|cour|stage|movie|film|vol|volume|episode|chapter|ova|ona|oad|special|specials|sp)\s*\d*"
    r"|the\s+movie|gekijou-?ban|eiga|recap|picture\s+drama|music\s+video|pv|cm|tv|shippuu?den|kanketsu-?hen"
    r"|zoku)\b",
    re.IGNORECASE)
_NUMBERS = re.compile(r"\b(?:\d+|[ivx]{1,4})\b")
_JAPANESE_ORDINAL_AT_END = re.compile(r"\s(?:ni|san|shi|yon|go|roku)$")  # "Natsume Yuujinchou Shi": season 4
_NON_WORD = re.compile(r"[^\w\s]|_")
_SPACES = re.compile(r"\s+")
_NAME_BIGRAM = re.compile(r"\b([A-Z][a-z]{2,}(?:-[a-z]+)?)\s([A-Z][a-z]{2,}(?:-[a-z]+)?)\b")
_LOWER_WORD = re.compile(r"(?<![A-Za-z])[a-z]+(?:-[a-z]+)?")


def first_year(premiered: pd.Series) -> pd.Series:
    """The year of an ISO date, year-month or year string; NA where the date is unknown."""
    return pd.to_numeric(premiered.astype("string").str[:4], errors="coerce").astype("Int64")


def _normalise(text: str) -> str:
    return _SPACES.sub(" ", _NON_WORD.sub(" ", text.lower())).strip()


def title_base(title: str, min_base_letters: int = 4) -> str:
    """The franchise part of a title: before the first separator, markers and numbers removed.

    Falls back to the whole title (markers removed, numbers kept) when the base is too short to be specific.
    """
    head = _SEPARATOR.split(title.strip(), maxsplit=1)[0]
    base = _normalise(_NUMBERS.sub(" ", _MARKERS.sub(" ", _normalise(head))))
    base = _JAPANESE_ORDINAL_AT_END.sub("", base)
    if sum(ch.isalpha() for ch in base) >= min_base_letters:
        return base
    whole = _normalise(_MARKERS.sub(" ", _normalise(title)))
    return whole or _normalise(title)


def rare_names(synopses: pd.Series, min_anime: int, max_anime: int) -> dict[str, list[int]]:
    """name -> positions of the synopses that mention it, for the proper-name bigrams described above."""
    lowercase_words: set[str] = set()
    for text in synopses:
        lowercase_words.update(_LOWER_WORD.findall(text))
    mentions: dict[str, set[int]] = defaultdict(set)
    for position, text in enumerate(synopses):
        for first, second in _NAME_BIGRAM.findall(text):
            if first.lower() in lowercase_words or second.lower() in lowercase_words:
                continue
            mentions[f"{first} {second}"].add(position)
    return {name: sorted(found) for name, found in mentions.items() if min_anime <= len(found) <= max_anime}


class _UnionFind:
    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, item: int) -> int:
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union_all(self, items: Iterable[int]) -> None:
        items = list(items)
        for other in items[1:]:
            a, b = self.find(items[0]), self.find(other)
            if a != b:
                self.parent[max(a, b)] = min(a, b)


def franchise_groups(anime: pd.DataFrame, characters: pd.DataFrame, rules: FranchiseParams) -> pd.Series:
    """A group id per anime (aligned with `anime`'s index): the smallest anime_id of its franchise."""
    anime = anime.reset_index(drop=True)
    links = _UnionFind(len(anime))
    by_base: dict[str, list[int]] = defaultdict(list)
    for position, title in enumerate(anime["title"].fillna("").astype(str)):
        by_base[title_base(title, rules.min_base_letters)].append(position)
    for positions in by_base.values():
        links.union_all(positions)
    for positions in rare_names(anime["synopsis"].fillna("").astype(str), rules.name_min_anime,
                                rules.name_max_anime).values():
        links.union_all(positions)
    if not characters.empty:
        position_of = {int(a): i for i, a in enumerate(anime["anime_id"])}
        for _, owners in characters.groupby("character_id")["anime_id"]:
            links.union_all(position_of[int(a)] for a in owners if int(a) in position_of)
    roots = [links.find(i) for i in range(len(anime))]
    smallest: dict[int, int] = {}
    for root, anime_id in zip(roots, anime["anime_id"], strict=True):
        smallest[root] = min(smallest.get(root, int(anime_id)), int(anime_id))
    return pd.Series([smallest[root] for root in roots], dtype="int64")


def group_summary(anime: pd.DataFrame, largest: int = 5) -> dict:
    """How many groups, how many anime share a group, and the largest groups with a few titles each."""
    sizes = Counter(anime["group_id"].tolist())
    top = sizes.most_common(largest)
    titles = anime.groupby("group_id")["title"].apply(lambda t: sorted(t)[:4])
    return {
        "groups": len(sizes),
        "anime_in_multi_anime_groups": int(sum(n for n in sizes.values() if n > 1)),
        "largest": [{"group_id": int(g), "size": int(n), "titles": list(titles[g])} for g, n in top],
    }


def hash_position(key: object, seed: int) -> float:
    """A seeded hash of `key` mapped to [0, 1): the same key lands at the same place in every run."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
