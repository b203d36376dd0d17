"""The bad-input corpus: everything a real scrape throws at the pipeline, run through the real steps.

A MAL-shaped CSV (with bytes that are not UTF-8, a 100k-character synopsis, impossible scores, duplicated
ids, ...) and characters with every kind of portrait file (truncated, corrupt, empty, missing, a
decompression bomb, and valid-but-unusual ones: a PNG named .jpg, CMYK, palette, grey, RGBA) go through
ingest, prepare, validate, embed (the default offline encoders), train and evaluate. Then:

- every bad row is in quarantine, with its rule and a reason naming its field or file;
- every valid-but-unusual row is kept, parsed, and embedded (its portrait has a vector);
- rows kept + rows quarantined = rows given, per table, and the stage reports count the same;
- validation passes, and nothing else is lost.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from anipop.core.artifacts import load_embeddings
from anipop.embedding.embed import run_embed
from anipop.evaluation.evaluate import run_evaluate
from anipop.encoders.image import DescriptorEncoder
from anipop.sources.ingest import run_ingest
from anipop.data.prepare import run_prepare
from anipop.data.schema import PREPARED_ANIME, PREPARED_CHARACTERS, QUARANTINE, RAW_ANIME, RAW_CHARACTERS, read_table
from anipop.sources import IngestResult
from anipop.sources.local import LocalSource
from anipop.modeling.train import run_train
from anipop.data.validate import run_validate
from anipop.steps import call_step
from conftest import params_in
from fixtures_mal import WORDS, learnable_rows, mal_row, write_mal_csv

LATIN1 = "@@LATIN-1@@"  # replaced by bytes that are not UTF-8 once the CSV is written
WORDY = " ".join(WORDS)  # 24 words: passes min_synopsis_words=20
GOOD_IDS = list(range(1, 41))


# ---------------------------------------------------------------- the anime CSV

def corpus_rows() -> list[dict]:
    """40 clean learnable rows, then one row per kind of bad or unusual value (ids 101+)."""
    return [
        *learnable_rows(len(GOOD_IDS)),
        mal_row(101, synopsis=""),
        mal_row(102, synopsis="  \n\t \n "),  # whitespace only, and a quoted field spanning three lines
        mal_row(103, synopsis=f"A caf{LATIN1} story {WORDY}"),
        mal_row(104, synopsis=f"Tom &amp; Jerry&#039;s rivalry &lt;3 &quot;forever&quot; {WORDY}"),
        mal_row(105, synopsis=("endless " * 12_500)[:-1] + "!"),  # 100,000 characters
        mal_row(106, score="N/A"),
        mal_row(107, score="0"),
        mal_row(108, score="11"),
        mal_row(109, score="-3"),
        learnable_rows(1)[0],  # an exact duplicate of anime 1: kept once (conflicting copies: test_local_source)
        mal_row(111, members="3,689,853", favorites="#12,345", episodes="1,000"),
        mal_row(112, members="99999999999999999999"),  # past int64: used to crash the whole table's cast
        mal_row(113, genres="[{[]: 1}]"),  # used to raise TypeError out of the list parser
        mal_row(114, japanese=f"{LATIN1} (a column the pipeline does not use)"),
    ]


KEPT_ANIME = {*GOOD_IDS, 104, 111, 114}
# row key -> (stage, rule, field, text the reason must contain)
BAD_ANIME = {
    "101": ("prepare", "no_synopsis", "synopsis", "synopsis missing"),
    "102": ("prepare", "no_synopsis", "synopsis", "synopsis missing"),
    "103": ("ingest", "not_utf8", "synopsis", "field 'synopsis' is not valid UTF-8"),
    "105": ("prepare", "synopsis_too_long", "synopsis", "100000 characters"),
    "106": ("prepare", "unscored", "score", "no MAL score"),
    "107": ("ingest", "parse", "score", "field 'score': score 0.0 outside"),
    "108": ("ingest", "parse", "score", "field 'score': score 11.0 outside"),
    "109": ("ingest", "parse", "score", "field 'score': score -3.0 outside"),
    "1": ("ingest", "duplicate_id", "mal_id", "mal_id 1 repeats"),
    "112": ("ingest", "parse", "members", "field 'members': too large"),
    "113": ("ingest", "parse", "genres", "field 'genres': malformed list"),
}


def write_corpus_csv(path: Path) -> Path:
    write_mal_csv(path, corpus_rows())
    path.write_bytes(path.read_bytes().replace(LATIN1.encode(), "\xe9t\xe9 cr\xe8me".encode("latin-1")))
    return path


def csv_line_of(path: Path, mal_id: int) -> int:
    """The physical line a row starts on (quoted synopses may span lines, so this is not the row number)."""
    lines = path.read_bytes().split(b"\n")
    return next(i for i, line in enumerate(lines, start=1) if line.startswith(f"{mal_id},".encode()))


# ---------------------------------------------------------------- portraits

def gradient(seed: int, size: tuple[int, int] = (48, 64)) -> np.ndarray:
    """A smooth RGB image: lossy JPEG keeps it close, so a decoded portrait can be compared with its source."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    channels = [(a * x / width + b * y / height + c) % 1.0 for a, b, c in rng.random((3, 3))]
    return (np.stack(channels, axis=-1) * 255).astype(np.uint8)


def png_bytes(width: int, height: int, pixel_rows: bool = True) -> bytes:
    """A 1-bit grey PNG declaring width x height; with pixel_rows the data is all there, zlib-squeezed to KBs.

    49 million black pixels compress to ~6 KB: the decompression bomb a scrape can bring, cheap to build.
    """
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = b"\0" * (1 + (width + 7) // 8)
    data = b"".join(compressor.compress(row) for _ in range(height if pixel_rows else 1)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def write_portraits(images: Path) -> None:
    """One good portrait per kept anime, then the corpus' unusual and bad files."""
    images.mkdir(parents=True, exist_ok=True)
    for anime_id in sorted(KEPT_ANIME) + [106]:
        Image.fromarray(gradient(anime_id)).save(images / f"{anime_id}.png")
    Image.fromarray(gradient(9001)).save(images / "png_named.jpg", format="PNG")
    Image.fromarray(gradient(9002)).convert("CMYK").save(images / "cmyk.jpg", quality=95)
    Image.fromarray(gradient(9003)).convert("P", palette=Image.Palette.ADAPTIVE).save(images / "palette.png")
    Image.fromarray(gradient(9010)).convert("L").save(images / "grey.jpg", quality=95)
    Image.fromarray(gradient(9011)).convert("RGBA").save(images / "alpha.png")
    Image.fromarray(gradient(9004)).save(images / "full.jpg", quality=95)
    whole = (images / "full.jpg").read_bytes()
    (images / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (images / "full.jpg").unlink()
    (images / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG " * 20)
    (images / "empty.jpg").write_bytes(b"")
    (images / "bomb.png").write_bytes(png_bytes(7000, 7000))  # 49M pixels: Pillow alone only warns
    (images / "huge_header.png").write_bytes(png_bytes(100_000, 100_000, pixel_rows=False))


# character_id -> (anime_id, portrait file); each extra character's anime also keeps a good main character
EXTRA_CHARACTERS = {
    9001: (1, "png_named.jpg"), 9002: (2, "cmyk.jpg"), 9003: (3, "palette.png"), 9010: (10, "grey.jpg"),
    9011: (11, "alpha.png"), 9004: (4, "truncated.jpg"), 9005: (5, "corrupt.jpg"), 9006: (6, "empty.jpg"),
    9007: (7, "missing.jpg"), 9008: (8, "bomb.png"), 9009: (9, "huge_header.png"),
    9012: (106, "106.png"),  # a valid character of an anime prepare drops (unscored)
}
UNUSUAL_PORTRAITS = {9001, 9002, 9003, 9010, 9011}
BAD_CHARACTERS = {  # row key -> (rule, text the reason must contain)
    "4:9004": ("unreadable_portrait", "cannot decode"),
    "5:9005": ("unreadable_portrait", "cannot decode"),
    "6:9006": ("unreadable_portrait", "empty file"),
    "7:9007": ("unreadable_portrait", "missing file"),
    "8:9008": ("unreadable_portrait", "7000x7000 = 49000000 pixels exceeds the 40000000 pixel limit"),
    "9:9009": ("unreadable_portrait", "10000000000 pixels"),
    "106:9012": ("anime_dropped", "its anime was dropped"),
}


def character_rows() -> pd.DataFrame:
    rows = [{"anime_id": a, "character_id": a, "name": f"Hero {a}", "role": "Main",
             "description": f"the brave hero of anime {a}", "portrait_path": f"images/{a}.png"}
            for a in sorted(KEPT_ANIME)]
    rows += [{"anime_id": a, "character_id": c, "name": f"Rival {c}", "role": "Main",
              "description": f"a rival with portrait {file}", "portrait_path": f"images/{file}"}
             for c, (a, file) in EXTRA_CHARACTERS.items()]
    return pd.DataFrame(rows, columns=RAW_CHARACTERS.column_names)


@dataclass
class CorpusSource:
    """The local source for the anime, plus characters and portraits as the Jikan source would bring them."""

    csv: Path
    name: str = "corpus"

    def ingest(self, raw_dir: Path) -> IngestResult:
        local = LocalSource(path=self.csv).ingest(raw_dir)
        write_portraits(raw_dir / "images")
        return IngestResult(anime=local.anime, characters=character_rows(), quarantine=local.quarantine,
                            notes=local.notes)


# ---------------------------------------------------------------- the run

@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("bad_input")
    csv = write_corpus_csv(tmp_path / "corpus.csv")
    params = params_in(tmp_path, ingest={"local_path": csv},
                       train={"model": "ridge", "models": ("ridge",), "ablations": ()},
                       evaluate={"bootstrap_samples": 20})
    reports = {"ingest": call_step(run_ingest, params, source=CorpusSource(csv)), "prepare": call_step(run_prepare, params),
               "validate": call_step(run_validate, params), "embed": call_step(run_embed, params), "train": run_train(params),
               "evaluate": run_evaluate(params, track=False)}
    return params, csv, reports


def _quarantine(params, stage_dir: str) -> pd.DataFrame:
    return read_table(QUARANTINE, Path(getattr(params.paths, stage_dir)) / "quarantine.parquet")


def test_every_row_is_kept_or_quarantined_and_counts_add_up(corpus_run):
    params, _, reports = corpus_run
    quarantine = _quarantine(params, "prepared_dir")
    anime = read_table(PREPARED_ANIME, params.paths.prepared_dir / "anime.parquet")
    characters = read_table(PREPARED_CHARACTERS, params.paths.prepared_dir / "characters.parquet")
    assert set(anime["anime_id"]) == KEPT_ANIME
    assert len(anime) + (quarantine["table"] == "anime").sum() == len(corpus_rows())
    assert len(characters) + (quarantine["table"] == "characters").sum() == len(character_rows())
    assert not quarantine.duplicated(["table", "row_key"]).any()  # each rejected row once, by its first rule

    raw_quarantine = _quarantine(params, "raw_dir")
    assert reports["ingest"]["quarantined"] == len(raw_quarantine) == 7
    assert reports["ingest"]["quarantined_by_rule"] == raw_quarantine["rule"].value_counts().to_dict()
    by_rule = quarantine.groupby(["stage", "rule"]).size()
    assert reports["prepare"]["quarantined_by_rule"] == {f"{s}:{r}": int(n) for (s, r), n in by_rule.items()}
    assert (reports["prepare"]["anime_kept"], reports["prepare"]["characters_kept"]) == (len(anime), len(characters))
    assert sum(reports["prepare"]["split_sizes"].values()) == len(anime)
    assert reports["validate"]["success"]
    # prepare already set every bad portrait aside: embed has nothing left to quarantine
    assert reports["embed"]["quarantined"] == 0 and _quarantine(params, "embeddings_dir").empty
    kinds = reports["embed"]["kinds"]
    assert kinds["synopsis"]["count"] == len(anime)
    assert kinds["portrait"]["count"] == kinds["character_description"]["count"] == len(characters)
    assert reports["evaluate"]["test_rows"] == reports["prepare"]["split_sizes"]["test"] > 0


def test_each_bad_anime_row_has_its_rule_and_a_reason_naming_the_field(corpus_run):
    params, csv, _ = corpus_run
    quarantine = _quarantine(params, "prepared_dir").query("table == 'anime'").set_index("row_key")
    assert set(quarantine.index) == set(BAD_ANIME)
    for key, (stage, rule, field, text) in BAD_ANIME.items():
        row = quarantine.loc[key]
        assert (row["stage"], row["rule"], row["field"]) == (stage, rule, field), key
        assert text in row["reason"], (key, row["reason"])
    # ingest reasons name the file and the physical line, which a multi-line synopsis above them shifts
    assert f"{csv}:{csv_line_of(csv, 103)}: field 'synopsis' is not valid UTF-8" == quarantine.loc["103", "reason"]
    assert csv_line_of(csv, 103) == 46  # header, 40 rows, 101, then 102 over three lines: not row number 44
    assert quarantine.loc["103", "value"].startswith("A caf\\udce9t\\udce9 cr\\udce8me story ")  # bytes E9, E8
    assert len(quarantine.loc["105", "value"]) == 200  # the offending value is kept, truncated


def test_each_bad_portrait_is_quarantined_with_a_reason_naming_the_file(corpus_run):
    params, _, _ = corpus_run
    quarantine = _quarantine(params, "prepared_dir").query("table == 'characters'").set_index("row_key")
    assert set(quarantine.index) == set(BAD_CHARACTERS)
    for key, (rule, text) in BAD_CHARACTERS.items():
        row = quarantine.loc[key]
        assert row["rule"] == rule and text in row["reason"], (key, row["reason"])
        if rule == "unreadable_portrait":
            file = EXTRA_CHARACTERS[int(key.split(":")[1])][1]
            assert str(params.paths.raw_dir / "images" / file) in row["reason"]


def test_unusual_but_valid_values_are_parsed_and_kept(corpus_run):
    params, _, _ = corpus_run
    raw = read_table(RAW_ANIME, params.paths.raw_dir / "anime.parquet").set_index("anime_id")
    assert raw.loc[104, "synopsis"].startswith("Tom & Jerry's rivalry <3 \"forever\" ")
    assert (raw.loc[111, "members"], raw.loc[111, "favorites"], raw.loc[111, "episodes"]) == (3689853, 12345, 1000)
    assert raw.loc[1, "title"] == "Anime1"  # the first of the duplicated ids is the one kept
    assert 114 in raw.index  # bad bytes in a column the pipeline does not read cost the row nothing
    prepared = read_table(PREPARED_ANIME, params.paths.prepared_dir / "anime.parquet").set_index("anime_id")
    assert prepared.loc[104, "synopsis"] == raw.loc[104, "synopsis"]


def test_unusual_portraits_are_converted_and_embedded(corpus_run):
    params, _, reports = corpus_run
    ids, vectors = load_embeddings(params.paths.embeddings_dir, "portrait")
    by_id = dict(zip(ids, vectors))
    image = params.embed.image
    encoder = DescriptorEncoder(bins=image.histogram_bins, thumb=image.thumbnail_size)
    thumbnail = slice(3 * encoder.bins, None)
    for character_id in UNUSUAL_PORTRAITS:
        anime_id = EXTRA_CHARACTERS[character_id][0]
        vector = by_id[f"{anime_id}:{character_id}"]
        assert vector.shape == (encoder.dim,) and np.isfinite(vector).all()
        source = Image.fromarray(gradient(character_id))
        if character_id == 9010:
            source = source.convert("L")
        expected = encoder.describe(source)
        # lossless files give the source's exact vector; JPEG (CMYK, grey) and the palette's 256 colours
        # stay close in the thumbnail: a mis-decoded file (inverted CMYK, a wrong palette) would not
        if character_id in (9001, 9011):
            np.testing.assert_array_equal(vector, expected)
        else:
            assert np.abs(vector[thumbnail] - expected[thumbnail]).mean() < 0.03, character_id
    assert len(by_id) == reports["embed"]["kinds"]["portrait"]["count"]
