"""Fault injection (issue 7): kills, corrupt files, bad model output, bad config, lock contention, bad data.

Every case runs the real thing: the SmolLM2-135M-Instruct converted from the wheel, Snakemake as a
subprocess, SIGKILL of a running job (or of Snakemake and its job together), two Snakemake processes on
one directory. To stay fast on 2 CPU cores, each Snakemake run targets one job (``--allowed-rules``)
and is fed small hand-made upstream files (a 26-question pool, 26 training pairs) instead of
running the whole chain; the uninterrupted reference of each kill case is a module-scoped fixture.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO

pytestmark = pytest.mark.slow

TIMEOUT = 420  # one Snakemake run, generously (a busy 2-core machine)
TOPIC = 4  # Corruption: 9 WVS seed items
GEN_MODEL = "smol_fewshot"  # SmolLM2 with a chat template that shows one JSON reply (step 1 parses)
MODEL = "smol"  # SmolLM2 as it is (it never writes step 1's JSON by itself)
BAD_MODEL = "smol_blind"  # SmolLM2 behind a chat template that drops the question: it never answers
VARIANT = "joint-crqpc-culture_aware-100"

GEN_OUT = f"results/{GEN_MODEL}/questions/generate/raw/topic_{TOPIC}.jsonl"
GEN_STATS = f"results/{GEN_MODEL}/questions/generate/raw/topic_{TOPIC}.stats.json"
EXHAUST_OUT = f"results/{MODEL}/questions/generate/raw/topic_{TOPIC}.jsonl"
POOL = f"results/{MODEL}/questions/released/pool.jsonl"
ANSWERS = f"results/{MODEL}/answers/released/culture_unaware/none.jsonl"
PAIRS = f"results/{MODEL}/pairs/released/culture_aware/crqpc/joint.jsonl"
SFT = f"results/{MODEL}/sft/{VARIANT}"
CHECKPOINTS = f"checkpoints/{MODEL}/{VARIANT}"
DATA_FILES = ("data/wvs_questions.json", "data/proportions_group_by_country.json",
              "data/self_alignment_examples.json", "data/country_similarity.json")

# One worked example in front of the step-1 request, the topic cut out of the paper's prompt: with
# it SmolLM2-135M writes the JSON object about half the time (without it, almost never).
FEWSHOT_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}"
    "<|im_start|>user\nWrite one survey question about family as JSON.<|im_end|>\n"
    '<|im_start|>assistant\n{"Question": "Is family important in your life?", "Options": '
    '["Yes", "No"]}<|im_end|>\n'
    "<|im_start|>user\nWrite one survey question about "
    "{{ m['content'].split('topic of ')[1].split('.')[0] }} as JSON.<|im_end|>\n"
    "{% else %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# A broken template that drops every message: the model greets instead of answering.
BLIND_TEMPLATE = "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"


# --- helpers ------------------------------------------------------------------------------------


def faults_config(smollm2_path: Path, data_dir: Path) -> dict:
    """A small setup on top of config.yaml: one country, 2 questions per topic, 2 training steps."""
    model = {"path": str(smollm2_path), "dtype": "auto"}
    return {
        "data_mirror": str(data_dir),
        "countries": ["USA"],
        "run_models": [MODEL],
        "released": {"models": []},
        "models": {
            MODEL: model,
            GEN_MODEL: {**model, "chat_template": FEWSHOT_TEMPLATE},
            BAD_MODEL: {**model, "chat_template": BLIND_TEMPLATE},
        },
        "questions": {"source": "released", "per_topic": 2, "batch_size": 1, "max_attempts_factor": 5,
                      "max_new_tokens": 48, "seed": 7},
        "answering": {"batch_size": 2},
        "pairs": {"settings": ["culture_aware"], "strategies": ["crqpc"]},
        "sft": {
            "preset": "faults",
            "presets": {"faults": {"lora_rank": 4, "lora_alpha": 8, "learning_rate": 5.0e-4,
                                   "effective_batch": {"joint": 2, "specific": 2}, "per_device_batch": 2,
                                   "max_steps": 2, "save_steps": 1, "max_length": 256,
                                   "gradient_checkpointing": False, "warmup_ratio": 0.0}},
            "variants": [VARIANT],
        },
        "evaluation": {"base_methods": ["culture_unaware"], "tuned_methods": ["culture_aware"], "runs": 1,
                       "max_items": 10, "orders": ["original"]},
        "mmlu": {"variants": []},
        "scoring": {"n_boot": 20, "uniform_draws": 100},
    }


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def snakemake_cmd(snakemake_bin, workdir: Path, targets, configfiles=(), *args) -> list[str]:
    """--configfile last: it takes every word after it. One core, so each model job runs torch on one
    thread: reference and resumed runs compute alike, and a busy machine cannot stall a job's
    threads on one another (two threads on a loaded 2-core machine made QLoRA steps 20x slower)."""
    return [snakemake_bin, *targets, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "1",
            "--nocolor", *args, "--configfile", str(REPO / "config.yaml"), *map(str, configfiles)]


def run(cmd, timeout=TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def output_of(proc) -> str:
    return (proc.stdout or "") + (proc.stderr or "")


def ok(proc) -> subprocess.CompletedProcess:
    if proc.returncode != 0:
        pytest.fail(f"snakemake failed ({proc.returncode}):\n{output_of(proc)[-6000:]}")
    return proc


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def job_process(snakemake_pid: int, script: str) -> int | None:
    """The process running a rule's script (``python .snakemake/scripts/tmpXXX.<script>``)."""
    for pid in descendants(snakemake_pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(part.decode(errors="replace").endswith(f".{script}") for part in cmdline):
            return pid
    return None


class KilledRun:
    """A Snakemake run SIGKILLed once ``ready()`` holds: only the job's process (``what="job"``: the
    OOM killer, scancel of one job) or Snakemake and its jobs together (``"all"``: a lost node)."""

    def __init__(self, cmd, ready, script: str, what: str, timeout=TIMEOUT):
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.output = ""
        reader = threading.Thread(target=self._read, daemon=True)
        reader.start()
        deadline = time.monotonic() + timeout
        self.killed = None
        try:
            while time.monotonic() < deadline and self.proc.poll() is None:
                if ready():
                    target = job_process(self.proc.pid, script)
                    if what == "job" and target is not None:
                        os.kill(target, signal.SIGKILL)
                        self.killed = ("job", target)
                    elif what == "all":
                        os.killpg(self.proc.pid, signal.SIGKILL)
                        self.killed = ("all", self.proc.pid)
                    if self.killed:
                        break
                time.sleep(0.05)
            self.returncode = self.proc.wait(timeout=120)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        reader.join(timeout=10)
        if self.killed is None:
            pytest.fail(f"the job was never killed (rc {self.returncode}):\n{self.output[-4000:]}")
        if what == "all":  # nothing of the run survives
            deadline = time.monotonic() + 30
            while descendants(self.proc.pid) and time.monotonic() < deadline:
                time.sleep(0.1)

    def _read(self):
        for line in self.proc.stdout:
            self.output += line


def count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except OSError:
        return 0


def stage_data(workdir: Path, data_dir: Path, files=DATA_FILES) -> None:
    """The pinned data files a job reads, as a verified fetch would have left them."""
    for rel in files:
        dest = workdir / "resources/culturespa" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_dir / rel, dest)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def no_temporaries(root: Path) -> list[str]:
    """Temporary siblings of atomic writes (``.name.XXXX.tmp``) anywhere under ``root``."""
    return [str(p) for p in root.rglob(".*.tmp")]


# --- shared inputs ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def setup(smollm2_path, data_dir, snakemake_bin, tmp_path_factory):
    """The config file and the hand-made upstream files every workdir starts from."""
    from culturespa import filters, io, pairs
    from culturespa.wvs import load_items

    root = tmp_path_factory.mktemp("faults")
    config = write_yaml(root / "faults.yaml", faults_config(smollm2_path, data_dir))
    released = filters.load_released_pool(data_dir / "data/Meta-Llama-3-8B-Instruct")
    first = [r for r in released if int(r["qid"][-5:]) < 3]  # 3 per topic, then the filters
    kept, _ = filters.filter_pool(first, load_items(data_dir / "data/wvs_questions.json"), 0.9)
    pool = [r for t in range(13) for r in [k for k in kept if k["topic"] == t][:2]]
    io.write_jsonl(root / "pool.jsonl", pool)
    # culture-aware answers that differ from the culture-unaware ones everywhere: 26 CRQPC pairs
    unaware = [{"qid": q["qid"], "choice": q["first"]} for q in pool]
    aware = [{"qid": q["qid"], "choice": q["first"] + 1} for q in pool]
    io.write_jsonl(root / "pairs.jsonl", pairs.build_pairs(pool, unaware, {"USA": aware}, 0).joint("CRQPC"))
    return {"root": root, "config": config, "snakemake": snakemake_bin, "data_dir": data_dir}


def workdir(setup, name: str, files=()) -> Path:
    """A fresh workdir holding the data files and the named hand-made inputs (pool, pairs)."""
    work = setup["root"] / name
    work.mkdir()
    stage_data(work, setup["data_dir"])
    for rel, src in files:
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(setup["root"] / src, work / rel)
    return work


def smk(setup, work, targets, *args, configfiles=()):
    return snakemake_cmd(setup["snakemake"], work, targets, [setup["config"], *configfiles], *args)


# --- SIGKILL during answering; two Snakemake processes on one directory --------------------------


@pytest.fixture(scope="module")
def answer_reference(setup):
    """The uninterrupted answering job; while it runs, a second Snakemake starts on the same
    directory with the same target."""
    work = workdir(setup, "answer_reference", [(POOL, "pool.jsonl")])
    cmd = smk(setup, work, [ANSWERS], "--allowed-rules", "answer_questions")
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while job_process(first.pid, "answer_questions.py") is None and first.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        running_during_second = first.poll() is None
        second = run(cmd)
        running_after_second = first.poll() is None
        first_output, _ = first.communicate(timeout=TIMEOUT)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    return {"work": work, "first_rc": first.returncode, "first_output": first_output, "second": second,
            "overlapped": running_during_second and running_after_second}


@pytest.fixture(scope="module")
def answer_killed(setup):
    """The same job, SIGKILLed after two batches, then rerun with --rerun-incomplete."""
    work = workdir(setup, "answer_killed", [(POOL, "pool.jsonl")])
    cmd = smk(setup, work, [ANSWERS], "--allowed-rules", "answer_questions")
    partial = work / f"{ANSWERS}.partial"
    killed = KilledRun(cmd, lambda: count_lines(partial) >= 3, "answer_questions.py", "job")
    after_kill = {"output_exists": (work / ANSWERS).exists(), "partial_lines": count_lines(partial)}
    rerun = ok(run(smk(setup, work, [ANSWERS], "--allowed-rules", "answer_questions",
                       "--rerun-incomplete")))
    return {"work": work, "killed": killed, "after_kill": after_kill, "rerun": rerun}


def test_sigkill_while_answering_resumes_to_the_uninterrupted_output(answer_reference, answer_killed):
    assert answer_reference["first_rc"] == 0, answer_reference["first_output"][-4000:]
    killed = answer_killed["killed"]
    assert killed.returncode != 0  # Snakemake saw its job die
    assert not answer_killed["after_kill"]["output_exists"]  # no half-written output
    assert answer_killed["after_kill"]["partial_lines"] >= 3  # the finished batches survived
    log = (answer_killed["work"] / f"logs/{MODEL}/answers/released/culture_unaware/none.log").read_text()
    assert "resuming" in log
    ref = (answer_reference["work"] / ANSWERS).read_bytes()
    assert (answer_killed["work"] / ANSWERS).read_bytes() == ref
    assert len(ref.splitlines()) == 26
    assert not (answer_killed["work"] / f"{ANSWERS}.partial").exists()
    assert not no_temporaries(answer_killed["work"] / "results")


def test_second_snakemake_on_the_same_directory_is_refused(answer_reference, answer_killed):
    assert answer_reference["overlapped"]
    second = answer_reference["second"]
    assert second.returncode != 0
    assert "cannot be locked" in output_of(second)
    # the first run finished undisturbed: its output is complete and equals an independent run's
    assert answer_reference["first_rc"] == 0
    assert (answer_reference["work"] / ANSWERS).read_bytes() == (answer_killed["work"] / ANSWERS).read_bytes()
    locks = answer_reference["work"] / ".snakemake/locks"
    assert not locks.exists() or not list(locks.iterdir())  # released at the end


# --- SIGKILL of Snakemake and its job during question generation (step 1) -----------------------


def generated_so_far(partial: Path) -> int:
    try:
        return sum('"qid"' in line for line in partial.read_text().splitlines())
    except OSError:
        return 0


@pytest.fixture(scope="module")
def generation_reference(setup):
    work = workdir(setup, "generation_reference")
    ok(run(smk(setup, work, [GEN_OUT], "--allowed-rules", "generate_questions")))
    return work


@pytest.fixture(scope="module")
def generation_killed(setup):
    """Snakemake and the generation job SIGKILLed together once one question is saved; then the
    rerun, as a user would: Snakemake refuses the stale lock, --unlock, --rerun-incomplete."""
    work = workdir(setup, "generation_killed")
    cmd = smk(setup, work, [GEN_OUT], "--allowed-rules", "generate_questions")
    partial = work / f"{GEN_OUT}.partial"
    killed = KilledRun(cmd, lambda: generated_so_far(partial) >= 1, "generate_questions.py", "all")
    after_kill = {"output_exists": (work / GEN_OUT).exists(), "saved": generated_so_far(partial),
                  "partial": partial.read_text()}
    stale = run(cmd + ["--rerun-incomplete"])  # refused: the killed Snakemake could not release its lock
    unlock = ok(run(smk(setup, work, [GEN_OUT], "--unlock")))
    rerun = ok(run(smk(setup, work, [GEN_OUT], "--allowed-rules", "generate_questions", "--rerun-incomplete")))
    return {"work": work, "killed": killed, "after_kill": after_kill, "stale": stale, "unlock": unlock,
            "rerun": rerun}


def test_sigkill_while_generating_questions_resumes_to_the_uninterrupted_output(
    generation_reference, generation_killed
):
    after = generation_killed["after_kill"]
    assert not after["output_exists"] and after["saved"] >= 1
    work = generation_killed["work"]
    log = (work / f"logs/{GEN_MODEL}/questions/generate/topic_{TOPIC}.log").read_text()
    assert "resuming topic" in log
    ref = (generation_reference / GEN_OUT).read_bytes()
    assert len(ref.splitlines()) == 2
    assert (work / GEN_OUT).read_bytes() == ref
    ref_stats = json.loads((generation_reference / GEN_STATS).read_text())
    stats = json.loads((work / GEN_STATS).read_text())
    assert stats.pop("resumed_from") >= 1 and ref_stats.pop("resumed_from") == 0
    assert stats == ref_stats  # attempts, valid, invalid count the whole topic, across the kill
    assert not (work / f"{GEN_OUT}.partial").exists()


def test_generation_state_makes_a_resumed_topic_equal_an_uninterrupted_one():
    """The same at unit level, with a scripted model that mostly fails to write JSON: killed after
    each round in turn, resumed from the saved records and state."""
    from culturespa import questions as gq
    from culturespa.wvs import Item

    seeds = [Item(f"Q{112 + i}", f"Corruption seed {i}?", ("Yes", "No"), 1, TOPIC) for i in range(6)]

    def model(chats, seed):  # deterministic in (prompt, seed): 1 reply in 3 parses
        return [json.dumps({"Question": f"Q{seed % 97}-{len(u)}?", "Options": ["a", "b"]})
                if (seed + len(u)) % 3 == 0 else "Sure! Here is a question." for _, u in chats]

    full, stats = gq.generate_topic(model, TOPIC, seeds, 4, seed=1, batch_size=2, max_attempts=40)
    saved = []
    gq.generate_topic(model, TOPIC, seeds, 4, seed=1, batch_size=2, max_attempts=40,
                      on_round=lambda r, s: saved.append((list(r), s.state())))
    assert len(saved) > 2
    for records, state in saved:
        resumed, resumed_stats = gq.generate_topic(model, TOPIC, seeds, 4, seed=1, batch_size=2, max_attempts=40,
                                                   existing=records, state=state)
        assert resumed == full
        assert {**resumed_stats.as_dict(), "resumed_from": 0} == stats.as_dict()
    # the bound covers the topic: a run resumed at the bound asks nothing more
    with pytest.raises(gq.GenerationExhausted, match="asked 6,"):
        gq.generate_topic(model, TOPIC, seeds, 40, seed=1, batch_size=2, max_attempts=6,
                          existing=saved[2][0], state={**saved[2][1], "attempts": 6})


def test_generation_journal_of_another_job_or_corrupt_is_never_used(tmp_path):
    from culturespa import io
    from culturespa.errors import DataFileError
    from culturespa.models import ModelSpec
    from culturespa.questions import generation_fingerprint
    from culturespa.resume import Journal

    model = ModelSpec(name="m", path="org/m")
    settings = {"batch_size": 2, "temperature": 0.9, "top_p": 0.95, "max_new_tokens": 64, "seed": 1,
                "per_topic": 10, "max_attempts_factor": 5}
    mine = generation_fingerprint(model, TOPIC, settings)
    # the stopping rule may change (a larger bound after GenerationExhausted): progress is kept
    assert generation_fingerprint(model, TOPIC, {**settings, "per_topic": 20, "max_attempts_factor": 9}) == mine
    out = tmp_path / "topic_4.jsonl"
    state = {"attempts": 3, "valid": 1, "invalid": 2, "retry": 0}
    entry = {"records": [{"qid": "T04-00000"}], "state": state}
    io.write_jsonl(f"{out}.partial", [{"fingerprint": mine}, entry])
    assert Journal(out, mine).entries == [entry]
    other = generation_fingerprint(model, TOPIC, {**settings, "seed": 2})
    assert Journal(out, other).entries == [] and not Path(f"{out}.partial").exists()  # another job's: started over
    io.write_jsonl(f"{out}.partial", [{"fingerprint": mine}, entry, entry])
    text = Path(f"{out}.partial").read_text()
    Path(f"{out}.partial").write_text(text.replace('"retry": 0}}\n', '"retry": 0\n', 1))  # corrupt mid-file
    with pytest.raises(DataFileError, match=re.escape(f"{out}.partial:2: corrupt line")):
        Journal(out, mine)


def test_killed_snakemake_leaves_a_lock_that_unlock_clears(generation_killed):
    stale = generation_killed["stale"]
    assert stale.returncode != 0 and "cannot be locked" in output_of(stale)


# --- SIGKILL during QLoRA fine-tuning (step 4) ----------------------------------------------------

RUN_STATS = {"train_seconds", "steps_per_second", "wall_seconds", "peak_rss_mb", "peak_gpu_mb",
             "resumed_from_step", "steps_this_run"}  # how this run went, not what it produced


@pytest.fixture(scope="module")
def training_reference(setup):
    work = workdir(setup, "training_reference", [(PAIRS, "pairs.jsonl")])
    ok(run(smk(setup, work, [f"{SFT}/adapter"], "--allowed-rules", "finetune_joint")))
    return work


@pytest.fixture(scope="module")
def training_killed(setup):
    """The training job SIGKILLed once its step-1 checkpoint is complete, then rerun."""
    work = workdir(setup, "training_killed", [(PAIRS, "pairs.jsonl")])
    cmd = smk(setup, work, [f"{SFT}/adapter"], "--allowed-rules", "finetune_joint")
    state = work / CHECKPOINTS / "checkpoint-1" / "trainer_state.json"
    killed = KilledRun(cmd, state.is_file, "finetune.py", "job")
    after_kill = {"outputs": [p for p in ("adapter", "loss.csv", "train_stats.json") if (work / SFT / p).exists()],
                  "checkpoints": sorted(p.name for p in (work / CHECKPOINTS).glob("checkpoint-*"))}
    rerun = ok(run(cmd + ["--rerun-incomplete"]))
    return {"work": work, "killed": killed, "after_kill": after_kill, "rerun": rerun}


def test_sigkill_while_training_resumes_to_the_uninterrupted_adapter(training_reference, training_killed):
    work = training_killed["work"]
    assert training_killed["after_kill"]["outputs"] == []  # nothing half-written looks like a result
    assert "checkpoint-1" in training_killed["after_kill"]["checkpoints"]
    stats = json.loads((work / SFT / "train_stats.json").read_text())
    ref_stats = json.loads((training_reference / SFT / "train_stats.json").read_text())
    assert stats["resumed_from_step"] >= 1 and ref_stats["resumed_from_step"] == 0
    assert stats["steps"] == ref_stats["steps"] == 2
    assert {k: v for k, v in stats.items() if k not in RUN_STATS} == {
        k: v for k, v in ref_stats.items() if k not in RUN_STATS}
    assert (work / SFT / "loss.csv").read_bytes() == (training_reference / SFT / "loss.csv").read_bytes()
    for name in ("adapter_model.safetensors", "adapter_config.json", "train_settings.json"):
        assert (work / SFT / "adapter" / name).read_bytes() == (training_reference / SFT / "adapter" / name).read_bytes(), name
    assert not (work / CHECKPOINTS).exists()  # removed once the adapter is saved


# --- a model that never writes step 1's JSON: bounded retries, then a clear error ------------------


@pytest.fixture(scope="module")
def exhausted(setup):
    """SmolLM2 as it is asked for topic 4's questions with a bound of 2 generations; then the same
    job again, as a user rerunning the workflow would."""
    work = workdir(setup, "exhausted")
    bound = write_yaml(setup["root"] / "exhausted.yaml", {"questions": {
        "per_topic": 2, "batch_size": 2, "max_attempts_factor": 1, "max_new_tokens": 16}})
    cmd = smk(setup, work, [EXHAUST_OUT], "--allowed-rules", "generate_questions", configfiles=[bound])
    first = run(cmd)
    log = work / f"logs/{MODEL}/questions/generate/topic_{TOPIC}.log"
    first_log = log.read_text()
    partial = (work / f"{EXHAUST_OUT}.partial").read_text()
    again = run(cmd)
    return {"work": work, "first": first, "first_log": first_log, "partial": partial, "again": again,
            "again_log": log.read_text()}


def test_model_without_json_stops_after_the_bound_naming_topic_and_counts(exhausted):
    first = exhausted["first"]
    assert first.returncode != 0
    message = output_of(first)
    assert "culturespa error: topic 4 (Corruption): only 0 of 2 questions after 2 generations" in message
    assert "asked 2, valid 0, invalid 2" in message
    assert "questions.max_attempts_factor=1" in message  # the key to raise
    work = exhausted["work"]
    assert not (work / EXHAUST_OUT).exists() and not (work / EXHAUST_OUT.replace(".jsonl", ".stats.json")).exists()
    assert exhausted["first_log"].count("questions (attempts") == 1  # one round of 2, no more
    last = json.loads(exhausted["partial"].splitlines()[-1])  # the journal's last round: its counts
    assert last["state"]["attempts"] == 2 and last["state"]["invalid"] == 2


def test_rerun_after_the_bound_does_not_ask_again(exhausted):
    """The bound covers the topic, not one run: rerunning does not buy another round of retries."""
    again = exhausted["again"]
    assert again.returncode != 0
    assert "asked 2, valid 0, invalid 2" in output_of(again)
    assert "questions (attempts" not in exhausted["again_log"]  # no generation this time
    assert "Loading weights" not in exhausted["again_log"]  # nor even a model load


# --- a model whose answers are all invalid: missing scores with n_invalid ---------------------------


@pytest.fixture(scope="module")
def invalid_answers(setup):
    """SmolLM2 behind a chat template that drops the question answers the WVS (generate mode) and
    is scored: step 5 for the base model, culture-unaware, 10 items."""
    work = workdir(setup, "invalid_answers")
    blind = write_yaml(setup["root"] / "blind.yaml", {
        "answering": {"mode": "generate", "max_new_tokens": 4, "temperature": 0.01, "batch_size": 10},
        "sft": {"variants": []}})
    # --notemp: the per-variant scores tables (temp() outputs) stay for the hand-edit tests
    ok(run(smk(setup, work, [f"results/{BAD_MODEL}/alignment.csv"], "--allowed-rules", "evaluate_wvs",
               "score_variant", "aggregate_alignment", "--notemp", configfiles=[blind])))
    return work


def test_all_invalid_answers_are_reported_missing_with_n_invalid(invalid_answers):
    work = invalid_answers / "results" / BAD_MODEL
    answers = [json.loads(x) for x in (work / "eval/base/culture_unaware/original/none.jsonl").read_text().splitlines()]
    assert len(answers) == 10 and all(a["choice"] is None for a in answers)
    assert all(a["reply"] for a in answers)  # the model did reply, just never with an option number
    table = pd.read_csv(work / "alignment.csv", keep_default_na=False, dtype=str)
    mine = table[(table.variant == "base") & (table.method == "culture_unaware")]
    assert set(mine.metric) >= {"paper_score", "js_similarity", "wasserstein_similarity"}
    assert set(mine.country) == {"USA", "America", "AVG"}  # the country, its continent, the average
    for row in mine.itertuples():
        assert row.value == "" and row.ci_low == "" and row.ci_high == "", row  # missing, not a number
        assert (int(row.n_valid), int(row.n_invalid)) == (0, 10)
    baseline = table[(table.method == "baseline_uniform") & (table.metric == "paper_score")]
    assert all(float(v) > 0 for v in baseline.value)  # the same table does hold numbers elsewhere


# --- truncated and hand-edited intermediate files ---------------------------------------------------


def test_truncated_jsonl_input_stops_the_job_naming_the_file(setup):
    work = workdir(setup, "truncated_pool", [(POOL, "pool.jsonl")])
    pool = work / POOL
    text = pool.read_text()
    cut = text.index("\n", len(text) // 2) + 20  # mid-line, half-way through
    pool.write_text(text[:cut])
    lineno = text[:cut].count("\n") + 1
    proc = run(smk(setup, work, [ANSWERS], "--allowed-rules", "answer_questions"))
    assert proc.returncode != 0
    assert f"{POOL}:{lineno}: truncated line" in output_of(proc)
    assert not (work / ANSWERS).exists() and not (work / f"{ANSWERS}.partial").exists()


@pytest.mark.parametrize("edit", ["short_row", "long_row", "text_in_number", "dropped_column", "truncated"])
def test_hand_edited_csv_is_an_error_naming_the_file(setup, invalid_answers, tmp_path, edit):
    """A scores table edited by hand, then aggregated (the rule rerun by Snakemake, for short_row)."""
    from culturespa import io
    from culturespa.errors import DataFileError

    src = invalid_answers / f"results/{BAD_MODEL}/scores/base.csv"
    lines = src.read_text().splitlines(keepends=True)
    header = lines[0].rstrip("\n").split(",")
    if edit == "short_row":  # a deleted cell: pandas would pad the row with NaN
        lines[3] = lines[3].rstrip("\n").rsplit(",", 1)[0] + "\n"
    elif edit == "long_row":
        lines[3] = lines[3].rstrip("\n") + ",1\n"
    elif edit == "text_in_number":
        cells = lines[3].rstrip("\n").split(",")
        cells[header.index("n_valid")] = "ten"
        lines[3] = ",".join(cells) + "\n"
    elif edit == "dropped_column":
        k = header.index("n_invalid")
        lines = [",".join(c for i, c in enumerate(line.rstrip("\n").split(",")) if i != k) + "\n" for line in lines]
    else:
        lines[-1] = lines[-1][: len(lines[-1]) // 2]
    edited = tmp_path / "base.csv"
    edited.write_text("".join(lines))
    with pytest.raises(DataFileError, match=re.escape(str(edited))):
        io.read_csv(edited, required=["model", "variant", "method", "country", "metric"],
                    numeric=["value", "ci_low", "ci_high", "n_valid", "n_invalid", "run"])
    if edit != "short_row":
        return
    # the workflow's own consumer, rerun by Snakemake because its input changed
    work = tmp_path / "work"
    shutil.copytree(invalid_answers / "results", work / "results")
    shutil.copytree(invalid_answers / "resources", work / "resources")
    (work / f"results/{BAD_MODEL}/scores/base.csv").write_text("".join(lines))
    (work / f"results/{BAD_MODEL}/alignment.csv").unlink()
    proc = run(smk(setup, work, [f"results/{BAD_MODEL}/alignment.csv"], "--allowed-rules", "aggregate_alignment",
                   configfiles=[setup["root"] / "blind.yaml"]))
    assert proc.returncode != 0
    assert f"results/{BAD_MODEL}/scores/base.csv:4: " in output_of(proc)
    assert not (work / f"results/{BAD_MODEL}/alignment.csv").exists()


def test_jsonl_damage_is_detected_by_every_reader(tmp_path):
    from culturespa import io
    from culturespa.errors import DataFileError

    good = [{"qid": f"Q{i}", "text": "x" * 50} for i in range(5)]
    path = tmp_path / "a.jsonl"
    io.write_jsonl(path, good)
    text = path.read_text()
    for damaged, what in [
        (text[:-10], "truncated line"),  # cut mid-line
        (text.replace('"Q2"', '"Q2', 1), "corrupt JSON line"),  # a hand edit broke a line
        (text + "[1, 2]\n", "expected a JSON object"),
    ]:
        path.write_text(damaged)
        with pytest.raises(DataFileError, match=f"{path}:[0-9]+: {what}"):
            io.read_jsonl(path)


# --- config errors fail before any job, naming the key -----------------------------------------------


def config_cases(paper_cultures) -> dict[str, tuple[dict, str]]:
    """case -> (config override, the key the error must name)"""
    return {
        "unknown culture code": ({"countries": ["USA", "XYZ"]}, "countries[1]"),
        "country without survey data": (
            {"cultures": paper_cultures + [{"code": "FRA", "adjective": "French", "article": "a",
                                            "continent": "Europe"}], "countries": ["USA", "FRA"]},
            "cultures[18]"),
        "percent of pairs 0": ({"sft": {"variants": ["joint-crqpc-culture_aware-0"]}}, "sft.variants[0]"),
        "percent of pairs 150 (mmlu)": ({"mmlu": {"variants": ["joint-crqpc-culture_aware-150"]}},
                                        "mmlu.variants[0]"),
        "top_p above 1": ({"questions": {"top_p": 1.5}}, "top_p"),
        "ci_level of 1": ({"scoring": {"ci_level": 1.0}}, "ci_level"),
        "missing model folder": ({"models": {"mine": {"path": "./no/such/model"}}, "run_models": ["mine"]},
                                 "models.mine.path"),
        "missing model package": (
            {"models": {"mine": {"gguf": {"package": "no_such_package_xyz", "file": "m.gguf"}}},
             "run_models": ["mine"]}, "models.mine.gguf"),
    }


CONFIG_CASES = list(config_cases([]))


@pytest.mark.parametrize("case", CONFIG_CASES)
def test_config_error_fails_before_any_job_naming_the_key(case, snakemake_bin, paper_config, data_dir, tmp_path):
    bad, key = config_cases(paper_config["cultures"])[case]
    cfg = write_yaml(tmp_path / "bad.yaml", {"data_mirror": str(data_dir), **bad})
    work = tmp_path / "work"
    # a real run (not -n) of everything: had the config passed, jobs would start at once
    proc = run(snakemake_cmd(snakemake_bin, work, ["all"], [cfg]), timeout=120)
    assert proc.returncode != 0
    out = output_of(proc)
    assert key in out, out[-3000:]
    assert "rule " not in out and "localrule " not in out  # no job was scheduled
    assert sorted(p.name for p in work.iterdir()) in ([], [".snakemake"])  # nothing written
    if work.joinpath(".snakemake").exists():
        assert not list(work.joinpath(".snakemake").rglob("metadata/*"))


# --- data that differ from the pinned checksums never reach a rule ----------------------------------


@pytest.fixture
def corrupt_release(data_dir, tmp_path):
    """The release as a mirror (links to the real files: the fetch job takes the whole dataset), the
    file the target needs a copy with one byte changed."""
    mirror = tmp_path / "mirror"
    rel = "data/wvs_questions.json"
    for path in data_dir.rglob("*"):
        if path.is_file():
            link = mirror / path.relative_to(data_dir)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)
    (mirror / rel).unlink()
    raw = bytearray((data_dir / rel).read_bytes())
    raw[100] ^= 1
    (mirror / rel).write_bytes(bytes(raw))
    return mirror, rel


@pytest.mark.parametrize("source", ["mirror", "download", "edited_after_fetch"])
def test_data_that_fail_the_checksum_never_reach_a_rule(setup, corrupt_release, tmp_path, source):
    import functools
    import http.server

    mirror, rel = corrupt_release
    server = None
    work = tmp_path / "work"
    if source == "edited_after_fetch":  # fetched and verified once, then changed in place
        stage_data(work, setup["data_dir"], [rel])
        shutil.copyfile(mirror / rel, work / "resources/culturespa" / rel)
        proc = run(smk(setup, work, [EXHAUST_OUT], "--allowed-rules", "get_culturespa_data", "generate_questions"))
        out = output_of(proc)
        assert proc.returncode != 0
        assert f"resources/culturespa/{rel}: sha256 " in out and "changed after they were fetched" in out
        assert "rule generate_questions:" not in out
        assert not (work / f"logs/{MODEL}/questions/generate/topic_{TOPIC}.log").exists()
        return
    if source == "mirror":
        where = {"data_mirror": str(mirror)}
    else:
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(mirror)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        where = {"data_mirror": None, "data_base_url": f"http://127.0.0.1:{server.server_address[1]}"}
    try:
        override = write_yaml(tmp_path / "source.yaml", where)
        proc = run(smk(setup, work, [EXHAUST_OUT], "--allowed-rules", "get_culturespa_data", "generate_questions",
                       configfiles=[override]))
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    out = output_of(proc)
    assert proc.returncode != 0
    assert f"{rel}: checksum mismatch" in out
    assert not (work / "resources/culturespa" / rel).exists()  # nothing at the materialised path
    assert not no_temporaries(work / "resources")  # nor a temporary beside it
    # the consumer never started: no job, no log
    assert "rule generate_questions:" not in out
    assert not (work / f"logs/{MODEL}/questions/generate/topic_{TOPIC}.log").exists()


# --- every output is written atomically ---------------------------------------------------------------

# Writes that are not outputs of a rule, or write into a temporary that an atomic_path/atomic_dir
# of the caller renames into place.
NOT_OUTPUTS = {
    ("logs.py", "run_logged"): "the rule's log file, written while the job runs",
    ("resume.py", "append"): "opens the append-only <out>.partial journal, fsync'ed after every unit of work",
    ("gpus.py", "claim_gpu"): "a GPU slot's lock file, held with flock while the job runs, never an output",
    ("fetch.py", "_copy_from_mirror"): "writes the temporary of materialise's atomic_path",
    ("fetch.py", "_download"): "writes the temporary of materialise's atomic_path",
    ("figures.py", "export_rulegraph"): "a temporary config for the snakemake --rulegraph subprocess, deleted after",
    ("jobserver.py", "start_server"): "the job server's own log (its stdout and stderr), appended, never an output",
    ("jobserver.py", "serve"): "the job server's lock file, held with flock while it runs, never an output",
    ("models.py", "convert_gguf"): "the conversion cache's lock file, held with flock while converting, never an output",
}
WRITING_METHODS = {"to_csv", "to_json", "to_parquet", "to_excel", "to_markdown", "to_latex", "save_pretrained",
                   "savefig", "write_text", "write_bytes"}  # on any object but culturespa.io (atomic)
WRITING_FUNCTIONS = {
    "shutil": {"copyfile", "copy", "copy2", "move", "copytree", "copyfileobj"},
    "json": {"dump"}, "pickle": {"dump"}, "yaml": {"dump", "safe_dump"},
    "torch": {"save"}, "np": {"save", "savez", "savetxt"}, "numpy": {"save", "savez", "savetxt"},
}


def _writes(tree):
    """(function name, line, what) of every call that writes a file, with whether an enclosing
    ``with`` runs it inside atomic_path / atomic_dir."""
    import ast

    def atomic(with_node) -> bool:
        for item in with_node.items:
            call = item.context_expr
            if isinstance(call, ast.Call):
                f = call.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                if name in ("atomic_path", "atomic_dir"):
                    return True
        return False

    found = []

    def visit(node, func, inside):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            func = node.name
        if isinstance(node, (ast.With, ast.AsyncWith)) and atomic(node):
            inside = True
        if isinstance(node, ast.Call):
            f = node.func
            what = None
            if isinstance(f, ast.Name) and f.id == "open":
                mode = node.args[1] if len(node.args) > 1 else next(
                    (k.value for k in node.keywords if k.arg == "mode"), None)
                if isinstance(mode, ast.Constant) and any(c in str(mode.value) for c in "wax+"):
                    what = f"open(..., {mode.value!r})"
            elif isinstance(f, ast.Attribute):
                owner = f.value.id if isinstance(f.value, ast.Name) else None
                if f.attr in WRITING_FUNCTIONS.get(owner, ()) or (f.attr in WRITING_METHODS and owner != "io"):
                    what = f"{owner or ''}.{f.attr}(...)"
            if what:
                found.append((func, node.lineno, what, inside))
        for child in ast.iter_child_nodes(node):
            visit(child, func, inside)

    visit(tree, "<module>", False)
    return found


def test_every_output_writer_goes_through_an_atomic_rename():
    """A static audit of the package and the rule scripts: a file write outside io.atomic_path /
    io.atomic_dir is either listed in NOT_OUTPUTS with its reason, or a bug."""
    import ast

    offenders = []
    for path in sorted([*(REPO / "culturespa").glob("*.py"), *(REPO / "scripts").glob("*.py")]):
        if path.name == "io.py":
            continue  # the atomic writers themselves
        for func, line, what, inside in _writes(ast.parse(path.read_text())):
            if not inside and (path.name, func) not in NOT_OUTPUTS:
                offenders.append(f"{path.relative_to(REPO)}:{line} in {func}(): {what}")
    assert not offenders, "writes that are not atomic:\n" + "\n".join(offenders)


WRITER = r"""
import sys, time
from pathlib import Path
from culturespa import io
dest, kind, marker = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])

def slow(n):
    for i in range(n):
        if i == n // 2:
            marker.touch()
            time.sleep(60)  # killed here, half-way through
        yield {"i": i, "pad": "x" * 100}

if kind == "jsonl":
    io.write_jsonl(dest, slow(1000))
else:
    with io.atomic_dir(dest) as tmp:
        (tmp / "a.json").write_text("{}")
        for rec in slow(2):
            (tmp / "b.json").write_text("{}")
"""


@pytest.mark.parametrize("kind", ["jsonl", "dir"])
@pytest.mark.parametrize("existing", [False, True])
def test_writer_killed_mid_write_leaves_old_or_nothing(tmp_path, kind, existing):
    from culturespa import io

    dest = tmp_path / ("out.jsonl" if kind == "jsonl" else "adapter")
    if existing:
        if kind == "jsonl":
            io.write_jsonl(dest, [{"old": True}])
        else:
            with io.atomic_dir(dest) as tmp:
                (tmp / "old.json").write_text("{}")
    before = tree_bytes(dest) if kind == "dir" and existing else (dest.read_bytes() if existing else None)
    marker = tmp_path / "halfway"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(dest), kind, str(marker)], cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    if existing:
        assert (tree_bytes(dest) if kind == "dir" else dest.read_bytes()) == before
    else:
        assert not dest.exists()
    if kind == "jsonl" and existing:
        assert io.read_jsonl(dest) == [{"old": True}]
    assert len(no_temporaries(tmp_path)) == 1  # the dead writer's temporary: hidden, named .tmp
    if kind == "jsonl":  # the next write of the same output clears it away
        io.write_jsonl(dest, [{"new": True}])
    else:
        with io.atomic_dir(dest) as tmp:
            (tmp / "new.json").write_text("{}")
    assert not no_temporaries(tmp_path)


def test_atomic_outputs_get_ordinary_permissions(tmp_path):
    """Not mkstemp's 0600: on shared storage the group must be able to read the results."""
    from culturespa import io

    old = os.umask(0o022)
    try:
        io.write_jsonl(tmp_path / "a.jsonl", [{"a": 1}])
        with io.atomic_dir(tmp_path / "d") as tmp:
            (tmp / "f").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.jsonl").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
