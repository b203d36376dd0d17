"""Seconds per fine-tuning epoch of the text encoder + the authors' head, measured on a sample of the train split.

    python benchmarks/finetune_cpu.py --rows 320 --max-length 128     # prints JSON; nothing written

Trains one epoch on `rows` random train synopses with the configured params.train.finetune settings (the
embed profile's text model unless finetune.model names one) and extrapolates to the whole train split
linearly in rows (each micro-batch costs the same at a fixed max length, texts beyond it are truncated).
Why a sample: a full epoch of MiniLM on 2 cores is many minutes, and the rate is what decides epochs/length.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(rows: int, max_length: int | None, threads: int | None) -> dict:
    import numpy as np
    import torch

    from anipop.core.config import load_params
    from anipop.data.schema import PREPARED_ANIME, read_table
    from anipop.modeling.finetune import EncoderRegressor, load_pretrained, train_encoder_regressor

    params = load_params(REPO / "params.yaml")
    update = {k: v for k, v in {"max_length": max_length, "threads": threads, "epochs": 1}.items() if v is not None}
    cfg = params.train.finetune.model_copy(update=update)
    anime = read_table(PREPARED_ANIME, REPO / params.paths.prepared_dir / "anime.parquet")
    train = anime[anime["split"] == "train"]
    sample = train.sample(n=min(rows, len(train)), random_state=params.seed)
    name = cfg.model or params.embed.text.model
    tokenizer, encoder = load_pretrained(name)
    torch.manual_seed(params.seed)
    model = EncoderRegressor(encoder, cfg.pooling, cfg.padding_side)
    started = time.perf_counter()
    history = train_encoder_regressor(model, tokenizer, sample["synopsis"].astype(str).tolist(),
                                      sample["score_norm"].to_numpy(dtype=np.float64), cfg, params.seed,
                                      torch.device("cpu"))
    seconds = time.perf_counter() - started
    per_row = seconds / len(sample)
    return {"model": name, "max_length": cfg.max_length, "batch_size": cfg.batch_size, "threads": cfg.threads,
            "rows_measured": len(sample), "seconds_measured": round(seconds, 1),
            "rows_per_s": round(len(sample) / seconds, 2), "train_rows": len(train),
            "seconds_per_epoch_extrapolated": round(per_row * len(train), 1),
            "parameters": sum(p.numel() for p in model.parameters()), "train_loss": history["train_loss"][-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=320)
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.path.insert(0, str(REPO / "src"))
    print(json.dumps(run(args.rows, args.max_length, args.threads), indent=2))


if __name__ == "__main__":
    main()
