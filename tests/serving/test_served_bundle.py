"""The registered model is data: every model kind round-trips through the skops format with the same scores, a
file naming any other type is refused before it is built, and anipop's loader runs only its own loading script.

tests/serving/test_pitch_metadata_model.py and test_registry.py load real registered champions in a subprocess that
counts every unpickled class (Python's `pickle.find_class` audit event): none.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from fixtures_training import toy_params, write_toy_dataset

from anipop.core.artifacts import ArtifactPaths, ModelBundle
from anipop.evaluation.evaluate import load_runs, predict_test, run_label
from anipop.modeling.train import run_train
from anipop.serving.model_code import BUNDLE_MODEL_CODE, PITCH_MODEL_CODE
from anipop.serving.model_loading import check_model_code, load_model
from anipop.serving.served_bundle import UntrustedBundle, load_served_bundle, save_served_bundle

EVERY_KIND = ("mlp_wide", "mlp_small", "ridge", "tfidf_benchmark", "paper_head", "meta_ridge", "pitch_gbm",
              "pitch_stack")


def test_every_model_kind_scores_the_same_after_the_round_trip(tmp_path):
    params = toy_params(tmp_path, models=EVERY_KIND, model="pitch_stack", ablations=())
    write_toy_dataset(params)
    run_train(params)
    _, runs = load_runs(ArtifactPaths.of(params.paths))
    before = predict_test(params, runs)
    reloaded = []
    for run, bundle in runs:
        path = tmp_path / "served" / run_label(run).replace("/", "__") / "model.skops"
        path.parent.mkdir(parents=True)
        save_served_bundle(bundle, path)
        reloaded.append((run, load_served_bundle(path)))
    after = predict_test(params, reloaded)
    assert {run["model"] for run, _ in runs} >= set(EVERY_KIND)
    pd.testing.assert_frame_equal(after, before)


def _bundle(model) -> ModelBundle:
    return ModelBundle(name="ridge", model=model, inputs=["synopsis"], input_set="synopsis", input_type="embeddings",
                       train_mean=0.5, aggregation="mean", image_size=4)


def test_a_file_naming_a_foreign_type_is_refused_before_anything_is_built(tmp_path):
    """A registry writer's bundle holding os.system (or any class outside SERVED_TYPES) never gets built."""
    path = tmp_path / "model.skops"
    path.write_bytes(sio.dumps(_bundle(os.system)))
    with pytest.raises(UntrustedBundle, match=r"model.skops names types an anipop model never holds: .*system"):
        load_served_bundle(path)
    with pytest.raises(UntrustedBundle, match="never holds"):
        save_served_bundle(_bundle(os.system), tmp_path / "again.skops")  # refused when logged, too
    assert not (tmp_path / "again.skops").exists()


def _renamed_modules(data: bytes, renames: dict[str, str]) -> bytes:
    """A skops file with some of its types' modules renamed, as a bundle written under other module names is."""
    import io
    import json
    import zipfile

    source, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for member in source.infolist():
            content = source.read(member)
            if member.filename == "schema.json":
                text = content.decode("utf-8")
                for current, former in renames.items():
                    text = text.replace(json.dumps(current), json.dumps(former))
                content = text.encode("utf-8")
            target.writestr(member, content)
    return out.getvalue()


def test_a_bundle_written_before_the_modules_moved_loads_and_scores_the_same(tmp_path):
    from anipop.modeling.models import MeanBaseline
    from anipop.serving.served_bundle import FORMER_MODULES

    model = MeanBaseline().fit({}, np.array([1.0, 2.0, 4.0]))
    data = sio.dumps(_bundle(model))
    former = _renamed_modules(data, {"anipop.modeling.models": "anipop.models", "anipop.core.artifacts": "anipop.artifacts"})
    assert b"anipop.modeling" not in former and b"anipop.core" not in former
    assert FORMER_MODULES["anipop.models"] == "anipop.modeling.models"
    assert FORMER_MODULES["anipop.artifacts"] == "anipop.core.artifacts"
    path = tmp_path / "model.skops"
    path.write_bytes(former)
    loaded = load_served_bundle(path)
    assert type(loaded.model) is MeanBaseline
    assert loaded.model.predict({"synopsis": ["a", "b"]}).tolist() == [7 / 3, 7 / 3]
    # a former name translates to a current one and is then audited like any other: no type slips through
    foreign = _renamed_modules(sio.dumps(_bundle(os.system)), {"posix": "anipop.models"})
    path.write_bytes(foreign)
    with pytest.raises(UntrustedBundle, match="anipop.modeling.models.system"):
        load_served_bundle(path)


def test_a_pickle_under_the_served_name_is_refused_in_one_line(tmp_path):
    import joblib

    path = tmp_path / "model.skops"
    joblib.dump(_bundle(None), path)
    with pytest.raises(ValueError, match=r"^model.skops: not a readable anipop model \(") as raised:
        load_served_bundle(path)
    assert "\n" not in str(raised.value)


class Marker(mlflow.pyfunc.PythonModel):
    """A pyfunc that leaves a file behind when it is loaded: proof that its code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def load_context(self, context):
        Path(self.marker).write_text("ran")

    def predict(self, context, model_input, params=None):
        return model_input


def test_a_pickled_pyfunc_is_refused_unless_the_operator_opts_in(tmp_path, monkeypatch):
    marker = tmp_path / "ran.txt"
    folder = tmp_path / "pickled"
    mlflow.pyfunc.save_model(str(folder), python_model=Marker(str(marker)))
    assert (folder / "python_model.pkl").exists()
    marker.unlink(missing_ok=True)  # saving may load it once; loading must not, unless allowed
    monkeypatch.delenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", raising=False)
    with pytest.raises(ValueError, match=r"stored as a pickle \(python_model.pkl\).*MLFLOW_ALLOW_PICKLE_DESERIAL"):
        load_model(str(folder))
    assert not marker.exists()
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")  # an explicit opt-in, MLflow's own switch
    load_model(str(folder))
    assert marker.read_text() == "ran"


def test_a_script_registered_before_the_pyfuncs_moved_is_still_anipops_own(tmp_path):
    """A model registered before the move names anipop.served_pyfunc: accepted byte for byte, and that name still
    answers with today's classes; any other edit of the script is refused."""
    import anipop.served_pyfunc as former
    from anipop.serving import served_pyfunc
    from anipop.serving.model_code import CURRENT_IMPORT, FORMER_IMPORT

    assert (former.PitchModel, former.BundleModel) == (served_pyfunc.PitchModel, served_pyfunc.BundleModel)
    script = tmp_path / "bundle_model.py"
    script.write_text(BUNDLE_MODEL_CODE.read_text().replace(CURRENT_IMPORT, FORMER_IMPORT))
    folder = tmp_path / "registered_before"
    mlflow.pyfunc.save_model(str(folder), python_model=str(script))
    check_model_code(folder, str(folder))  # accepted
    (folder / "bundle_model.py").write_text(script.read_text() + "# one more line\n")
    with pytest.raises(ValueError, match="is not one of anipop's own"):
        check_model_code(folder, str(folder))


def test_only_anipops_own_loading_scripts_run(tmp_path):
    script = tmp_path / "pitch_model.py"  # same name as anipop's, other content
    marker = tmp_path / "ran.txt"
    script.write_text(textwrap.dedent(f"""
        import pathlib, mlflow.models, mlflow.pyfunc
        pathlib.Path({str(marker)!r}).write_text("ran")
        class M(mlflow.pyfunc.PythonModel):
            def predict(self, context, model_input, params=None):
                return model_input
        mlflow.models.set_model(M())
    """))
    folder = tmp_path / "planted"
    mlflow.pyfunc.save_model(str(folder), python_model=str(script))
    marker.unlink(missing_ok=True)  # saving ran it once (MLflow validates the script); loading must not
    with pytest.raises(ValueError, match="its loading script pitch_model.py is not one of anipop's own"):
        load_model(str(folder))
    assert not marker.exists()


def test_a_code_folder_on_the_import_path_is_refused(tmp_path):
    """MLflow puts a model's `code` folders first on sys.path: a planted `anipop/` there would shadow ours."""
    folder = tmp_path / "shadow"
    (tmp_path / "code" / "anipop").mkdir(parents=True)
    mlflow.pyfunc.save_model(str(folder), python_model=str(BUNDLE_MODEL_CODE), code_paths=[str(tmp_path / "code")],
                             artifacts={})
    with pytest.raises(ValueError, match="with a code folder on the import path"):
        check_model_code(folder, str(folder))


def test_the_loading_scripts_only_build_anipops_classes():
    for script, name in ((PITCH_MODEL_CODE, "PitchModel"), (BUNDLE_MODEL_CODE, "BundleModel")):
        code = [line for line in script.read_text().splitlines() if line and not line.startswith("#")]
        assert code == ["import mlflow.models", f"from anipop.serving.served_pyfunc import {name}",
                        f"mlflow.models.set_model({name}())"]


# the libraries are imported before the hook: dask, pulled in by one of them, pickles its own operators once at
# import; what is counted is what loading and scoring the model's files unpickles
NO_UNPICKLING = textwrap.dedent("""
    import json, sys
    import lightgbm, pandas as pd, skops.io, sklearn.linear_model
    import importlib
    from anipop.serving.served_bundle import SERVED_TYPES
    for name in SERVED_TYPES:  # every module whose classes a bundle names, imported before the hook
        importlib.import_module(name.rpartition(".")[0])
    from anipop.serving.model_loading import load_model
    found = []
    sys.addaudithook(lambda event, args: found.append(list(map(str, args))) if event == "pickle.find_class" else None)
    model = load_model(sys.argv[1])
    scores = model.predict(pd.DataFrame(json.loads(sys.argv[2])))
    print(json.dumps({"unpickled": found, "scores": scores["score"].tolist()}))
""")


def load_without_unpickling(model_uri: str, pitches: dict, env: dict[str, str]) -> dict:
    """Load and score a model in a fresh process that records every class any unpickler resolves."""
    import json

    done = subprocess.run([sys.executable, "-c", NO_UNPICKLING, model_uri, json.dumps(pitches)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_loader_in_a_subprocess_sees_a_planted_pickle(tmp_path):
    """The audit hook the registry tests rely on does fire on a pickled pyfunc (with the operator's opt-in)."""
    folder = tmp_path / "pickled"
    mlflow.pyfunc.save_model(str(folder), python_model=Marker(str(tmp_path / "ran.txt")))
    env = {**os.environ, "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true",  # Marker is pickled by reference
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), str(Path(__file__).parents[1])])}
    seen = load_without_unpickling(str(folder), {"synopsis": ["x"], "score": [1.0]}, env)
    assert any(name == "Marker" for _, name in seen["unpickled"])
    assert np.allclose(seen["scores"], [1.0])


def _serve(tmp_path, tmp_params, model_uri: str, monkeypatch) -> tuple[object, list, Path]:
    """`anipop serve` with the server recorded instead of run (with what its copy held while it ran), in a temp
    folder of the test's own: returns the result, the recorded starts, and that temp folder."""
    from fixtures_pipeline import write_params
    from typer.testing import CliRunner

    import anipop.cli.serving
    from anipop.cli import app

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    started: list = []

    def server(command: list[str], env: dict[str, str]) -> int:
        served = Path(command[command.index("-m") + 1])
        started.append((command, env, served, sorted(path.name for path in served.iterdir())))
        return 0

    monkeypatch.setattr(anipop.cli.serving, "_run_until_stopped", server)
    params_file = write_params(tmp_params, tmp_params.paths.models_dir.parent / "params.yaml")
    result = CliRunner().invoke(app, ["serve", "--model-uri", model_uri, "-p", "5099", "--params", params_file])
    return result, started, temp


def test_serve_refuses_a_planted_script_and_never_starts_mlflow(tmp_path, tmp_params, monkeypatch):
    script = tmp_path / "bundle_model.py"
    script.write_text("import mlflow.models, mlflow.pyfunc\nclass M(mlflow.pyfunc.PythonModel):\n"
                      "    def predict(self, context, model_input, params=None):\n        return model_input\n"
                      "mlflow.models.set_model(M())\n")
    folder = tmp_path / "planted"
    mlflow.pyfunc.save_model(str(folder), python_model=str(script))
    result, started, temp = _serve(tmp_path, tmp_params, str(folder), monkeypatch)
    assert result.exit_code == 1 and "is not one of anipop's own" in result.output
    assert started == []
    assert list(temp.iterdir()) == []  # the refused copy is gone


def test_serve_runs_mlflow_on_the_checked_copy_with_pickles_off_and_removes_it_afterwards(tmp_path, tmp_params,
                                                                                          monkeypatch):
    folder = tmp_path / "model"
    mlflow.pyfunc.save_model(str(folder), python_model=str(BUNDLE_MODEL_CODE))  # loads nothing: no artifacts read
    result, started, temp = _serve(tmp_path, tmp_params, str(folder), monkeypatch)
    assert result.exit_code == 0, result.output
    ((args, env, served, held),) = started
    assert args[1:4] == ["models", "serve", "-m"] and served != folder and "bundle_model.py" in held
    assert served.is_relative_to(temp) and list(temp.iterdir()) == []  # served from the copy, gone once it stopped
    assert env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false" and args[-6:] == ["-h", "127.0.0.1", "-p", "5099",
                                                                                   "-w", "1"]
