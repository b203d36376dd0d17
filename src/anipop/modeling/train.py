"""The train step: every configured model on every requested input set, each saved as one bundle.

The primary model (train.model on train.inputs) is also saved as models_dir/model.joblib, the file that
predict and the MLflow pyfunc load. A bundle is an anipop.core.artifacts.ModelBundle: name, model (with .predict ->
scores in [0, 1]), inputs (kinds in feature order), input_set, input_type, train_mean, aggregation, a version.
Input sets whose modalities the data lacks are skipped with a logged notice; one that resolves to the same
kinds as an earlier set reuses that fit instead of training the same model twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

from anipop.core.artifacts import ArtifactPaths, ModelBundle, PrimaryModel, save_bundle
from anipop.core.config import NetworkParams, NetworkShape, Params
from anipop.core.input_kinds import EMBEDDINGS_INPUT, PITCH_INPUT, PITCH_METADATA_KINDS, RAW_INPUT, TEXT_KIND
from anipop.core.model_catalog import BASELINES, FINETUNE, NETWORK_SHAPES, spec_of
from anipop.core.utils import (
    configure_torch,
    map_in_processes,
    read_json,
    seed_everything,
    worker_count,
    write_json,
)
from anipop.data.schema import PREPARED_ANIME, PREPARED_CHARACTERS, read_table
from anipop.modeling.features import (
    INPUT_SETS,
    available_kinds,
    input_set_kinds,
    model_inputs,
    pitch_kinds_available,
    raw_kinds_available,
)
from anipop.modeling.modality import (
    PresenceNeutral,
    PresenceNeutralModel,
    kind_dims,
    maskable_slices,
    modality_dropout,
)
from anipop.modeling.models import RidgeRegressor, TfidfPixelBenchmark, baseline_model

log = logging.getLogger(__name__)

ABLATION_GRID = "all"  # `anipop train --ablation all`: every input set of the paper's ablation table


def input_sets_to_train(params: Params, ablation: str | None = None) -> list[str]:
    """The main input set first, then the ablation sets (params, or the CLI's --ablation override)."""
    if ablation is None:
        extra = list(params.train.ablations)
    elif ablation == ABLATION_GRID:
        extra = list(INPUT_SETS)
    elif ablation in INPUT_SETS:
        extra = [ablation]
    else:
        raise ValueError(f"--ablation {ablation!r}: expected {ABLATION_GRID!r} or one of {sorted(INPUT_SETS)}")
    return list(dict.fromkeys([params.train.inputs, *extra]))


def fit_network(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
                shape: NetworkShape, cfg: NetworkParams, seed: int, maskable: list[slice] | None = None,
                modality_dropout_rate: float = 0.0):
    """MSE + AdamW + cosine-annealed learning rate; early stopping on validation loss, best weights kept.

    Returns (NetworkRegressor, history) where history holds per-epoch mean train loss and validation loss.
    Without validation rows the train loss is monitored instead (logged), so the step still runs.
    `maskable` column slices (character modalities) are hidden per row with `modality_dropout_rate` in each
    training batch (anipop.modeling.modality), so the network learns to score pitches without characters too.
    """
    import torch

    from anipop.modeling.models import NetworkRegressor
    from anipop.modeling.score_network import ScoreNetwork

    configure_torch(seed, cfg.threads)
    mean = train_x.mean(axis=0) if cfg.standardize else np.zeros(train_x.shape[1], dtype=np.float32)
    scale = train_x.std(axis=0) if cfg.standardize else np.ones(train_x.shape[1], dtype=np.float32)
    scale = np.where(scale < 1e-6, 1.0, scale)
    xs = torch.from_numpy(((train_x - mean) / scale).astype(np.float32))
    ys = torch.from_numpy(train_y.astype(np.float32))
    monitor_val = len(val_x) > 0
    if not monitor_val:
        log.info("train: the validation split is empty; early stopping watches the train loss instead")
    vx = torch.from_numpy(((val_x - mean) / scale).astype(np.float32)) if monitor_val else xs
    vy = torch.from_numpy(val_y.astype(np.float32)) if monitor_val else ys

    network = ScoreNetwork(train_x.shape[1], shape.hidden, shape.dropout)
    optimiser = torch.optim.AdamW(network.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=cfg.max_epochs)
    loss_fn = torch.nn.MSELoss()
    shuffler = torch.Generator().manual_seed(seed)
    hider = torch.Generator().manual_seed(seed + 1)  # its own stream: the rate does not change the batch order
    missing_row = torch.from_numpy(((np.zeros(train_x.shape[1]) - mean) / scale).astype(np.float32))
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": []}
    best_loss, best_state, best_epoch, stale = float("inf"), None, 0, 0
    for epoch in range(1, cfg.max_epochs + 1):
        network.train()
        order = torch.randperm(len(xs), generator=shuffler)
        total = 0.0
        for start in range(0, len(order), cfg.batch_size):
            batch = order[start:start + cfg.batch_size]
            optimiser.zero_grad()
            inputs = modality_dropout(xs[batch], missing_row, maskable or [], modality_dropout_rate, hider)
            loss = loss_fn(network(inputs), ys[batch])
            loss.backward()
            optimiser.step()
            total += loss.detach().item() * len(batch)
        schedule.step()
        network.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(network(vx), vy))
        history["train_loss"].append(round(total / len(xs), 8))
        history["val_loss"].append(round(val_loss, 8))
        if val_loss < best_loss:
            best_loss, best_epoch, stale = val_loss, epoch, 0
            best_state = {name: tensor.clone() for name, tensor in network.state_dict().items()}
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    network.load_state_dict(best_state)
    model = NetworkRegressor.from_module(network, train_x.shape[1], shape.hidden, shape.dropout, mean, scale)
    return model, {**history, "best_epoch": best_epoch, "epochs_run": len(history["train_loss"])}


BASELINE_KINDS = [TEXT_KIND]  # the synopsis-only models (the baselines, finetune) read it whatever the input set


def input_type_of(name: str) -> str:
    """'raw' for the benchmark and the baselines, 'pitch' for synopsis + metadata models, 'embeddings' else."""
    return spec_of(name).input_type


def model_kinds(name: str, resolved: dict[str, list[str]]) -> list[str]:
    """The kinds model `name` is fed, from resolve_kinds' answer (the baselines always read the synopsis)."""
    return BASELINE_KINDS if spec_of(name).synopsis_only else resolved[input_type_of(name)]


class TrainingData:
    """The rows a fit sees (train, and val for early stopping), their targets, and inputs built once.

    The train step builds it from the prepared split; cross-validation and the temporal backtest build it from
    their own rows, so every model is fitted by the same code whatever the split.
    """

    def __init__(self, params: Params, anime: pd.DataFrame, characters: pd.DataFrame,
                 rows: dict[str, pd.DataFrame], targets: dict[str, np.ndarray]) -> None:
        if rows["train"].empty:
            raise ValueError("the train rows are empty; check prepare.split")
        self.params, self.anime, self.characters, self.rows, self.target = params, anime, characters, rows, targets
        self._inputs: dict[tuple, object] = {}
        self.pitch_fits: dict[tuple, object] = {}  # (pitch model, kinds) -> its fit on these rows (_fit_pitch)

    @classmethod
    def from_prepared(cls, params: Params) -> "TrainingData":
        paths = ArtifactPaths.of(params.paths)
        anime = read_table(PREPARED_ANIME, paths.prepared_anime)
        if anime[anime["split"] == "train"].empty:
            raise ValueError(f"{paths.prepared_anime}: the train split is empty; check prepare.split")
        characters = read_table(PREPARED_CHARACTERS, paths.prepared_characters)
        rows = {split: anime[anime["split"] == split] for split in ("train", "val")}
        targets = {split: part["score_norm"].to_numpy(dtype=np.float64) for split, part in rows.items()}
        return cls(params, anime, characters, rows, targets)

    def inputs_for(self, anime_ids, input_type: str, kinds: list[str]):
        """Model inputs of any anime ids (the test rows of a fold too), by features.model_inputs."""
        cfg, paths = self.params.train, self.params.paths
        return model_inputs(input_type, kinds, anime_ids, self.anime, self.characters, paths.embeddings_dir,
                            paths.raw_dir, cfg.aggregation, cfg.benchmark.image_size)

    def pooled_inputs(self, splits: tuple[str, ...], input_type: str, kinds: list[str]):
        """The inputs of several splits' rows together, in split order (one split: `inputs`)."""
        if len(splits) == 1:
            return self.inputs(splits[0], input_type, kinds)
        key = (splits, input_type, tuple(kinds))
        if key not in self._inputs:
            ids = pd.concat([self.rows[s]["anime_id"] for s in splits])
            self._inputs[key] = self.inputs_for(ids, input_type, kinds)
        return self._inputs[key]

    def inputs(self, split: str, input_type: str, kinds: list[str]):
        key = (split, input_type, tuple(kinds))
        if key not in self._inputs:
            self._inputs[key] = self.inputs_for(self.rows[split]["anime_id"], input_type, kinds)
        return self._inputs[key]


def _fit_baseline(name: str, kinds: list[str], data: TrainingData) -> tuple[object, dict]:
    return baseline_model(name).fit(data.inputs("train", RAW_INPUT, kinds), data.target["train"]), {}


def _fit_benchmark(name: str, kinds: list[str], data: TrainingData) -> tuple[object, dict]:
    cfg = data.params.train.benchmark
    model = TfidfPixelBenchmark(kinds, cfg.max_features, cfg.alpha, data.params.seed)
    return model.fit(data.inputs("train", RAW_INPUT, kinds), data.target["train"]), {}


def _fit_finetune(name: str, kinds: list[str], data: TrainingData) -> tuple[object, dict]:
    from anipop.modeling.finetune import fit_finetune  # torch: imported only where a network is fitted

    return fit_finetune(data.inputs("train", RAW_INPUT, kinds)["synopsis"], data.target["train"],
                        data.inputs("val", RAW_INPUT, kinds)["synopsis"], data.target["val"],
                        data.params.train.finetune, data.params.embed.text.model, data.params.seed)


def _fit_pitch(name: str, kinds: list[str], data: TrainingData) -> tuple[object, dict]:
    """A pitch model; pitch_stack is blended from meta_ridge's and pitch_gbm's fits on the same rows and kinds
    (fitted here if not yet), so train, each CV fold and the temporal backtest fit each part once."""
    from anipop.modeling.pitch import MetaRidge, PitchGBM, PitchStack, new_pitch_model

    splits = ("train", "val") if data.params.train.pitch.fit_rows == "train_val" and not data.rows["val"].empty \
        else ("train",)

    def fitted(part: str):
        key = (part, tuple(kinds))
        if key not in data.pitch_fits:
            data.pitch_fits[key] = new_pitch_model(part, kinds, data.params.train.pitch, data.params.seed).fit(
                data.pooled_inputs(splits, PITCH_INPUT, kinds), np.concatenate([data.target[s] for s in splits]))
        return data.pitch_fits[key]

    model = PitchStack.of(fitted(MetaRidge.name), fitted(PitchGBM.name)) if name == PitchStack.name else fitted(name)
    return model, {}


EmbeddingFit = Callable[[str, list[str], TrainingData, np.ndarray, "PresenceNeutral | None", list[slice]],
                        tuple[object, dict]]


def _on_embeddings(fit: EmbeddingFit):
    """A fitter over embedding rows: the features (presence-neutralised when configured) built once here."""
    def fitter(name: str, kinds: list[str], data: TrainingData) -> tuple[object, dict]:
        cfg = data.params.train
        features = data.inputs("train", EMBEDDINGS_INPUT, kinds)
        details: dict = {"feature_dim": int(features.shape[1])}
        maskable = maskable_slices(kinds, kind_dims(data.params.paths.embeddings_dir, kinds))
        neutral = PresenceNeutral(maskable).fit(features) if cfg.character_presence == "neutral" and maskable else None
        if neutral is not None:  # the presence of characters must not move a score (anipop.modeling.modality)
            features = neutral.transform(features)
        model, extra = fit(name, kinds, data, features, neutral, maskable)
        return (model if neutral is None else PresenceNeutralModel(model, neutral)), {**details, **extra}

    return fitter


def _val_rows(kinds: list[str], data: TrainingData, neutral) -> np.ndarray:
    val_x = data.inputs("val", EMBEDDINGS_INPUT, kinds)
    return val_x if neutral is None else neutral.transform(val_x)


@_on_embeddings
def _fit_ridge(name, kinds, data, features, neutral, maskable) -> tuple[object, dict]:
    return RidgeRegressor(data.params.train.ridge_alpha, data.params.seed).fit(features, data.target["train"]), {}


@_on_embeddings
def _fit_paper_head(name, kinds, data, features, neutral, maskable) -> tuple[object, dict]:
    from anipop.modeling.paper_head import fit_paper_head  # torch, as above

    synopsis_dim = data.inputs("train", EMBEDDINGS_INPUT, ["synopsis"]).shape[1] if "synopsis" in kinds else 0
    val = (_val_rows(kinds, data, neutral), data.target["val"])
    monitor = {"val": val if len(val[1]) else (features, data.target["train"])}  # as fit_network does
    model, history = fit_paper_head(features, data.target["train"], synopsis_dim, data.params.train.paper_head,
                                    data.params.seed, monitor=monitor)
    return model, {"history": history}


@_on_embeddings
def _fit_network(name, kinds, data, features, neutral, maskable) -> tuple[object, dict]:
    cfg = data.params.train
    shape = getattr(cfg.network, NETWORK_SHAPES[name])
    model, history = fit_network(features, data.target["train"], _val_rows(kinds, data, neutral), data.target["val"],
                                 shape, cfg.network, data.params.seed, maskable, cfg.modality_dropout)
    return model, {"history": history}


# model_catalog.ModelSpec.fitter -> the function that fits such a model on the train rows (val watched)
FITTERS: dict[str, Callable[[str, list[str], TrainingData], tuple[object, dict]]] = {
    "baseline": _fit_baseline, "benchmark": _fit_benchmark, "finetune": _fit_finetune, "pitch": _fit_pitch,
    "ridge": _fit_ridge, "paper_head": _fit_paper_head, "network": _fit_network,
}


def fit_model(name: str, kinds: list[str], data: TrainingData) -> tuple[object, dict]:
    """Fit one model on the train rows (the network also watches val); return (model, fit details)."""
    return FITTERS[spec_of(name).fitter](name, kinds, data)


def resolve_kinds(input_set: str, data: TrainingData) -> dict[str, list[str]]:
    """The kinds of an input set the data has, per input type (embeddings on disk, raw prepared tables)."""
    wanted = input_set_kinds(input_set)
    embedded = [k for k in wanted if k not in PITCH_METADATA_KINDS]  # metadata is never embedded
    return {EMBEDDINGS_INPUT: available_kinds(data.params.paths.embeddings_dir, embedded),
            RAW_INPUT: raw_kinds_available(data.characters, embedded),
            PITCH_INPUT: pitch_kinds_available(data.anime, wanted, data.params.train.pitch.metadata_fields,
                                               data.params.paths.embeddings_dir,
                                               data.params.train.pitch.character_feature)}


def reads_input_set(name: str, input_set: str) -> bool:
    """Whether model `name` can read any kind of `input_set`: the pitch models read the synopsis and the metadata,
    the others every kind but the metadata (a metadata-only set is theirs to skip silently, and vice versa)."""
    kinds, spec = set(input_set_kinds(input_set)), spec_of(name)
    if spec.baseline:
        return True
    if spec.input_type == PITCH_INPUT:
        return bool(kinds & {TEXT_KIND, *PITCH_METADATA_KINDS})
    return bool(kinds - set(PITCH_METADATA_KINDS))


def models_for(params: Params, input_set: str) -> list[str]:
    """The configured models, and on the main input set the baselines too."""
    return [*params.train.models, *(BASELINES if input_set == params.train.inputs else ())]


def backtest_models(params: Params, input_set: str) -> list[str]:
    """models_for, less finetune unless train.finetune.backtest: refitting an encoder per fold is hours on CPU."""
    names = models_for(params, input_set)
    if FINETUNE in names and not params.train.finetune.backtest:
        log.info("backtest: finetune is trained and tested by train/evaluate only (train.finetune.backtest: false)")
        names.remove(FINETUNE)
    return names


def planned_runs(params: Params, data: TrainingData,
                 input_sets: list[str]) -> Iterator[tuple[str, str, tuple[str, ...]]]:
    """(input_set, model, kinds) for every model run_train trains, in its order; kinds is empty when the data
    has none of the set's inputs. A model that cannot read the set at all (ridge on studios alone) is left
    out by design, not for want of data. One walk feeds both the fit plan and run_train's save loop."""
    for input_set in input_sets:
        resolved = resolve_kinds(input_set, data)
        for name in models_for(params, input_set):
            if reads_input_set(name, input_set):
                yield input_set, name, tuple(model_kinds(name, resolved))


def planned_fits(params: Params, data: TrainingData, input_sets: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    """Every distinct (model, kinds) fit that run_train asks for, in its order (an input set that resolves
    to the same kinds as an earlier one reuses that fit)."""
    keys = {(name, kinds): None for _, name, kinds in planned_runs(params, data, input_sets) if kinds}
    return list(keys)


FIT_COST = {"network": 3, "paper_head": 3, "finetune": 3, "pitch": 2, "benchmark": 1}  # rough: longest first


def fit_all(params: Params, data: TrainingData, keys: list[tuple[str, tuple[str, ...]]]) -> dict:
    """(model, kinds) -> (model, details, seconds) for every key, on train.workers processes.

    Why processes: the fits are independent and deterministic (each seeds itself; torch on train.network.threads),
    so fitting them side by side on the machine's cores gives the same models in less wall time. The pitch
    models of one kinds tuple stay in one task, so pitch_stack reuses its parts' fits (_fit_pitch).
    """
    groups: dict[tuple, list[tuple[str, tuple[str, ...]]]] = {}
    for name, kinds in keys:
        group = ("pitch", kinds) if spec_of(name).fitter == "pitch" else (name, kinds)
        groups.setdefault(group, []).append((name, kinds))
    tasks = sorted(groups.values(), key=lambda group: -FIT_COST.get(spec_of(group[0][0]).fitter, 0))
    workers = worker_count(params.train.workers, len(tasks))
    log.info("train: fitting %d models on %d worker process(es)", len(keys), workers)  # all fits, then all saves
    if workers <= 1:
        done = [_fit_group(params, task, data) for task in tasks]
    else:
        done = map_in_processes(_fit_group, [(params, task) for task in tasks], workers)
    by_key = {key: result for task, results in zip(tasks, done, strict=True)
              for key, result in zip(task, results, strict=True)}
    return {key: by_key[key] for key in keys}


_PROCESS_DATA: dict[str, TrainingData] = {}  # a worker process reads the prepared split once


def _fit_group(params: Params, group: list[tuple[str, tuple[str, ...]]],
               data: TrainingData | None = None) -> list[tuple[object, dict, float]]:
    if data is None:
        if "data" not in _PROCESS_DATA:
            seed_everything(params.seed)
            _PROCESS_DATA["data"] = TrainingData.from_prepared(params)
        data = _PROCESS_DATA["data"]
    results = []
    for name, kinds in group:
        started = time.perf_counter()
        model, details = fit_model(name, list(kinds), data)
        results.append((model, details, time.perf_counter() - started))
    return results


def run_train(params: Params, ablation: str | None = None) -> dict:
    """Fit every configured model on every input set; write the bundles and train_report.json."""
    seed_everything(params.seed)
    cfg = params.train
    input_sets = input_sets_to_train(params, ablation)  # a bad --ablation fails before any data is read
    data = TrainingData.from_prepared(params)
    paths = ArtifactPaths.of(params.paths)
    models_dir = paths.models_dir
    manifest_path = paths.embeddings_manifest
    encoders = read_json(manifest_path) if manifest_path.exists() else {}
    train_mean = float(data.target["train"].mean())
    runs, skipped, fitted = [], [], {}
    fit_seconds = 0.0
    fits = fit_all(params, data, planned_fits(params, data, input_sets))
    for input_set, name, key_kinds in planned_runs(params, data, input_sets):
        if not key_kinds:
            note = f"{name} on {input_set}: the data has none of {list(input_set_kinds(input_set))}; skipped"
            log.info("train: %s", note)
            skipped.append({"model": name, "input_set": input_set, "reason": note})
            continue
        key, kinds = (name, key_kinds), list(key_kinds)
        run = {"model": name, "input_set": input_set, "kinds": kinds, "input_type": input_type_of(name),
               "path": f"{input_set}/{name}.joblib"}
        if key in fitted:
            model, details, first_set = fitted[key]
            run["reused_from"] = first_set
            log.info("train: %s on %s has the same inputs as on %s (%s); reusing that fit",
                     name, input_set, first_set, "+".join(kinds))
        else:
            model, details, seconds = fits[key]  # seconds: logged, never written (outputs change only with the fit)
            fit_seconds += seconds
            fitted[key] = (model, details, input_set)
            log.info("train: %s on %s (%s): %.1fs", name, input_set, "+".join(kinds), seconds)
        run.update(details)
        bundle = ModelBundle(name=name, model=model, inputs=kinds, input_set=input_set,
                             input_type=run["input_type"], train_mean=train_mean, aggregation=cfg.aggregation,
                             image_size=cfg.benchmark.image_size, feature_dim=details.get("feature_dim"),
                             encoders=encoders)
        save_bundle(bundle, models_dir / run["path"])
        if name == cfg.model and input_set == cfg.inputs:  # the primary: also the file predict loads (with its
            save_bundle(bundle, paths.primary_bundle)          # track-record table beside it)
        runs.append(run)
    primary = next((r for r in runs if r["model"] == cfg.model and r["input_set"] == cfg.inputs), None)
    if primary is None:
        raise ValueError(f"train: the primary model {cfg.model} could not be trained on {cfg.inputs}: "
                         f"the data has none of {list(input_set_kinds(cfg.inputs))}")
    report = {**PrimaryModel(cfg.model, cfg.inputs).to_dict(), "inputs": primary["kinds"],
              "feature_dim": primary.get("feature_dim"), "train_rows": len(data.rows["train"]),
              "val_rows": len(data.rows["val"]), "train_mean_score_norm": train_mean, "runs": runs,
              "skipped": skipped}
    write_json(paths.train_report, report)
    log.info("train: %d fits, %d runs, %d skipped, %.1fs in all", len(fitted), len(runs), len(skipped),
             fit_seconds)
    return report

