"""The scripts MLflow runs to load an anipop model (models-from-code): each builds one class of
anipop.served_pyfunc from the installed anipop, and nothing else."""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).parent
PITCH_MODEL_CODE = FOLDER / "pitch_model.py"
BUNDLE_MODEL_CODE = FOLDER / "bundle_model.py"
MODEL_CODES = (PITCH_MODEL_CODE, BUNDLE_MODEL_CODE)
