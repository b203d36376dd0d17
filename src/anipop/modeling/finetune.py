"""`finetune`: the text encoder trained end to end with the authors' head on the synopsis, as the paper does.

Any Hugging Face encoder or causal model loads by name or folder (encoders.resolve_text_model: the packaged
offline MiniLM, a hub id such as gpt2 where the cache has it, a local save_pretrained folder). Pooling is the mean
over real tokens or the last real token, found from the attention mask, so it is right under left or right
padding alike; never position 0, which under left padding is a pad token (the paper's flaw). On CUDA the forward
runs under bf16 autocast; gradient accumulation gives large effective batches on small memory.

The trained model is stored as plain data (the config and tokenizer files, numpy weights) and rebuilt on first
use, so a bundle loads without the training code or the original model folder.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from anipop.core.model_catalog import FINETUNE  # noqa: F401 - this module's model
from anipop.modeling.paper_head import PaperHead, linear_schedule

log = logging.getLogger(__name__)

POOLINGS = ("mean", "last")


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """mean over positions where mask is 1, or the state at the last such position (any padding side)."""
    if pooling == "mean":
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
    if pooling == "last":
        positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
        last = (positions * mask.long()).argmax(dim=1)  # the highest index holding a real token
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise ValueError(f"pooling {pooling!r}: expected one of {POOLINGS}")


class EncoderRegressor(nn.Module):
    """A transformer encoder (or causal LM body), pooled, then the authors' single-input head.

    Under left padding the position ids are counted from the first real token (GPT-2 and BERT would otherwise
    number the pads first and shift every real token's position); RoBERTa-style models count them themselves.
    """

    def __init__(self, encoder: nn.Module, pooling: str, padding_side: str = "right") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling {pooling!r}: expected one of {POOLINGS}")
        self.encoder, self.pooling, self.padding_side = encoder, pooling, padding_side
        self.head = PaperHead(int(encoder.config.hidden_size), 0)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        extra = {}
        if self.padding_side == "left" and "roberta" not in str(getattr(self.encoder.config, "model_type", "")):
            extra["position_ids"] = (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        return self.head(pool(hidden.float(), attention_mask, self.pooling))


def load_pretrained(name: str):
    """(tokenizer, encoder) from a packaged name, hub id or folder; pad token set (GPT-2 has none)."""
    from transformers import AutoModel, AutoTokenizer

    from anipop.encoders.text import _unavailable, looks_like_path, resolve_text_model

    location = resolve_text_model(name)
    if looks_like_path(name) and not Path(location).is_dir():
        raise _unavailable(name, location, "no such folder")
    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
        # float32 master weights whatever the checkpoint's dtype (a half-precision save, or a transformers that
        # loads dtype="auto"): AdamW steps on fp16 weights lose small updates; bf16 comes only from autocast
        encoder = AutoModel.from_pretrained(location).float()
    except (OSError, ValueError) as err:
        raise _unavailable(name, location, err) from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, encoder


def pick_device(requested: str) -> torch.device:
    from anipop.encoders.text import choose_device

    return choose_device(requested)


def _batches(tokenizer, texts: list[str], max_length: int, device: torch.device):
    encoded = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return encoded["input_ids"].to(device), encoded["attention_mask"].to(device)


def _autocast(device: torch.device, bf16: bool):
    """bf16 autocast on CUDA (when asked); a no-op context elsewhere (CPU stays float32)."""
    enabled = bf16 and device.type == "cuda"
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def predict_texts(model: EncoderRegressor, tokenizer, texts: list[str], max_length: int, batch_size: int,
                  device: torch.device, bf16: bool = True) -> np.ndarray:
    model.eval()
    out = []
    with torch.inference_mode(), _autocast(device, bf16):
        for start in range(0, len(texts), batch_size):
            ids, mask = _batches(tokenizer, texts[start:start + batch_size], max_length, device)
            out.append(model(ids, mask).float().cpu().numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def train_encoder_regressor(model: EncoderRegressor, tokenizer, texts: list[str], target: np.ndarray, cfg,
                            seed: int, device: torch.device, val: tuple[list[str], np.ndarray] | None = None) -> dict:
    """AdamW + linear schedule + clipping + MSE, micro-batches of cfg.batch_size accumulated cfg.accumulation
    times per optimiser step. Returns per-epoch history and seconds per epoch (what the CPU timing reports)."""
    torch.manual_seed(seed)
    if device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    tokenizer.padding_side = model.padding_side  # the model numbers positions for this side
    model.to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, eps=cfg.eps, weight_decay=cfg.weight_decay)
    micro = -(-len(texts) // cfg.batch_size)
    steps = -(-micro // cfg.accumulation) * cfg.epochs
    schedule = linear_schedule(optimiser, steps)
    loss_fn = nn.MSELoss()
    ys = torch.as_tensor(np.asarray(target, dtype=np.float32))
    shuffler = torch.Generator().manual_seed(seed)
    history: dict = {"train_loss": [], "val_loss": [], "epoch_seconds": [], "optimizer_steps": 0}
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        started, total = time.perf_counter(), 0.0
        order = torch.randperm(len(texts), generator=shuffler).tolist()
        optimiser.zero_grad()
        for index, start in enumerate(range(0, len(order), cfg.batch_size)):
            batch = order[start:start + cfg.batch_size]
            ids, mask = _batches(tokenizer, [texts[i] for i in batch], cfg.max_length, device)
            with _autocast(device, cfg.bf16):
                predicted = model(ids, mask)
            loss = loss_fn(predicted.float(), ys[batch].to(device))
            if not torch.isfinite(loss):  # a NaN model must not be stored and scored as if it had trained
                raise FloatingPointError(
                    f"finetune: non-finite training loss at epoch {epoch}, micro-batch {index + 1} (device "
                    f"{device.type}, bf16 {cfg.bf16 and device.type == 'cuda'}, padding {model.padding_side}); "
                    "try train.finetune.bf16: false or a smaller learning_rate")
            (loss / cfg.accumulation).backward()
            total += loss.detach().item() * len(batch)
            if (index + 1) % cfg.accumulation == 0 or start + cfg.batch_size >= len(order):
                nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
                optimiser.step()
                schedule.step()
                optimiser.zero_grad()
                history["optimizer_steps"] += 1
        history["epoch_seconds"].append(round(time.perf_counter() - started, 2))
        history["train_loss"].append(round(total / len(texts), 8))
        if val is not None and len(val[0]):
            predicted = predict_texts(model, tokenizer, val[0], cfg.max_length, cfg.batch_size, device, cfg.bf16)
            history["val_loss"].append(round(float(np.mean((predicted - val[1]) ** 2)), 8))
        else:  # no val rows: the curve shows the train loss, as fit_network does
            history["val_loss"].append(history["train_loss"][-1])
        log.info("finetune: epoch %d/%d: train MSE %.5f, %.1fs", epoch, cfg.epochs, history["train_loss"][-1],
                 history["epoch_seconds"][-1])
    return history


class FinetunedRegressor:
    """A fine-tuned EncoderRegressor as plain data: config + tokenizer files, numpy weights, pooling, lengths.

    predict takes the raw inputs dict ({"synopsis": [texts]}) and returns clipped normalised scores.
    """

    def __init__(self, files: dict[str, bytes], weights: dict[str, np.ndarray], pooling: str, padding_side: str,
                 max_length: int, batch_size: int) -> None:
        self.files, self.weights = files, weights
        self.pooling, self.padding_side = pooling, padding_side
        self.max_length, self.batch_size = int(max_length), int(batch_size)
        self._loaded: tuple | None = None

    @classmethod
    def from_trained(cls, model: EncoderRegressor, tokenizer, cfg) -> "FinetunedRegressor":
        with tempfile.TemporaryDirectory() as folder:
            model.encoder.config.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            files = {path.name: path.read_bytes() for path in Path(folder).iterdir() if path.is_file()}
        weights = {name: t.detach().float().cpu().numpy().copy() for name, t in model.state_dict().items()}
        return cls(files, weights, model.pooling, cfg.padding_side, cfg.max_length, cfg.batch_size)

    def loaded(self) -> tuple[EncoderRegressor, object]:
        """(model in eval mode on CPU, tokenizer), rebuilt from the stored files and weights on first use."""
        if self._loaded is None:
            from transformers import AutoConfig, AutoModel, AutoTokenizer

            with tempfile.TemporaryDirectory() as folder:
                for name, payload in self.files.items():
                    (Path(folder) / name).write_bytes(payload)
                tokenizer = AutoTokenizer.from_pretrained(folder)
                encoder = AutoModel.from_config(AutoConfig.from_pretrained(folder))
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            tokenizer.padding_side = self.padding_side
            model = EncoderRegressor(encoder, self.pooling, self.padding_side)
            model.load_state_dict({name: torch.from_numpy(array) for name, array in self.weights.items()})
            self._loaded = (model.eval(), tokenizer)
        return self._loaded

    def predict(self, inputs: dict[str, object]) -> np.ndarray:
        model, tokenizer = self.loaded()
        texts = [str(text) for text in inputs["synopsis"]]
        scores = predict_texts(model, tokenizer, texts, self.max_length, self.batch_size, torch.device("cpu"))
        return np.clip(scores, 0.0, 1.0)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_loaded"] = None
        return state


def fit_finetune(texts: list[str], target: np.ndarray, val_texts: list[str], val_target: np.ndarray, cfg,
                 default_model: str, seed: int) -> tuple[FinetunedRegressor, dict]:
    """Load the encoder (cfg.model, else the embed profile's text model), train it with the head, store it.

    cfg.max_train_rows caps the train rows (the first N in a seeded shuffle) for a quick, measured run.
    """
    name = cfg.model or default_model
    tokenizer, encoder = load_pretrained(name)
    if cfg.max_train_rows is not None and cfg.max_train_rows < len(texts):
        keep = np.random.default_rng(seed).permutation(len(texts))[:cfg.max_train_rows]
        texts, target = [texts[i] for i in keep], np.asarray(target)[keep]
    torch.manual_seed(seed)
    model = EncoderRegressor(encoder, cfg.pooling, cfg.padding_side)
    device = pick_device(cfg.device)
    history = train_encoder_regressor(model, tokenizer, list(texts), np.asarray(target), cfg, seed, device,
                                      val=(list(val_texts), np.asarray(val_target)))
    model.to("cpu")
    details = {"encoder": name, "train_rows": len(texts), "device": str(device), "history": history,
               "seconds_per_epoch": round(float(np.mean(history["epoch_seconds"])), 2)}
    return FinetunedRegressor.from_trained(model, tokenizer, cfg), details
