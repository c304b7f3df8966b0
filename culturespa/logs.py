"""Logging for the thin Snakemake scripts: everything to the rule's log file, user errors also to the console."""

from __future__ import annotations

import logging
import os
import re
import resource
import subprocess
import sys
from pathlib import Path
from typing import Callable

from . import jobserver
from .errors import CultureSPAError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def limit_threads(threads: int) -> None:
    """Keep torch to the job's share of cores: concurrent jobs that each take every core ran
    5-10x slower here than with one thread each."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(max(1, int(threads)))


REPO = Path(__file__).resolve().parent.parent
# each job's log names the code it ran (a resumable run can span commits): snapshot.take counts them
CODE_LINE = "code: commit %s"
CODE_PATTERN = re.compile(r" culturespa: code: commit (\S+)$", flags=re.M)


def code_commit(repo: Path = REPO) -> str | None:
    """The checkout's commit, with ``+dirty`` when tracked files differ from it; None outside a git
    checkout (an installed package)."""
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return out + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def _log_usage() -> None:
    """CPU time and peak memory of this process: under the job server, Snakemake's benchmark files
    measure the waiting client, so the log is where a job's own figures are."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    where = "in the job server (preloaded libraries)" if jobserver.ENV_CHILD in os.environ else "in its own process"
    logging.getLogger("culturespa").info(
        "job ran %s: CPU %.1f s, peak RSS %.0f MB", where, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024
    )


def run_logged(log_path: str, main: Callable[[], None], threads: int | None = None, gpus: int = 0) -> None:
    """Run ``main`` with logging (and stderr, where progress bars go) sent to ``log_path``;
    ``threads`` (the rule's) caps torch's threads; ``gpus`` (the rule's ``resources.gpu``) > 0
    claims a free GPU slot for the job first (``gpus.claim_gpu``: one model job per GPU).

    A CultureSPAError is a message for the user: it is logged and printed on the console without a
    traceback, and the job fails. Anything else keeps its traceback in the log.

    In a Snakemake script job on a CPU, the job runs in the job server's fork, where the libraries
    are already imported (``jobserver``); this process waits for it and exits with its status.
    """
    if jobserver.should_delegate(gpus):
        status = jobserver.delegate(jobserver.script_job_path())
        if status is not None:
            raise SystemExit(status)
    console = sys.stderr
    with open(log_path, "w", buffering=1) as log:
        sys.stderr = log
        logging.basicConfig(stream=log, level=logging.INFO, format=FORMAT, force=True)
        try:
            if gpus:
                from .gpus import claim_gpu

                claim_gpu()
            if threads is not None:
                limit_threads(threads)
            logging.getLogger("culturespa").info(CODE_LINE, code_commit() or "none (not a git checkout)")
            main()
            _log_usage()
        except CultureSPAError as e:
            logging.getLogger("culturespa").error("%s", e)
            print(f"culturespa error: {e} (log: {log_path})", file=console)
            raise SystemExit(1) from None
        except Exception:
            logging.getLogger("culturespa").exception("job failed")
            raise
        finally:
            sys.stderr = console
