"""Benchmark of step 4 (QLoRA fine-tuning) and the MMLU evaluation on SmolLM2-135M-Instruct.

QLoRA: the demo preset (or --steps/--batch overrides) on synthetic pair records shaped like the
real ones (P1 system prompt, rendered WVS-style question, answer number): steps/s, examples/s,
trained tokens/s, peak RSS. Optionally the same run as plain bf16 LoRA (--plain) for comparison.
MMLU: questions/s of 5-shot scoring with and without the shared-prefix KV cache, and the accuracy.
Prints a table and writes benchmarks/bench_finetune.csv. The machine's load average is recorded:
on a shared 2-core machine, two torch threads competing with other busy processes ran a QLoRA step
about 10x slower than one thread (OpenMP threads wait for each other): pass --threads 1 there.

    python benchmarks/bench_finetune.py [--steps 12] [--mmlu-per-subject 10] [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from culturespa import mmlu  # noqa: E402
from culturespa.cultures import Culture  # noqa: E402
from culturespa.finetune import DEMO_PRESET, TrainSettings, build_examples, train_adapter  # noqa: E402
from culturespa.io import write_csv  # noqa: E402
from culturespa.models import convert_gguf, load, load_tokenizer, smollm2_gguf_path  # noqa: E402
from culturespa.prompts import system_culture_aware  # noqa: E402

CULTURES = {"USA": Culture("USA", "American", "an", "America"), "CHN": Culture("CHN", "Chinese", "a", "Asia")}
MMLU_DIR = ROOT.parent / "shared" / "benchmarks" / "mmlu"
SUBJECTS = ["abstract_algebra", "high_school_geography", "philosophy", "nutrition"]


def default_model_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "culturespa" / "SmolLM2-135M-Instruct"


def records(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = rng.choice([4, 5, 10])
        out.append({
            "qid": f"T{i % 13:02d}-{i:05d}", "culture": rng.choice(sorted(CULTURES)), "topic": i % 13,
            "question": f"How important is it for you, in your daily life, that people follow tradition number {i}?",
            "options": [f"Option text {j}" for j in range(k)], "first": 1, "answer": rng.randint(1, k),
        })
    return out


def system_for(code: str) -> str:
    return system_culture_aware(CULTURES[code])


def bench_qlora(model_dir: Path, n: int, steps: int, batch: int, accum: int, plain: bool, work: Path,
                threads: int) -> dict:
    torch.set_num_threads(threads)
    settings = TrainSettings.from_preset(
        DEMO_PRESET, "joint", max_steps=steps, per_device_batch=batch, effective_batch=batch * accum,
        save_steps=10**6, quantization=None if plain else "4bit",
    )
    recs = records(n)
    tok = load_tokenizer(model_dir)
    n_tokens = sum(len(e["input_ids"]) for e in build_examples(tok, recs, system_for, settings.max_length))
    shutil.rmtree(work, ignore_errors=True)
    stats = train_adapter(model_dir, recs, system_for, work / "adapter", settings, work / "ckpt", work / "loss.csv")
    seen = min(steps * settings.effective_batch, 10**9)
    return {
        "task": "lora_bf16" if plain else "qlora_nf4",
        "n": steps,
        "unit": "steps",
        "seconds": stats["train_seconds"],
        "rate": stats["steps_per_second"],
        "examples_per_s": round(seen / stats["train_seconds"], 2),
        "tokens_per_s": round(seen * n_tokens / len(recs) / stats["train_seconds"], 1),
        "peak_rss_mb": stats["peak_rss_mb"],
        "final_loss": round(stats["final_loss"], 4),
        "detail": f"batch {batch} x accum {accum}, mean {n_tokens / len(recs):.0f} tokens/example",
    }


def bench_mmlu(model_dir: Path, dtype: str, per_subject: int, batch: int, threads: int) -> list[dict]:
    torch.set_num_threads(threads)
    model, tok = load(model_dir, dtype=dtype, device="cpu")
    bench = mmlu.load(MMLU_DIR / "mmlu.zip", MMLU_DIR / "mapping.json", subjects=SUBJECTS,
                      max_per_subject=per_subject, seed=0)
    rows = []
    for cache in (True, False):
        t = time.perf_counter()
        recs = mmlu.evaluate(model, tok, bench, batch_size=batch, prefix_cache=cache)
        s = time.perf_counter() - t
        acc = mmlu.accuracy(recs).set_index("category")
        rows.append({
            "task": f"mmlu_{dtype}_{'prefix_cache' if cache else 'full_prompts'}", "n": len(recs), "unit": "questions",
            "seconds": round(s, 2), "rate": round(len(recs) / s, 3),
            "mean_tokens": round(sum(r["n_tokens"] for r in recs) / len(recs), 1),
            "accuracy": round(float(acc.loc["overall", "accuracy"]), 4),
            "detail": f"5-shot chat, {len(SUBJECTS)} subjects, batch {batch}",
        })
    return rows


def isolated(fn, *args):
    """Run ``fn(*args)`` in a fresh process, so its peak RSS is its own."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--records", type=int, default=256)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--accum", type=int, default=2)
    ap.add_argument("--plain", action="store_true", help="also time plain bf16 LoRA (no 4-bit base)")
    ap.add_argument("--mmlu-per-subject", type=int, default=10)
    ap.add_argument("--mmlu-batch", type=int, default=8)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(),
                    help="torch threads (use 1 when other jobs share the cores: oversubscribed OpenMP "
                         "threads were measured 10x slower)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "bench_finetune.csv")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model_dir = args.model_dir or default_model_dir()
    if not (model_dir / "config.json").exists():
        convert_gguf(smollm2_gguf_path(), model_dir)
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for plain in (False, True) if args.plain else (False,):
            rows.append(isolated(bench_qlora, model_dir, args.records, args.steps, args.batch, args.accum, plain,
                                 Path(tmp) / str(plain), args.threads))
    rows += isolated(bench_mmlu, model_dir, args.dtype, args.mmlu_per_subject, args.mmlu_batch, args.threads)
    frame = pd.DataFrame(rows)
    frame["threads"] = args.threads
    frame["cpus"] = os.cpu_count()
    frame["load_avg_1m_at_start"] = round(load_before, 2)
    frame["machine"] = platform.processor() or platform.machine()
    frame["torch"] = torch.__version__
    write_csv(args.out, frame)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(frame.drop(columns=["machine", "torch"]).to_string(index=False))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
