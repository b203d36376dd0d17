"""The raw and prepared table schemas, written once and used by every step.

Sources write tables in the raw schema, `prepare` reads them and writes the prepared schema, `validate`
derives expectations from the same column lists. Keeping the column names here means a rename is one edit.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from anipop.core.input_kinds import METADATA_FIELDS


class SchemaError(ValueError):
    """A table does not match its schema; the message names the table, file and column."""


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # a pandas dtype: nullable extension types so missing values survive parquet round trips
    nullable: bool = True
    doc: str = ""
    optional: bool = False  # may be absent from a table written before it existed: read as all-missing


@dataclass(frozen=True)
class TableSchema:
    """A table's name, ordered columns and key: what every step writing or reading the table agrees on."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def empty(self) -> pd.DataFrame:
        """An empty frame with the right columns and dtypes (a source that lacks a modality writes this)."""
        return pd.DataFrame({c.name: pd.Series(dtype=c.dtype) for c in self.columns})

    def conform(self, frame: pd.DataFrame, origin: str = "<memory>") -> pd.DataFrame:
        """Return `frame` with exactly the schema's columns, in order, cast to the schema's dtypes.

        Raises SchemaError naming `origin` (a file path) and the column when a column is missing,
        a non-nullable column has nulls, or a value cannot be cast.
        """
        missing = [c.name for c in self.columns if c.name not in frame.columns and not c.optional]
        if missing:
            raise SchemaError(f"{origin}: table '{self.name}' lacks column(s) {missing}")
        out = pd.DataFrame(index=frame.index)
        for col in self.columns:
            try:
                values = frame[col.name] if col.name in frame.columns else pd.Series(pd.NA, index=frame.index)
                out[col.name] = values.astype(col.dtype)
            except (TypeError, ValueError) as err:
                raise SchemaError(
                    f"{origin}: table '{self.name}', column '{col.name}': cannot cast to {col.dtype}: {err}"
                ) from err
            if not col.nullable and out[col.name].isna().any():
                bad_rows = out.index[out[col.name].isna()].tolist()[:5]
                raise SchemaError(
                    f"{origin}: table '{self.name}', column '{col.name}' has nulls at rows {bad_rows}"
                )
        return out.reset_index(drop=True)


def read_table(schema: TableSchema, path) -> pd.DataFrame:
    """Read a parquet table and conform it to `schema` (errors name the file)."""
    try:
        frame = pd.read_parquet(path)
    except FileNotFoundError as err:
        raise SchemaError(f"{path}: not found; run the stage that writes '{schema.name}' first") from err
    return schema.conform(frame, origin=str(path))


def write_table(schema: TableSchema, frame: pd.DataFrame, path) -> None:
    """Conform and write a parquet table atomically (temp file + rename), so a crash leaves no half file."""
    from anipop.core.utils import atomic_path

    table = schema.conform(frame, origin=str(path))
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)


def character_key(anime_id: int, character_id: int) -> str:
    """The row key of a character everywhere it is named (quarantine, embedding ids): 'anime_id:character_id'."""
    return f"{anime_id}:{character_id}"


RAW_ANIME = TableSchema(
    name="raw_anime",
    key=("anime_id",),
    columns=(
        Column("anime_id", "int64", nullable=False, doc="MyAnimeList id"),
        Column("title", "string", nullable=False),
        Column("synopsis", "string"),
        Column("score", "Float64", doc="MAL weighted score 1-10; null when unscored"),
        Column("scored_by", "Int64"),
        Column("members", "Int64"),
        Column("favorites", "Int64"),
        Column("aired", "string", doc="free text, e.g. 'Apr 7, 2013 to Sep 29, 2013'"),
        Column("premiered", "string", doc="ISO date of the first broadcast, when parseable"),
        Column("type", "string"),
        Column("source", "string"),
        Column("episodes", "Int64"),
        Column("genres", "string", doc="comma-separated"),
        Column("themes", "string", doc="comma-separated"),
        Column("studios", "string", doc="comma-separated"),
        Column("rating", "string"),
        Column("image_url", "string"),
        # pitch metadata: the raw strings, parsed by prepare (anipop.data.metadata)
        Column("demographic", "string", doc="raw, e.g. 'Shounen' or NOT_EXIST", optional=True),
        Column("producers", "string", doc="raw, e.g. \"['Aniplex', 'Dentsu']\"", optional=True),
        Column("staff", "string", doc="key staff (ingest.staff_roles), 'Given Family', comma-separated", optional=True),
        Column("cast", "string", doc="voice actors, 'Given Family', comma-separated", optional=True),
        Column("duration", "Float64", doc="minutes an episode (or the film) runs", optional=True),
    ),
)

RAW_CHARACTERS = TableSchema(
    name="raw_characters",
    key=("anime_id", "character_id"),
    columns=(
        Column("anime_id", "int64", nullable=False),
        Column("character_id", "int64", nullable=False),
        Column("name", "string", nullable=False),
        Column("role", "string", doc="'Main' or 'Supporting'"),
        Column("description", "string"),
        Column("portrait_path", "string", doc="relative to the raw data folder, e.g. images/123.jpg"),
    ),
)

QUARANTINE = TableSchema(
    name="quarantine",
    key=("stage", "table", "row_key", "rule"),
    columns=(
        Column("stage", "string", nullable=False, doc="ingest or prepare"),
        Column("table", "string", nullable=False),
        Column("row_key", "string", nullable=False, doc="anime_id or anime_id:character_id"),
        Column("rule", "string", nullable=False, doc="the rule or parser that rejected the row"),
        Column("field", "string"),
        Column("reason", "string", nullable=False),
        Column("value", "string", doc="the offending value, truncated"),
    ),
)

PREPARED_ANIME = TableSchema(
    name="prepared_anime",
    key=("anime_id",),
    columns=(
        Column("anime_id", "int64", nullable=False),
        Column("title", "string", nullable=False),
        Column("synopsis", "string", nullable=False),
        Column("score", "float64", nullable=False, doc="raw MAL score, 1-10"),
        Column("score_norm", "float64", nullable=False, doc="min-max normalised over the train split"),
        Column("split", "string", nullable=False, doc="train, val or test"),
        Column("group_id", "int64", nullable=False, doc="franchise: the smallest anime_id of its group"),
        Column("premiered", "string", doc="ISO date (or year-month, or year) of the first broadcast"),
        # pitch metadata (anipop.data.metadata): list fields joined by ', ', missing when not given or unparseable
        *(Column(field, "string", doc="pitch metadata", optional=True) for field in METADATA_FIELDS),
        Column("duration", "Float64", doc="minutes an episode (or the film) runs", optional=True),
    ),
)

PREPARED_CHARACTERS = TableSchema(
    name="prepared_characters",
    key=("anime_id", "character_id"),
    columns=RAW_CHARACTERS.columns,
)

SPLITS = ("train", "val", "test")
