"""Fine-tuning on a GPU: the finetune model scored like every other model, and GPT-2-size training throughput.

    python benchmarks/finetune_gpu.py --model PATH --out reports/finetune.json [--epochs 5] [--smoke]

Scores: `finetune` (the text encoder trained end to end with the authors' head, anipop.modeling.finetune) on the same
franchise-grouped CV folds, temporal backtest and test split as the pipeline's backtest and evaluate, through
anipop.evaluation.backtest's own functions (run_crossval, run_temporal, fit_and_predict), next to the baselines (train mean,
synopsis length) fitted on the same rows. It is what `dvc exp run -S train.finetune.backtest=true ...` computes;
this script exists because the GPU machines here have torch and transformers but not the rest of the stack
(DVC, MLflow), and a CPU epoch takes about 28 minutes (benchmarks/finetune_cpu.py).

Throughput: GPT-2-size causal models (124M and 355M parameters, GPT-2 small's and medium's shapes) trained with
the same code (last-token pooling, left padding, bf16 autocast): rows/s of the second epoch and peak memory.
Their weights are randomly initialised when the hub cannot be reached: speed does not depend on the values.

--model: the text encoder to fine-tune (a save_pretrained folder or a name anipop resolves); default the embed
profile's. --smoke: a few hundred rows and one epoch, to check the script on a CPU before spending GPU time.
Results are written after every part, so a run stopped at its time limit keeps what it finished.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CAUSAL_SHAPES = {"gpt2-124M": (12, 768, 12), "gpt2-medium-355M": (24, 1024, 16)}  # layers, width, heads


def _params(model: str | None, epochs: int, device: str, max_length: int):
    from anipop.core.config import load_params

    params = load_params(REPO / "params.yaml")
    finetune = params.train.finetune.model_copy(update={
        "model": model or params.train.finetune.model, "epochs": epochs, "device": device,
        "max_length": max_length, "backtest": True, "max_train_rows": None})
    train = params.train.model_copy(update={"models": ("finetune",), "model": "finetune", "inputs": "synopsis",
                                            "finetune": finetune})
    return params.model_copy(update={"train": train})


def _tables(params, smoke: bool):
    from anipop.data.schema import PREPARED_ANIME, PREPARED_CHARACTERS, read_table

    prepared = REPO / params.paths.prepared_dir
    anime = read_table(PREPARED_ANIME, prepared / "anime.parquet")
    characters = read_table(PREPARED_CHARACTERS, prepared / "characters.parquet")
    return (anime.sample(300, random_state=0) if smoke else anime), characters


def score(params, smoke: bool, part: str) -> dict:
    """finetune and the baselines on grouped CV (part cv), the temporal backtest (temporal) or the test split."""
    from anipop.core.metrics import point_metrics
    from anipop.evaluation.backtest import fit_and_predict, run_crossval, run_temporal

    anime, characters = _tables(params, smoke)
    if part == "cv":
        cv = run_crossval(params, anime, characters)
        return {"input_set": "synopsis", "cv": cv["models"], "cv_per_fold": cv["per_fold"], "cv_folds": cv["folds"],
                "paired": cv["paired"]}
    if part == "temporal":
        temporal = run_temporal(params, anime, characters)
        return {"temporal": temporal.get("models", {}), "temporal_counts": temporal.get("counts", {})}
    rows = {split: anime[anime["split"] == split] for split in ("train", "val")}
    test_rows = anime[anime["split"] == "test"]
    y_true, predictions, score_range = fit_and_predict(params, anime, characters, rows, test_rows)
    return {"test": {name: point_metrics(y_true, predicted, score_range) for name, predicted in predictions.items()},
            "test_rows": len(test_rows)}


def nan_check(params, tokenizer_from: str) -> dict:
    """Train loss of a GPT-2-shaped model on 256 rows under bf16/fp32 and left/right padding: finite or not."""
    import numpy as np
    import torch
    from transformers import AutoModel, GPT2Config

    from anipop.modeling.finetune import EncoderRegressor, load_pretrained, pick_device, train_encoder_regressor

    anime, _ = _tables(params, False)
    sample = anime[anime["split"] == "train"].sample(n=256, random_state=params.seed)
    tokenizer, _ = load_pretrained(tokenizer_from)
    device = pick_device(params.train.finetune.device)
    out = {}
    for bf16, side in ((True, "left"), (False, "left"), (True, "right"), (False, "right")):
        torch.manual_seed(params.seed)
        encoder = AutoModel.from_config(GPT2Config(n_layer=2, n_embd=256, n_head=4, vocab_size=50257))
        model = EncoderRegressor(encoder, "last", side)
        cfg = params.train.finetune.model_copy(update={"epochs": 1, "bf16": bf16, "padding_side": side})
        history = train_encoder_regressor(model, tokenizer, sample["synopsis"].tolist(),
                                          sample["score_norm"].to_numpy(dtype=np.float64), cfg, params.seed, device)
        out[f"{'bf16' if bf16 else 'fp32'}-{side}"] = history["train_loss"][-1]
        logging.info("nan_check %s %s: %s", bf16, side, history["train_loss"])
    return out


def epoch_seconds(params) -> dict:
    """Seconds per epoch of one fit over the train split (what a user waits for), from the fit's history."""
    import numpy as np

    from anipop.modeling.finetune import fit_finetune

    anime, _ = _tables(params, False)
    train, val = (anime[anime["split"] == split] for split in ("train", "val"))
    cfg = params.train.finetune.model_copy(update={"epochs": 2})
    _, details = fit_finetune(train["synopsis"].tolist(), train["score_norm"].to_numpy(dtype=np.float64),
                              val["synopsis"].tolist()[:64], val["score_norm"].to_numpy(dtype=np.float64)[:64],
                              cfg, params.embed.text.model, params.seed)
    seconds = details["history"]["epoch_seconds"]
    return {"train_rows": details["train_rows"], "epoch_seconds": seconds,
            "rows_per_s": round(details["train_rows"] / seconds[-1], 1)}


def causal_throughput(params, tokenizer_from: str, rows: int, max_length: int, batch_size: int) -> dict:
    """Training rows/s of GPT-2-shaped models (random weights) through anipop.modeling.finetune's own training loop."""
    import numpy as np
    import torch
    from transformers import AutoModel, GPT2Config

    from anipop.modeling.finetune import EncoderRegressor, load_pretrained, pick_device, train_encoder_regressor

    anime, _ = _tables(params, False)
    sample = anime[anime["split"] == "train"].sample(n=rows, random_state=params.seed)
    tokenizer, _ = load_pretrained(tokenizer_from)  # any tokenizer: ids below GPT-2's vocabulary size
    device = pick_device(params.train.finetune.device)
    cfg = params.train.finetune.model_copy(update={"epochs": 2, "batch_size": batch_size, "max_length": max_length,
                                                   "padding_side": "left", "pooling": "last"})
    out = {}
    for name, (layers, width, heads) in CAUSAL_SHAPES.items():
        torch.manual_seed(params.seed)
        encoder = AutoModel.from_config(GPT2Config(n_layer=layers, n_embd=width, n_head=heads, n_positions=1024,
                                                   vocab_size=max(50257, len(tokenizer))))
        model = EncoderRegressor(encoder, "last", "left")
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        history = train_encoder_regressor(model, tokenizer, sample["synopsis"].tolist(),
                                          sample["score_norm"].to_numpy(dtype=np.float64), cfg, params.seed, device)
        out[name] = {"parameters": sum(p.numel() for p in model.parameters()), "rows": rows,
                     "max_length": max_length, "batch_size": batch_size, "epoch_seconds": history["epoch_seconds"],
                     "rows_per_s": round(rows / history["epoch_seconds"][-1], 1),
                     "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2)
                     if device.type == "cuda" else None,
                     "weights": "random (GPT-2 shape; no hub access on the machine)"}
        del model, encoder
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out


def as_report(result: dict, label: str, note: str) -> dict:
    """The shape reports/results.md reads from reports/finetune.json (anipop.studies.results_table): finetune's rows only."""
    run: dict = {"label": label, "inputs": result.get("input_set", "synopsis"), "note": note}
    for part in ("cv", "temporal", "test"):
        if "finetune" in result.get(part, {}):
            run[part] = result[part]["finetune"]
    return {"source": "benchmarks/finetune_gpu.py", "device": result["device"], "runs": [run]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="text encoder to fine-tune (default: the embed profile's)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=5, help="the paper's 5")
    parser.add_argument("--max-length", type=int, default=128, help="the paper's synopsis length")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--parts", default="throughput,score", help="comma list: throughput, epoch, nan, cv, temporal, test")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--to-report", type=Path, default=None,
                        help="instead of running: turn this script's result file into reports/finetune.json's shape")
    parser.add_argument("--label", default="finetune")
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    if args.to_report is not None:
        report = as_report(json.loads(args.to_report.read_text()), args.label, args.note)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
        return
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.path.insert(0, str(REPO / "src"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import torch

    epochs = 1 if args.smoke else args.epochs
    params = _params(args.model, epochs, args.device, args.max_length)
    result: dict = {"benchmark": "finetune_gpu", "model": params.train.finetune.model or params.embed.text.model,
                    "settings": params.train.finetune.model_dump(), "torch": torch.__version__,
                    "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
                    "smoke": args.smoke}

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")

    for part in args.parts.split(","):
        started = time.perf_counter()
        if part == "throughput":
            rows, length = (64, 64) if args.smoke else (1600, 512)
            result["causal_throughput"] = causal_throughput(params, result["model"], rows, length, 16)
        elif part == "epoch":
            result["epoch"] = epoch_seconds(params)
        elif part in ("cv", "temporal", "test"):
            result.update(score(params, args.smoke, part))
        elif part == "nan":
            result["nan_check"] = nan_check(params, result["model"])
        else:
            raise SystemExit(f"--parts: unknown part {part!r}")
        logging.info("finetune_gpu: %s done in %.0fs", part, time.perf_counter() - started)
        save()
    print(json.dumps({k: v for k, v in result.items() if k not in ("paired", "cv_folds")}, indent=1))


if __name__ == "__main__":
    main()
