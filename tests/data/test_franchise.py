"""Franchise groups: real MAL titles that must merge, names that must not, and no group across splits."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import knobs
from hypothesis import given, settings
from hypothesis import strategies as st

from anipop.core.config import FranchiseParams, SplitRatios
from anipop.data.franchise import franchise_groups, rare_names, title_base
from anipop.data.prepare import assign_split

RULES = knobs("prepare.franchise")


@pytest.mark.parametrize("titles", [
    ["Shingeki no Kyojin", "Shingeki no Kyojin Season 2", "Shingeki no Kyojin Season 3 Part 2",
     "Shingeki no Kyojin: The Final Season", "Shingeki no Kyojin Movie 1: Guren no Yumiya"],
    ["Naruto", "Naruto: Shippuuden", "Naruto: Shippuuden Movie 6 - Road to Ninja"],
    ["Boku no Hero Academia", "Boku no Hero Academia 2nd Season", "Boku no Hero Academia the Movie 1: Futari no Hero"],
    ["Fate/stay night", "Fate/Zero", "Fate/Zero 2nd Season", "Fate/Apocrypha"],
    ["Gintama", "Gintama'", "Gintama°", "Gintama.: Shirogane no Tamashii-hen"],
    ["Mob Psycho 100", "Mob Psycho 100 II", "Mob Psycho 100 III"],
    ["Kaguya-sama wa Kokurasetai: Tensai-tachi no Renai Zunousen", "Kaguya-sama wa Kokurasetai? Tensai-tachi no Renai Zunousen"],
    ["Doraemon", "Doraemon Movie 31: Shin Nobita to Tetsujin Heidan"],
    ["Natsume Yuujinchou", "Zoku Natsume Yuujinchou", "Natsume Yuujinchou Shi", "Natsume Yuujinchou San"],
])
def test_sequels_share_a_title_base(titles):
    bases = {title_base(t) for t in titles}
    assert len(bases) == 1, bases


@pytest.mark.parametrize("first,second", [
    ("Re:Zero kara Hajimeru Isekai Seikatsu", "Re:Creators"),  # "Re" is too short a base to link on
    ("Steins;Gate", "Shingeki no Kyojin"),
    ("K-On!", "K"),
    ("Monster", "Monster Musume no Iru Nichijou"),
    ("Love Live! School Idol Project", "Love Lab"),
])
def test_different_shows_keep_different_bases(first, second):
    assert title_base(first) != title_base(second)


def _frame(rows: list[tuple[int, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["anime_id", "title", "synopsis"])


NO_CHARACTERS = pd.DataFrame(columns=["anime_id", "character_id"])


def test_a_renamed_sequel_joins_through_its_heroes_names():
    anime = _frame([
        (20, "Naruto", "Naruto Uzumaki wants to be Hokage. His rival Sasuke Uchiha trains with him in the village."),
        (1735, "Shippuuden", "Two years later Naruto Uzumaki returns to the village to save Sasuke Uchiha."),
        (5, "Cowboy Bebop", "Spike Spiegel and Jet Black hunt bounties across the solar system in the year 2071."),
        (6, "Trigun", "Vash the Stampede is a gunman with a bounty on his head in the desert of a far planet."),
    ])
    groups = franchise_groups(anime, NO_CHARACTERS, RULES)
    assert groups[0] == groups[1] == 20
    assert len({groups[0], groups[2], groups[3]}) == 3


def test_common_capitalised_words_are_not_names():
    synopses = pd.Series([
        "High School life begins. The high school is in Tokyo and the students love it there a lot.",
        "High School ends. Every high school student in the city dreams of a summer festival.",
    ])
    assert "High School" not in rare_names(synopses, 2, 8)


def test_a_name_in_too_many_anime_links_nothing():
    synopsis = "Akira Kurosawa is mentioned here once more in this story about the films of old Japan cinema."
    anime = _frame([(i, f"Show{'x' * i} Unrelated", synopsis) for i in range(1, 12)])
    groups = franchise_groups(anime, NO_CHARACTERS, knobs("prepare.franchise", name_max_anime=8))
    assert groups.nunique() == 11


def test_shared_main_characters_join_their_anime():
    anime = _frame([(1, "Alpha Story", "plain words only here"), (2, "Beta Tale", "other plain words here")])
    characters = pd.DataFrame({"anime_id": [1, 2], "character_id": [77, 77]})
    assert franchise_groups(anime, characters, RULES).tolist() == [1, 1]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 10**6), st.sampled_from(
    ["Naruto", "Naruto: Shippuuden", "Bleach", "Bleach: Sennen Kessen-hen", "One Piece", "One Piece Film: Red",
     "Monster", "Mushishi", "Mushishi Zoku Shou"])), min_size=1, max_size=40, unique_by=lambda r: r[0]),
       st.integers(0, 1000))
def test_no_franchise_crosses_splits(rows, seed):
    anime = _frame([(anime_id, title, "no names in here at all") for anime_id, title in rows])
    anime["group_id"] = franchise_groups(anime, NO_CHARACTERS, RULES).to_numpy()
    ratios = SplitRatios(train=0.8, val=0.1, test=0.1)
    anime["split"] = [assign_split(g, seed, ratios) for g in anime["group_id"]]
    assert (anime.groupby("group_id")["split"].nunique() == 1).all()
    assert (anime.groupby(anime["title"].map(title_base))["group_id"].nunique() == 1).all()
