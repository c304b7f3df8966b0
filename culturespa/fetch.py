"""Materialising the paper's released data and MMLU: from a local mirror or by download, checksum-verified.

The pinned sha256 of every file live in the package (part of the workflow, not of the data):
``culturespa/data/culturespa.sha256`` for the authors' release (``data_mirror`` / ``data_base_url``,
materialised under ``resources/culturespa/``) and ``culturespa/data/mmlu.sha256`` for MMLU
(``mmlu_mirror`` / ``mmlu_base_url``, under ``resources/mmlu/``). A file that does not match is never
left at its destination.

MMLU is the copy LLaMA-Factory distributes (``evaluation/mmlu/mmlu.zip`` and ``mapping.json``), fetched
from the authors' repository at the same pinned commit as the data (``LLaMA-Factory/evaluation/mmlu/``
there, the LLaMA-Factory they evaluated with; its ``mmlu.py`` is LLaMA-Factory v0.8.2-v0.9.0's). The
two files are byte for byte hiyouga/LLaMA-Factory's (git blobs 1aaee65f and 113ff416, unchanged since
LLaMA-Factory's commit "add MMLU and C-Eval script" of 2023-09-23); the sha256 below pin those bytes.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from .errors import ChecksumError, DataFileError
from .io import atomic_path

CHECKSUM_FILE = Path(__file__).resolve().parent / "data" / "culturespa.sha256"
MMLU_CHECKSUM_FILE = Path(__file__).resolve().parent / "data" / "mmlu.sha256"
MMLU_BASE_URL = (
    "https://raw.githubusercontent.com/shaoyangxu/CultureSPA/4e128c910953a4cc59cde2550d711f832a82b992/"
    "LLaMA-Factory/evaluation/mmlu"
)
# where each fetched dataset lands, and the config keys of its mirror and its download URL
DATASETS = {
    "culturespa": {"root": "resources/culturespa", "checksums": CHECKSUM_FILE, "mirror": "data_mirror",
                   "base_url": "data_base_url"},
    "mmlu": {"root": "resources/mmlu", "checksums": MMLU_CHECKSUM_FILE, "mirror": "mmlu_mirror",
             "base_url": "mmlu_base_url"},
}


def read_checksums(path: str | Path = CHECKSUM_FILE) -> dict[str, str]:
    """relative path -> sha256, from a ``sha256sum``-style file."""
    sums = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            digest, rel = line.split(maxsplit=1)
            sums[rel.lstrip("*")] = digest.lower()
    return sums


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _copy_from_mirror(mirror: Path, rel: str, dest: Path) -> None:
    src = mirror / rel
    if not src.is_file():
        raise DataFileError(f"{rel}: missing from the data mirror {mirror} (expected {src})")
    shutil.copyfile(src, dest)


def _download(base_url: str, rel: str, dest: Path, timeout: float = 60.0) -> None:
    url = f"{base_url.rstrip('/')}/{rel}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(dest, "wb") as out:
            shutil.copyfileobj(resp, out)
    except (urllib.error.URLError, OSError) as e:
        raise DataFileError(f"{rel}: download from {url} failed: {e}") from e


def materialise(rel: str, dest: str | Path, expected_sha256: str, mirror: str | Path | None, base_url: str) -> str:
    """Fetch ``rel`` into ``dest`` and verify it; returns where it came from.

    The file is written to a temporary sibling and only renamed into place once its hash matches,
    so a corrupt or partial file never sits at ``dest``.
    """
    dest = Path(dest)
    source = f"mirror {mirror}" if mirror else f"{base_url.rstrip('/')}/{rel}"
    with atomic_path(dest) as tmp:
        if mirror:
            _copy_from_mirror(Path(mirror), rel, tmp)
        else:
            _download(base_url, rel, tmp)
        actual = sha256_of(tmp)
        if actual != expected_sha256:
            raise ChecksumError(
                f"{rel}: checksum mismatch (from {source}): expected sha256 {expected_sha256}, got {actual}; "
                "the file was not kept"
            )
    logging.getLogger(__name__).info("%s: verified sha256 %s (from %s)", rel, expected_sha256, source)
    return source


def materialise_all(checksums: dict[str, str], destinations, mirror: str | Path | None, base_url: str) -> None:
    """``materialise`` every file of ``checksums`` (relative path -> sha256) into ``destinations``
    (the paths, in the same order: a rule's outputs)."""
    destinations = list(destinations)
    if len(destinations) != len(checksums):
        raise DataFileError(f"{len(checksums)} pinned files but {len(destinations)} destinations")
    for (rel, sha256), dest in zip(checksums.items(), destinations):
        if not str(dest).endswith(rel):
            raise DataFileError(f"{dest}: expected the destination of {rel}")
        materialise(rel, dest, sha256, mirror, base_url)


def verify_materialised(root: str | Path, checksums: dict[str, str]) -> int:
    """Check every already materialised file under ``root`` against its pinned sha256 (the
    workflow does this before any job starts): a file changed after it was fetched and verified
    (edited by hand, a bad copy, a failing disk) is an error naming it, so it never reaches a rule.
    Returns how many files were checked."""
    root = Path(root)
    bad, n = [], 0
    for rel, expected in checksums.items():
        path = root / rel
        if not path.is_file():
            continue
        n += 1
        actual = sha256_of(path)
        if actual != expected:
            bad.append(f"{path}: sha256 {actual}, pinned {expected}")
    if bad:
        raise ChecksumError(
            "data files changed after they were fetched and verified; delete them and rerun to fetch them "
            "again:\n  " + "\n  ".join(bad)
        )
    return n


def ensure_file(dataset: str, rel: str, config, workdir: str | Path = ".") -> Path:
    """The materialised, verified file ``rel`` of ``dataset`` (a key of ``DATASETS``) under
    ``workdir``: fetched from the config's mirror or URL when absent, re-verified when present (for
    callers outside Snakemake, e.g. ``python -m culturespa show-prompt``)."""
    spec = DATASETS[dataset]
    checksums = read_checksums(spec["checksums"])
    if rel not in checksums:
        raise DataFileError(f"{rel}: not a file of the pinned {dataset} data")
    dest = Path(workdir) / spec["root"] / rel
    if dest.is_file():
        actual = sha256_of(dest)
        if actual != checksums[rel]:
            raise ChecksumError(
                f"{dest}: sha256 {actual}, pinned {checksums[rel]}: the file changed after it was fetched and "
                "verified; delete it to fetch it again"
            )
        return dest
    mirror = config.get(spec["mirror"])
    if mirror and not Path(mirror).is_absolute():
        mirror = Path(workdir) / mirror
    materialise(rel, dest, checksums[rel], mirror, config.get(spec["base_url"]) or "")
    return dest
