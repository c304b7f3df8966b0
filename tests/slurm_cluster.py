"""A real one-node Slurm cluster on localhost, for tests (root only; Debian/Ubuntu packages).

LocalSlurm(tmpdir).start() installs slurmctld, slurmd, slurm-client and munge with apt-get when they
are missing, starts munged (unless one already answers), slurmctld and slurmd on free ports with a
private slurm.conf (linked from /etc/slurm/slurm.conf while it runs), and waits until the node is
idle. stop() ends what start() started, by PID, and removes the link. Clients also get SLURM_CONF:
use `env` for subprocesses.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
COMMANDS = ["slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "munged", "munge", "unmunge"]
MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_RUN = Path("/run/munge")
# Where Slurm's commands look for the configuration when SLURM_CONF is not set. The slurm-jobstep
# plugin (0.6.1) drops SLURM_CONF before it calls srun inside a job, so a cluster whose slurm.conf
# is only reachable through SLURM_CONF fails there ("Could not establish a configuration source").
# Like a real site, the test cluster therefore puts its slurm.conf here (a link, removed at stop).
DEFAULT_CONF = Path("/etc/slurm/slurm.conf")


class SlurmUnavailable(RuntimeError):
    """The cluster cannot be set up here (not root, no apt, no network): a reason to skip."""


def _sbin_path() -> str:
    parts = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(parts + [p for p in ("/usr/sbin", "/sbin") if p not in parts])


def _which(cmd: str) -> str | None:
    return shutil.which(cmd, path=_sbin_path())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd, timeout, env=None, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc


def ensure_installed(timeout: int = 300) -> None:
    """apt-get install the Slurm and munge packages when a command is missing."""
    if all(_which(c) for c in COMMANDS):
        return
    if os.geteuid() != 0:
        raise SlurmUnavailable("Slurm is not installed and installing it needs root")
    if not shutil.which("apt-get"):
        raise SlurmUnavailable("Slurm is not installed and there is no apt-get to install it")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        update = _run(["apt-get", "update", "-q"], timeout, env=env, check=False)
        install = _run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES], timeout,
                       env=env, check=False)
    except subprocess.TimeoutExpired as e:
        raise SlurmUnavailable(f"apt-get timed out after {timeout} s: {e.cmd}") from e
    if install.returncode != 0 or not all(_which(c) for c in COMMANDS):
        raise SlurmUnavailable(
            f"could not install {' '.join(PACKAGES)} with apt-get:\n{update.stderr[-1000:]}\n{install.stderr[-1500:]}"
        )


def _pid_from(pidfile: Path, timeout: float = 10.0) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            time.sleep(0.1)
    return None


def _alive(pid: int) -> bool:
    """Running (a zombie, which waits for init to reap it, counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _kill(pid: int, grace: float = 10.0) -> None:
    if not _alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def _munge_works() -> bool:
    try:
        cred = subprocess.run([_which("munge"), "-n"], capture_output=True, timeout=10)
        if cred.returncode != 0:
            return False
        check = subprocess.run([_which("unmunge")], input=cred.stdout, capture_output=True, timeout=10)
        return check.returncode == 0
    except (OSError, subprocess.TimeoutExpired, TypeError):
        return False


def _mem_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


class LocalSlurm:
    """One node (this machine), one default partition, everything on 127.0.0.1."""

    partition = "debug"

    def __init__(self, root: Path):
        self.root = Path(root)
        self.host = socket.gethostname().split(".")[0]
        self.conf = self.root / "slurm.conf"
        self.pids: dict[str, int] = {}
        self.linked = False

    @property
    def env(self) -> dict:
        return dict(os.environ, SLURM_CONF=str(self.conf), PATH=_sbin_path())

    def write_conf(self) -> None:
        for sub in ("state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        r = self.root
        self.conf.write_text(
            f"""# one-node test cluster written by tests/slurm_cluster.py
ClusterName=culturespa-test
SlurmctldHost={self.host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
ReturnToService=2
# squeue (Snakemake's status command here, there is no slurmdbd) sees finished jobs this long
MinJobAge=300
NodeName={self.host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={int(_mem_mb() * 0.9)} State=UNKNOWN
PartitionName={self.partition} Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
"""
        )

    def _link_default_conf(self) -> None:
        if DEFAULT_CONF.is_symlink() and not DEFAULT_CONF.exists():
            DEFAULT_CONF.unlink()  # left by a test run that was killed
        if DEFAULT_CONF.exists() or DEFAULT_CONF.is_symlink():
            raise SlurmUnavailable(
                f"{DEFAULT_CONF} exists (a configured Slurm, or another test cluster running): not touching it"
            )
        DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
        DEFAULT_CONF.symlink_to(self.conf)
        self.linked = True

    def _start_munge(self) -> None:
        if _munge_works():
            return  # someone else's munged: use it, leave it running
        if not MUNGE_KEY.exists():
            _run([_which("mungekey"), "--create"], 30)
            shutil.chown(MUNGE_KEY, "munge", "munge")
            MUNGE_KEY.chmod(0o400)
        for d in (MUNGE_RUN, Path("/var/log/munge"), Path("/var/lib/munge")):
            d.mkdir(parents=True, exist_ok=True)
            shutil.chown(d, "munge", "munge")
        pidfile = MUNGE_RUN / "munged.pid"
        pidfile.unlink(missing_ok=True)
        _run(["runuser", "-u", "munge", "--", _which("munged"), "--force"], 30)
        pid = _pid_from(pidfile)
        if pid:
            self.pids["munged"] = pid
        if not _munge_works():
            raise RuntimeError("munged started but munge -n | unmunge fails")

    def start(self, timeout: float = 60.0) -> "LocalSlurm":
        if os.geteuid() != 0:
            raise SlurmUnavailable("starting slurmctld/slurmd/munged needs root")
        ensure_installed()
        self.write_conf()
        self._link_default_conf()
        self._start_munge()
        env = self.env
        _run([_which("slurmctld"), "-f", str(self.conf)], 30, env=env)
        self.pids["slurmctld"] = _pid_from(self.root / "slurmctld.pid")
        _run([_which("slurmd"), "-f", str(self.conf), "-N", self.host], 30, env=env)
        self.pids["slurmd"] = _pid_from(self.root / "slurmd.pid")
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = _run(["sinfo", "-h", "-n", self.host, "-o", "%T"], 10, env=env, check=False).stdout.strip()
            if state == "idle":
                return self
            time.sleep(0.5)
        raise RuntimeError(f"node {self.host} not idle after {timeout} s (state {state!r}):\n{self.logs()}")

    def logs(self, tail: int = 3000) -> str:
        out = []
        for name in ("slurmctld.log", "slurmd.log"):
            path = self.root / "log" / name
            if path.exists():
                out.append(f"--- {name}\n{path.read_text()[-tail:]}")
        return "\n".join(out)

    def stop(self) -> None:
        """Stop, by PID, the daemons this object started (slurmd first, munged last); unlink the conf."""
        for name in ("slurmd", "slurmctld", "munged"):
            pid = self.pids.pop(name, None)
            if pid:
                _kill(pid)
        if self.linked and DEFAULT_CONF.is_symlink() and DEFAULT_CONF.resolve() == self.conf.resolve():
            DEFAULT_CONF.unlink()
        self.linked = False

    def job(self, jobid: str) -> dict:
        """`scontrol show job` as a dict (the controller keeps finished jobs for MinJobAge)."""
        out = _run(["scontrol", "-o", "show", "job", str(jobid)], 10, env=self.env).stdout
        return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)
