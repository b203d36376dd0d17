"""The scripts MLflow runs to load an anipop model (models-from-code): each builds one class of
anipop.serving.served_pyfunc from the installed anipop, and nothing else."""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).parent
PITCH_MODEL_CODE = FOLDER / "pitch_model.py"
BUNDLE_MODEL_CODE = FOLDER / "bundle_model.py"
MODEL_CODES = (PITCH_MODEL_CODE, BUNDLE_MODEL_CODE)
CURRENT_IMPORT, FORMER_IMPORT = "anipop.serving.served_pyfunc", "anipop.served_pyfunc"


def known_scripts() -> list[bytes]:
    """The scripts anipop accepts byte for byte: today's, and those registered before the pyfuncs moved (the
    same lines importing the former module name, which anipop.served_pyfunc still answers)."""
    current = [path.read_bytes() for path in MODEL_CODES]
    return current + [script.replace(CURRENT_IMPORT.encode(), FORMER_IMPORT.encode()) for script in current]
