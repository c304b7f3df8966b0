"""A fork server for the workflow's Python jobs on one machine.

Every Snakemake ``script:`` job is a fresh interpreter, and importing torch, transformers, peft and
bitsandbytes took 7-12 s on a 2-core CPU before a job did any work: more than the compute of a P1
evaluation cell (40 items: ~10 s), paid again by each of the hundreds of cells a study runs.

Here the first job starts a server that imports those libraries once and waits on a Unix socket.
Each later job (the *client*: the interpreter Snakemake started) sends it its script, working
directory, environment and standard streams; the server forks, and the fork runs the script exactly
as the client would have, then reports its exit status, which the client exits with. The fork is
the job: its log, outputs and errors are the job's. If the client dies (Snakemake cancelled or
killed), the fork notices that its connection closed and exits at once.

Used only where it is safe and pays: Linux, a Snakemake script job, not a GPU job on a machine with
a GPU (CUDA must not be initialised before a job picks its device), not inside a cluster job or an
Apptainer container (one job per process or container: nothing to share). ``CULTURESPA_JOB_SERVER=0``
turns it off; ``CULTURESPA_JOB_SERVER_IDLE`` (seconds, default 120) is how long an idle server waits
before it exits; ``CULTURESPA_JOB_SERVER_DIR`` where its socket and log live. A server serves one
interpreter, one version of this package and one environment (all in its key): after an edit or a
``pip install`` the next job starts a fresh server and the old one exits when idle.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .gpus import GPUS_ENV

ENV_SWITCH = "CULTURESPA_JOB_SERVER"
ENV_DIR = "CULTURESPA_JOB_SERVER_DIR"
ENV_IDLE = "CULTURESPA_JOB_SERVER_IDLE"
ENV_CHILD = "CULTURESPA_JOB_SERVER_CHILD"
DEFAULT_IDLE_S = 120.0
STALE_S = 24 * 3600.0  # another key's files untouched this long, its lock free: an old server's, removed

# Modules worth importing once; a missing optional one is skipped.
PRELOAD = (
    "numpy",
    "pandas",
    "torch",
    "transformers",
    "transformers.models.llama.modeling_llama",
    "transformers.trainer",
    "bitsandbytes",
    "peft",
    "snakemake.script",
    "culturespa.answering",
    "culturespa.engine",
    "culturespa.evaluation",
    "culturespa.finetune",
    "culturespa.mmlu",
    "culturespa.models",
    "culturespa.pairs",
    "culturespa.questions",
    "culturespa.scoring",
)

# Environment read by those libraries when they are imported: a server imported them under its own.
_IMPORT_ENV_PREFIXES = (
    "HF_", "HUGGINGFACE", "TRANSFORMERS", "TORCH", "PYTORCH", "CUDA", "BNB", "PEFT", "TOKENIZERS",
    "PYTHON", "OMP_", "MKL_", "KMP_", "OPENBLAS", "XDG_CACHE", "LD_",
)
# Snakemake sets these per job to the rule's threads: not part of the key (one server for jobs of
# any thread count); the fork gives torch the job's threads itself (logs.limit_threads).
_PER_JOB_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                "NUMEXPR_NUM_THREADS")
_HEADER = struct.Struct("!I")
STARTED = b"started\n"


def switched_off(value: str | None) -> bool:
    """An environment switch set to 0 / false / no / off."""
    return value is not None and value.strip().lower() in ("0", "false", "no", "off")


def script_job_path() -> str | None:
    """The temporary script Snakemake runs this job from, or None outside a Snakemake script job."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__real_file__", None)
    if path is None or not hasattr(main, "snakemake"):
        return None
    path = os.path.abspath(path)
    return path if os.path.isfile(path) else None


def machine_has_gpu() -> bool:
    """A GPU driver's device nodes (NVIDIA, AMD ROCm), or GPUs named for the allocator (``gpus.py``)."""
    # not gpus.machine_gpus: it runs nvidia-smi, too slow to ask before every job
    return bool(os.environ.get(GPUS_ENV, "").strip()) or any(
        os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/kfd")
    )


def should_delegate(gpus: int = 0) -> bool:
    """Whether this job should run in the job server (see the module docstring). A model rule asks
    for a GPU everywhere; only where the machine has one does that keep the job in its own process."""
    return (
        sys.platform.startswith("linux")
        and not (gpus and machine_has_gpu())
        and not switched_off(os.environ.get(ENV_SWITCH))
        and ENV_CHILD not in os.environ
        and "SLURM_JOB_ID" not in os.environ
        # each containerised job (--sdm apptainer) has its own /tmp and processes: nothing to share
        and not any(v in os.environ for v in ("APPTAINER_CONTAINER", "SINGULARITY_CONTAINER"))
        and script_job_path() is not None
    )


def _package_files() -> list[tuple[str, int, int]]:
    root = Path(__file__).resolve().parent
    out = []
    for path in sorted(root.rglob("*.py")):
        st = path.stat()
        out.append((str(path.relative_to(root)), st.st_mtime_ns, st.st_size))
    return out


def server_key(environ: dict | None = None) -> str:
    """Identify a compatible server: same interpreter, installed packages, package source and the
    environment that the preloaded libraries read at import."""
    import site

    environ = os.environ if environ is None else environ
    site_dirs = [d for d in [*site.getsitepackages(), site.getusersitepackages()] if os.path.isdir(d)]
    parts = {
        "python": [sys.executable, sys.version],
        "site": [(d, os.stat(d).st_mtime_ns) for d in site_dirs],
        "package": [str(Path(__file__).resolve().parent), _package_files()],
        "env": sorted((k, v) for k, v in environ.items()
                      if k.startswith(_IMPORT_ENV_PREFIXES) and k not in _PER_JOB_ENV),
    }
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def server_dir() -> Path:
    """A folder only this user can use (the socket runs code as this user)."""
    base = os.environ.get(ENV_DIR) or os.path.join(tempfile.gettempdir(), f"culturespa-jobs-{os.getuid()}")
    path = Path(base)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise PermissionError(f"{path} must belong to this user with mode 0700 (it holds the job server's socket)")
    return path


def socket_path(key: str | None = None) -> Path:
    return server_dir() / f"{key or server_key()}.sock"


# ---------------------------------------------------------------- client


def _send_frame(sock: socket.socket, payload: dict) -> None:
    data = json.dumps(payload).encode()
    sock.sendall(_HEADER.pack(len(data)) + data)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            raise ConnectionError("connection closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def start_server(path: Path) -> None:
    """Start a server for ``path`` in its own session (it outlives this job, not the idle timeout)."""
    log = open(path.with_suffix(".log"), "ab")
    try:
        subprocess.Popen(
            [sys.executable, "-m", "culturespa.jobserver", str(path)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=True, start_new_session=True,
            cwd=path.parent,  # `-m` puts the cwd first on sys.path: not the job's (a source tree)
            env={k: v for k, v in os.environ.items() if k != ENV_CHILD},
        )
    finally:
        log.close()


def delegate(script: str, argv: list[str] | None = None, path: Path | None = None,
             start: bool = True) -> int | None:
    """Run ``script`` in the job server and return its exit status, or None when no server is
    ready (then one is started, if ``start``, for the next job, and the caller runs the job itself)."""
    try:
        path = path or socket_path()
    except OSError:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        if start:
            try:
                start_server(path)
            except OSError:
                pass
        return None
    reply = b""
    try:
        request = {
            "script": script,
            "argv": list(sys.argv if argv is None else argv),
            "cwd": os.getcwd(),
            "path": list(sys.path),
            "env": dict(os.environ),
        }
        socket.send_fds(sock, [b"J"], [0, 1, 2])
        _send_frame(sock, request)
        while reply.count(b"\n") < 2:
            chunk = sock.recv(64)
            if not chunk:
                break
            reply += chunk
    except OSError:  # before "started": nothing ran (None below); after it: the job's process died
        pass
    finally:
        sock.close()
    if not reply.startswith(STARTED):  # the server was exiting: nothing ran
        return None
    if reply.count(b"\n") < 2:
        print(f"culturespa: the job server's process for {script} ended without an exit status "
              f"(killed? see {path.with_suffix('.log')})", file=sys.stderr)
        return 1
    return int(reply[len(STARTED):])


# ---------------------------------------------------------------- server


def _watch_client(conn: socket.socket) -> None:
    """In the fork: exit as soon as the client's end closes (the client sends nothing more)."""
    try:
        while conn.recv(1):
            pass
    except OSError:
        pass
    os._exit(130)


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _run_job(conn: socket.socket) -> None:
    """In the fork: become the client's job, run its script, report the status, exit."""
    rc = 1
    try:
        _, fds, _, _ = socket.recv_fds(conn, 1, 3)
        (size,) = _HEADER.unpack(_recv_exact(conn, _HEADER.size))
        request = json.loads(_recv_exact(conn, size))
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ[ENV_CHILD] = "1"
        sys.argv = request["argv"]
        sys.path[:] = request["path"]
        conn.sendall(STARTED)
        threading.Thread(target=_watch_client, args=(conn,), daemon=True).start()
        import runpy

        try:
            runpy.run_path(request["script"], run_name="__main__")
            rc = 0
        except SystemExit as exc:
            rc = _exit_code(exc)
        except BaseException:  # the job's own traceback, where Snakemake shows a failed job's stderr
            import traceback

            traceback.print_exc()
            rc = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        try:
            conn.sendall(b"%d\n" % rc)  # after "started" (else the client runs the job itself)
        except OSError:
            pass
        os._exit(rc)


def _preload(log, modules) -> None:
    import importlib

    for name in modules:
        started = time.perf_counter()
        try:
            importlib.import_module(name)
        except Exception as e:  # an optional library; the job imports it (and fails) itself
            print(f"preload {name}: {type(e).__name__}: {e}", file=log)
            continue
        print(f"preload {name}: {time.perf_counter() - started:.2f} s", file=log)


def sweep(folder: Path, keep: str, stale_s: float = STALE_S) -> list[str]:
    """Remove the socket, log and lock of every other key (each package or environment change makes a
    new one) whose files are all older than ``stale_s`` and whose lock no server holds; returns the
    keys removed. A server killed with SIGKILL leaves its socket behind; clients then start a new one."""
    removed, now = [], time.time()
    for lock_path in folder.glob("*.lock"):
        key = lock_path.stem
        files = [folder / f"{key}{ext}" for ext in (".sock", ".log", ".lock")]
        try:
            newest = max(f.lstat().st_mtime for f in files if f.exists())
        except ValueError:  # gone meanwhile
            continue
        if key == keep or now - newest < stale_s:
            continue
        try:
            lock = open(lock_path)  # flock needs no write access
        except FileNotFoundError:
            continue
        with lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a server of that key is running
            for f in files:
                f.unlink(missing_ok=True)
        removed.append(key)
    return removed


def serve(path: Path, idle_s: float | None = None, preload=PRELOAD) -> None:
    """Import ``preload``, then fork one process per connection until idle for ``idle_s`` seconds."""
    idle_s = float(os.environ.get(ENV_IDLE, DEFAULT_IDLE_S)) if idle_s is None else idle_s
    lock = open(path.with_suffix(".lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return  # another server for this key is starting or running
    log = sys.stderr
    print(f"{time.strftime('%F %T')} job server {os.getpid()} for {path}: preloading", file=log, flush=True)
    old = sweep(path.parent, path.stem)
    if old:
        print(f"removed the files of {len(old)} old job servers (untouched for a day)", file=log, flush=True)
    _preload(log, preload)
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(64)
    print(f"{time.strftime('%F %T')} ready", file=log, flush=True)
    children: set[int] = set()
    last_active = time.monotonic()
    try:
        while True:
            ready, _, _ = select.select([listener], [], [], 1.0)
            while children:
                pid, _ = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
                children.discard(pid)
            if ready:
                conn, _ = listener.accept()
                pid = os.fork()
                if pid == 0:
                    listener.close()
                    _run_job(conn)  # never returns
                conn.close()
                children.add(pid)
            if children or ready:
                last_active = time.monotonic()
            elif time.monotonic() - last_active > idle_s:
                break
    finally:
        try:  # a client that connected meanwhile gets no "started" and runs its job itself
            path.unlink()
        except FileNotFoundError:
            pass
        listener.close()
        print(f"{time.strftime('%F %T')} idle for {idle_s:.0f} s: exiting", file=log, flush=True)


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="culturespa's job server (started by the first job)")
    parser.add_argument("socket", type=Path)
    parser.add_argument("--idle", type=float, default=None, help=f"seconds (default ${ENV_IDLE} or {DEFAULT_IDLE_S:.0f})")
    parser.add_argument("--preload", default=None, help="comma-separated modules (default: the ML stack)")
    args = parser.parse_args(argv)
    preload = PRELOAD if args.preload is None else tuple(m for m in args.preload.split(",") if m)
    serve(args.socket, args.idle, preload)


if __name__ == "__main__":
    main()
