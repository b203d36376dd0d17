"""Image encoders for portraits: the paper's ResNet-50 (torchvision) and an offline, non-learned descriptor.

ResNet weights come from torchvision's download cache (TORCH_HOME), or from a local file: a state_dict for
the named architecture (e.g. the downloaded resnet50-11ad3fa6.pth) or a whole saved model (tests save a
tiny ResNet this way). Either way the classifier is removed, the pooled features are the vector, and the
named weights' own preprocessing transforms are applied. Nothing falls back to random weights.

The descriptor ("color-histogram-thumbnail") is what runs offline, where no pretrained image weights can be
had: per-channel RGB histograms plus a small thumbnail's pixels. It is named as what it is, not as a model.
"""

from __future__ import annotations

import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
from PIL import Image

from anipop.core.config import ImageEncoderParams
from anipop.encoders.cache import fingerprint_path, namespace_of
from anipop.encoders.text import EncoderUnavailable, offline, reachable

log = logging.getLogger(__name__)

DESCRIPTOR = "color-histogram-thumbnail"


@dataclass
class DescriptorEncoder:
    """RGB histograms (`bins` per channel, as fractions of pixels) then a `thumb` x `thumb` thumbnail in [0, 1]."""

    bins: int = 16
    thumb: int = 8
    name: str = DESCRIPTOR

    @property
    def dim(self) -> int:
        return 3 * self.bins + 3 * self.thumb * self.thumb

    @property
    def namespace(self) -> str:
        return namespace_of(model=self.name, bins=self.bins, thumb=self.thumb)

    def describe(self, image: Image.Image) -> np.ndarray:
        pixels = np.asarray(image.convert("RGB"), dtype=np.uint16).reshape(-1, 3)
        levels = pixels * self.bins // 256
        histograms = [np.bincount(levels[:, c], minlength=self.bins) / len(pixels) for c in range(3)]
        # BOX resampling averages each area: deterministic, and it sees every pixel, unlike nearest
        thumbnail = np.asarray(image.convert("RGB").resize((self.thumb, self.thumb), Image.Resampling.BOX))
        return np.concatenate([*histograms, thumbnail.reshape(-1) / 255.0]).astype(np.float32)

    def encode(self, images: list[Image.Image]) -> np.ndarray:
        return np.stack([self.describe(image) for image in images])


@dataclass
class ResNetEncoder:
    """A torchvision ResNet with its classifier replaced by the identity: the pooled features are the vector."""

    name: str
    model: torch.nn.Module
    transform: object
    device: torch.device
    dtype: torch.dtype
    dim: int
    namespace: str

    @torch.inference_mode()
    def encode(self, images: list[Image.Image]) -> np.ndarray:
        batch = torch.stack([self.transform(image) for image in images])
        memory_format = torch.channels_last if self.device.type == "cuda" else torch.contiguous_format
        batch = batch.to(self.device, self.dtype, non_blocking=True, memory_format=memory_format)
        return self.model(batch).float().cpu().numpy()


def _weights_enum(cfg: ImageEncoderParams):
    from torchvision import models

    if cfg.model not in models.list_models(module=models):
        raise EncoderUnavailable(
            f"image model {cfg.model!r}: neither {DESCRIPTOR!r} nor a torchvision classification model "
            f"(e.g. resnet50); set params.yaml embed.profiles.<profile>.image.model"
        )
    if cfg.weights is None:
        raise EncoderUnavailable(
            f"image model {cfg.model!r}: no weights named (image.weights is null); set e.g. weights: IMAGENET1K_V2 "
            f"- random weights are never used"
        )
    members = models.get_model_weights(cfg.model).__members__
    if cfg.weights not in members:
        raise EncoderUnavailable(f"image model {cfg.model!r}: weights {cfg.weights!r} not one of {list(members)}")
    return members[cfg.weights]


def _how_to_provide(cfg: ImageEncoderParams, expected: Path | None) -> str:
    torch_home = os.environ.get("TORCH_HOME", "unset")
    where = f" (torchvision looks for {expected}; TORCH_HOME={torch_home})" if expected else ""
    return (f"Provide them by running once online so torchvision downloads them{where}, by copying the file "
            f"there, or by setting params.yaml embed.profiles.<profile>.image.weights_path to a local state_dict "
            f"of {cfg.model} or a model saved with torch.save")


def _from_torchvision_cache(cfg: ImageEncoderParams, weights) -> torch.nn.Module:
    from torchvision import models

    expected = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name
    if not expected.is_file() and offline():
        raise EncoderUnavailable(f"image model {cfg.model} {cfg.weights}: weights not in the cache and "
                                 f"HF_HUB_OFFLINE is set, so no download is tried. {_how_to_provide(cfg, expected)}")
    if not expected.is_file() and not reachable(weights.url):  # offline without the setting: say so, try nothing
        raise EncoderUnavailable(f"image model {cfg.model} {cfg.weights}: weights not in the cache, and "
                                 f"{urlparse(weights.url).netloc} cannot be reached. {_how_to_provide(cfg, expected)}")
    try:
        return models.get_model(cfg.model, weights=weights)
    except (OSError, RuntimeError) as err:  # URLError is an OSError; a corrupt or hash-mismatched file a RuntimeError
        raise EncoderUnavailable(f"image model {cfg.model} {cfg.weights}: cannot load weights: {err}. "
                                 f"{_how_to_provide(cfg, expected)}") from err


def _from_local_file(cfg: ImageEncoderParams, path: Path) -> torch.nn.Module:
    from torchvision import models

    if not path.is_file():
        raise EncoderUnavailable(f"image model {cfg.model}: weights_path {path} does not exist. "
                                 f"{_how_to_provide(cfg, None)}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # a whole pickled model: unpickling runs code from the file, acceptable for a path the user configured
        log.warning("embed: %s holds a pickled model, not a state_dict; loading it (only use files you trust)", path)
        payload = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(payload, torch.nn.Module):
        return payload
    if not isinstance(payload, dict):
        raise EncoderUnavailable(f"{path}: expected a state_dict or a saved model, found {type(payload).__name__}")
    model = models.get_model(cfg.model, weights=None)
    try:
        model.load_state_dict(payload.get("state_dict", payload))
    except RuntimeError as err:
        raise EncoderUnavailable(f"{path}: does not match the {cfg.model} architecture: {str(err)[:500]}") from err
    return model


def load_image_encoder(cfg: ImageEncoderParams, device: torch.device, dtype: torch.dtype = torch.float32):
    """The descriptor, or a ResNet from the cache or a local file; the same code for real and test weights."""
    if cfg.model == DESCRIPTOR:
        return DescriptorEncoder(bins=cfg.histogram_bins, thumb=cfg.thumbnail_size)
    weights = _weights_enum(cfg)
    path = Path(cfg.weights_path).expanduser() if cfg.weights_path else None
    model = _from_local_file(cfg, path) if path else _from_torchvision_cache(cfg, weights)
    classifier = getattr(model, "fc", None)
    if not isinstance(classifier, torch.nn.Linear):
        raise EncoderUnavailable(f"image model {cfg.model} from {path or 'torchvision'}: expected a ResNet-style "
                                 f"model whose classifier is `fc`, found {type(classifier).__name__}")
    dim = int(classifier.in_features)
    model.fc = torch.nn.Identity()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    model.to(device, dtype).eval()
    namespace = namespace_of(model=cfg.model, weights=cfg.weights, dtype=str(dtype),
                             files=fingerprint_path(path) if path else None)
    log.info("embed: image model %s (%s) loaded from %s on %s (%s)", cfg.model, cfg.weights,
             path or "the torchvision cache", device, dtype)
    return ResNetEncoder(name=cfg.model, model=model, transform=weights.transforms(), device=device, dtype=dtype,
                         dim=dim, namespace=namespace)
