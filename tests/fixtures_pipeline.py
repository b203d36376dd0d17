"""A whole small pipeline run (ingest -> register) on a learnable MAL-shaped CSV, for registry and serving tests."""

from __future__ import annotations

from conftest import params_in
from fixtures_mal import learnable_rows, write_mal_csv

from anipop.embedding.embed import run_embed
from anipop.evaluate import run_evaluate
from anipop.ingest import run_ingest
from anipop.prepare import run_prepare
from anipop.registry import run_register
from anipop.train import run_train

PITCH = "A beloved acclaimed masterpiece about a school band and a dragon on a summer island."


def pipeline_params(tmp_path, tracking_uri: str | None = None, characters_dir=None):
    """Params for a fast real run: the default (offline) encoders, ridge only, a sqlite store under tmp_path.

    `characters_dir`: a characters folder (e.g. the real sample: its anime 1, 19, 30, 43 and 121 are among the
    learnable rows' ids 1..160, so 17 real characters with portraits join them); None: anime only.
    """
    csv = write_mal_csv(tmp_path / "mal.csv", learnable_rows(160))
    return params_in(
        tmp_path,
        ingest={"local_path": csv, "characters_dir": characters_dir},
        train={"model": "ridge", "models": ("ridge",), "ridge_alpha": 1.0},
        evaluate={"bootstrap_samples": 20},
        mlflow={"tracking_uri": tracking_uri or f"sqlite:///{tmp_path / 'mlflow.db'}",
                "artifact_location": str(tmp_path / "mlruns"), "experiment": "anipop-test"},
    )


def run_pipeline(params) -> dict:
    for step in (run_ingest, run_prepare, run_embed, run_train, run_evaluate):
        step(params)
    return run_register(params)
