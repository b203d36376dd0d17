"""dvc.yaml's code deps are the import closure of each stage's entry point: no more, no less.

Why: DVC reruns a stage when a listed dep changes. A module the stage imports but dvc.yaml does not list
changes results silently ("up to date" with stale outputs); a listed module it never imports reruns it for
nothing. The entry point of stage `x` is what `anipop x` calls: the modules the CLI's `x` command imports.
Imports anywhere in a module count (also those inside functions: they run when the step runs).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT

SRC = REPO_ROOT / "src"
PACKAGE = "anipop"
SCRIPTS_PACKAGE = "anipop.serving.model_code"  # models-from-code scripts: MLflow executes them, nothing imports them


def module_file(module: str) -> Path | None:
    """src/anipop/x.py or src/anipop/x/__init__.py of a dotted anipop module name."""
    base = SRC.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def imported_modules(path: Path, module: str) -> set[str]:
    """The anipop modules `path` imports, at any depth of its code."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            if base.split(".")[0] != PACKAGE:
                continue
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names if module_file(f"{base}.{alias.name}")}
    # a submodule import runs its packages' __init__ too
    return {".".join(name.split(".")[:i]) for name in found for i in range(2, name.count(".") + 2)}


# a module that loads a model bundle runs the code of every class the bundle names, which no import shows: it
# depends on the modules of SERVED_TYPES (the classes any anipop bundle may hold)
BUNDLE_LOADS = ("load_bundle(", "load_served_bundle(", "load_runs(")


def bundle_modules() -> list[str]:
    from anipop.serving.served_bundle import SERVED_TYPES

    return sorted({name.rpartition(".")[0] for name in SERVED_TYPES if name.startswith(f"{PACKAGE}.")})


def loads_bundles(path: Path) -> bool:
    code = path.read_text(encoding="utf-8")
    return any(call in code.replace(f"def {call}", "") for call in BUNDLE_LOADS)


def closure(entries: set[str]) -> set[Path]:
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        module = todo.pop()
        if module in seen or module_file(module) is None:
            continue
        seen.add(module)
        todo += imported_modules(module_file(module), module)
        if loads_bundles(module_file(module)):
            todo += bundle_modules()
        if module == SCRIPTS_PACKAGE:  # MLflow runs these when a model is logged or loaded: imported by its users
            todo += [f"{module}.{script.stem}" for script in module_file(module).parent.glob("*.py")]
    files = {module_file(m) for m in seen}
    init = SRC / PACKAGE / "__init__.py"
    return {f.relative_to(REPO_ROOT) for f in files if f is not None and f != init}


def cli_entries() -> dict[str, set[str]]:
    """For each `anipop` sub-command: the anipop modules its function imports (the step it calls)."""
    entries = {}
    for command_module in sorted((SRC / PACKAGE / "cli").glob("*.py")):
        tree = ast.parse(command_module.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                modules = {sub.module for sub in ast.walk(node) if isinstance(sub, ast.ImportFrom)
                           and (sub.module or "").startswith(f"{PACKAGE}.")}
                entries[node.name.replace("_", "-")] = modules
    return entries


def declared_code_deps(stage: dict) -> set[Path]:
    deps = [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]
    return {Path(d) for d in deps if d.startswith("src/")}


def covered(file: Path, declared: set[Path]) -> bool:
    return any(file == dep or dep in file.parents for dep in declared)


STAGES = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_code_deps_are_its_import_closure(name):
    stage = STAGES[name]
    command = stage["cmd"].split()
    assert command[:1] == ["anipop"], f"stage {name}: the test knows `anipop <step>` commands only"
    entries = cli_entries()[command[1]]
    assert entries, f"stage {name}: `anipop {command[1]}` imports no step module"
    needed = closure(entries)
    declared = declared_code_deps(stage)
    missing = sorted(str(f) for f in needed if not covered(f, declared))
    unused = sorted(str(d) for d in declared if not any(covered(f, {d}) for f in needed))
    assert not missing, f"stage {name}: dvc.yaml misses deps it imports: {missing}"
    assert not unused, f"stage {name}: dvc.yaml lists deps it never imports: {unused}"


def test_the_closure_follows_lazy_and_relative_imports():
    files = {str(f) for f in closure({"anipop.registry.register"})}
    assert "src/anipop/serving/predict.py" in files  # imported inside a function
    assert "src/anipop/core/config.py" in files


def test_a_step_that_loads_bundles_depends_on_the_code_of_their_classes():
    """evaluate scores pickled bundles: a change to a model's `predict` must make it stale, though it imports no
    model module by name."""
    files = {str(f) for f in closure({"anipop.evaluation.evaluate"})}
    assert "src/anipop/modeling/pitch/pitch_gbm.py" in files and "src/anipop/modeling/paper_head.py" in files


def test_python_caches_are_ignored_by_dvc():
    ignored = (REPO_ROOT / ".dvcignore").read_text(encoding="utf-8").split()
    assert "__pycache__/" in ignored


def test_dvc_reads_the_projects_yaml_with_the_c_parser():
    """ruamel.yaml falls back to its pure-Python parser, silently, when ruamel.yaml.clib is missing; every `dvc repro`
    and every stage the flows run parses dvc.yaml, dvc.lock and params.yaml, so the dependency must stay in use.
    The C parser must also read them to the same values."""
    from ruamel.yaml import YAML

    fast, pure = YAML(typ="safe"), YAML(typ="safe", pure=True)  # the loader DVC's parse_yaml builds
    assert fast.Parser.__name__ == "CParser"
    for name in ("dvc.yaml", "dvc.lock", "params.yaml"):
        text = (REPO_ROOT / name).read_text(encoding="utf-8")
        assert fast.load(text) == pure.load(text), name
