"""Screenshots of the MLflow UI over the workspace store, taken by headless Chromium: what a user sees.

Starts `mlflow ui` on 127.0.0.1 over the store the pipeline wrote (params.yaml's, or --store), then saves:
  mlflow_runs_table.png        the ranked view the parent run links to: the main models and both baselines, best first
                               on CV Spearman, with metric columns
  mlflow_pipeline_run.png      the parent run's page: its description is the ranked table
  mlflow_default_view.png      the runs view as a new user opens it, the parent run expanded: newest first is best first
  mlflow_chart_view.png        the chart view: one bar per model for each metric
  mlflow_compare_runs.png      the compare page of the main input set's models (three or more)
  mlflow_registered_model.png  the registered model's versions with the `champion` alias
  mlflow_champion_version.png  the champion version: its source run, tags (test metrics, baseline) and model card
With --prefect, also one run of the retraining flow (flows/retrain.py) on this project, against a Prefect server
of its own on 127.0.0.1 (a throwaway PREFECT_HOME and database), and:
  prefect_retrain_run.png      that flow run as the Prefect UI opens it: its tasks and their states
  prefect_retrain_artifacts.png  its artifact `anipop-retrain`: the retraining decision and why
Playwright drives the system Chromium (Debian package `chromium`); no browser is downloaded.

    python benchmarks/ui_screenshots.py [--params params.yaml] [--store sqlite:///mlflow.db] [--out docs] [--prefect]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from anipop.evaluation.mlflow_leaderboard import view_link  # noqa: E402  (the link the parent run's description gives)

PORT = 5140
WINDOW = {"width": 1600, "height": 1000}
TABLE_METRICS = ("cv_spearman_mean", "spearman", "spearman_ci_low", "spearman_ci_high", "mae_1_10", "r2")
HIDDEN_ATTRIBUTES = ("Dataset", "Source", "Models")  # on by default; off so the metric columns fit one screen


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    raise FileNotFoundError("no Chromium on PATH: apt-get install -y chromium")


def start_server(command: list[str], health_url: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`command` in its own process group, output to `log`; returns once `health_url` answers 200 (else stops it
    and raises with the log's tail)."""
    process = subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    deadline = time.monotonic() + 300
    while not _answers(health_url):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_server(process)
            raise RuntimeError(f"{' '.join(command[2:4])} did not answer {health_url} within 300 s "
                               f"(exit {process.returncode}): {log.read_text()[-2000:]}")
        time.sleep(1)
    return process


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def start_ui(store: str, port: int, log: Path) -> subprocess.Popen:
    """`mlflow ui` on 127.0.0.1 over `store`, answering."""
    return start_server([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store, "--host", "127.0.0.1",
                         "--port", str(port), "--workers", "1"], f"http://127.0.0.1:{port}/health", log)


def stop_server(process: subprocess.Popen) -> None:
    import signal

    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def _api(url: str, path: str, body: dict | None = None) -> dict:
    response = (httpx.post(f"{url}/api/2.0/mlflow/{path}", json=body, timeout=30) if body is not None
                else httpx.get(f"{url}/api/2.0/mlflow/{path}", timeout=30))
    response.raise_for_status()
    return response.json()


def latest_pipeline(url: str, experiment: str) -> tuple[str, dict, list[dict]]:
    """(experiment id, the newest parent run, its child runs) read over the REST API."""
    experiment_id = _api(url, f"experiments/get-by-name?experiment_name={experiment}")["experiment"]["experiment_id"]
    runs = _api(url, "runs/search", {"experiment_ids": [experiment_id], "max_results": 1000,
                                     "order_by": ["attributes.start_time DESC"]})["runs"]
    tags = [{t["key"]: t["value"] for t in run["data"].get("tags", [])} for run in runs]
    parent = next(run for run, tag in zip(runs, tags) if tag.get("anipop.role") == "pipeline")
    children = [run for run, tag in zip(runs, tags) if tag.get("mlflow.parentRunId") == parent["info"]["run_id"]]
    return experiment_id, parent, children


def screenshot_pages(url: str, out_dir: Path, experiment: str = "anipop", model_name: str = "anipop") -> dict[str, str]:
    """Save the PNGs under out_dir; return each file's visible page text (what the tests check)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    out_dir.mkdir(parents=True, exist_ok=True)
    experiment_id, parent, children = latest_pipeline(url, experiment)
    tags = {t["key"]: t["value"] for t in parent["data"].get("tags", [])}
    main_set = tags.get("primary", "/").split("/")[0]
    compared = [c["info"]["run_id"] for c in children
                if c["info"]["run_name"].startswith(f"{main_set}/") or "/" not in c["info"]["run_name"]]
    texts: dict[str, str] = {}
    ml = "workflowType=machine_learning"  # MLflow 3.17's UI otherwise opens experiments on its GenAI overview
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport=WINDOW)
        page.set_default_timeout(120_000)

        def shoot(name: str, wait_for: str, full_page: bool = False) -> None:
            try:
                page.get_by_text(wait_for, exact=False).first.wait_for(state="attached", timeout=60_000)
            except PlaywrightTimeout:  # saved anyway: the picture shows what went wrong
                print(f"warning: {name}: {wait_for!r} never appeared", file=sys.stderr)
            page.wait_for_timeout(3000)  # charts animate in
            close = page.get_by_role("button", name="Close", exact=True)
            if close.count() and close.first.is_visible():  # the assistant side panel hides half the page
                close.first.click()
                page.wait_for_timeout(500)
            page.screenshot(path=str(out_dir / name), full_page=full_page)
            texts[name] = page.inner_text("body")

        page.goto(f"{url}/#/experiments/{experiment_id}/runs?{ml}")
        page.get_by_text(parent["info"]["run_name"]).first.wait_for(state="visible")
        page.locator("button[data-component-id*='runnamecellrenderer']").first.click()  # expand the parent
        page.get_by_text(children[0]["info"]["run_name"]).first.wait_for(state="visible")
        shoot("mlflow_default_view.png", children[0]["info"]["run_name"])

        page.goto(view_link(url, experiment_id, parent["info"]["run_id"]))
        page.get_by_text("matching runs").first.wait_for(state="visible")
        page.get_by_role("button", name="Columns").first.click()
        for column in (*HIDDEN_ATTRIBUTES, *TABLE_METRICS):  # each a click on its checkbox in the column menu
            page.get_by_placeholder("Search columns").fill(column)
            page.wait_for_timeout(300)
            # the tree's node titles; the search highlights part of several ("cv_<b>spearman</b>_sd"): match whole
            page.locator(".du-bois-light-tree-title").filter(has_text=re.compile(f"^{re.escape(column)}$")).first.click()
        page.keyboard.press("Escape")
        page.mouse.click(600, 900)  # closes the column menu
        shoot("mlflow_runs_table.png", TABLE_METRICS[0])

        page.goto(f"{url}/#/experiments/{experiment_id}/runs/{parent['info']['run_id']}?{ml}")
        page.get_by_text("Which model is best").first.wait_for(state="visible")
        more = page.get_by_text("Show more", exact=True)
        if more.count():  # the description opens folded
            more.first.click()
        shoot("mlflow_pipeline_run.png", "Which model is best")

        page.goto(f"{url}/#/experiments/{experiment_id}/runs?{ml}&compareRunsMode=CHART")
        shoot("mlflow_chart_view.png", children[0]["info"]["run_name"])

        page.goto(f"{url}/#/compare-runs?runs={json.dumps(compared)}&experiments={json.dumps([experiment_id])}&{ml}")
        shoot("mlflow_compare_runs.png", "Parallel Coordinates")

        page.goto(f"{url}/#/models/{model_name}?{ml}")
        shoot("mlflow_registered_model.png", "champion")
        champion = _api(url, f"registered-models/alias?name={model_name}&alias=champion")["model_version"]
        page.goto(f"{url}/#/models/{model_name}/versions/{champion['version']}?{ml}")
        shoot("mlflow_champion_version.png", "champion")
        browser.close()
    return texts


@contextlib.contextmanager
def prefect_server(work: Path, port: int) -> Iterator[tuple[str, dict[str, str]]]:
    """(UI base URL, environment for clients) of a Prefect server on 127.0.0.1:`port` with its own PREFECT_HOME
    and database under `work`; stopped on exit."""
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PREFECT_HOME": str(work / "prefect-home"), "PREFECT_API_URL": f"{url}/api",
           "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{work / 'prefect.db'}",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "HF_HUB_OFFLINE": "1"}
    server = start_server([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                           str(port)], f"{url}/api/health", work / "prefect-server.log", env)
    try:
        yield url, env
    finally:
        stop_server(server)


def retrain_once(project: Path, url: str, env: dict[str, str]) -> str:
    """Run the retraining flow once on `project` against the server at `url`; return the flow run's id."""
    code = f"import sys; sys.path.insert(0, 'flows'); from retrain import retrain; print(retrain({str(project)!r}))"
    subprocess.run([sys.executable, "-c", code], cwd=project, env=env, check=True)
    runs = httpx.post(f"{url}/api/flow_runs/filter", json={"sort": "START_TIME_DESC", "limit": 1}, timeout=30).json()
    return runs[0]["id"]


def prefect_pages(url: str, run_id: str, out_dir: Path) -> dict[str, str]:
    """The retrain run's page and its Artifacts tab; each file's visible text."""
    from playwright.sync_api import sync_playwright

    texts: dict[str, str] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport=WINDOW)
        page.set_default_timeout(120_000)
        page.goto(f"{url}/runs/flow-run/{run_id}")
        page.get_by_text("anipop-retrain").first.wait_for(state="visible")
        page.wait_for_timeout(4000)  # the task graph and logs fill in
        page.screenshot(path=str(out_dir / "prefect_retrain_run.png"))
        texts["prefect_retrain_run.png"] = page.inner_text("body")
        page.get_by_text("Artifacts", exact=True).first.click()  # a tab of the run page (a button, not role=tab)
        page.get_by_text("Retraining").first.wait_for(state="visible")
        page.wait_for_timeout(2000)
        page.get_by_text("What this scheduled retraining decided").first.click()  # the card opens the artifact
        page.get_by_text("Retraining:").first.wait_for(state="visible")
        page.wait_for_timeout(2000)
        page.screenshot(path=str(out_dir / "prefect_retrain_artifacts.png"))
        texts["prefect_retrain_artifacts.png"] = page.inner_text("body")
        browser.close()
    return texts


def main() -> None:
    from anipop.core.config import load_params
    from anipop.tracking import tracking_uri

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--store", default=None, help="backend store URI (default: params.yaml's / the env's)")
    parser.add_argument("--out", default="docs", type=Path)
    parser.add_argument("--port", default=PORT, type=int)
    parser.add_argument("--prefect", action="store_true", help="also run the retraining flow once and shoot it")
    args = parser.parse_args()
    params = load_params(args.params)
    store = args.store or tracking_uri(params)
    log = args.out / "mlflow-ui.log"
    args.out.mkdir(parents=True, exist_ok=True)
    if store.startswith(("http://", "https://")):
        url, process = store.rstrip("/"), None  # a running tracking server serves the UI itself
    else:
        url, process = f"http://127.0.0.1:{args.port}", start_ui(store, args.port, log)
    try:
        pages = screenshot_pages(url, args.out, params.mlflow.experiment, params.registry.model_name)
    finally:
        if process is not None:
            stop_server(process)
            log.unlink(missing_ok=True)
    if args.prefect:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="anipop-prefect-") as work, \
                prefect_server(Path(work), args.port + 1) as (prefect_url, env):
            run_id = retrain_once(Path(args.params).resolve().parent, prefect_url, env)
            pages |= prefect_pages(prefect_url, run_id, args.out)
    for name in pages:
        print(f"{args.out / name}")


if __name__ == "__main__":
    main()
