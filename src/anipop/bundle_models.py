"""The modules whose classes a trained ModelBundle pickles: loading a bundle runs their code.

Why a module of its own: unpickling imports these by name, which no import statement shows. The steps that
load bundles (evaluate, the served predictor, register) import this module, so their dvc.yaml deps, held equal
to the import closure by tests/code/test_dvc_deps.py, list the code that actually scores: a change to a
model's `predict` reruns them instead of leaving stale metrics.
"""

from __future__ import annotations

from anipop import finetune, modality, models, paper_head, pitch_models  # noqa: F401 - see above

IMPLEMENTATIONS = (models, paper_head, finetune, pitch_models, modality)
