"""The one resume mechanism of model jobs: an append-only journal beside the output.

A long job (answering prompts, generating questions) writes each finished unit of work (a batch,
a round) as one JSON line to ``<output>.partial``, flushed and fsync'ed, after a header line that
fingerprints the job (model, settings, prompts). A killed job's rerun reads the journal back and
skips what is done; a journal of another job (other prompts or settings) is discarded, never
mixed in. A truncated last line (the kill came mid-write) is dropped and its unit redone; a corrupt
line before the last is an error naming the file, never read as data. When the job has written its
output atomically it removes the journal.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from .errors import DataFileError
from .io import write_jsonl

log = logging.getLogger(__name__)


def partial_path(out_path: str | Path) -> Path:
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".partial")


class Journal:
    """``<out_path>.partial`` for the job fingerprinted by ``fingerprint`` (a string).

    ``entries`` are the units of work an interrupted run of the same job finished; ``append`` adds
    one durably; ``remove`` deletes the journal once the output is in place.
    """

    def __init__(self, out_path: str | Path, fingerprint: str, header: dict | None = None):
        self.path = partial_path(out_path)
        self.fingerprint = fingerprint
        self.header = {"fingerprint": fingerprint, **(header or {})}
        self.entries: list[dict] = self._read()
        self._fh = None

    def _read(self) -> list[dict]:
        if not self.path.exists():
            return []
        lines = self.path.read_bytes().split(b"\n")
        tail = lines.pop()  # text after the last newline: empty, or a line cut off by a kill
        good: list[dict] = []
        dropped = bool(tail.strip())
        for n, raw in enumerate(lines, start=1):
            try:
                good.append(json.loads(raw))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                if n == len(lines) and not tail.strip():
                    dropped = True  # a corrupt final line: its unit is redone
                    break
                raise DataFileError(f"{self.path}:{n}: corrupt line in the middle of a job journal ({e})") from e
        if not good or not isinstance(good[0], dict) or good[0].get("fingerprint") != self.fingerprint:
            if good:
                log.warning("%s belongs to another job (its inputs or settings changed): starting over", self.path)
            self.path.unlink()
            return []
        if dropped:
            log.warning("%s: dropped a truncated last line; that unit of work is redone", self.path)
            write_jsonl(self.path, good)  # atomically: a kill now must not lose the good lines
        return good[1:]

    def append(self, entry: dict) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a")
            if self._fh.tell() == 0:
                self._write(self.header)
        self._write(entry)
        self.entries.append(entry)

    def _write(self, obj: dict) -> None:
        self._fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)
