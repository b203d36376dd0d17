"""Every command block of the README and of docs/*.md, run as written on a scratch project, or listed here with
the reason.

The ```bash blocks of README.md and every page under docs/ are parsed (a line ending in `\\` continues on the next). Each command must have a
decision below, and every decision must still name a README command, so a new, changed or removed command
fails this test until someone decides how it is checked:

- RUN: executed literally with bash in a tiny project that has run the pipeline and holds a champion (40
  learnable anime, ridge only, in-process; the `examples/` folder copied in), with the venv's bin first on
  PATH (the README's "activate the venv once"). Its exit status and a key line of its output are checked.
- HELP_ONLY: cannot run here (long-running servers, network, the full data), so every `--option` it uses must
  be accepted by that program's `--help`: a renamed or misspelt flag still fails.
- NOT_RUN: nothing to run or check here; the reason names the test that covers it, when one does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import REPO_ROOT, params_in
from fixtures_mal import learnable_rows, write_mal_csv
from fixtures_pipeline import run_pipeline
from fixtures_servers import free_port, start, stop, tail, wait_until_up

README = REPO_ROOT / "README.md"
PAGES = (README, *sorted((REPO_ROOT / "docs").glob("*.md")))  # the front page and the manual it links to
BIN = Path(sys.executable).parent
PREDICT_SYNOPSIS = ('anipop predict --synopsis "A retired bounty hunter takes one last job on a dying moon colony, '
                    'where every debt is paid in memories." --character "Kaede::a tired bounty hunter who never '
                    'misses::examples/portrait.png"')
SERVE = "MLFLOW_TRACKING_URI=sqlite:///mlflow.db anipop serve -h 127.0.0.1 -p 5001"
TEAM_SERVER = ("mlflow server --app-name basic-auth --host 0.0.0.0 --port 5000 --allowed-hosts "
               '"mlflow-host:5000,mlflow-host.internal:5000" --cors-allowed-origins "http://mlflow-host:5000" '
               "--backend-store-uri postgresql+psycopg2://mlflow:PASSWORD@db-host:5432/mlflow "
               "--artifacts-destination s3://your-bucket/mlflow --serve-artifacts")
CURL = "curl -s 127.0.0.1:5001/invocations -H 'Content-Type: application/json' -d @examples/request.json"


@dataclass(frozen=True)
class Expect:
    """What a command that runs must do: its exit status, and a line of its output (stdout + stderr)."""
    status: int
    line: str
    absent: tuple[str, ...] = ("Traceback", "Loading weights", "INFO anipop")  # no trace, bar or log noise


RUN: dict[str, Expect] = {
    # the scratch champion reads the synopsis only, so predict says the character was not used
    PREDICT_SYNOPSIS: Expect(0, "note: this model (ridge) reads only synopsis: the 1 character(s) given did not "
                                "change the score"),
    "anipop predict --file examples/pitches.csv": Expect(0, "score_low"),
    'anipop predict --synopsis "A retired bounty hunter takes one last job..." --genres "Action, Sci-Fi" --type TV '
    '--source Original --studios "A New Studio" --year 2027': Expect(0, "score_low"),
    # no Prefect server in the scratch project (PREFECT_API_URL unset): the README promises one line saying so
    "anipop schedule": Expect(2, "needs a Prefect server"),
    'anipop schedule --cron "0 3 * * 1"': Expect(2, "needs a Prefect server"),
    # started in the background on a free port (5001 may be taken on a shared machine), then answered by curl
    SERVE: Expect(0, ""),
    CURL: Expect(0, '"score_low"'),
    # the scratch champion's own data is all there is: nothing is new to it
    "anipop drift": Expect(0, "drift: False: no anime new to champion v1"),
    "anipop registry history": Expect(0, "anipop: 1 champion change(s)"),
    'anipop registry history --at "$(date -u +%F)"': Expect(0, "anipop v1 was champion on"),
    # redrawn from a copy of the repository's reports/replay.json
    "anipop replay --report-only": Expect(0, "reports/replay.md"),
}

HELP_ONLY: dict[str, str] = {
    TEAM_SERVER: "run by tests/integration/test_team_server.py with a PostgreSQL and ports of its own",
    "python flows/pipeline.py": "the whole pipeline; tests/project/test_flows.py runs it on tiny data",
    "python flows/pipeline.py --project /path/to/anipop --refresh-ingest": "the whole pipeline, on a placeholder path",
    "prefect server start": "a long-running server; tests/integration/test_prefect_server.py starts one",
    "prefect work-pool create anipop --type process": "needs a Prefect server",
    'prefect --no-prompt deploy flows/retrain.py:retrain --name weekly-retrain --pool anipop --cron "0 3 * * 1" '
    "--timezone UTC": "needs a Prefect server and a work pool",
    "prefect worker start --pool anipop": "a long-running worker that needs a Prefect server",
    "mlflow ui --backend-store-uri sqlite:///mlflow.db --port 5000":
        "a long-running server; tests/integration/test_mlflow_ui.py starts one",
    "anipop replay": "10 retrainings on the full default data; tests/integration/test_replay.py replays 3 steps of a real slice",
    "anipop registry history --model anipop-replay-test_split --as-of 2019-06-01":
        "needs a replay's registry; tests/registry/test_champion_history.py and tests/integration/test_replay.py read histories",
}

NOT_RUN: dict[str, str] = {
    "make run": "the whole pipeline on the full default data (tens of minutes); tests/integration/test_e2e_pipeline.py runs "
                "`dvc repro` on a real-data slice and checks that a second run is a no-op",
    "make test": "the test suite itself",
    'pip install -e ".[team]" boto3': "needs the package index (network); the dev extra includes team",
    "export MLFLOW_AUTH_CONFIG_PATH=/etc/mlflow/basic_auth.ini": "tests/integration/test_team_server.py sets its own",
    "export MLFLOW_AUTH_ADMIN_PASSWORD='a long secret' MLFLOW_FLASK_SERVER_SECRET_KEY='another long secret'":
        "tests/integration/test_team_server.py sets its own",
    "export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false": "tests/fixtures_servers.py's tracking_server_env sets it for "
                                                       "every tracking server the tests start",
    "export MLFLOW_TRACKING_USERNAME=alice MLFLOW_TRACKING_PASSWORD='her password'":
        "tests/integration/test_team_server.py signs in as its admin, an anonymous client and a read-only user",
    "export MLFLOW_TRACKING_URI=http://mlflow-host:5000": "sets a variable for a team server that does not exist here",
    "export PREFECT_API_URL=http://127.0.0.1:4200/api": "sets a variable for the server started by `prefect server "
                                                        "start` (not started here)",
    "prefect deployment run 'anipop-retrain/weekly-retrain'": "needs a Prefect server serving the deployment; "
                                                              "tests/integration/test_prefect_server.py triggers a run",
}


def readme_commands(text: str) -> list[str]:
    """Each command of the ```bash blocks, continuation lines joined, its trailing `# comment` dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        pending = ""
        for line in block.splitlines():
            line = _without_comment(line)
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            command = " ".join((pending + line).split())
            pending = ""
            if command:
                commands.append(command)
    return commands


def _without_comment(line: str) -> str:
    """The line without a trailing comment: a `#` at the start or after a space, outside quotes."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip()
    return line.rstrip()


def test_every_readme_command_has_a_decision_and_every_decision_a_command():
    commands = [c for page in PAGES for c in readme_commands(page.read_text(encoding="utf-8"))]
    decided = {**RUN, **HELP_ONLY, **NOT_RUN}
    assert len(decided) == len(RUN) + len(HELP_ONLY) + len(NOT_RUN), "a command is in two lists"
    assert not [c for c in commands if c not in decided], "README commands this test does not know (add them)"
    assert not [c for c in decided if c not in commands], "commands this test knows that the README lost"


def test_the_readme_parser_joins_continuations_and_drops_comments():
    text = "```bash\nanipop predict --x \"a # b\" \\\n    --y 1   # note\n\n# only a comment\nmake run\n```\n"
    assert readme_commands(text) == ['anipop predict --x "a # b" --y 1', "make run"]


def _environment() -> dict[str, str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}  # `source .venv/bin/activate`
    for name in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A scratch project that has run the pipeline (champion registered) in its own mlflow.db, as after
    `make run`: params.yaml with relative paths, the README's examples/ folder."""
    folder = tmp_path_factory.mktemp("readme-project")
    csv = write_mal_csv(folder / "source" / "anime.csv", learnable_rows(40))
    params = params_in(Path("."), ingest={"local_path": csv},
                       train={"model": "ridge", "models": ("ridge",), "ablations": ()},
                       evaluate={"bootstrap_samples": 20},
                       mlflow={"tracking_uri": "sqlite:///mlflow.db", "artifact_location": "mlruns"})
    (folder / "params.yaml").write_text(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False),
                                        encoding="utf-8")
    shutil.copytree(REPO_ROOT / "examples", folder / "examples")
    (folder / "reports").mkdir(exist_ok=True)
    shutil.copy(REPO_ROOT / "reports" / "replay.json", folder / "reports" / "replay.json")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        for name in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL"):
            patch.delenv(name, raising=False)
        assert run_pipeline(params)["promoted"]
    return folder


def _bash(command: str, cwd: Path, timeout_s: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=_environment(), capture_output=True, text=True,
                          timeout=timeout_s)


def _check(command: str, result: subprocess.CompletedProcess) -> None:
    expect = RUN[command]
    output = result.stdout + result.stderr
    assert result.returncode == expect.status, f"{command}\nexited {result.returncode}:\n{output[-3000:]}"
    assert expect.line in output, f"{command}\nhas no line with {expect.line!r}:\n{output[-3000:]}"
    assert not [text for text in expect.absent if text in output], f"{command}\n{output[-3000:]}"


def test_readme_commands_run_as_written(project):
    """Serving starts first (it takes a while), the other commands run meanwhile, then curl asks the server."""
    port = free_port()
    log = project / "serve.log"
    server = start(["bash", "-c", SERVE.replace("-p 5001", f"-p {port}")], log, _environment(), cwd=project)
    others = [command for command in RUN if command not in (SERVE, CURL)]
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:  # independent commands, side by side
            for command, result in zip(others, pool.map(lambda command: _bash(command, project), others)):
                _check(command, result)
        wait_until_up(f"http://127.0.0.1:{port}/ping", server, log, timeout_s=300)
        _check(CURL, _bash(CURL.replace(":5001/", f":{port}/"), project))
        # the README's promised 400: one line naming the row and field, not MLflow's wrapper with the request
        bad = httpx.post(f"http://127.0.0.1:{port}/invocations", json={"dataframe_records": [{"synopsis": " "}]},
                         timeout=60)
        assert bad.status_code == 400 and bad.json()["message"] == "row 0, field 'synopsis': empty", bad.text
        _red_team_shapes_are_400s(f"http://127.0.0.1:{port}/invocations")
    finally:
        stop(server)
    assert "Traceback" not in tail(log, 100_000), tail(log)
    served = re.search(r"from the checked copy (\S+)", log.read_text()).group(1)
    assert not Path(served).exists(), f"anipop serve left its copy of the model: {served}"


def _red_team_shapes_are_400s(url: str) -> None:
    """The red team's requests against the real scoring server: each a 400 naming what is wrong, and the server
    still answers a valid pitch afterwards (tests/serving/test_request_bounds.py: refused on their length alone)."""
    import base64

    studios = ", ".join(f"Studio {i}" for i in range(110_000))  # 768 KB: a worker busy for minutes before
    eps = base64.b64encode(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n").decode("ascii")
    shapes = {
        "field 'studios'": json.dumps({"dataframe_records": [{"synopsis": "a pitch", "studios": studios}]}),
        "nested too deeply": '{"dataframe_records": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "accepted formats": json.dumps({"dataframe_records": [{"synopsis": "a pitch", "characters": json.dumps(
            [{"name": "Kaede", "description": "a hunter", "image": eps}])}]}),
        "marks a missing value": json.dumps({"dataframe_records": [{"synopsis": "NA"}]}),
    }
    for expected, body in shapes.items():
        answer = httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=60)
        assert answer.status_code == 400 and expected in answer.json()["message"], (expected, answer.text[:300])
        assert "Traceback" not in answer.text and len(answer.text) < 2_000
    fine = httpx.post(url, json={"dataframe_records": [{"synopsis": "A retired bounty hunter takes one last job."}]},
                      timeout=60)
    assert fine.status_code == 200 and "notes" in fine.json()["predictions"][0], fine.text


# One process prints every --help (each program's own entry point, called as its console script does): a
# process per program would cost seconds each, mostly importing the same libraries again.
HELP_PRINTER = """
import json, runpy, sys
for argv in json.loads(sys.argv[1]):
    print("=====", json.dumps(argv), flush=True)
    sys.argv = list(argv)
    try:
        if argv[0] == "anipop":
            from anipop.cli import app
            app(args=argv[1:], prog_name="anipop")
        elif argv[0] == "prefect":
            from prefect.cli import app
            app()
        elif argv[0] == "mlflow":
            from mlflow.cli import cli
            cli.main(args=argv[1:], prog_name="mlflow")
        else:  # python SCRIPT --help
            sys.argv = argv[1:]
            runpy.run_path(argv[1], run_name="__main__")
    except SystemExit:
        pass
    sys.stdout.flush()
"""


def _programs(command: str) -> list[list[str]]:
    """The (sub)commands whose --help must list the command's options: the words before its first option or
    argument, and the bare program too when its own options come before the subcommand (`prefect --no-prompt
    deploy`)."""
    words = command.split()
    leading = []
    while len(leading) + 1 < len(words) and words[len(leading) + 1].startswith("--"):
        leading.append(words[len(leading) + 1])
    program = [words[0]]
    for word in words[1 + len(leading):]:
        if word.startswith("-") or ":" in word or "/" in word and not word.endswith(".py"):
            break
        program.append(word)
    return [[words[0]], program] if leading else [program]


def _help_texts(programs: list[list[str]], cwd: Path) -> dict[tuple[str, ...], str]:
    result = subprocess.run([sys.executable, "-c", HELP_PRINTER, json.dumps([[*p, "--help"] for p in programs])],
                            cwd=cwd, env=_environment(), capture_output=True, text=True, timeout=300)
    texts = {}
    for chunk in result.stdout.split("===== ")[1:]:
        head, _, text = chunk.partition("\n")
        texts[tuple(json.loads(head)[:-1])] = text
    return texts


def test_readme_commands_that_cannot_run_here_use_existing_options():
    needed = {command: _programs(command) for command in HELP_ONLY}
    helps = _help_texts(sorted({tuple(p) for programs in needed.values() for p in programs}), REPO_ROOT)
    missing_help = [p for programs in needed.values() for p in programs
                    if "usage" not in helps.get(tuple(p), "").lower()]
    assert not missing_help, f"no --help text for {missing_help}"
    unknown = [(command, option) for command, programs in needed.items()
               for option in re.findall(r"(?<!\S)(--[a-z][a-z-]*)", command)
               if not any(re.search(re.escape(option) + r"(?![\w-])", helps[tuple(p)]) for p in programs)]
    assert not unknown, f"options that the program's --help does not list: {unknown}"
