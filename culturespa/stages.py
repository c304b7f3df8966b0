"""What each workflow step does, end to end, given file paths and config sections.

The Snakemake scripts call exactly one function here; each function reads its inputs, calls the
modules that hold the method, and writes its outputs atomically. Tests call them directly.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from . import filters, io, questions
from .cultures import Culture
from .wvs import load_items

log = logging.getLogger("culturespa")


# --- models ---------------------------------------------------------------------------------


def packaged_file(package: str, filename: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    import importlib.util

    from .errors import CultureSPAError

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise CultureSPAError(f"the Python package {package!r} is not installed (it carries {filename})")
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise CultureSPAError(f"{path}: not found in the installed package {package!r}")
    return path


def convert_packaged_gguf(package: str, filename: str, out_dir: str) -> None:
    from .models import convert_gguf

    started = time.perf_counter()
    convert_gguf(packaged_file(package, filename), Path(out_dir))
    log.info("converted %s from %s in %.1f s", filename, package, time.perf_counter() - started)


# --- step 1 ---------------------------------------------------------------------------------


def generate_topic_questions(model: Mapping, topic: int, wvs_questions: str, settings: Mapping, out_path: str, stats_path: str) -> None:
    """Self-instruct generation for one topic; resumable through ``<out>.partial``."""
    from .engine_adapter import generation_function

    partial = Path(f"{out_path}.partial")
    existing = io.read_jsonl(partial) if partial.exists() else []
    if existing:
        log.info("resuming topic %d from %d questions in %s", topic, len(existing), partial)

    def checkpoint(records, stats):
        io.write_jsonl(partial, records)
        log.info("topic %d: %d/%d questions (attempts %d, unparseable %d)", topic, len(records),
                 settings["per_topic"], stats.attempts, stats.invalid)

    generate = generation_function(model, settings)
    records, stats = questions.generate_topic(
        generate,
        topic,
        load_items(wvs_questions),
        settings["per_topic"],
        seed=settings["seed"],
        batch_size=settings["batch_size"],
        max_attempts=int(settings["max_attempts_factor"] * settings["per_topic"]),
        existing=existing,
        on_round=checkpoint,
    )
    io.write_json(stats_path, stats.as_dict())
    io.write_jsonl(out_path, records)
    partial.unlink(missing_ok=True)


def _read_raw_pool(raw_files: Sequence[str], source: str) -> list[dict]:
    if source == "released":
        return filters.load_released_pool(Path(raw_files[0]).parent)
    return [rec for path in raw_files for rec in io.read_jsonl(path)]


def filter_question_pool(raw_files: Sequence[str], source: str, wvs_questions: str, settings: Mapping, outputs) -> None:
    records = _read_raw_pool(raw_files, source)
    kept, report = filters.filter_pool(records, load_items(wvs_questions), settings["near_duplicate_threshold"])
    counts = pd.DataFrame(report.table())
    io.write_csv(outputs.counts, counts[counts.topic == "all"].drop(columns="topic"))
    io.write_csv(outputs.topics, counts[counts.topic != "all"])
    io.write_jsonl(outputs.dropped, report.dropped)
    io.write_jsonl(outputs.pool, kept)
    for stage, n_kept, n_dropped in report.rows:
        log.info("%-28s kept %6d dropped %5d", stage, n_kept, n_dropped)
