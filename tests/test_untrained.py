"""An adapter with 0 pairs to train on: written as not trained, evaluated as not answered (no model
loaded), scored as missing cells with the reason, shown so in tables and figures, summarised."""

from __future__ import annotations

import copy
import io as _io
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from culturespa import figures, finetune, io, mmlu, tables
from culturespa.answering import AnswerSettings
from culturespa.evaluation import evaluate_persona
from culturespa.scoring import aggregate_alignment_files, score_variant_files
from culturespa.tables.ability import general_ability
from culturespa.tables.alignment import joint_specific_cct
from culturespa.design import AVG, BASE, CULTURESPA, P1
from culturespa.errors import CultureSPAError
from culturespa.finetune import (
    LOSS_COLUMNS,
    NOT_TRAINED_FILE,
    TrainSettings,
    adapter_status,
    no_pairs_reason,
    train_adapter,
)
from culturespa.results import Results
from culturespa.scoring import NOT_ANSWERED, ScoringSettings, score_answers
from culturespa.survey import Survey
from culturespa.untrained import adapter_summary, not_answered, report_not_trained, write_adapter_summary

COUNTRIES = ["USA", "CHN", "NGA"]
SPECIFIC = "specific-crqpc-culture_aware-100"
NGA_REASON = "not trained: 0 culture-related pairs for NGA"


def test_no_pairs_reasons():
    assert no_pairs_reason("NGA") == "0 culture-related pairs for NGA"
    assert no_pairs_reason(None) == "0 culture-related pairs for any culture"
    assert no_pairs_reason("USA", "rds") == "0 RDS pairs for USA"
    assert no_pairs_reason(None, "crqpc", 2, 10) == "0 of the 2 culture-related pairs for any culture at 10%"


def test_training_on_zero_pairs_writes_the_outputs_as_not_trained(tmp_path):
    ckpt = tmp_path / "ckpt"
    (ckpt / "checkpoint-2").mkdir(parents=True)  # left by an earlier run on other data
    # the model folder does not exist: nothing may load it
    stats = train_adapter(tmp_path / "no-model", [], str, tmp_path / "adapter", TrainSettings(), ckpt,
                          tmp_path / "loss.csv", tmp_path / "train_stats.json",
                          empty_reason="0 culture-related pairs for NGA")
    assert json.loads((tmp_path / "adapter" / NOT_TRAINED_FILE).read_text()) == {
        "status": "not_trained", "reason": "0 culture-related pairs for NGA", "n_pairs": 0}
    assert sorted(p.name for p in (tmp_path / "adapter").iterdir()) == [NOT_TRAINED_FILE]
    loss = pd.read_csv(tmp_path / "loss.csv")
    assert list(loss.columns) == LOSS_COLUMNS and loss.empty
    written = json.loads((tmp_path / "train_stats.json").read_text())
    assert written == stats
    assert (written["status"], written["reason"], written["n_records"]) == (
        "not_trained", "0 culture-related pairs for NGA", 0)
    assert not ckpt.exists()
    status = adapter_status(tmp_path / "adapter")
    assert (status.trained, status.reason, status.n_pairs) == (False, "0 culture-related pairs for NGA", 0)


def test_adapter_status_of_a_trained_and_of_a_foreign_folder(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "adapter_config.json").write_text("{}")
    assert adapter_status(tmp_path / "a").trained
    (tmp_path / "b").mkdir()
    with pytest.raises(CultureSPAError, match="neither a LoRA adapter"):
        adapter_status(tmp_path / "b")


def test_finetune_variant_names_the_culture(tmp_path):
    (tmp_path / "NGA.jsonl").write_text("")
    out = SimpleNamespace(adapter=str(tmp_path / "adapter"), loss=str(tmp_path / "loss.csv"),
                          stats=str(tmp_path / "train_stats.json"))
    finetune.train_variant({"name": "m", "path": str(tmp_path / "no-model")}, str(tmp_path / "NGA.jsonl"),
                           "culture_aware", 100, [], None, {"per_device_batch": 1, "effective_batch": 1}, "specific",
                           0, str(tmp_path / "ckpt"), out.adapter, out.loss, out.stats, country="NGA", data="crqpc")
    assert adapter_status(out.adapter).reason == "0 culture-related pairs for NGA"


def not_trained_adapter(path, reason="0 culture-related pairs for NGA"):
    finetune.write_not_trained(path / "adapter", path / "loss.csv", path / "train_stats.json", reason)
    return str(path / "adapter")


@pytest.fixture
def eval_inputs(data_dir, tmp_path):
    def make(adapters):
        return SimpleNamespace(questions=str(data_dir / "data/wvs_questions.json"),
                               proportions=str(data_dir / "data/proportions_group_by_country.json"),
                               examples=str(data_dir / "data/self_alignment_examples.json"), adapters=adapters)
    return make


CATALOGUE = [{"code": "USA", "adjective": "American", "article": "an", "continent": "America"},
             {"code": "CHN", "adjective": "Chinese", "article": "a", "continent": "Asia"},
             {"code": "NGA", "adjective": "Nigerian", "article": "a", "continent": "Africa"}]
ANSWERING = AnswerSettings(mode="logprob", seed=42, batch_size=4)


def test_evaluating_a_not_trained_joint_adapter_loads_no_model(eval_inputs, tmp_path):
    adapter = not_trained_adapter(tmp_path / "joint", "0 culture-related pairs for any culture")
    data = eval_inputs([adapter])
    records = []
    for culture in CATALOGUE:  # one evaluation cell per country, each with the joint adapter
        out = tmp_path / f"{culture['code']}.jsonl"
        # the model path does not exist: loading it would fail
        evaluate_persona({"name": "m", "path": str(tmp_path / "no-model")}, ANSWERING, "culture_aware",
                         culture["code"], 1, (data.questions, data.proportions), data.examples, [culture], str(out),
                         max_items=12, adapter=adapter)
        records += io.read_jsonl(out)
    assert len(records) == 3 * 12 and [r["persona"] for r in records[::12]] == COUNTRIES
    assert all(r["choice"] is None and r["status"] == NOT_ANSWERED for r in records)
    assert {r["reason"] for r in records} == {"not trained: 0 culture-related pairs for any culture"}


def test_mmlu_of_a_not_trained_adapter_is_missing_with_the_reason(tmp_path):
    adapter = not_trained_adapter(tmp_path / "joint", "0 culture-related pairs for any culture")
    from culturespa.untrained import evaluation_reason

    why = evaluation_reason(adapter)
    bench = SimpleNamespace(questions=[SimpleNamespace(subject="sociology", index=i, answer="A") for i in range(3)],
                            category=lambda s: "Social Sciences")
    base = [{"subject": "sociology", "category": "Social Sciences", "index": i, "gold": "A", "pred": "A",
             "correct": i > 0} for i in range(3)]
    frame = mmlu.compare(base, mmlu.not_answered(bench, why), "m", CULTURESPA, n_boot=50)
    overall = frame[frame.category == "overall"].set_index("metric")
    assert overall.loc["accuracy_base", "value"] == pytest.approx(2 / 3)
    assert np.isnan(overall.loc["accuracy", "value"]) and np.isnan(overall.loc["delta", "value"])
    assert overall.loc["delta", "reason"] == why
    frame.to_csv(tmp_path / "mmlu.csv", index=False)
    table = general_ability({"mmlu": str(tmp_path / "mmlu.csv")},
                                   {"model": "m", "variants": {BASE: [P1], CULTURESPA: [P1]},
                                    "mmlu": {"variants": [CULTURESPA], "k_shot": 5}})
    assert any(why in note for note in table.notes)


def answers_frame(survey, items, skip=("NGA",), reason=NGA_REASON):
    """culture_aware answers for USA and CHN (the survey majority, so valid) and none for ``skip``."""
    rows = []
    for c in COUNTRIES:
        if c in skip:
            rows += [dict(persona=c, method="culture_aware", run=0, **r) for r in not_answered(items, reason)]
            continue
        g = survey.majority[survey.row(c)]
        for qid, k in zip(items, range(len(items))):
            i = survey.index[qid]
            choice = None if np.isnan(g[i]) else int(g[i])
            rows.append(dict(persona=c, method="culture_aware", run=0, key=qid, choice=choice,
                             reply=str(choice), probs=None))
    return pd.DataFrame(rows).rename(columns={"key": "qid"})


def asked(survey, n=40):
    """The survey cut to the first ``n`` items, as score_variant cuts it to the items asked."""
    return Survey(survey.items[:n], survey.countries, survey.dists)


def test_scoring_turns_not_answered_into_missing_cells_with_the_reason(survey):
    survey = asked(survey)
    items = [it.qid for it in survey.items]
    frame = answers_frame(survey, items)
    table, _ = score_answers(frame, survey, COUNTRIES, "m", ScoringSettings(n_boot=20), baselines=False)
    t = table.set_index(["country", "metric"])
    nga = t.loc[("NGA", "paper_score")]
    assert np.isnan(nga["value"]) and nga["reason"] == NGA_REASON
    assert (nga["n_valid"], nga["n_invalid"]) == (0, 0)  # never asked: neither valid nor invalid
    usa = t.loc[("USA", "paper_score")]
    assert usa["value"] == pytest.approx(100.0) and usa["reason"] == "" and usa["n_invalid"] == 0
    assert t.loc[("NGA", "js_similarity"), "reason"] == NGA_REASON
    assert t.loc[("NGA", "own_rank"), "reason"] == NGA_REASON
    # the average is over the countries with a score
    assert t.loc[("AVG", "paper_score"), "value"] == pytest.approx(100.0)
    assert t.loc[("AVG", "cross_culture_correlation"), "reason"].startswith(
        "a correlation needs at least 3 countries with answers (2 of 3; NGA: not trained")
    # every country not answered: the average carries the reason too
    table, _ = score_answers(answers_frame(survey, items, skip=COUNTRIES, reason="not trained: x"), survey,
                             COUNTRIES, "m", ScoringSettings(n_boot=20), baselines=False)
    assert table.query("country == 'AVG' and metric == 'paper_score'")["reason"].item() == "not trained: x"


def test_two_countries_correlation_reason(survey):
    survey = asked(survey)
    items = [it.qid for it in survey.items]
    frame = answers_frame(survey, items, skip=())
    frame = frame[frame.persona != "NGA"]
    table, _ = score_answers(frame, survey, ["USA", "CHN"], "m", ScoringSettings(n_boot=20), baselines=False)
    row = table.query("metric == 'cross_culture_correlation'").iloc[0]
    assert np.isnan(row["value"]) and row["reason"] == "a correlation needs at least 3 countries (2 here)"
    # 3 countries answered alike (here: each one's survey majority answers for USA): no variation
    same = answers_frame(survey, items, skip=())
    same = pd.concat([same[same.persona == "USA"].assign(persona=c) for c in COUNTRIES])
    table, _ = score_answers(same, survey, COUNTRIES, "m", ScoringSettings(n_boot=20), baselines=False)
    row = table.query("metric == 'cross_culture_correlation'").iloc[0]
    assert row["reason"] == "undefined: the model's answers are equally similar between every pair of countries"


def test_the_reason_reaches_results_tables_and_figures(eval_inputs, survey, tmp_path, paper_config):
    """Score a specific variant whose NGA adapter was not trained, and a joint variant that was not
    trained at all, through the workflow's own scoring and aggregation; read them as the tables and
    figures do."""
    items = [it.qid for it in survey.items[:40]]
    joint_reason = "not trained: 0 culture-related pairs for any culture"
    data = SimpleNamespace(questions=eval_inputs([]).questions, proportions=eval_inputs([]).proportions)
    scored = []
    for variant, frame in ((SPECIFIC, answers_frame(survey, items)),
                           (CULTURESPA, answers_frame(survey, items, skip=COUNTRIES, reason=joint_reason))):
        answers = tmp_path / variant / "culture_aware" / "original.jsonl"
        io.write_jsonl(answers, frame.rename(columns={"qid": "key"}).assign(run=0).to_dict("records"))
        out = SimpleNamespace(table=str(tmp_path / f"{variant}.csv"), matrices=str(tmp_path / f"{variant}.m.csv"),
                              topics=str(tmp_path / f"{variant}.t.csv"))
        score_variant_files("m", variant, [str(answers)], (data.questions, data.proportions), COUNTRIES,
                            {"n_boot": 20}, out.table, out.matrices, out.topics)
        scored.append(out)
    agg = SimpleNamespace(table=str(tmp_path / "alignment.csv"), matrices=str(tmp_path / "matrices.csv"),
                          topics=str(tmp_path / "by_topic.csv"))
    aggregate_alignment_files([o.table for o in scored], [o.matrices for o in scored], [o.topics for o in scored],
                              agg.table, agg.matrices, agg.topics)
    configured = {BASE: [P1], SPECIFIC: [P1], CULTURESPA: [P1]}
    res = Results.load(agg.table, "m", configured, COUNTRIES)
    cell = res.cell(SPECIFIC, P1, "NGA")
    assert not cell.ok and cell.missing == NGA_REASON
    assert res.cell(SPECIFIC, P1, "USA").ok and res.cell(SPECIFIC, P1, AVG).ok
    assert res.cell(CULTURESPA, P1, AVG).missing == joint_reason
    by_topic = pd.read_csv(agg.topics)
    assert set(by_topic[(by_topic.variant == SPECIFIC) & (by_topic.country == "NGA")]["reason"]) == {NGA_REASON}
    # a table and a figure say why the cells are missing
    cfg = copy.deepcopy(paper_config)
    cfg["countries"], cfg["sft"]["variants"] = COUNTRIES, [CULTURESPA, SPECIFIC]
    cfg["evaluation"].update(base_methods=[P1], tuned_methods=[P1], runs=1, max_items=40)
    settings = tables.settings("joint_specific_cct", cfg, countries=COUNTRIES,
                               variants={BASE: [P1], SPECIFIC: [P1], CULTURESPA: [P1]}, source="pipeline")
    notes = "\n".join(joint_specific_cct({"alignment": agg.table}, settings).notes)
    assert f"Culture-specific (NGA): {NGA_REASON}." in notes
    assert f"Culture-joint (every column): {joint_reason}." in notes
    figures.set_style()
    fig = figures.alignment_by_country(res)
    assert f"CultureSPA (all): {joint_reason}" in "\n".join(t.get_text() for t in fig.texts)


def test_adapter_summary_and_closing_message(tmp_path):
    sft = tmp_path / "results" / "m" / "sft"
    not_trained_adapter(sft / SPECIFIC / "NGA")
    (sft / SPECIFIC / "USA").mkdir(parents=True)
    (sft / SPECIFIC / "USA" / "train_stats.json").write_text(json.dumps(
        {"status": "trained", "n_records": 3, "n_examples": 3, "steps": 2, "final_loss": 1.5, "train_seconds": 4.0}))
    joint = sft / "joint-crqpc-culture_aware-100"
    joint.mkdir()
    (joint / "train_stats.json").write_text(json.dumps({"n_records": 3, "n_examples": 3, "steps": 2}))  # older file
    paths = [sft / SPECIFIC / "USA/train_stats.json", sft / SPECIFIC / "NGA/train_stats.json",
             joint / "train_stats.json"]
    summary = adapter_summary(paths)
    assert list(summary.country) == ["USA", "NGA", "joint"]
    assert list(summary.status) == ["trained", "not_trained", "trained"]
    assert summary.loc[1, "reason"] == "0 culture-related pairs for NGA"
    write_adapter_summary(paths, sft / "adapters.csv", "m")
    out = _io.StringIO()
    lines = report_not_trained([sft / "adapters.csv", tmp_path / "results/other/sft/adapters.csv"], out)
    assert lines == [f"m: {SPECIFIC} (NGA) not trained: 0 culture-related pairs for NGA"]
    assert "1 adapter(s) not trained" in out.getvalue()
