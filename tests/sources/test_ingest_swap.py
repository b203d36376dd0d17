"""A failed ingest (offline, a bad file, a kill) leaves the previous raw data in place and usable."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import params_in
from fixtures_mal import learnable_rows, write_mal_csv

from anipop.data.schema import RAW_ANIME, read_table
from anipop.sources.ingest import run_ingest
from anipop.steps import call_step


class OfflineSource:
    name = "jikan"

    def ingest(self, raw_dir: Path):
        (raw_dir / "images").mkdir(exist_ok=True)
        (raw_dir / "images" / "half-written.jpg").write_bytes(b"\xff\xd8")
        raise ConnectionError("api.jikan.moe: name resolution failed (offline?)")


def test_a_failed_ingest_keeps_the_previous_raw_data(tmp_path):
    params = params_in(tmp_path, ingest={"local_path": write_mal_csv(tmp_path / "mal.csv", learnable_rows(12))})
    first = call_step(run_ingest, params)
    raw_dir = Path(params.paths.raw_dir)

    with pytest.raises(ConnectionError):
        call_step(run_ingest, params, source=OfflineSource())

    assert len(read_table(RAW_ANIME, raw_dir / "anime.parquet")) == first["anime"] == 12
    assert not (raw_dir / "images" / "half-written.jpg").exists()
    assert [p.name for p in raw_dir.parent.iterdir() if p.name.startswith(".")] == []  # no staging left behind
