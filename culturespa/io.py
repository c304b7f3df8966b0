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


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` whole."""
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


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


def read_csv(path: str | Path, required: Iterable[str] = ()) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError as e:
        raise DataFileError(f"{path}: file not found") from e
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataFileError(f"{path}: unreadable CSV ({e})") from e
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataFileError(f"{path}: missing columns {missing}")
    return frame
