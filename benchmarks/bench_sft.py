"""Seconds per QLoRA optimiser step on SmolLM2-135M-Instruct, with and without the 4-bit base, with the
logits at every position or at the label positions only (``finetune.collate``).

    python benchmarks/bench_sft.py [--batch 8] [--length 110] [--steps 4] [--threads 2]

Random token ids, the last 4 of each row labelled (an answer and its end of turn, as a training example);
the first step (allocation) is reported apart; the median of the rest is the figure.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from culturespa.finetune import IGNORE_INDEX, collate  # noqa: E402


def load(model_dir: Path, quantised: bool):
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    kwargs = {"dtype": torch.float32, "device_map": "cpu"}
    if quantised:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)
    model.config.use_cache = False
    if quantised:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def step_times(model, batch: dict, label_positions_only: bool, steps: int) -> list[float]:
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
    if label_positions_only:
        inputs |= {"logits_to_keep": batch["logits_to_keep"], "shift_labels": batch["shift_labels"]}
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        model(**inputs).loss.backward()
        optimiser.step()
        optimiser.zero_grad()
        times.append(time.perf_counter() - started)
    return times


def main(argv=None) -> int:
    from bench_engine import default_model_dir

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, default=default_model_dir())
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--length", type=int, default=110, help="tokens per example")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(args.batch):
        ids = torch.randint(100, 40000, (args.length,), generator=generator).tolist()
        rows.append({"input_ids": ids, "attention_mask": [1] * len(ids),
                     "labels": [IGNORE_INDEX] * (len(ids) - 4) + ids[-4:]})
    batch = collate(0)(rows)
    print(f"batch {args.batch} x {args.length} tokens, {args.threads} threads, float32, torch {torch.__version__}")
    for quantised in (True, False):
        model = load(args.model_dir, quantised)
        for label_positions_only in (False, True):
            times = step_times(model, batch, label_positions_only, args.steps)
            print(f"  {'4-bit NF4' if quantised else 'no quantisation':16s} "
                  f"{'label positions' if label_positions_only else 'every position':16s} "
                  f"first {times[0]:.2f} s, then median {statistics.median(times[1:]):.2f} s per step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
