"""The paper profile offline: a hub model that is not in the cache fails at once with one line saying what is
missing and how to provide it, without huggingface_hub's minute of retried requests."""

from __future__ import annotations

import socket

import pytest
import torch

from anipop.encoders import text as encoders


def _closed_port() -> int:
    with socket.socket() as sock:  # bound then closed: nothing listens there, a connection is refused at once
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_uncached_hub_model_with_the_hub_unreachable_fails_in_one_line_without_retries(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # offline by accident, not by setting
    monkeypatch.setattr(encoders, "hub_endpoint", lambda: f"http://127.0.0.1:{_closed_port()}")
    attempts = []
    real = encoders.hub_reachable
    monkeypatch.setattr(encoders, "hub_reachable", lambda: attempts.append(1) or real(timeout_s=2))
    with pytest.raises(encoders.EncoderUnavailable) as raised:
        encoders.load_text_encoder("anipop-tests/no-such-model", torch.device("cpu"))
    message = str(raised.value)
    assert "\n" not in message and attempts == [1]  # one probe of the hub, then the one-line answer
    assert "'anipop-tests/no-such-model'" in message and "cannot be reached" in message
    assert "Provide them by running once online" in message and "local folder" in message


def test_the_hub_probe_says_no_for_a_closed_port(monkeypatch):
    monkeypatch.setattr(encoders, "hub_endpoint", lambda: f"http://127.0.0.1:{_closed_port()}")
    assert encoders.hub_reachable(timeout_s=2) is False


def test_uncached_resnet_weights_with_their_host_unreachable_fail_in_one_line_without_a_download(
        monkeypatch, tmp_path):
    from conftest import PARAMS_FILE

    from anipop.core.config import load_params
    from anipop.encoders import image as image_encoders

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty download cache
    monkeypatch.setattr(image_encoders, "reachable", lambda url: False)
    downloads = []
    monkeypatch.setattr("torch.hub.download_url_to_file", lambda *args, **kwargs: downloads.append(args))
    with pytest.raises(encoders.EncoderUnavailable) as raised:
        image_encoders.load_image_encoder(load_params(PARAMS_FILE).embed.profiles["paper"].image, torch.device("cpu"))
    assert "\n" not in str(raised.value) and "download.pytorch.org cannot be reached" in str(raised.value)
    assert downloads == [] and "weights_path" in str(raised.value)
