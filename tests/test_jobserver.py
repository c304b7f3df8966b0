"""The job server: a forked job behaves as the job would in its own process (status, streams, cwd,
environment, argv), dies with its client, and is only used where it is safe."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from culturespa import jobserver
from slurm_cluster import _alive as alive  # a zombie counts as ended

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the job server is Linux-only")

CLIENT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from culturespa.jobserver import delegate
    status = delegate(sys.argv[1], argv=[sys.argv[1], *sys.argv[3:]], path=Path(sys.argv[2]), start=False)
    sys.exit(99 if status is None else status)
    """
)


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A server preloading nothing heavy (the machinery is what is tested), idle-exiting after 20 s."""
    monkeypatch.setenv(jobserver.ENV_DIR, str(tmp_path / "sock"))
    sock = jobserver.socket_path("test")
    proc = subprocess.Popen([sys.executable, "-m", "culturespa.jobserver", str(sock), "--idle", "20",
                             "--preload", "json"], stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert wait_for(sock.exists), proc.stderr.read() if proc.poll() is not None else "no socket"
    yield sock, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def client(tmp_path, sock, script_text, *args, wait=True):
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(script_text))
    (tmp_path / "client.py").write_text(CLIENT)
    cmd = [sys.executable, str(tmp_path / "client.py"), str(script), str(sock), *args]
    env = {**os.environ, "JOB_MARK": "from-the-client"}
    if not wait:
        return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def test_a_forked_job_is_the_clients_job(tmp_path, server):
    sock, _ = server
    done = client(tmp_path, sock, """
        import json, os, sys
        print("to stdout"); print("to stderr", file=sys.stderr)
        json.dump({"pid": os.getpid(), "cwd": os.getcwd(), "mark": os.environ.get("JOB_MARK"),
                   "child": os.environ.get("CULTURESPA_JOB_SERVER_CHILD"), "argv": sys.argv},
                  open("seen.json", "w"))
        sys.exit(3)
    """, "an-argument")
    import json

    assert done.returncode == 3, done.stderr
    assert "to stdout" in done.stdout and "to stderr" in done.stderr
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["cwd"] == str(tmp_path) and seen["mark"] == "from-the-client" and seen["child"] == "1"
    assert seen["argv"][1:] == ["an-argument"]


@pytest.mark.parametrize("body, status, message", [
    ("pass", 0, None),
    ("raise SystemExit('a message')", 1, "a message"),
    ("raise ValueError('boom')", 1, "ValueError: boom"),
])
def test_exit_status_and_traceback_reach_the_client(tmp_path, server, body, status, message):
    done = client(tmp_path, server[0], body)
    assert done.returncode == status
    if message:
        assert message in done.stderr


def test_killing_the_client_stops_its_job(tmp_path, server):
    proc = client(tmp_path, server[0], """
        import os, time
        open("pid", "w").write(str(os.getpid()))
        time.sleep(60)
        open("finished", "w").write("should not happen")
    """, wait=False)
    pid_file = tmp_path / "pid"
    assert wait_for(lambda: pid_file.exists() and pid_file.read_text())
    job = int(pid_file.read_text())
    assert job != proc.pid and alive(job)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert wait_for(lambda: not alive(job), timeout=5), "the job outlived its client"
    assert not (tmp_path / "finished").exists()


def test_two_jobs_run_at_once(tmp_path, server):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    body = """
        import time
        open("started", "w").write(str(time.time())); time.sleep(1.5)
    """
    first = client(tmp_path / "a", server[0], body, wait=False)
    second = client(tmp_path / "b", server[0], body, wait=False)
    assert first.wait(30) == 0 and second.wait(30) == 0
    starts = [float((tmp_path / d / "started").read_text()) for d in "ab"]
    assert abs(starts[0] - starts[1]) < 1.0


def test_no_server_means_the_job_runs_itself(tmp_path, monkeypatch):
    monkeypatch.setenv(jobserver.ENV_DIR, str(tmp_path))
    assert jobserver.delegate("job.py", path=tmp_path / "none.sock", start=False) is None


def test_an_idle_server_exits_and_removes_its_socket(tmp_path, monkeypatch):
    monkeypatch.setenv(jobserver.ENV_DIR, str(tmp_path))
    sock = jobserver.socket_path("idle")
    proc = subprocess.Popen([sys.executable, "-m", "culturespa.jobserver", str(sock), "--idle", "1", "--preload", ""])
    assert proc.wait(30) == 0
    assert not sock.exists()


def test_a_second_server_for_the_same_socket_steps_aside(tmp_path, server):
    sock, first = server
    second = subprocess.run([sys.executable, "-m", "culturespa.jobserver", str(sock), "--preload", ""], timeout=30)
    assert second.returncode == 0 and first.poll() is None and sock.exists()


def test_delegation_only_in_a_cpu_script_job_outside_a_cluster(tmp_path, monkeypatch):
    main = sys.modules["__main__"]
    script = tmp_path / "tmpabc.evaluate_wvs.py"
    script.write_text("")
    for name in (jobserver.ENV_SWITCH, jobserver.ENV_CHILD, "SLURM_JOB_ID", "APPTAINER_CONTAINER",
                 "SINGULARITY_CONTAINER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(jobserver, "machine_has_gpu", lambda: False)
    assert not jobserver.should_delegate()  # pytest is not a Snakemake script job
    monkeypatch.setattr(main, "__real_file__", str(script), raising=False)
    monkeypatch.setattr(main, "snakemake", object(), raising=False)
    assert jobserver.should_delegate() and jobserver.should_delegate(gpus=1)  # a model rule on a CPU machine
    monkeypatch.setattr(jobserver, "machine_has_gpu", lambda: True)
    assert jobserver.should_delegate() and not jobserver.should_delegate(gpus=1)
    monkeypatch.setattr(jobserver, "machine_has_gpu", lambda: False)
    for name, value in ((jobserver.ENV_SWITCH, "0"), (jobserver.ENV_CHILD, "1"), ("SLURM_JOB_ID", "7"),
                        ("APPTAINER_CONTAINER", "/img.sif")):
        monkeypatch.setenv(name, value)
        assert not jobserver.should_delegate()
        monkeypatch.delenv(name)


def test_the_key_follows_what_the_preloaded_libraries_read(monkeypatch):
    env = {"HOME": "/root", "PATH": "/usr/bin"}
    base = jobserver.server_key(env)
    assert jobserver.server_key({**env, "PATH": "/bin", "SNAKEMAKE_X": "1"}) == base
    assert jobserver.server_key({**env, "HF_HUB_OFFLINE": "1"}) != base
    assert jobserver.server_key({**env, "OMP_PROC_BIND": "true"}) != base
    # Snakemake sets the thread counts per job: one server serves jobs of any thread count
    assert jobserver.server_key({**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}) == base


def test_a_job_killed_in_the_server_fails_and_is_not_run_again(tmp_path, server):
    """An OOM kill of the fork: the client fails the job with a message (it does not run it a second time)."""
    done = client(tmp_path, server[0], """
        import os, signal
        with open("runs", "a") as fh:
            fh.write("run\\n")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert done.returncode == 1 and "ended without an exit status" in done.stderr
    assert (tmp_path / "runs").read_text() == "run\n"


def test_old_servers_files_are_swept_unless_their_lock_is_held(tmp_path):
    import fcntl

    def make(key, age_s):
        for ext in (".sock", ".log", ".lock"):
            f = tmp_path / f"{key}{ext}"
            f.write_text("")
            os.utime(f, (time.time() - age_s, time.time() - age_s))

    make("old", 2 * jobserver.STALE_S)
    make("oldheld", 2 * jobserver.STALE_S)
    make("recent", 60)
    make("mine", 2 * jobserver.STALE_S)
    with open(tmp_path / "oldheld.lock") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a server of that key still runs
        assert jobserver.sweep(tmp_path, keep="mine") == ["old"]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(f"{k}{e}" for k in ("oldheld", "recent", "mine") for e in (".sock", ".log", ".lock"))
