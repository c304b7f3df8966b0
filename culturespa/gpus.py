"""One model job per GPU on a workstation: a GPU slot claimed with a lock file.

Snakemake only counts GPUs (rules declare ``resources: gpu=1``, the run allows ``--resources
gpu=N``); it never says which GPU a job should use, so jobs running side by side would all load
their model onto GPU 0. ``claim_gpu`` gives each model job its own: it takes an exclusive
``flock`` on ``gpu<i>.lock`` (one file per GPU index, in ``CULTURESPA_GPU_LOCK_DIR``, default
``<tmp>/culturespa-gpus-<uid>``) for the first free index and sets ``CUDA_VISIBLE_DEVICES=<i>``
before torch initialises CUDA. The lock lives as long as the process: the kernel releases it when
the job ends, however it ends (a crash or a kill leaves no stale lock).

Nothing happens when ``CUDA_VISIBLE_DEVICES`` is already set (a scheduler such as Slurm, or the
user, chose the GPU) or when the machine has no GPU. The GPUs are those ``nvidia-smi -L`` lists, or
``CULTURESPA_GPUS`` ("0,1,3", or a count such as "4") where that should be narrower.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, MutableMapping, Sequence

from .errors import CultureSPAError

log = logging.getLogger(__name__)

LOCK_DIR_ENV = "CULTURESPA_GPU_LOCK_DIR"
GPUS_ENV = "CULTURESPA_GPUS"
WAIT_SECONDS = 3600.0  # how long a job waits for a slot held by another run before it fails

_held: list[IO] = []  # the open lock files of this process's claims


def default_lock_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"culturespa-gpus-{os.getuid()}"


def machine_gpus(env: MutableMapping[str, str] = os.environ) -> list[str]:
    """The GPU indices jobs may use: ``CULTURESPA_GPUS`` (a list or a count), else one per GPU that
    ``nvidia-smi -L`` lists, else none."""
    given = env.get(GPUS_ENV, "").strip()
    if given:
        if given.isdecimal():
            return [str(i) for i in range(int(given))]
        return [g.strip() for g in given.split(",") if g.strip()]
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, _ in enumerate(line for line in out.splitlines() if line.startswith("GPU "))]


def claim_gpu(
    gpus: Sequence[str] | None = None,
    lock_dir: str | Path | None = None,
    env: MutableMapping[str, str] = os.environ,
    wait_s: float = WAIT_SECONDS,
    poll_s: float = 2.0,
) -> str | None:
    """Claim a free GPU for this process and make it the only one CUDA sees; returns its index,
    or None where there is nothing to do (``CUDA_VISIBLE_DEVICES`` already set, no GPU).

    When every GPU is held (another Snakemake run on the same machine), waits up to ``wait_s``
    seconds for one, then raises CultureSPAError."""
    if env.get("CUDA_VISIBLE_DEVICES") is not None:
        log.info("CUDA_VISIBLE_DEVICES=%r was set by the scheduler or the user: no GPU slot claimed",
                 env["CUDA_VISIBLE_DEVICES"])
        return None
    gpus = list(machine_gpus(env) if gpus is None else gpus)
    if not gpus:
        return None
    import fcntl

    folder = Path(lock_dir or env.get(LOCK_DIR_ENV) or default_lock_dir())
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CultureSPAError(f"cannot create the GPU lock folder {folder} (set {LOCK_DIR_ENV}): {e}") from e
    deadline = time.monotonic() + wait_s
    waited = False
    while True:
        for gpu in gpus:
            fh = open(folder / f"gpu{gpu}.lock", "a+")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # held by another job
                fh.close()
                continue
            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()}\n")
            fh.flush()
            _held.append(fh)
            env["CUDA_VISIBLE_DEVICES"] = gpu
            log.info("GPU slot %s claimed (lock %s): CUDA_VISIBLE_DEVICES=%s", gpu, fh.name, gpu)
            return gpu
        if time.monotonic() >= deadline:
            raise CultureSPAError(
                f"all {len(gpus)} GPUs ({', '.join(gpus)}) are held by other jobs (lock files in {folder}); "
                f"gave up after {wait_s:.0f} s. Is another run using them, or is --resources gpu larger "
                f"than the number of GPUs?"
            )
        if not waited:
            log.warning("all %d GPU slots in %s are held by other jobs: waiting for one", len(gpus), folder)
            waited = True
        time.sleep(poll_s)


def release_gpus() -> None:
    """Give back this process's slots (the end of the process does the same)."""
    while _held:
        _held.pop().close()
