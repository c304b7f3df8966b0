"""GPU slots: one model job per GPU, through real flock'ed lock files (GPU indices are given, so no
GPU is needed)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from culturespa import gpus
from culturespa.errors import CultureSPAError


@pytest.fixture(autouse=True)
def release():
    yield
    gpus.release_gpus()


def test_jobs_get_different_gpus_and_a_released_slot_is_reused(tmp_path):
    first, second = {}, {}
    assert gpus.claim_gpu(["0", "1"], tmp_path, env=first) == "0"
    assert first["CUDA_VISIBLE_DEVICES"] == "0"
    assert gpus.claim_gpu(["0", "1"], tmp_path, env=second) == "1"
    assert second["CUDA_VISIBLE_DEVICES"] == "1"
    with pytest.raises(CultureSPAError, match="all 2 GPUs"):
        gpus.claim_gpu(["0", "1"], tmp_path, env={}, wait_s=0)
    gpus.release_gpus()
    assert gpus.claim_gpu(["0", "1"], tmp_path, env={}) == "0"


HOLDER = """
import sys
from culturespa import gpus
env = {}
print(gpus.claim_gpu(["0", "1"], sys.argv[1], env=env), flush=True)
sys.stdin.read()  # hold the slot until the parent closes stdin, or kills us
"""


def test_a_slot_held_by_another_process_is_skipped_until_that_process_dies(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "0"
        assert gpus.claim_gpu(["0", "1"], tmp_path, env={}) == "1"
        gpus.release_gpus()
        holder.kill()  # a killed job leaves no stale lock: the kernel drops it
        holder.wait(timeout=30)
        assert gpus.claim_gpu(["0", "1"], tmp_path, env={}) == "0"
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=30)


def test_a_waiting_job_gets_the_slot_when_it_frees(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "0"
        start = time.monotonic()
        holder.stdin.close()  # the holder exits, its lock goes
        env = {}
        assert gpus.claim_gpu(["0"], tmp_path, env=env, wait_s=60, poll_s=0.1) == "0"
        assert env["CUDA_VISIBLE_DEVICES"] == "0" and time.monotonic() - start < 60
    finally:
        holder.wait(timeout=30)


def test_nothing_to_do_when_the_scheduler_chose_or_there_is_no_gpu(tmp_path):
    env = {"CUDA_VISIBLE_DEVICES": "3"}  # Slurm sets it for a --gpus job
    assert gpus.claim_gpu(["0", "1"], tmp_path, env=env) is None
    assert env == {"CUDA_VISIBLE_DEVICES": "3"} and not list(tmp_path.iterdir())
    env = {}
    assert gpus.claim_gpu([], tmp_path, env=env) is None
    assert env == {}


def test_machine_gpus_from_the_environment():
    assert gpus.machine_gpus({"CULTURESPA_GPUS": "3"}) == ["0", "1", "2"]
    assert gpus.machine_gpus({"CULTURESPA_GPUS": "1, 3"}) == ["1", "3"]


def test_lock_dir_from_the_environment(tmp_path):
    env = {"CULTURESPA_GPU_LOCK_DIR": str(tmp_path / "locks")}
    assert gpus.claim_gpu(["2"], env=env) == "2"
    assert (tmp_path / "locks" / "gpu2.lock").read_text().strip().isdecimal()  # the holder's pid


def test_run_logged_claims_a_slot_for_a_gpu_job_only(tmp_path, monkeypatch):
    from culturespa.logs import run_logged

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # so that the claim's setting is undone afterwards
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setenv("CULTURESPA_GPUS", "0,1")
    monkeypatch.setenv("CULTURESPA_GPU_LOCK_DIR", str(tmp_path / "locks"))
    seen = []
    run_logged(str(tmp_path / "cpu.log"), lambda: seen.append(__import__("os").environ.get("CUDA_VISIBLE_DEVICES")))
    run_logged(str(tmp_path / "gpu.log"), lambda: seen.append(__import__("os").environ.get("CUDA_VISIBLE_DEVICES")),
               gpus=1)
    assert seen == [None, "0"]
    assert "GPU slot 0 claimed" in (tmp_path / "gpu.log").read_text()
