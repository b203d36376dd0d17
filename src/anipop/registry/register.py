"""MLflow registry: log the trained model as a pitch-taking pyfunc, register it, and decide promotion.

A new version takes the `champion` alias only if it beats the current champion on the promotion metric
*on the same data*: the same test ids, the same labels and the same score scaler (`split_fingerprint`).
When those differ, the champion is re-scored on the candidate's data; stored numbers measured on another
scale are never compared.

Registration is all-or-nothing and serialised per model name by a lock (`promotion_lock`): a registered model
named `<name>.lock` whose creation is atomic in every MLflow store. Under it a registration rolls back what an
earlier, killed one left (versions still tagged pending: deleted, their runs ended FAILED), skips a model it
already registered (same model, metrics and data: no duplicate when a killed stage's orphan finished first),
re-reads the champion, registers, and moves the alias; two racing registrations therefore compare with each
other, and the better one ends champion.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from anipop.core.artifacts import ArtifactPaths, PrimaryModel, evaluation_runs, read_calibration
from anipop.core.config import Params
from anipop.core.model_catalog import BASELINE, LENGTH_BASELINE
from anipop.core.utils import git_commit, read_json, redact, update_digest, write_json, write_text
from anipop.data.schema import PREPARED_ANIME, read_table
from anipop.registry.champion_history import record_change
from anipop.registry.lock import interruptible, process_owner, promotion_lock
from anipop.registry.model_card import render_model_card
from anipop.registry.promotion import (
    JUDGED_ON_TEST_ANIME,
    TAG_DIGITS,
    Decision,
    decide,
    judging_rows,
    metrics_on_rows,
    newer_unless_worse,
    served_scores_on,
)
from anipop.tracking import TrackingUnavailable, data_hash, shown_tracking_uri, tracking_uri, use_experiment

log = logging.getLogger(__name__)

CHAMPION = "champion"
# what the registry answers when there is simply no champion yet (no such model, or no such alias)
_NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


def split_fingerprint(paths: ArtifactPaths) -> str:
    """A hash of what a test metric depends on besides the model: test ids, their labels and the scaler.

    Two versions are comparable by stored metrics only if this matches: one bad row ("1,000" read as 1.0)
    moves the train minimum, hence the scaler and every normalised label, while the test ids stay the same.
    """
    anime = read_table(PREPARED_ANIME, paths.prepared_anime)
    test = anime[anime["split"] == "test"].sort_values("anime_id")
    labels = pd.DataFrame({"id": test["anime_id"].astype("int64"), "score": test["score"].round(6),
                           "score_norm": test["score_norm"].round(6)})
    digest = hashlib.sha256(labels.to_csv(index=False).encode())
    digest.update(b"|scaler|")
    update_digest(digest, paths.scaler)
    return digest.hexdigest()[:16]


def model_key(params: Params, fingerprint: str) -> str:
    """Identifies the model itself (model file, its evaluation, the data, the encoders): equal for two
    registrations of the same fit that differ only in their serving limits. The bundle pickles to the same
    bytes in every process (config._Strict), so an unchanged rerun gives the same key."""
    digest = hashlib.sha256(fingerprint.encode())
    paths = ArtifactPaths.of(params.paths)
    for path in (paths.primary_bundle, paths.intervals):
        update_digest(digest, path)
    digest.update(f"|{params.registry.interval_coverage}|{params.embed.text.model_dump_json()}|"
                  f"{params.embed.image.model_dump_json()}".encode())  # the encoders, not how fast they ran
    return digest.hexdigest()[:24]


def registration_key(params: Params, model: str) -> str:
    """Identifies one registration's content: the model (its model_key) and the serving limits it is logged with.
    A rerun of the same stage, or the orphan of a killed one, finds its version by this key instead of registering
    a duplicate; tightened limits are a new registration of the same model."""
    return hashlib.sha256(f"{model}|{limits_tag(params)}".encode()).hexdigest()[:24]


def limits_tag(params: Params) -> str:
    """The request limits a served model enforces, as one canonical text (they travel inside the logged model)."""
    return f"{params.serving.model_dump_json()}|max_synopsis_chars={params.prepare.max_synopsis_chars}"


def _tag(value: float) -> str:
    return f"{value:.{TAG_DIGITS}f}"


def current_champion(client, name: str, params: Params):
    """The version holding `champion`, or None when there is none yet."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as err:
        if err.error_code in _NOT_FOUND:
            return None
        # anything else (a server that is down or failing) must not read as "no champion": that would promote
        raise TrackingUnavailable(f"MLflow tracking store {shown_tracking_uri(params)}: cannot read the "
                                  f"{CHAMPION} of {name}: {redact(str(err).splitlines()[0][:300])}") from err


REFERENCE_ARTIFACT = "reference/anime_ids.json"  # the prepared anime ids of a version's data, by split


def reference_ids(client, run_id: str) -> dict[str, list[int]]:
    """The anime ids a registered version was trained (train, val) and tested on; {} for a version registered
    before they were recorded. Plain JSON from the run's artifacts: nothing is unpickled."""
    import tempfile

    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as folder:
        try:
            path = client.download_artifacts(run_id, REFERENCE_ARTIFACT, folder)
        except (MlflowException, OSError):
            return {}
        payload = read_json(Path(path))
    return {split: [int(i) for i in ids] for split, ids in payload.items() if isinstance(ids, list)}


class JudgingFailed(RuntimeError):
    """The champion or the candidate could not be scored on the judging anime: nothing was registered."""


def _judge(params: Params, client, champion, candidate: dict[str, float], candidate_uri: str,
           fingerprint: str, model: str, data_newest: str | None) -> Decision:
    """The promotion decision under `registry.policy` (anipop.registry.promotion)."""
    from mlflow.exceptions import MlflowException

    cfg = params.registry
    metric = cfg.promotion_metric
    if champion is None:
        return decide(metric, candidate[metric], None, None)
    if champion.tags.get(_MODEL_KEY) == model \
            and champion.tags.get(_LIMITS) != limits_tag(params):
        return Decision(True, f"the champion's model (v{champion.version}) with new serving limits: an operator's "
                              f"change, promoted whatever the policy ({metric}={candidate[metric]:.4f} unchanged)")
    if cfg.policy == "always":
        return Decision(True, f"policy always: the newest retrained model serves ({metric}={candidate[metric]:.4f} "
                              f"on its test split; champion was v{champion.version})")
    tags = champion.tags
    # newer only when both dates are known: a champion registered before they were recorded is judged strictly
    newer = cfg.policy == "newer_unless_worse" and bool(data_newest) and bool(tags.get("data_newest")) \
        and data_newest > tags["data_newest"]
    if cfg.policy != "newest_franchises" and not newer and tags.get("test_split") == fingerprint \
            and f"test.{metric}" in tags:
        return decide(metric, candidate[metric], float(tags[f"test.{metric}"]), str(champion.version))
    seen = reference_ids(client, champion.run_id)
    anime = read_table(PREPARED_ANIME, ArtifactPaths.of(params.paths).prepared_anime)
    rows, where = judging_rows(anime, cfg.policy, set(seen.get("train", [])) | set(seen.get("val", [])),
                               cfg.newest_years)
    log.info("registry: judging v%s (champion) against the candidate%s", champion.version, where)
    whole_test = cfg.policy in JUDGED_ON_TEST_ANIME and len(rows) == int((anime["split"] == "test").sum())
    try:
        champion_scores = served_scores_on(f"models:/{cfg.model_name}/{champion.version}", params, rows)
        candidate_scores = served_scores_on(candidate_uri, params, rows) if newer or not whole_test else None
    except MlflowException as err:  # the models' own answer (a bad pitch, a limit): not the tracking store's fault
        raise JudgingFailed(f"scoring champion v{champion.version} and the candidate{where} through their served "
                            f"interface failed: {redact(str(err).splitlines()[0][:300])}") from err
    if newer:
        evaluate = params.evaluate
        return newer_unless_worse(metric, rows["score"].to_numpy(dtype=float), candidate_scores, champion_scores,
                                  str(champion.version), where, evaluate.bootstrap_samples, evaluate.confidence,
                                  params.seed)
    champion_value = metrics_on_rows(params, rows, champion_scores)[metric]
    candidate_value = candidate[metric] if candidate_scores is None else metrics_on_rows(params, rows,
                                                                                         candidate_scores)[metric]
    strict = " (not trained on newer data: judged strictly)" if cfg.policy == "newer_unless_worse" else ""
    return decide(metric, candidate_value, champion_value, str(champion.version),
                  f"{where} (policy {cfg.policy}){strict}")


_STATUS = "anipop.registration"      # version tag: pending until every step of the registration is done
_KEY = "anipop.key"
_MODEL_KEY = "anipop.model_key"  # version tag: model_key (the fit and its evaluation, without the serving limits)
_LIMITS = "anipop.serving_limits"  # version tag: limits_tag, the request bounds logged into the model
_PREVIOUS = "anipop.previous_champion"  # version tag: the champion this version displaced (restored on a rollback)


def _withdraw(client, name: str, version: str, run_id: str | None = None) -> str:
    """Delete a version whose registration did not complete and end its run FAILED; say what happened."""
    if run_id:
        try:
            client.set_terminated(run_id, "FAILED")
        except Exception as err:  # noqa: BLE001 - clean-up must not hide the original error
            log.error("registry: run %s of %s v%s could not be ended FAILED (%s)", run_id, name, version, redact(err))
    try:
        client.delete_model_version(name, version)
    except Exception as err:  # noqa: BLE001 - clean-up must not hide the original error
        log.error("registry: %s v%s is registered but incomplete and could not be deleted (%s); delete it with "
                  "MlflowClient().delete_model_version(%r, %r)", name, version, redact(err), name, version)
        return f"v{version} left incomplete: delete it by hand"
    log.warning("registry: %s v%s withdrawn: its registration did not complete", name, version)
    return f"v{version} withdrawn"


def _versions(client, name: str) -> list:
    from mlflow.exceptions import MlflowException

    try:
        return list(client.search_model_versions(f"name='{name}'"))
    except MlflowException as err:
        if err.error_code in _NOT_FOUND:
            return []
        raise


def _restore_champion(client, name: str, version) -> str | None:
    """If the unfinished `version` already holds `champion`, give the alias back to the version it took it
    from (or remove it when there was none) and record that; say what was done."""
    from mlflow.exceptions import MlflowException

    try:
        holder = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None
    if str(holder.version) != str(version.version):
        return None
    previous = version.tags.get(_PREVIOUS) or None
    reason = f"v{version.version}'s registration did not complete"
    if previous:
        client.set_registered_model_alias(name, CHAMPION, previous)
        restored = client.get_model_version(name, previous)
        record_change(client, name, previous, str(version.version), restored.tags.get("as_of") or None,
                      restored.tags.get("data_newest") or None, restored.tags.get("data_hash", "unknown"),
                      f"restored: {reason}")
        log.warning("registry: %s restored to v%s (%s)", CHAMPION, previous, reason)
        return f"{CHAMPION} restored to v{previous}"
    client.delete_registered_model_alias(name, CHAMPION)
    return f"{CHAMPION} removed (there was none before v{version.version})"


def roll_back_interrupted(client, name: str, experiment_id: str) -> list[str]:
    """Under the lock, every version still pending was left by a registration that died: give `champion` back
    to the version it held before, withdraw the pending version, and end FAILED any registration run still
    RUNNING (one killed before it registered anything)."""
    outcomes = []
    for version in _versions(client, name):
        if version.tags.get(_STATUS) == "pending":
            restored = _restore_champion(client, name, version)
            outcomes += [*([restored] if restored else []), _withdraw(client, name, str(version.version), version.run_id)]
    for run in client.search_runs([experiment_id], f"tags.`anipop.registers` = '{name}' and attributes.status = 'RUNNING'"):
        client.set_terminated(run.info.run_id, "FAILED")
        outcomes.append(f"run {run.info.run_id} ended FAILED")
    return outcomes


def _result(name: str, version, metric: str, promoted: bool, reason: str, run_id: str) -> dict:
    return {"model_name": name, "version": str(version), "promoted": promoted, "reason": reason,
            "metric": metric, "run_id": run_id}


def run_register(params: Params, write_reports: bool = True) -> dict:
    """Log + register the primary model; move `champion` only on improvement. Writes registration.json and the
    model card (the register stage's outputs) unless `write_reports` is False (the replay registering the same
    evaluated model under another policy's registered model)."""
    from mlflow import MlflowClient

    cfg = params.registry
    experiment_id = use_experiment(params)
    client = MlflowClient(tracking_uri=tracking_uri(params), registry_uri=tracking_uri(params))
    fingerprint = split_fingerprint(ArtifactPaths.of(params.paths))
    model = model_key(params, fingerprint)  # hashes the saved model once: the key, the tags, the judging read it
    key = registration_key(params, model)
    with interruptible(), _tracking_errors(params, f"registering {cfg.model_name}"):
        with promotion_lock(client, cfg.model_name, cfg.lock_timeout_s, cfg.lock_stale_s):
            for outcome in roll_back_interrupted(client, cfg.model_name, experiment_id):
                print(f"{cfg.model_name}: an interrupted registration was rolled back ({outcome})")
            done = next((v for v in _versions(client, cfg.model_name)
                         if v.tags.get(_KEY) == key and v.tags.get(_STATUS) == "complete"), None)
            if done is not None:
                result = _result(cfg.model_name, done.version, cfg.promotion_metric,
                                 done.tags.get("promoted") == "True", done.tags.get("reason", ""), done.run_id)
                card = done.description or ""
                print(f"{cfg.model_name} v{done.version} already holds this model and data; nothing registered")
            else:
                log.info("registry: registering %s (key %s) in %s", cfg.model_name, key, shown_tracking_uri(params))
                result, card = _register_locked(params, client, fingerprint, key, model)
    if write_reports:
        paths = ArtifactPaths.of(params.paths)
        write_json(paths.registration, result)
        write_text(paths.model_card, card)
        # the register stage's DVC output: what was registered, the same bytes on any machine that registers this
        # model (no version number, no run id: those are the local registry's, in registration.json)
        write_json(paths.registration_key, {"model_name": cfg.model_name, "registration_key": key,
                                            "model_key": model})
    return result


@contextmanager
def _tracking_errors(params: Params, doing: str) -> Iterator[None]:
    """An MLflow failure as one TrackingUnavailable line naming the (redacted) store."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as err:
        raise TrackingUnavailable(f"MLflow tracking store {shown_tracking_uri(params)} failed while {doing}: "
                                  f"{redact(str(err).splitlines()[0][:300])}") from err


def _cv_tags(reports: Path, model_name: str) -> dict[str, str]:
    """The franchise-grouped CV means of the model (backtest stage), when CV ran: `cv.<metric>`."""
    path = reports / "cv.json"
    values = read_json(path).get(model_name) if path.exists() else None
    return {f"cv.{k}": _tag(v) for k, v in values.items()} if isinstance(values, dict) else {}


def _register_locked(params: Params, client, fingerprint: str, key: str, model: str) -> tuple[dict, str]:
    """The registration proper, under the lock: decide against the champion as it is now, register, promote."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from anipop.serving.predict import log_pitch_model

    cfg = params.registry
    paths = ArtifactPaths.of(params.paths)
    reports = paths.reports_dir
    intervals = read_json(paths.intervals)
    primary_model = PrimaryModel.read(paths)
    bundle_name = primary_model.model
    metrics = {name: entry["value"] for name, entry in intervals["models"][bundle_name].items()}
    baseline = {name: entry["value"] for name, entry in intervals["models"][BASELINE].items()}
    champion = current_champion(client, cfg.model_name, params)
    anime = read_table(PREPARED_ANIME, paths.prepared_anime)
    data_newest = anime["premiered"].dropna().astype(str).max() if anime["premiered"].notna().any() else None
    as_of = params.ingest.as_of.isoformat() if params.ingest.as_of else None

    version = None
    # the evaluation's child run of the primary model already logged it: register from that run, so the version
    # links to the run with its metrics and plots; else (an older evaluation) log the model in a run of its own
    logged = evaluation_runs(paths)
    primary = logged["children"].get(logged["primary"], {}) if logged else {}
    run = (mlflow.start_run(run_id=primary["run_id"]) if primary.get("model_uri")
           else mlflow.start_run(run_name=f"register-{bundle_name}"))
    try:
        mlflow.set_tags({"anipop.owner": process_owner(), "anipop.registers": cfg.model_name})
        model_uri = primary.get("model_uri") or log_pitch_model(
            params, read_calibration(paths, primary_model.label),  # the evaluate step sized its interval
            ship_text_graph=True).model_uri
        mlflow.log_dict({split: anime.loc[anime["split"] == split, "anime_id"].astype(int).tolist()
                         for split in ("train", "val", "test")}, REFERENCE_ARTIFACT)
        decision = _judge(params, client, champion, metrics, model_uri, fingerprint, model, data_newest)
        tags = {
            "git_commit": git_commit(), "data_hash": data_hash(params), "test_split": fingerprint,
            "model": bundle_name, "text_encoder": params.embed.text.model,
            "image_encoder": params.embed.image.model, "ablation": primary_model.input_set,
            **{f"test.{k}": _tag(v) for k, v in metrics.items()},
            **{f"baseline.{k}": _tag(v) for k, v in baseline.items()},
            **{f"baseline_length.{k}": _tag(entry['value'])
               for k, entry in intervals["models"].get(LENGTH_BASELINE, {}).items()},
            **_cv_tags(reports, bundle_name),
            **({} if decision.promote else {"challenger": decision.reason}),
            "as_of": as_of or "", "data_newest": data_newest or "", "policy": cfg.policy,
            _PREVIOUS: str(champion.version) if champion is not None and decision.promote else "",
            _STATUS: "pending", _KEY: key, _MODEL_KEY: model, _LIMITS: limits_tag(params),
        }
        version = str(mlflow.register_model(model_uri, cfg.model_name,
                                            tags={k: str(v) for k, v in tags.items()}).version)
        card = render_model_card(params, version, intervals, bundle_name, decision.reason)
        mlflow.log_text(card, "model_card.md")
        client.update_model_version(cfg.model_name, version, description=card)
        mlflow.set_tags({"registered_version": version, "promoted": str(decision.promote)})
        if decision.promote:
            client.set_registered_model_alias(cfg.model_name, CHAMPION, version)
            record_change(client, cfg.model_name, version, None if champion is None else str(champion.version),
                          as_of, data_newest, tags["data_hash"], decision.reason)
        for tag, value in (("promoted", str(decision.promote)), ("reason", decision.reason[:5000]),
                           (_STATUS, "complete")):  # the status goes last: only now is the version whole
            client.set_model_version_tag(cfg.model_name, version, tag, value)
    except BaseException as err:
        outcome = "nothing registered"
        if version:
            try:
                restored = _restore_champion(client, cfg.model_name, client.get_model_version(cfg.model_name, version))
            except Exception as cleanup:  # noqa: BLE001 - clean-up must not hide the original error
                restored = None
                log.error("registry: could not check %s of %s (%s)", CHAMPION, cfg.model_name, redact(cleanup))
            outcome = "; ".join(filter(None, [restored, _withdraw(client, cfg.model_name, version, run.info.run_id)]))
        mlflow.end_run("FAILED")
        if isinstance(err, MlflowException):
            raise TrackingUnavailable(f"MLflow tracking store {shown_tracking_uri(params)} failed while registering "
                                      f"{cfg.model_name} v{version} ({outcome}): "
                                      f"{redact(str(err).splitlines()[0][:300])}") from err
        log.error("registry: registration of %s failed (%s): %s", cfg.model_name, outcome, redact(err))
        raise
    mlflow.end_run()
    status = "is now champion" if decision.promote else "stays challenger"
    print(f"{cfg.model_name} v{version} {status}: {decision.reason}")
    return _result(cfg.model_name, version, cfg.promotion_metric, decision.promote, decision.reason,
                   run.info.run_id), card
