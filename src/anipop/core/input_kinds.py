"""The input kinds a model can read, the input sets that group them, and the input types that feed them.

Why one registry: the embed step decides which kinds it embeds, features assembles them in a fixed order,
predict turns a pitch into the same kinds, config accepts input-set names and metadata fields: five readers
of one list. It is plain data (no numpy, no torch), so config can derive its allowed values from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Owner = Literal["anime", "character"]
Modality = Literal["text", "image", "metadata"]


@dataclass(frozen=True)
class InputKind:
    """One input: whose it is (an anime's or each main character's), what it is, and where it comes from."""

    name: str
    owner: Owner
    modality: Modality
    column: str          # the prepared table's column it is read from

    @property
    def embedded(self) -> bool:
        """Texts and portraits are embedded by the embed step; metadata is encoded by the pitch models."""
        return self.modality != "metadata"


# pitch metadata (anipop.data.metadata parses and encodes it): several values per anime, or one
LIST_FIELDS = ("genres", "themes", "demographic", "studios", "producers", "staff", "cast")
SINGLE_FIELDS = ("type", "source", "rating")
METADATA_FIELDS = ("genres", "themes", "type", "source", "demographic", "studios", "producers", "rating", "staff",
                   "cast")
YEAR_FIELD = "year"  # numeric: the planned first-air year (data: `premiered`)
DURATION_FIELD = "duration"  # numeric: the planned minutes an episode (or the film) runs: the format's budget line
NUMERIC_FIELDS = (YEAR_FIELD, DURATION_FIELD)
# numeric list: the MAL scores of the franchise's anime aired in earlier years (anipop.data.franchise_scores),
# derived in the data from the franchise groups (group_id), the first-air years and the scores
FRANCHISE_FIELD = "franchise_scores"
# what a producer is asked for each pitch field (`anipop predict --<field>`, the model card): one entry a field
PITCH_FIELD_HELP: dict[str, str] = {
    "genres": "pitch metadata, comma-separated, e.g. 'Action, Drama'",
    "themes": "e.g. 'School, Mecha'",
    "type": "the format: TV, Movie, OVA, ONA, Special, Music",
    "source": "Original, Manga, Light novel, Game, ...",
    "demographic": "Shounen, Shoujo, Seinen, Josei, Kids",
    "studios": "comma-separated; an unknown studio is fine",
    "producers": "comma-separated",
    "rating": "age rating, e.g. 'PG-13 - Teens 13 or older'",
    "staff": "key staff, comma-separated names, e.g. 'Shinichiro Watanabe'",
    "cast": "voice cast, comma-separated names",
    YEAR_FIELD: "planned first-air year, e.g. 2027",
    DURATION_FIELD: "planned minutes an episode (or the film) runs, e.g. 24",
    FRANCHISE_FIELD: "a sequel's: the MAL scores of the franchise's earlier anime, e.g. '7.9, 8.2'; 'original' for "
                     "a new franchise",
}

KINDS: dict[str, InputKind] = {kind.name: kind for kind in (
    InputKind("synopsis", "anime", "text", "synopsis"),
    InputKind("character_description", "character", "text", "description"),
    InputKind("character_name", "character", "text", "name"),
    InputKind("portrait", "character", "image", "portrait_path"),
    *(InputKind(field, "anime", "metadata", field) for field in METADATA_FIELDS),
    InputKind(YEAR_FIELD, "anime", "metadata", "premiered"),
    InputKind(DURATION_FIELD, "anime", "metadata", "duration"),
    InputKind(FRANCHISE_FIELD, "anime", "metadata", "group_id"),
)}

EMBEDDED_KINDS = tuple(name for name, kind in KINDS.items() if kind.embedded)  # the embed step's outputs
ANIME_KINDS = tuple(name for name, kind in KINDS.items() if kind.embedded and kind.owner == "anime")
CHARACTER_KINDS = tuple(name for name, kind in KINDS.items() if kind.owner == "character")
IMAGE_KIND = "portrait"  # one vector per character portrait; its row ids are anime_id:character_id
TEXT_KIND = "synopsis"   # the one anime text
PITCH_METADATA_KINDS = tuple(name for name, kind in KINDS.items() if kind.modality == "metadata")

# The paper's ablations: which kinds each input set feeds. "all_inputs" is every kind the data has.
ALL_INPUTS = "all_inputs"
INPUT_SETS: dict[str, tuple[str, ...]] = {
    "synopsis": ("synopsis",),
    "characters": ("character_description", "character_name"),
    "images": (IMAGE_KIND,),
    ALL_INPUTS: ANIME_KINDS + CHARACTER_KINDS + PITCH_METADATA_KINDS,  # also the feature order on all inputs
    # pitch metadata (anipop.data.metadata): read by the pitch models only, together and each alone
    "metadata": PITCH_METADATA_KINDS,
    **{field: (field,) for field in PITCH_METADATA_KINDS},
}

# How a model is fed: embedding rows (features.build_features), raw texts and pixels (features.raw_inputs), or
# a whole pitch of synopsis and metadata (features.pitch_inputs).
EMBEDDINGS_INPUT, RAW_INPUT, PITCH_INPUT = "embeddings", "raw", "pitch"
INPUT_TYPES = (EMBEDDINGS_INPUT, RAW_INPUT, PITCH_INPUT)
