"""Install the project into the venv with uv when it can, else pip: the same pins, the same indexes.

Why: a fresh clone's `make run` spent about 4 of its 11 minutes in `pip install` of the ~270 pinned packages (torch
and its CUDA libraries alone are 6 GB of wheels). uv installs the same pinned set in about 30 s. uv does not read
pip's configuration, so what pip is configured with here (index, extra indexes, find-links, constraints, CA
certificate: pip.conf files and PIP_* variables, as `pip config list` shows them) is passed on to it. If uv cannot
be installed or fails, pip runs with the same arguments, so a working install never depends on uv.

Run by the Makefile with the venv's python:  python scripts/venv_install.py -c requirements.lock -e ".[dev]"
"""

from __future__ import annotations

import os
import subprocess
import sys

UV = "uv==0.13.9"
# pip's configuration names that change *what* gets installed, and uv's flag for each (repeatable ones list-valued)
FLAGS = {"index-url": "--index-url", "extra-index-url": "--extra-index-url", "find-links": "--find-links",
         "constraint": "--constraint"}
# a key's scope in `pip config list`: a PIP_* variable beats a file's [install] section, which beats [global]
SCOPE_RANK = {":env:": 2, "install": 1, "global": 0}


def pip_settings() -> dict[str, str]:
    """pip's effective value of each configuration name (the highest-ranked scope that sets it)."""
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                            check=True).stdout
    best: dict[str, tuple[int, str]] = {}
    for line in listed.splitlines():
        key, sep, raw = line.partition("=")
        scope, _, name = key.rpartition(".")
        if not sep or scope not in SCOPE_RANK:
            continue
        value = raw.strip().strip("'\"").replace("\\n", " ")  # a multi-line value is printed with \n
        if name not in best or SCOPE_RANK[scope] >= best[name][0]:
            best[name] = (SCOPE_RANK[scope], value)
    return {name: value for name, (_, value) in best.items()}


def uv_command(settings: dict[str, str], args: list[str]) -> list[str]:
    """`uv pip install` into this venv with pip's sources; pip looks at every index for the best match, so uv does.

    --compile-bytecode: pip writes every module's .pyc at install, uv does not by default. Where
    PYTHONDONTWRITEBYTECODE is set (it is on the CI machines) nothing writes them later either, so every process
    (each DVC stage, each test's subprocess) compiled torch, mlflow and the rest from source at every import.
    """
    command = [sys.executable, "-m", "uv", "pip", "install", "--quiet", "--python", sys.executable,
               "--index-strategy", "unsafe-best-match", "--compile-bytecode"]
    for name, flag in FLAGS.items():
        for value in settings.get(name, "").split():
            command += [flag, value]
    if settings.get("no-index", "").lower() in {"1", "true", "yes", "on"}:
        command.append("--no-index")
    return command + args


def main(args: list[str]) -> int:
    pip = [sys.executable, "-m", "pip", "install", "--quiet", *args]
    if os.environ.get("ANIPOP_INSTALL_WITH") == "pip":
        return subprocess.call(pip)
    try:
        settings = pip_settings()
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", UV], check=True)
        env = dict(os.environ)
        if settings.get("cert") and "SSL_CERT_FILE" not in env:
            env["SSL_CERT_FILE"] = settings["cert"]  # the CA bundle pip trusts (a proxy's, say)
        subprocess.run(uv_command(settings, args), check=True, env=env)
        return 0
    except (subprocess.CalledProcessError, OSError) as error:
        print(f"venv_install: uv did not install ({error}); installing with pip instead", file=sys.stderr)
        return subprocess.call(pip)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
