"""The local source's characters: real rows of the shared sample, and generated edge cases.

Portraits are decoded by content (PNG under a .jpg name, RGBA), bad rows are quarantined with their reason,
a character recurring across anime is copied once, and anime without characters survive prepare.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import pandas as pd
import pytest
from conftest import CHARACTERS_SAMPLE, knobs, params_in
from fixtures_mal import learnable_rows, write_mal_csv
from PIL import Image

from anipop.data.images import open_rgb
from anipop.data.prepare import run_prepare
from anipop.data.schema import PREPARED_ANIME, PREPARED_CHARACTERS, QUARANTINE, read_table
from anipop.sources.ingest import run_ingest
from anipop.sources.local_characters import CHARACTERS_FILE, PORTRAITS_DIR, read_local_characters
from anipop.steps import call_step

COLUMNS = ["anime_mal_id", "character_id", "name", "role", "description", "description_source", "portrait", "join"]
needs_sample = pytest.mark.skipif(not (CHARACTERS_SAMPLE / CHARACTERS_FILE).exists(),
                                  reason=f"real characters sample not found at {CHARACTERS_SAMPLE}")


@needs_sample
def test_real_sample_rows_are_read_and_portraits_decoded_by_content(tmp_path):
    # 1: Cowboy Bebop; 121/5114: both Fullmetal Alchemist series (Edward Elric in both); 39534 and 46095 hold
    # the two PNG portraits named .jpg (46095's, Matsumoto, is RGBA)
    wanted = {1, 121, 5114, 39534, 46095}
    result = read_local_characters(CHARACTERS_SAMPLE, wanted, tmp_path / "raw")
    chars = result.characters
    assert set(chars["anime_id"]) == wanted
    spike = chars[(chars["anime_id"] == 1) & (chars["name"] == "Spike Spiegel")].iloc[0]
    assert spike["role"] == "Main" and "bounty hunter" in spike["description"]
    paths = chars.set_index("character_id")["portrait_path"]
    assert paths[171858] == "images/171858.png" and paths[193422] == "images/193422.png"  # named by content
    assert result.counts["portrait_format_differs"] == 2 and result.counts["portraits_with_alpha"] == 1
    matsumoto = open_rgb(tmp_path / "raw" / paths[193422])
    assert matsumoto.mode == "RGB" and matsumoto.size == (225, 350)
    edward = chars[chars["character_id"] == 11]
    assert sorted(edward["anime_id"]) == [121, 5114] and edward["portrait_path"].nunique() == 1
    assert result.counts["portraits_copied"] == chars["character_id"].nunique()
    # every other row of the file is accounted for: quarantined as belonging to an anime not ingested
    total = len(pd.read_csv(CHARACTERS_SAMPLE / CHARACTERS_FILE))
    assert len(chars) + len(result.quarantine) == total
    assert set(result.quarantine["rule"]) == {"unknown_anime"}


@needs_sample
def test_real_portraits_go_through_the_resnet50_path(tmp_path):
    """The paper's image encoder on real portraits (JPEG, and the RGBA PNG named .jpg) through the same loading and
    preprocessing code as the pretrained weights. No pretrained weights offline: a random ResNet-50 saved as a
    state dict stands in, so the features equal a direct torchvision forward, not meaningful ones."""
    import numpy as np
    import torch
    from torchvision.models import resnet50

    from anipop.encoders.image import load_image_encoder

    result = read_local_characters(CHARACTERS_SAMPLE, {1, 46095}, tmp_path / "raw")
    paths = result.characters.drop_duplicates("character_id")["portrait_path"].tolist()
    assert "images/193422.png" in paths and len(paths) >= 3
    paths = ["images/193422.png", *[path for path in paths if path != "images/193422.png"][:2]]
    images = [open_rgb(tmp_path / "raw" / path) for path in paths]
    torch.manual_seed(0)
    reference = resnet50().eval()
    torch.save(reference.state_dict(), tmp_path / "resnet50.pth")
    encoder = load_image_encoder(knobs("embed.image", model="resnet50", weights="IMAGENET1K_V2",
                                                    weights_path=tmp_path / "resnet50.pth"), torch.device("cpu"))
    features = encoder.encode(images)
    reference.fc = torch.nn.Identity()
    with torch.inference_mode():
        expected = reference(torch.stack([encoder.transform(image) for image in images])).numpy()
    assert features.shape == (len(images), 2048) and np.isfinite(features).all()
    np.testing.assert_allclose(features, expected, atol=1e-4)
    assert not np.allclose(features[0], features[1])


def _png_bytes(mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (9, 13), (200, 40, 40, 128)[: len(mode)] if mode != "RGB" else (200, 40, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def _jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (9, 13), (10, 120, 200)).save(buffer, "JPEG")
    return buffer.getvalue()


def write_characters_folder(folder: Path, rows: list[dict], files: dict[str, bytes]) -> Path:
    """A characters folder like the shared sample: characters.csv.gz + portraits/<files>."""
    (folder / PORTRAITS_DIR).mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / PORTRAITS_DIR / name).write_bytes(data)
    with gzip.open(folder / CHARACTERS_FILE, "wt", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({"role": "Main", "description": f"{row['name']} is brave and kind.",
                             "description_source": "anilist", "join": "strict", **row})
    return folder


def edge_case_rows() -> tuple[list[dict], dict[str, bytes]]:
    rows = [
        {"anime_mal_id": 1, "character_id": 10, "name": "Jpeg", "portrait": "10.jpg"},
        {"anime_mal_id": 1, "character_id": 11, "name": "PngAsJpg", "portrait": "11.jpg"},
        {"anime_mal_id": 2, "character_id": 12, "name": "Rgba", "portrait": "12.jpg"},
        {"anime_mal_id": 2, "character_id": 13, "name": "NoFile", "portrait": "13.jpg"},
        {"anime_mal_id": 3, "character_id": 10, "name": "Jpeg", "portrait": "10.jpg"},  # a sequel's lead
        {"anime_mal_id": 3, "character_id": 10, "name": "Jpeg", "portrait": "10.jpg"},  # an exact repeat
        {"anime_mal_id": 4, "character_id": 14, "name": "Garbage", "portrait": "14.jpg"},
        {"anime_mal_id": 4, "character_id": 15, "name": "Escape", "portrait": "../secret.jpg"},
        {"anime_mal_id": 4, "character_id": 16, "name": "NoPortrait", "portrait": "", "description": ""},
        {"anime_mal_id": 999, "character_id": 17, "name": "Orphan", "portrait": "10.jpg"},
        {"anime_mal_id": "x", "character_id": 18, "name": "BadId", "portrait": "10.jpg"},
    ]
    files = {"10.jpg": _jpeg_bytes(), "11.jpg": _png_bytes(), "12.jpg": _png_bytes("RGBA"), "14.jpg": b"not an image"}
    return rows, files


def test_edge_cases_are_kept_masked_or_quarantined_with_reasons(tmp_path):
    rows, files = edge_case_rows()
    (tmp_path / "secret.jpg").write_bytes(_jpeg_bytes())  # must never be read through "../secret.jpg"
    folder = write_characters_folder(tmp_path / "sample", rows, files)
    result = read_local_characters(folder, {1, 2, 3, 4}, tmp_path / "raw")
    chars = result.characters.set_index(["anime_id", "character_id"])
    assert chars.loc[(1, 10), "portrait_path"] == "images/10.jpg"
    assert chars.loc[(1, 11), "portrait_path"] == "images/11.png"    # PNG bytes named .jpg
    assert chars.loc[(2, 12), "portrait_path"] == "images/12.png"    # RGBA: kept, read as RGB later
    assert open_rgb(tmp_path / "raw" / "images" / "12.png").mode == "RGB"
    assert chars.loc[(3, 10), "portrait_path"] == "images/10.jpg"    # one character, one copy, two rows
    for key in [(2, 13), (4, 14), (4, 15), (4, 16)]:                 # kept, without a portrait
        assert pd.isna(chars.loc[key, "portrait_path"])
    assert pd.isna(chars.loc[(4, 16), "description"])
    assert not (tmp_path / "raw" / "images" / "secret.jpg").exists()
    reasons = result.quarantine.set_index("row_key")
    assert reasons.loc["2:13", "rule"] == "unreadable_portrait" and "missing file" in reasons.loc["2:13", "reason"]
    assert "cannot decode" in reasons.loc["4:14", "reason"]
    assert "not a plain file name" in reasons.loc["4:15", "reason"]
    assert reasons.loc["3:10", "rule"] == "duplicate_id" and "kept once" in reasons.loc["3:10", "reason"]
    assert reasons.loc["999:17", "rule"] == "unknown_anime"
    assert any(r == "parse" for r in result.quarantine["rule"])       # the row whose anime id is "x"
    assert result.counts["portrait_format_differs"] == 2 and result.counts["portraits_with_alpha"] == 1
    assert len(result.characters) == 8 and len(result.quarantine) == 6


def test_ingest_and_prepare_keep_anime_without_characters_and_card_the_sample(tmp_path):
    rows, files = edge_case_rows()
    folder = write_characters_folder(tmp_path / "sample", rows, files)
    csv_path = write_mal_csv(tmp_path / "mal.csv", learnable_rows(60))
    params = params_in(tmp_path, ingest={"local_path": csv_path, "characters_dir": folder})
    report = call_step(run_ingest, params)
    assert report["characters"] == 8 and report["quarantined_by_rule"]["unreadable_portrait"] == 3
    call_step(run_prepare, params)
    prepared = Path(params.paths.prepared_dir)
    anime = read_table(PREPARED_ANIME, prepared / "anime.parquet")
    kept = read_table(PREPARED_CHARACTERS, prepared / "characters.parquet")
    assert len(anime) == 60                       # no anime dropped for lacking (usable) characters
    assert set(kept["anime_id"]) == {1, 2, 3}     # anime 4's characters lack a portrait or a description
    quarantine = read_table(QUARANTINE, prepared / "quarantine.parquet")
    assert set(quarantine.loc[quarantine["stage"] == "prepare", "rule"]) == {"character_without_description",
                                                                             "character_without_portrait"}
    card = (Path(params.paths.reports_dir) / "data_card.md").read_text()
    assert "## Main characters and portraits" in card and "never redistribute" in card
    assert "3 of 60 kept anime have characters" in card and "`ingest:unreadable_portrait` 3" in card


def test_the_paper_rule_still_drops_anime_without_a_main_character(tmp_path):
    rows = [{"anime_mal_id": i, "character_id": 100 + i, "name": f"C{i}", "portrait": "10.jpg"} for i in range(1, 21)]
    folder = write_characters_folder(tmp_path / "sample", rows, {"10.jpg": _jpeg_bytes()})
    csv_path = write_mal_csv(tmp_path / "mal.csv", learnable_rows(30))
    params = params_in(tmp_path, ingest={"local_path": csv_path, "characters_dir": folder},
                       prepare={"drop_anime_without_main_character": True})
    call_step(run_ingest, params)
    report = call_step(run_prepare, params)
    assert report["anime_kept"] == 20 and report["quarantined_by_rule"]["prepare:no_main_character"] == 10
