"""File I/O that never leaves a half-written file looking valid.

Every writer goes through ``atomic_path``: write to a temporary sibling, fsync, then rename.
Readers of JSON Lines fail with the file name and line number on a truncated or corrupt line.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

import pandas as pd

from .errors import DataFileError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove_leftovers(path: Path) -> None:
    """Temporaries of earlier writes of ``path`` that were killed before their rename. Only one job
    writes a given output at a time (Snakemake locks it), so any that exist are dead."""
    import re
    import shutil

    mine = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.(tmp|old)")  # what mkstemp/mkdtemp made
    for stale in path.parent.iterdir():
        if mine.fullmatch(stale.name):
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (a crash after it cannot bring the old entry back)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it over ``path``.

    On an exception (or a kill) ``path`` keeps its old content or stays absent; the temporary is
    a hidden ``.<name>.XXXX.tmp`` sibling. The file gets the permissions an ordinary ``open``
    would give it (mkstemp's 0600 would hide results from the rest of a group on shared storage).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` whole.

    Every file in it is fsync'ed before the rename. An old ``path`` is first renamed away (one
    atomic step) and deleted only after the new folder is in place, so ``path`` is never a
    half-deleted or half-written folder: it is the old one, absent, or the new one.
    """
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    old = None
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        for sub in tmp.rglob("*"):
            if sub.is_file() and not sub.is_symlink():
                with open(sub, "rb") as fh:
                    os.fsync(fh.fileno())
        if path.exists() or path.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: str | Path, records: Iterable[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")


def write_csv(path: str | Path, frame: pd.DataFrame, **kwargs) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=kwargs.pop("index", False), **kwargs)


def read_json(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as e:
        raise DataFileError(f"{path}: file not found") from e
    except json.JSONDecodeError as e:
        raise DataFileError(f"{path}: not valid JSON ({e}); the file is corrupt or truncated") from e


def read_jsonl(path: str | Path) -> list[dict]:
    """All records; a line that is not a complete JSON object is an error naming file and line."""
    records = []
    try:
        with open(path) as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.endswith("\n"):
                    raise DataFileError(f"{path}:{lineno}: truncated line (no newline at end of file)")
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataFileError(f"{path}:{lineno}: corrupt JSON line ({e})") from e
                if not isinstance(rec, dict):
                    raise DataFileError(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}")
                records.append(rec)
    except FileNotFoundError as e:
        raise DataFileError(f"{path}: file not found") from e
    return records


def _check_csv_shape(path: str | Path) -> None:
    """Every row has as many fields as the header, and the file ends with a newline (our writers
    always write one): a truncated file or a row with a missing or extra cell is an error here,
    where pandas would pad the short row with NaN and read it as data."""
    import csv

    with open(path, newline="") as fh:
        text = fh.read()
    if not text:
        raise DataFileError(f"{path}: empty CSV file")
    if not text.endswith(("\n", "\r")):
        raise DataFileError(f"{path}: truncated (no newline at end of file)")
    import io as _stringio

    rows = csv.reader(_stringio.StringIO(text))
    try:
        header = next(rows)
        for row in rows:
            if not row and len(header) == 1:
                continue  # pandas writes a missing value of a one-column table as an empty line
            if len(row) != len(header):
                raise DataFileError(
                    f"{path}:{rows.line_num}: {len(row)} fields where the header has {len(header)}; "
                    "the file is corrupt, truncated or was edited by hand"
                )
    except csv.Error as e:
        raise DataFileError(f"{path}:{rows.line_num}: unreadable CSV ({e})") from e


def read_csv(path: str | Path, required: Iterable[str] = (), numeric: Iterable[str] = ()) -> pd.DataFrame:
    """A CSV table, checked: its shape (``_check_csv_shape``), the ``required`` columns, and that
    the ``numeric`` columns hold numbers (empty cells are missing values, allowed). Every error
    names the file."""
    try:
        _check_csv_shape(path)
        frame = pd.read_csv(path)
    except FileNotFoundError as e:
        raise DataFileError(f"{path}: file not found") from e
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataFileError(f"{path}: unreadable CSV ({e})") from e
    numeric = list(numeric)
    missing = [c for c in [*required, *numeric] if c not in frame.columns]
    if missing:
        raise DataFileError(f"{path}: missing columns {sorted(set(missing))}")
    for col in numeric:
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna() & frame[col].notna()
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise DataFileError(
                f"{path}:{row + 2}: column {col!r} holds {frame[col].iloc[row]!r}, not a number"
            )
        frame[col] = values
    return frame
