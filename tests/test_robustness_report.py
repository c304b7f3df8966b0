"""The order-robustness table, diagnostics table, main-results column and figure, from an
alignment table scored by robustness.score_with_orders on a small synthetic survey."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from culturespa import figures, tables
from culturespa.figures.robustness import order_robustness_figure
from culturespa.tables import formats
from culturespa.tables import robustness as rr
from culturespa.tables.alignment import main_results
from culturespa.design import AVG, BASE, CULTURESPA, PAPER_SCORE
from culturespa.methods import CULTURE_UNAWARE, P1, P3
from culturespa.orders import MEAN, ORIGINAL, REVERSED, map_record, option_order
from culturespa.robustness import CONSISTENCY, score_with_orders
from culturespa.scoring import NO_PERSONA, ScoringSettings, score_answers
from culturespa.survey import Survey
from culturespa.wvs import Distribution, Item

COUNTRIES = ["AAA", "BBB"]
FAST = ScoringSettings(n_boot=100, n_uniform_draws=50, majority_baseline_country="AAA")
VARIANTS = {BASE: [CULTURE_UNAWARE, P1, P3], CULTURESPA: [P1]}


@pytest.fixture(scope="module")
def survey():
    rng = np.random.default_rng(0)
    items = [Item(f"Q{q}", "", tuple("abcd"[: 2 + q % 3])) for q in range(1, 13)]
    dists = {c: {} for c in COUNTRIES}
    for it in items:
        for c in COUNTRIES:
            shares = rng.dirichlet(np.ones(it.n_options))
            dists[c][it.qid] = Distribution(shares, 0.0, int(np.argmax(shares)) + 1)
    return Survey(items, COUNTRIES, dists)


def answers(survey, method, personas, pick, orders=(ORIGINAL, REVERSED)):
    rows = []
    for order in orders:
        for persona in personas:
            for item in survey.items:
                mapping = option_order(item, order)
                shown = pick(item, mapping, persona)
                rec = map_record({"key": item.qid, "choice": shown, "probs": None, "reply": str(shown)}, mapping, seed=0)
                rows.append({"method": method, "persona": persona, "qid": rec.pop("key"), **rec})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def alignment(survey, tmp_path_factory):
    """alignment.csv: the base model always answers the first listed option with P1, the majority
    answer with P3 and culture-unaware; CultureSPA answers the majority answer."""
    majority = lambda item, mapping, persona: mapping.displayed_number(survey.dists[persona][item.qid].majority)  # noqa: E731
    first = lambda item, mapping, persona: mapping.numbers[0]  # noqa: E731
    base = pd.concat([
        answers(survey, CULTURE_UNAWARE, [NO_PERSONA], lambda i, m, p: majority(i, m, "AAA")),
        answers(survey, P1, COUNTRIES, first),
        answers(survey, P3, COUNTRIES, majority),
    ])
    tuned = answers(survey, P1, COUNTRIES, majority)
    frames = []
    for variant, frame in ((BASE, base), (CULTURESPA, tuned)):
        table, _ = score_with_orders(frame, survey, COUNTRIES, "m", FAST, baselines=variant == BASE)
        frames.append(table.assign(variant=variant))
    path = tmp_path_factory.mktemp("results") / "alignment.csv"
    pd.concat(frames).to_csv(path, index=False)
    released = tmp_path_factory.mktemp("released") / "alignment.csv"
    score_answers(base[base.order == ORIGINAL].drop(columns="order"), survey, COUNTRIES, "m", FAST)[0].to_csv(
        released, index=False)
    return path, released


def settings(**extra):
    return {"model": "m", "source": "pipeline", "variants": VARIANTS, "countries": COUNTRIES,
            "orders": [ORIGINAL, REVERSED], "evaluation": {"runs": 1, "max_items": None},
            "scoring": {"n_boot": 100, "ci_level": 0.95, "majority_baseline": "AAA"}, **extra}


def cell_of(table, row, column):
    display = table.display.set_index(table.display.columns[0])
    return display.loc[row, column]


def test_order_robustness_table(alignment, tmp_path):
    path, _ = alignment
    table = rr.order_robustness_table({"alignment": path}, settings())
    frame = table.frame
    assert {"order", "status", "reason"} <= set(frame.columns)
    # the base model always picking the first listed option: consistency 0, reversed differs
    p1 = frame[(frame.variant == BASE) & (frame.method == P1) & (frame.country == AVG)]
    assert p1[p1.metric == CONSISTENCY].value.item() == 0.0
    # CultureSPA answering the majority wherever it is listed: 100 in every order, consistency 1
    tuned = frame[(frame.variant == CULTURESPA) & (frame.country == AVG)]
    assert list(tuned[tuned.metric == PAPER_SCORE].value) == [100.0, 100.0, 100.0]
    assert tuned[tuned.metric == CONSISTENCY].value.item() == 1.0
    assert cell_of(table, "Culture-aware (P1): consistency (share of questions)", AVG) == "0.00 [0.00, 0.00]"
    # P2 was not run: missing with its reason, never a number
    p2 = frame[frame.method == "cross_culture"]
    assert not p2.empty and p2.value.isna().all() and set(p2.status) == {"missing"}
    assert any("not run: cross_culture is not in evaluation.base_methods" in n for n in table.notes)
    assert any("Reading a gap" in n for n in table.notes)
    for writer, ext in ((formats.write_csv, "csv"), (formats.write_markdown, "md"), (formats.write_latex, "tex")):
        writer(table, tmp_path / f"t.{ext}")
    assert "\\begin{table}" in (tmp_path / "t.tex").read_text()


def test_released_answers_have_the_original_order_only(alignment):
    _, released = alignment
    s = settings(source="released", variants={BASE: [CULTURE_UNAWARE, P1]})
    table = rr.order_robustness_table({"alignment": released}, s)
    frame = table.frame
    ok = frame[(frame.order == ORIGINAL) & (frame.method == P1) & (frame.variant == BASE)]
    assert (ok.status == "ok").all()
    gone = frame[(frame.order.isin([REVERSED, MEAN])) & (frame.method == P1) & (frame.variant == BASE)]
    assert set(gone.reason) == {"not released by the authors: original order only"}
    assert any("original order only" in n for n in table.notes)
    # the main results table of the released answers: the new column says why it is empty
    out = main_results({"alignment": released}, s)  # two orders configured: the column is added
    assert cell_of(out, "Culture-aware (P1)", rr.ROBUST_COLUMN) == tables.MISSING
    assert cell_of(out, "Uniform random answers (reference)", rr.ROBUST_COLUMN) != tables.MISSING
    assert any(rr.ROBUST_COLUMN in n and "not released by the authors: original order only" in n for n in out.notes)


def test_one_order_configured(alignment):
    path, _ = alignment
    table = rr.order_robustness_table({"alignment": path}, settings(orders=[ORIGINAL]))
    reasons = set(table.frame[table.frame.method == P1].reason)
    assert "not run: reversed is not in evaluation.orders" in reasons
    assert "needs two option orders or more (evaluation.orders)" in reasons


def test_main_results_gain_the_order_robust_column(alignment):
    path, _ = alignment
    s = settings()
    main = main_results({"alignment": path}, settings(orders=[ORIGINAL]))  # one order: no column
    res = rr.results({"alignment": path}, s)
    out = main_results({"alignment": path}, s)
    assert list(out.display.columns) == [*main.display.columns, rr.ROBUST_COLUMN]
    assert len(out.display) == len(main.display)
    mean = res.cell(BASE, P1, AVG, PAPER_SCORE, MEAN)
    both = [res.cell(BASE, P1, AVG, PAPER_SCORE, o).value for o in (ORIGINAL, REVERSED)]
    assert mean.value == pytest.approx(np.mean(both))
    assert cell_of(out, "Culture-aware (P1)", rr.ROBUST_COLUMN).startswith(f"{mean.value:.2f} [")
    extra = out.frame[out.frame.order == MEAN]
    assert len(extra) == len(main.display) - 2  # the two reference rows are order-free
    assert cell_of(out, "Cross-culture thinking (P2)", rr.ROBUST_COLUMN) == tables.MISSING
    tables.latex(out), tables.markdown(out)  # still renders


def test_order_diagnostics_table(alignment):
    path, _ = alignment
    table = rr.order_diagnostics_table({"alignment": path}, settings())
    assert list(table.display.columns)[1:] == [c for c, _, _ in rr.DIAGNOSTIC_COLUMNS]
    first = cell_of(table, "Culture-aware (P1)", "First option")
    assert first.startswith("1.00")  # always the first listed option, in both orders
    assert cell_of(table, "Self-alignment (P3)", "Normalised").startswith("100.00")
    assert cell_of(table, "Cross-culture thinking (P2)", "Consistency") == tables.MISSING


def test_figure_marks_missing_orders_and_renders(alignment, tmp_path):
    path, released = alignment
    figures.set_style()
    res = rr.results({"alignment": path}, settings())
    fig = order_robustness_figure(res)
    figures.save(fig, tmp_path / "f.pdf", tmp_path / "f.png")
    assert (tmp_path / "f.pdf").read_bytes()[:4] == b"%PDF"
    res = rr.results({"alignment": released}, settings(source="released", variants={BASE: [CULTURE_UNAWARE, P1]}))
    fig = order_robustness_figure(res)
    notes = "\n".join(t.get_text() for t in fig.texts)
    assert "Reversed order (all): not released by the authors: original order only" in notes
    assert "Consistency (all): not released by the authors: original order only" in notes
    figures.save(fig, tmp_path / "r.pdf", tmp_path / "r.png")
