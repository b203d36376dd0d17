"""Tiny encoders and embed-stage inputs built inside tests: no download, a few KB to a few MB each.

The models are saved the way real weights are (save_pretrained, torch.save) so tests load them through the
same code as gpt2 and resnet50.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from conftest import knobs, params_in
from PIL import Image

from anipop.core.config import EmbedProfile, Params
from anipop.data.schema import PREPARED_ANIME, PREPARED_CHARACTERS, write_table

WORDS = ("a girl boy hero village sword magic school robot space ship dragon love war friend city night sea "
         "the of and in with who to from becomes fights finds her his new old lost secret power world").split()


def build_tiny_gpt2(folder: Path, n_positions: int = 64) -> Path:
    """A 1-layer, 32-wide GPT-2 with a word-level tokenizer that, like GPT-2's, has no pad token."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2Model, PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(["[UNK]", "[EOS]", *WORDS])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", eos_token="[EOS]",
                                        model_max_length=n_positions)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(vocab), n_positions=n_positions, n_embd=32, n_layer=1, n_head=2,
                        bos_token_id=1, eos_token_id=1)
    GPT2Model(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_bert(folder: Path, seed: int = 0) -> Path:
    """A 2-layer, 32-wide BERT (MiniLM's architecture, tiny) with a word-level tokenizer: the ONNX fusion path."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]",
                                        cls_token="[CLS]", sep_token="[SEP]", model_max_length=64)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_resnet(path: Path) -> Path:
    """A Bottleneck ResNet with one block per stage and narrow widths: 2048-d pooled features like ResNet-50."""
    from torchvision.models.resnet import Bottleneck, ResNet

    torch.manual_seed(0)
    torch.save(ResNet(Bottleneck, [1, 1, 1, 1], num_classes=10, width_per_group=8).eval(), path)
    return path


def sentence(seed: int, words: int) -> str:
    rng = np.random.default_rng(seed)
    return " ".join(rng.choice(WORDS, size=words))


def write_portrait(path: Path, seed: int, size: tuple[int, int] = (40, 60)) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def write_prepared(params: Params, n_anime: int, chars_per_anime: int = 0) -> None:
    """Prepared anime (and characters with portraits under raw_dir/images) for the embed stage to read."""
    ids = list(range(1, n_anime + 1))
    anime = pd.DataFrame({"anime_id": ids, "title": [f"t{i}" for i in ids],
                          "synopsis": [sentence(i, 5 + 3 * (i % 7)) for i in ids], "score": 7.0,
                          "score_norm": 0.5, "split": "train", "group_id": ids, "premiered": "2010"})
    rows = [{"anime_id": a, "character_id": 100 * a + c, "name": f"{WORDS[(a + c) % len(WORDS)]} {c}",
             "role": "Main", "description": sentence(1000 * a + c, 6),
             "portrait_path": f"images/{a}_{c}.png"} for a in ids for c in range(chars_per_anime)]
    for row in rows:
        write_portrait(Path(params.paths.raw_dir) / row["portrait_path"], seed=row["character_id"])
    characters = pd.DataFrame(rows, columns=PREPARED_CHARACTERS.column_names)
    write_table(PREPARED_ANIME, anime, Path(params.paths.prepared_dir) / "anime.parquet")
    write_table(PREPARED_CHARACTERS, characters, Path(params.paths.prepared_dir) / "characters.parquet")


def embed_params(tmp_path: Path, text: dict, image: dict | None = None, **embed: object) -> Params:
    """params_in with a `test` profile holding the given text and image encoder settings."""
    base = params_in(tmp_path)
    # the settings the test names over params.yaml's, on eager torch unless it names a runtime
    profile = EmbedProfile(text=knobs("embed.text", **{"cpu_runtime": "torch", **text}),
                           image=knobs("embed.image", **(image or {})))
    return params_in(tmp_path, embed={"profile": "test", "profiles": {**base.embed.profiles, "test": profile},
                                      **embed})
