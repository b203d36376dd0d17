"""The authors' regression head, exactly (`paper_head`), on whatever frozen embeddings the embed profile made.

From the authors' code (../shared/PAPER.md; all_scaled.py, syn_scaled.py):
- a character branch: Dropout 0.1, Linear(character text + image -> 768), Tanh, Dropout 0.1, Linear(768 -> 768);
- a tower over [synopsis vector, character vector]: Linear -> 768, Tanh, 768 -> 384, Tanh, 384 -> 192, Tanh, then
  192 -> 96 -> 48 -> 24 -> 12 -> 6 with ReLU, then 6 -> 1 with no activation (a plain linear output).
  With one input only (their synopsis-only script) the tower starts at 384: Linear(input -> 384), Tanh, ...
- training: AdamW lr 5e-5, eps 1e-8 (weight decay: torch's default 0.01, they set none), batch 16, 5 epochs,
  a linear schedule to zero without warm-up (stepped per batch), gradient norm clipped at 1.0, MSE, seed 42;
  no early stopping: the weights after the last epoch are the model.

Why frozen: the authors fine-tune GPT-2 under this head (see finetune.py for that); here the head is measured on
the same embeddings as every other model, so the comparison is about the head alone. Deviation by default
(params.train.paper_head, each a switch): features are z-scored with train statistics (a frozen encoder's scale
cannot adapt to the head as a fine-tuned one does) and batches are shuffled (the authors' loader was not).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from anipop.core.model_catalog import PAPER_HEAD  # noqa: F401 - this module's model
from anipop.core.utils import configure_torch

BRANCH_WIDTH = 768                       # the character branch's width (GPT-2's hidden size in the paper)
TANH_WIDTHS = (768, 384, 192)            # the tower's Tanh layers (two inputs; one input starts at 384)
RELU_WIDTHS = (96, 48, 24, 12, 6)        # then ReLU layers, then one linear output unit
BRANCH_DROPOUT = 0.1


def tower_widths(two_inputs: bool) -> tuple[int, ...]:
    """The Tanh widths of the tower: all three for synopsis + characters, from 384 for one input alone."""
    return TANH_WIDTHS if two_inputs else TANH_WIDTHS[1:]


class PaperHead(nn.Module):
    """Character branch + Tanh/ReLU tower; input columns: [synopsis (synopsis_dim) | character kinds (rest)].

    synopsis_dim = 0: characters only (the branch feeds the tower); character_dim = 0: synopsis only.
    """

    def __init__(self, synopsis_dim: int, character_dim: int) -> None:
        super().__init__()
        if synopsis_dim < 0 or character_dim < 0 or synopsis_dim + character_dim == 0:
            raise ValueError(f"paper_head needs inputs: synopsis_dim={synopsis_dim}, character_dim={character_dim}")
        self.synopsis_dim, self.character_dim = synopsis_dim, character_dim
        self.branch = nn.Sequential(
            nn.Dropout(BRANCH_DROPOUT), nn.Linear(character_dim, BRANCH_WIDTH), nn.Tanh(),
            nn.Dropout(BRANCH_DROPOUT), nn.Linear(BRANCH_WIDTH, BRANCH_WIDTH),
        ) if character_dim else None
        width = synopsis_dim + (BRANCH_WIDTH if character_dim else 0)
        layers: list[nn.Module] = []
        for size in tower_widths(bool(synopsis_dim and character_dim)):
            layers += [nn.Linear(width, size), nn.Tanh()]
            width = size
        for size in RELU_WIDTHS:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, 1))
        self.tower = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        parts = []
        if self.synopsis_dim:
            parts.append(features[:, :self.synopsis_dim])
        if self.branch is not None:
            parts.append(self.branch(features[:, self.synopsis_dim:]))
        return self.tower(torch.cat(parts, dim=1)).squeeze(-1)


class PaperHeadRegressor:
    """A trained PaperHead as plain data (dims, numpy weights, feature standardisation), like NetworkRegressor.

    predict clips to [0, 1]: the head's output is unbounded, the normalised score is not.
    """

    def __init__(self, synopsis_dim: int, character_dim: int, weights: dict[str, np.ndarray],
                 feature_mean: np.ndarray, feature_scale: np.ndarray) -> None:
        self.synopsis_dim, self.character_dim = int(synopsis_dim), int(character_dim)
        self.weights = weights
        self.feature_mean = np.asarray(feature_mean, dtype=np.float32)
        self.feature_scale = np.asarray(feature_scale, dtype=np.float32)
        self._module: PaperHead | None = None

    @property
    def input_dim(self) -> int:
        return self.synopsis_dim + self.character_dim

    def module(self) -> PaperHead:
        if self._module is None:
            module = PaperHead(self.synopsis_dim, self.character_dim)
            module.load_state_dict({name: torch.from_numpy(array) for name, array in self.weights.items()})
            self._module = module.eval()
        return self._module

    def predict(self, features: np.ndarray) -> np.ndarray:
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != self.input_dim:
            raise ValueError(f"paper_head expects features of shape (n, {self.input_dim}), got {features.shape}")
        scaled = (features - self.feature_mean) / self.feature_scale
        with torch.no_grad():
            scores = self.module()(torch.from_numpy(scaled))
        return np.clip(scores.numpy().astype(np.float64), 0.0, 1.0)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_module"] = None
        return state


def linear_schedule(optimiser: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """transformers' get_linear_schedule_with_warmup with 0 warm-up steps: lr falls linearly to 0 per step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: max(0.0, (total_steps - step) / max(1, total_steps)))


def fit_paper_head(train_x: np.ndarray, train_y: np.ndarray, synopsis_dim: int, cfg, seed: int,
                   monitor: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
                   select_on: str | None = None) -> tuple[PaperHeadRegressor, dict]:
    """Train the head with the authors' settings (cfg: config.PaperHeadParams); return (model, history).

    monitor: named (features, targets) sets whose MSE is recorded after each epoch (history[f"{name}_loss"]).
    select_on: None keeps the last epoch's weights (the authors' way); a monitor name keeps the epoch with the
    lowest loss there (the paper-faithful mode uses "test" to show what choosing on the test split buys).
    """
    configure_torch(seed, cfg.threads)
    train_x = np.asarray(train_x, dtype=np.float32)
    mean = train_x.mean(axis=0) if cfg.standardize else np.zeros(train_x.shape[1], dtype=np.float32)
    scale = train_x.std(axis=0) if cfg.standardize else np.ones(train_x.shape[1], dtype=np.float32)
    scale = np.where(scale < 1e-6, 1.0, scale).astype(np.float32)

    def tensor(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(((np.asarray(x, dtype=np.float32) - mean) / scale).astype(np.float32))

    xs, ys = tensor(train_x), torch.from_numpy(np.asarray(train_y, dtype=np.float32))
    monitors = {name: (tensor(x), torch.from_numpy(np.asarray(y, dtype=np.float32)))
                for name, (x, y) in (monitor or {}).items() if len(x)}
    if select_on is not None and select_on not in monitors:
        raise ValueError(f"paper_head: cannot select the epoch on {select_on!r}: no such rows")
    head = PaperHead(synopsis_dim, train_x.shape[1] - synopsis_dim)
    optimiser = torch.optim.AdamW(head.parameters(), lr=cfg.learning_rate, eps=cfg.eps,
                                  weight_decay=cfg.weight_decay)
    steps_per_epoch = -(-len(xs) // cfg.batch_size)
    schedule = linear_schedule(optimiser, steps_per_epoch * cfg.epochs)
    loss_fn = nn.MSELoss()
    shuffler = torch.Generator().manual_seed(seed)
    history: dict[str, list[float]] = {"train_loss": [], **{f"{name}_loss": [] for name in monitors}}
    best = (float("inf"), None, cfg.epochs)
    for epoch in range(1, cfg.epochs + 1):
        head.train()
        order = torch.randperm(len(xs), generator=shuffler) if cfg.shuffle else torch.arange(len(xs))
        total = 0.0
        for start in range(0, len(order), cfg.batch_size):
            batch = order[start:start + cfg.batch_size]
            optimiser.zero_grad()
            loss = loss_fn(head(xs[batch]), ys[batch])
            loss.backward()
            nn.utils.clip_grad_norm_(head.parameters(), cfg.clip_norm)
            optimiser.step()
            schedule.step()
            total += loss.detach().item() * len(batch)
        history["train_loss"].append(round(total / len(xs), 8))
        head.eval()
        with torch.no_grad():
            for name, (x, y) in monitors.items():
                history[f"{name}_loss"].append(round(float(loss_fn(head(x), y)), 8))
        if select_on is not None and history[f"{select_on}_loss"][-1] < best[0]:
            best = (history[f"{select_on}_loss"][-1], {k: v.clone() for k, v in head.state_dict().items()}, epoch)
    if best[1] is not None:
        head.load_state_dict(best[1])
    weights = {name: t.detach().cpu().numpy().copy() for name, t in head.state_dict().items()}
    model = PaperHeadRegressor(synopsis_dim, train_x.shape[1] - synopsis_dim, weights, mean, scale)
    return model, {**history, "best_epoch": best[2], "epochs_run": cfg.epochs}
