"""Every model anipop can train, by name: how it is fed, which fitter builds it, and what it may be used for.

Why one registry of plain data: the config accepts model names (train.models, the served train.model, the
multimodal ablation's models), the train step picks a fitter and an input type per name, MLflow logs each
model's hyper-parameters, and the tables mark the baselines. Written once here, with no numpy or torch, so
config can derive its allowed values from it; the implementations (anipop.modeling.models, anipop.modeling.paper_head,
anipop.modeling.finetune, anipop.modeling.pitch) take their names from here, and train's FITTERS maps each `fitter` to
the function that fits it.
"""

from __future__ import annotations

from dataclasses import dataclass

from anipop.core.input_kinds import EMBEDDINGS_INPUT, PITCH_INPUT, RAW_INPUT


@dataclass(frozen=True)
class ModelSpec:
    name: str
    input_type: str             # anipop.core.input_kinds.INPUT_TYPES: what features.model_inputs builds for it
    fitter: str                 # the key of train.FITTERS that fits it
    synopsis_only: bool = False  # reads the synopsis alone, whatever the input set
    baseline: bool = False      # trivial: added beside the models on the main input set, never configured
    params_section: str | None = None  # its own section of params.train (MLflow logs it as hyper-parameters)

    @property
    def servable(self) -> bool:
        """Can be the primary: it scores a raw pitch (embeddings or synopsis + metadata) with an interval."""
        return self.input_type in (EMBEDDINGS_INPUT, PITCH_INPUT) and not self.synopsis_only


BASELINE = "train_mean"          # the trivial baseline every table carries
LENGTH_BASELINE = "length_only"  # synopsis length alone: Spearman ~.4 on MAL, the bar to clear
BENCHMARK = "tfidf_benchmark"    # the paper's benchmark, fed raw texts and pixels
PAPER_HEAD = "paper_head"        # the paper's two-branch head over frozen embeddings
FINETUNE = "finetune"            # the paper's fine-tuned text encoder (synopsis only)
RIDGE = "ridge"

MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec("mlp_wide", EMBEDDINGS_INPUT, "network", params_section="network"),  # our MLPs (not the paper's widths)
    ModelSpec("mlp_small", EMBEDDINGS_INPUT, "network", params_section="network"),
    ModelSpec(RIDGE, EMBEDDINGS_INPUT, "ridge"),
    ModelSpec(PAPER_HEAD, EMBEDDINGS_INPUT, "paper_head", params_section="paper_head"),
    ModelSpec(BENCHMARK, RAW_INPUT, "benchmark", params_section="benchmark"),
    ModelSpec(FINETUNE, RAW_INPUT, "finetune", synopsis_only=True, params_section="finetune"),
    ModelSpec("meta_ridge", PITCH_INPUT, "pitch", params_section="pitch"),
    ModelSpec("pitch_gbm", PITCH_INPUT, "pitch", params_section="pitch"),
    ModelSpec("pitch_stack", PITCH_INPUT, "pitch", params_section="pitch"),
    ModelSpec(BASELINE, RAW_INPUT, "baseline", synopsis_only=True, baseline=True),
    ModelSpec(LENGTH_BASELINE, RAW_INPUT, "baseline", synopsis_only=True, baseline=True),
)}

BASELINES = tuple(name for name, spec in MODELS.items() if spec.baseline)
TRAINABLE = tuple(name for name, spec in MODELS.items() if not spec.baseline)     # config: train.models
SERVABLE = tuple(name for name, spec in MODELS.items() if spec.servable)          # config: train.model
NETWORK_MODELS = tuple(name for name, spec in MODELS.items() if spec.fitter == "network")
PITCH_MODELS = tuple(name for name, spec in MODELS.items() if spec.fitter == "pitch")
NETWORK_SHAPES = {"mlp_wide": "wide", "mlp_small": "small"}  # each MLP's shape: params.train.network.<shape>
# the multimodal ablation refits these per fold on embeddings with and without the character branch
MULTIMODAL = (*NETWORK_MODELS, RIDGE)


def unsaid_franchise(name: str) -> str:
    """The report row of model `name` scored on pitches that leave `franchise_scores` out (the backtests score
    the primary model both ways): the same fitted model, not a model of its own."""
    return f"{name}_unsaid_franchise"


def spec_of(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")
    return MODELS[name]
