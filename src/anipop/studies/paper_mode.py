"""Paper-faithful mode: the authors' setup on our data, with each of their flaws a switch (`anipop paper-mode`).

The setup (../shared/PAPER.md): synopsis text at 128 tokens, the authors' head (paper_head.PaperHead) trained
with their settings (AdamW 5e-5, eps 1e-8, batch 16 in dataset order, 5 epochs, linear schedule, clip 1.0, MSE),
trained on the train split, scored on the test split. The encoder is frozen here (fine-tuning it is finetune.py,
far too slow on CPU for five variants); it is the embed profile's text model unless paper_mode.encoder names one.

The flaws, each switched in params.paper_mode.flaws:
- per_split_scaling: labels min-max scaled on each split with that split's own min and max (off: train's);
- select_on_test: the "validation" after each epoch is the test split and its best epoch is kept (off: val's);
- first_token_left_padding: the pooled vector is position 0 under left padding, mostly a pad token's state
  (off: the mean over real tokens, right padding).
With paper_mode.ablate the run also drops each flaw in turn and all of them, so the table shows what each moves.

Why MiniLM understates the pooling flaw: it attends both ways, so position 0 (a pad query) still sees the whole
text; under GPT-2's causal attention the authors' position 0 saw only itself. Position ids here count from each
text's first real token (one forward pass serves both poolings); the authors' GPT-2 numbered the pads first.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from anipop.core.artifacts import ArtifactPaths, MinMaxScaler
from anipop.core.config import EmbedParams, PaperModeParams, Paths
from anipop.core.metrics import METRIC_NAMES, point_metrics
from anipop.core.utils import atomic_path, configure_torch, write_json, write_text
from anipop.data.schema import PREPARED_ANIME, read_table

log = logging.getLogger(__name__)

FLAWS = ("per_split_scaling", "select_on_test", "first_token_left_padding")
SPLITS = ("train", "val", "test")
FIRST_LEFT, MEAN = "first_left", "mean"


def pool_hidden(hidden, mask, pooling: str):
    """first_left: position 0 whatever it holds (the authors' pooling); mean: the mean over real tokens."""
    if pooling == FIRST_LEFT:
        return hidden[:, 0, :]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


def encode_texts(encoder, texts: list[str], batch_size: int) -> dict[str, np.ndarray]:
    """Both poolings from one frozen forward pass, in dataset order, batch by batch like the authors' loader.

    Left padding, so the batch's longest text decides how many pad tokens precede each shorter one and position
    0 is a pad token for all the others (first_left). Position ids count from each text's first real token,
    so the mean over real tokens is what right padding gives (one pass serves both: encoding is the slow part).
    """
    import torch

    tokenizer = encoder.tokenizer
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    blocks: dict[str, list[np.ndarray]] = {FIRST_LEFT: [], MEAN: []}
    try:
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True,
                                  max_length=encoder.max_length, return_tensors="pt").to(encoder.device)
                mask = batch["attention_mask"]
                positions = (mask.long().cumsum(dim=1) - 1).clamp(min=0)
                hidden = encoder.model(input_ids=batch["input_ids"], attention_mask=mask,
                                       position_ids=positions).last_hidden_state.float()
                for pooling in blocks:
                    blocks[pooling].append(pool_hidden(hidden, mask, pooling).cpu().numpy())
    finally:
        tokenizer.padding_side = side
    return {pooling: np.vstack(parts).astype(np.float32) if parts else np.zeros((0, encoder.dim), np.float32)
            for pooling, parts in blocks.items()}


def cached_vectors(encoder, ids: list[int], texts: list[str], batch_size: int, cache_dir: Path) -> dict:
    """encode_texts, stored once per (encoder, batch size, ids and texts): reruns only refit heads."""
    digest = hashlib.sha256(json.dumps([encoder.namespace, batch_size, ids, texts]).encode()).hexdigest()
    path = Path(cache_dir) / f"{digest[:32]}.npz"
    if path.exists():
        with np.load(path) as stored:
            return {pooling: stored[pooling] for pooling in stored.files}
    vectors = encode_texts(encoder, texts, batch_size)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **vectors)
    return vectors


def variants(flaws: dict[str, bool], ablate: bool) -> list[tuple[str, frozenset[str]]]:
    """(label, flaws on): the configured profile, then (ablate) each of its flaws off in turn, then none."""
    base = frozenset(name for name in FLAWS if flaws.get(name))
    rows = [("paper-faithful" if base else "no flaws", base)]
    if ablate:
        rows += [(f"without {name}", base - {name}) for name in FLAWS if name in base]
        if len(base) > 1:
            rows.append(("no flaws", frozenset()))
    return rows


def split_targets(rows: dict[str, pd.DataFrame], per_split: bool) -> tuple[dict[str, np.ndarray], float]:
    """Normalised scores per split: all with train's min/max, or (the flaw) each split with its own.

    Returns the targets and the test split's 1-10 range (what RMSE on the 1-10 scale is converted with).
    """
    train_scaler = MinMaxScaler.fit(rows["train"]["score"])
    targets, test_range = {}, train_scaler.high - train_scaler.low
    for split, part in rows.items():
        scaler = MinMaxScaler.fit(part["score"]) if per_split and split != "train" and len(part) > 1 else train_scaler
        targets[split] = scaler.transform(part["score"].to_numpy(dtype=np.float64))
        if split == "test":
            test_range = scaler.high - scaler.low
    return targets, test_range


def run_variant(on: frozenset[str], rows: dict[str, pd.DataFrame], vectors: dict[str, dict[str, np.ndarray]],
                cfg: PaperModeParams, seed: int) -> dict:
    """Fit the head under one set of flaws; test metrics of it and of the train mean, and the chosen epoch."""
    from anipop.modeling.paper_head import fit_paper_head  # torch: not imported when the study is off

    x = vectors[FIRST_LEFT if "first_token_left_padding" in on else MEAN]
    y, test_range = split_targets(rows, "per_split_scaling" in on)
    select = "test" if "select_on_test" in on else "val"
    model, history = fit_paper_head(x["train"], y["train"], x["train"].shape[1], cfg.head, seed,
                                    monitor={"val": (x["val"], y["val"]), "test": (x["test"], y["test"])},
                                    select_on=select)
    predicted = model.predict(x["test"])
    mean = np.full(len(y["test"]), float(np.mean(y["train"])))
    return {"flaws": sorted(on), "selected_on": select, "best_epoch": history["best_epoch"],
            "history": history, "metrics": point_metrics(y["test"], predicted, test_range),
            "train_mean": point_metrics(y["test"], mean, test_range)}


def _table(results: list[dict]) -> str:
    shown = ("r2", "pearson", "spearman", "mse")
    lines = ["| variant | flaws on | epoch kept | " + " | ".join(shown) + " | train-mean R² |",
             "|---|---|---|" + "---|" * (len(shown) + 1)]
    for row in results:
        cells = " | ".join(f"{row['metrics'][m]:.4f}" for m in shown)
        flaws = ", ".join(row["flaws"]) or "none"
        lines.append(f"| {row['label']} | {flaws} | {row['best_epoch']} ({row['selected_on']}) | {cells} | "
                     f"{row['train_mean']['r2']:.4f} |")
    return "\n".join(lines) + "\n"


def run_paper_mode(paper_mode: PaperModeParams, embed: EmbedParams, seed: int, paths: Paths) -> dict:
    """Encode the synopses (cached), fit every variant, write reports/paper_mode.json and paper_mode.md."""
    cfg, cache_dir, files = paper_mode, Path(paths.embedding_cache_dir).parent / "paper_mode", ArtifactPaths.of(paths)
    if not cfg.enabled:  # the stage still writes its outputs, so `dvc repro` has them and stays a no-op
        note = ("Paper-faithful mode is off (paper_mode.enabled: false). Run it with "
                "`dvc exp run -S paper_mode.enabled=true` (about 15 minutes on 2 cores the first time).\n")
        write_json(files.paper_mode_metrics, {"enabled": False})
        write_text(files.paper_mode_table, note)
        return {"enabled": False}
    from anipop.encoders.text import choose_device, choose_dtype, load_text_encoder  # torch: only when on

    anime = read_table(PREPARED_ANIME, files.prepared_anime)
    rows = {split: anime[anime["split"] == split].reset_index(drop=True) for split in SPLITS}
    for split in ("train", "test"):
        if len(rows[split]) < 2:
            raise ValueError(f"paper-mode: the {split} split has {len(rows[split])} anime; it needs at least 2")
    if rows["val"].empty:
        rows["val"] = rows["train"]  # as fit_network does: no val rows, the train loss is watched
    runs = variants(cfg.flaws.model_dump(), cfg.ablate)
    device = choose_device(embed.device)
    name = cfg.encoder or embed.text.model
    encoder = load_text_encoder(name, device, choose_dtype(embed.dtype, device), max_length=cfg.max_length,
                                threads=embed.cpu_threads)  # eager torch: the forward takes position ids
    per_split = {split: cached_vectors(encoder, part["anime_id"].astype(int).tolist(),
                                       part["synopsis"].astype(str).tolist(), cfg.head.batch_size, cache_dir)
                 for split, part in rows.items()}
    vectors = {pooling: {split: found[pooling] for split, found in per_split.items()} for pooling in (FIRST_LEFT, MEAN)}
    configure_torch(seed, cfg.head.threads)
    results = []
    for label, on in runs:
        result = {"label": label, **run_variant(on, rows, vectors, cfg, seed)}
        log.info("paper-mode: %s: R2 %.4f, Spearman %.4f", label, result["metrics"]["r2"],
                 result["metrics"]["spearman"])
        results.append(result)
    report = {"encoder": name, "max_length": cfg.max_length, "rows": {s: len(p) for s, p in rows.items()},
              "head": cfg.head.model_dump(mode="json"), "variants": results}
    write_json(files.paper_mode_metrics, report)
    text = (f"# Paper-faithful mode: the authors' setup on our data, each flaw a switch\n\n"
            f"Encoder {name} (frozen), synopsis at {cfg.max_length} tokens, the authors' head and training settings; "
            f"trained on {len(rows['train'])} anime, scored on the {len(rows['test'])} test anime. Metrics on the "
            f"normalised score as each variant scales it; every metric ({', '.join(METRIC_NAMES)}) is in "
            f"paper_mode.json.\n\n{_table(results)}")
    write_text(files.paper_mode_table, text)
    print(text)
    return report
