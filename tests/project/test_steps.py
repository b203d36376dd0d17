"""Steps name the params.yaml sections they read; call_step passes them; dvc.yaml's stage params agree."""

from __future__ import annotations

import inspect

import pytest
import yaml
from conftest import REPO_ROOT, params_in

from anipop.core.config import Params
from anipop.data.prepare import run_prepare
from anipop.data.validate import run_validate
from anipop.embedding.embed import run_embed
from anipop.sources.ingest import run_ingest
from anipop.steps import WHOLE, call_step
from anipop.studies.paper_mode import run_paper_mode
from anipop.studies.results_table import run_report

# the DVC stages whose step takes its sections (the others take every section: see docs/architecture.md)
STEP_OF_STAGE = {"ingest": run_ingest, "prepare": run_prepare, "validate": run_validate, "embed": run_embed,
                 "paper_mode": run_paper_mode, "report": run_report}


def test_call_step_passes_each_named_section_the_whole_params_and_what_is_given(tmp_path):
    params = params_in(tmp_path)

    def step(prepare, seed, paths, params, note="kept"):
        return prepare, seed, paths, params, note

    assert call_step(step, params, note="given") == (params.prepare, params.seed, params.paths, params, "given")
    assert call_step(step, params)[-1] == "kept"

    def misnamed(preparation):
        return preparation

    with pytest.raises(TypeError, match="misnamed takes 'preparation', which is no params.yaml section"):
        call_step(misnamed, params)


@pytest.mark.parametrize("stage", sorted(STEP_OF_STAGE))
def test_a_steps_signature_names_the_sections_its_dvc_stage_tracks(stage):
    """The sections a step can read are the ones its stage lists under `params:` in dvc.yaml (paths aside: DVC
    tracks those as deps and outs), so a knob outside them cannot reach the step unseen by DVC."""
    named = {name for name in inspect.signature(STEP_OF_STAGE[stage]).parameters
             if name in Params.model_fields and name != "paths"}
    assert WHOLE not in inspect.signature(STEP_OF_STAGE[stage]).parameters
    tracked = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"][stage].get("params", [])
    assert named == {entry.split(".")[0] for entry in tracked}
