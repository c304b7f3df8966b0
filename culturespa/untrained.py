"""Adapters that were not trained (0 pairs to train on), and what follows from them.

Step 4 writes such an adapter as a ``not_trained.json`` marker with the reason
(``finetune.write_not_trained``). Its evaluations then answer nothing: every answer record is
marked ``status: not_answered`` with the reason ("not trained: 0 culture-related pairs for NGA"),
without loading a model; scoring turns those into empty cells carrying the reason (scoring.py),
and figures and tables show them as missing with it (results.py). ``adapter_summary`` lists every
adapter of a run with its status for ``results/{model}/sft/adapters.csv`` and the run's closing
message.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Iterable, Sequence, TextIO

import pandas as pd

from . import io
from .finetune import NOT_TRAINED, STATS_FILE, adapter_status
from .scoring import NOT_ANSWERED

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = ["variant", "country", "status", "reason", "n_records", "n_examples", "steps", "final_loss",
                   "train_seconds"]
JOINT = "joint"  # the country column of a culture-joint adapter


def evaluation_reason(adapter_dir: str | Path) -> str | None:
    """Why an evaluation with this adapter answers nothing ('not trained: <reason>'), or None
    when the adapter was trained."""
    status = adapter_status(adapter_dir)
    return None if status.trained else f"not trained: {status.reason}"


def not_answered(keys: Iterable[str], reason: str) -> list[dict]:
    """Answer records (the engine's fields, empty) for prompts that were never asked."""
    return [{"key": key, "choice": None, "probs": None, "option_mass": None, "reply": None, "mode": None,
             "status": NOT_ANSWERED, "reason": reason} for key in keys]


def _where(stats_path: Path) -> tuple[str, str]:
    """(variant, country) of results/{model}/sft/{variant}/[{country}/]train_stats.json."""
    parts = stats_path.parts
    i = len(parts) - 1 - parts[::-1].index("sft")
    rest = parts[i + 1:-1]
    return (rest[0], rest[1]) if len(rest) == 2 else (rest[0], JOINT)


def adapter_summary(stats_paths: Sequence[str | Path]) -> pd.DataFrame:
    """One row per adapter (its train_stats.json): variant, country (``joint`` for a culture-joint
    adapter), status (trained / not_trained), reason, and the training figures."""
    rows = []
    for path in map(Path, stats_paths):
        if path.name != STATS_FILE:
            raise ValueError(f"{path}: not a {STATS_FILE}")
        stats = io.read_json(path)
        variant, country = _where(path)
        rows.append({"variant": variant, "country": country, "status": stats.get("status", "trained"),
                     "reason": stats.get("reason", ""), **{k: stats.get(k) for k in SUMMARY_COLUMNS[4:]}})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def not_trained_lines(summary: pd.DataFrame, model: str = "") -> list[str]:
    """One line per adapter that was not trained, with the reason."""
    rows = summary[summary["status"] == NOT_TRAINED]
    prefix = f"{model}: " if model else ""
    return [f"{prefix}{r.variant}" + ("" if r.country == JOINT else f" ({r.country})") + f" not trained: {r.reason}"
            for r in rows.itertuples()]


def write_adapter_summary(stats_paths: Sequence[str | Path], out_path: str | Path, model: str = "") -> pd.DataFrame:
    summary = adapter_summary(stats_paths)
    io.write_csv(out_path, summary)
    lines = not_trained_lines(summary, model)
    log.info("%d adapters, %d trained, %d not trained", len(summary), len(summary) - len(lines), len(lines))
    for line in lines:
        log.warning("%s", line)
    return summary


def report_not_trained(summary_paths: Iterable[str | Path], out: TextIO = sys.stderr) -> list[str]:
    """The run's closing message: every adapter that was not trained, from the adapters.csv files
    that exist (a run that stopped before them says nothing)."""
    lines = []
    for path in map(Path, summary_paths):
        if path.is_file():
            model = path.parent.parent.name
            lines += not_trained_lines(io.read_csv(path, required=SUMMARY_COLUMNS[:4]), model)
    if lines:
        print(f"culturespa: {len(lines)} adapter(s) not trained (their cells are missing, with the reason; "
              "see results/<model>/sft/adapters.csv):", file=out)
        for line in lines:
            print(f"  {line}", file=out)
    return lines
