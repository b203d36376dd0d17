"""The text encoder on ONNX Runtime: the same local weights exported once with torch.onnx, fused, optionally int8.

Why: on 2 CPU cores eager torch embeds MiniLM at ~36 synopses/s, most of `make run`. ONNX Runtime with the
attention fused by its transformer optimizer, and the Linear weights dynamically quantised to int8, is several
times faster at cosine ~0.99 to the fp32 vectors and an unchanged downstream Spearman (benchmarks/embed.py
measures speed and closeness; benchmarks/embed_quality.py the downstream delta). Nothing is downloaded: the
graph is built from the weights already on disk, the first time it is needed, and kept under embed.onnx_dir in
a folder named by the weights' content hash and the versions of every tool that shapes it, so a new torch,
exporter or runtime builds a new graph instead of reusing a stale one.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

from anipop.encoders.cache import namespace_of

log = logging.getLogger(__name__)

CPU_RUNTIMES = ("torch", "onnx", "onnx-int8")  # params.yaml embed.profiles.*.text.cpu_runtime
OPSET = 17
_FUSED_MODEL_TYPES = {"bert": "bert"}  # transformers model_type -> ORT optimizer model_type (attention fusion)
_INPUTS = ("input_ids", "attention_mask")
_BUILD_LOCK = threading.Lock()


def runtime_tag(runtime: str) -> str:
    """The runtime and the versions that decide its numbers; part of every cached vector's key."""
    if runtime == "torch":
        return f"torch-{torch.__version__}"
    precision = "int8-rowwise" if runtime == "onnx-int8" else "fp32"  # rowwise: OnnxHiddenStates(row_workers > 0)
    return (f"onnxruntime-{version('onnxruntime')}-onnx-{version('onnx')}-torch-{torch.__version__}-"
            f"opset{OPSET}-{precision}")


class _LastHiddenState(torch.nn.Module):
    """Keyword call and a plain tensor out: transformers' forward takes more positional arguments than we pass."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def _export(location: str, path: Path) -> None:
    """torch.onnx (TorchScript exporter) of the fp32 model with eager attention: the pattern ORT can fuse."""
    import warnings

    from transformers import AutoModel

    model = AutoModel.from_pretrained(location, dtype=torch.float32, attn_implementation="eager").eval()
    dummy = (torch.ones(2, 8, dtype=torch.long), torch.ones(2, 8, dtype=torch.long))
    dynamic = {name: {0: "batch", 1: "tokens"} for name in (*_INPUTS, "last_hidden_state")}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # tracer and deprecation chatter; the graph is checked against torch in tests
        torch.onnx.export(_LastHiddenState(model), dummy, str(path), input_names=list(_INPUTS),
                          output_names=["last_hidden_state"], dynamic_axes=dynamic, opset_version=OPSET,
                          dynamo=False)


def _fuse(source: Path, target: Path, config) -> bool:
    """ORT's transformer optimizer (attention, layer norm, GELU fusion) for the model types it knows."""
    model_type = _FUSED_MODEL_TYPES.get(getattr(config, "model_type", ""))
    if model_type is None:
        return False
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(str(source), model_type=model_type, num_heads=config.num_attention_heads,
                               hidden_size=config.hidden_size, opt_level=1)
    optimized.save_model_to_file(str(target))
    return True


def _quantize(source: Path, target: Path) -> None:
    """Dynamic int8: weights int8 per output channel in 7 bits, activations quantised on the fly per batch.

    Measured on MiniLM and 120 MAL synopses (cosine to fp32 torch, mean / min): per-tensor 0.949 / 0.897,
    per-channel 0.992 / 0.980, per-channel with reduce_range 0.992 / 0.987 at the same speed. reduce_range keeps
    AVX2 CPUs without VNNI clear of the u8 x s8 pair-sum saturation that otherwise costs accuracy.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # fused ops come from ORT's own domain, where onnx shape inference cannot type every tensor: say float
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def build_onnx(location: str, fingerprint: str, runtime: str, root: str | Path, config,
               shipped: str | Path | None = None) -> Path:
    """The cached graph for these weights and runtime, built (export, fuse, quantise) when absent.

    shipped: a folder of ready graphs that is only read (a registered model's: it may be read-only where the model
    is served); its graph is used when it was built for these weights and tool versions, else one is built under
    root. Built in a temp folder beside the target and renamed into place, so a killed build leaves no half file
    and two runs building at once both end with a whole one.
    """
    key = namespace_of(weights=fingerprint, runtime=runtime_tag(runtime))
    if shipped is not None and (Path(shipped) / key / "model.onnx").is_file():
        return Path(shipped) / key / "model.onnx"
    target = Path(root) / key / "model.onnx"
    if target.exists():
        return target
    with _BUILD_LOCK:  # torch.onnx.export is not re-entrant: two threads (Prefect/Dask shard tasks) must not overlap
        if not target.exists():
            _build(location, runtime, config, target)
    return target


def _build(location: str, runtime: str, config, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("embed: building the %s graph of %s under %s (once per weights and tool versions)", runtime,
             location, target.parent)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
        raw, fused, final = Path(tmp) / "raw.onnx", Path(tmp) / "fused.onnx", Path(tmp) / "model.onnx"
        _export(location, raw)
        current = fused if _fuse(raw, fused, config) else raw
        if runtime == "onnx-int8":
            _quantize(current, final)
            current = final
        os.replace(current, target)


def open_session(path: Path, threads: int):
    """A CPU session; threads 0 lets ONNX Runtime use one per physical core.

    Spinning is off: on a shared 2-core machine (load ~12) waiting threads that spin took the CPU from the
    ones with work; 128 synopses, paired with torch fp32, went 1.24-1.42x with spinning, 1.38-1.86x without.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxHiddenStates:
    """Callable like the torch model's forward, reduced to what TextEncoder needs: ids, mask -> token states.

    row_workers > 0: run each text alone, on its own tokens only, on that many threads (a session each of one
    thread). Why alone: dynamic int8 quantises a MatMul's activations with one scale for the whole input tensor,
    so in a batch a text's vector depends on its batchmates and their padding (up to 0.1 apart on MiniLM): the
    same pitch would score differently served alone than it was embedded for training, or beside other pitches in
    one request. Alone, a text's vector is a function of the text, whatever the threads. It is also faster on 2
    cores: no padding, and two rows at once (600 synopses: batches of 64 at 39-41 items/s, one by one 42-47,
    two threads 56-58).
    """

    def __init__(self, session, row_workers: int = 0) -> None:
        self.session, self.row_workers = session, row_workers
        self._pool = None

    def _one(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask})[0]

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        ids, mask = input_ids.numpy().astype(np.int64), attention_mask.numpy().astype(np.int64)
        if not self.row_workers:
            return torch.from_numpy(self._one(ids, mask))
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.row_workers, thread_name_prefix="anipop-onnx")
        real = mask.astype(bool)  # padding positions stay zero: pooling masks them out
        outputs = list(self._pool.map(lambda row: self._one(ids[row:row + 1, real[row]], mask[row:row + 1, real[row]]),
                                      range(len(ids))))
        states = np.zeros((*ids.shape, outputs[0].shape[-1]), dtype=np.float32)
        for row, out in enumerate(outputs):
            states[row, real[row]] = out[0]
        return torch.from_numpy(states)
