"""Reading the authors' released raw answers (``result/<model>/wvs_result_*.json``)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable

import pandas as pd

from .errors import DataFileError
from .methods import NO_PERSONA

# wvs_result_{method}[_{COUNTRY}]_{run}.json; method names as the authors wrote them
_NAME = re.compile(r"wvs_result_(?P<method>[A-Za-z_]+?)(?:_(?P<country>[A-Z]{3}))?_(?P<run>\d+)\.json")


def parse_released_name(path: str | Path) -> tuple[str, str, int]:
    """(method, persona, run) from a released file name; persona is NO_PERSONA when unnamed."""
    m = _NAME.fullmatch(Path(path).name)
    if not m:
        raise DataFileError(f"{path}: not a released WVS result file name")
    return m["method"], m["country"] or NO_PERSONA, int(m["run"])


def load_released(paths: Iterable[str | Path], methods: Iterable[str]) -> pd.DataFrame:
    """The released answers of the given methods as a scoring frame (method, persona, qid, reply, run)."""
    wanted = set(methods)
    frames = []
    for path in sorted(map(str, paths)):
        method, persona, run = parse_released_name(path)
        if method not in wanted:
            continue
        try:
            records = json.loads(Path(path).read_text())
            rows = [(method, persona, r["Q_id"], r["answer"], run) for r in records]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise DataFileError(f"{path}: malformed released result file: {e}") from e
        frames.append(pd.DataFrame(rows, columns=["method", "persona", "qid", "reply", "run"]))
    if not frames:
        raise DataFileError(f"no released result files for methods {sorted(wanted)}")
    return pd.concat(frames, ignore_index=True)


def score_released_files(model: str, answer_paths: Iterable[str], methods: Iterable[str], survey_files,
                         countries, scoring: dict, table_out: str, matrices_out: str, wide_out, topics_out: str) -> None:
    """The released answers of ``model`` scored with the paper's score and ours: the tidy
    alignment table, the country matrices (long, and wide per persona method) and the per-topic
    scores."""
    import logging

    from . import io
    from .scoring import ScoringSettings, score_answers, topic_scores, write_alignment
    from .survey import Survey

    survey = Survey.load(*survey_files)
    answers = load_released(answer_paths, methods)
    table, matrices = score_answers(answers, survey, countries, model, ScoringSettings.from_config(scoring))
    write_alignment(table, matrices, table_out, matrices_out, wide_out)
    io.write_csv(topics_out, topic_scores(answers, survey, countries, model))
    logging.getLogger(__name__).info("scored %d answers: %d rows", len(answers), len(table))
