"""Every figure draws from small fixture results tables, through the same entry point as its rule,
and shows a variant that was not run as missing (with the reason), never as a zero bar."""

import numpy as np
import pandas as pd
import pytest

from conftest import with_deltas
from matplotlib.patches import Rectangle
from workflow_rules import REPO, caption_of, producers, workflow

from culturespa.figures.style import matrix_panels
from culturespa import figures
from culturespa.design import AVG, BASE, CULTURESPA, P1
from culturespa.results import Results

COUNTRIES = ["USA", "CHN", "NGA"]
BASE_METHODS = ["culture_unaware", "culture_aware", "self_alignment"]


def alignment_rows(variant, method, scores, metrics=("paper_score", "js_similarity", "wasserstein_similarity")):
    rows = []
    for metric in metrics:
        scale = 1.0 if metric == "paper_score" else 0.01
        for country, value in scores.items():
            rows.append(dict(model="m", variant=variant, method=method, country=country, metric=metric,
                             value=value * scale, ci_low=(value - 3) * scale, ci_high=(value + 3) * scale,
                             n_valid=12, n_invalid=0, n_runs=1, run_sd=np.nan))
    return rows


def fixture_table(all_invalid_nga=False):
    rows = []
    for k, method in enumerate(BASE_METHODS):
        rows += alignment_rows(BASE, method, {"USA": 60 + k, "CHN": 50 + k, "NGA": 55 + k, AVG: 55 + k})
    rows += alignment_rows(BASE, "baseline_uniform", {"USA": 45, "CHN": 44, "NGA": 46, AVG: 45})
    tuned = {"USA": 64, "CHN": 53, "NGA": np.nan if all_invalid_nga else 58, AVG: 58}
    rows += alignment_rows(CULTURESPA, P1, tuned)
    for method, variant in ((P1, BASE), ("self_alignment", BASE), (P1, CULTURESPA)):
        rows.append(dict(model="m", variant=variant, method=method, country=AVG, metric="identification_accuracy",
                         value=1 / 3, ci_low=0, ci_high=1, n_valid=36, n_invalid=0, n_runs=1, run_sd=np.nan))
        rows.append(dict(model="m", variant=variant, method=method, country=AVG,
                         metric="cross_culture_correlation", value=0.4, ci_low=np.nan, ci_high=np.nan, n_valid=36,
                         n_invalid=0, n_runs=1, run_sd=np.nan))
    table = pd.DataFrame(rows)
    if all_invalid_nga:
        table.loc[(table.variant == CULTURESPA) & (table.country == "NGA"), ["n_valid", "n_invalid"]] = [0, 12]
    return with_deltas(table)


def fixture_matrices():
    rng = np.random.default_rng(0)
    rows = []
    for variant, kind, method in ((BASE, "reference", ""), (BASE, "persona_vs_persona", P1),
                                  (BASE, "prompted_vs_survey", P1), (BASE, "persona_vs_persona", "self_alignment"),
                                  (CULTURESPA, "persona_vs_persona", P1), (CULTURESPA, "prompted_vs_survey", P1)):
        for r in COUNTRIES:
            for c in COUNTRIES:
                rows.append(dict(variant=variant, kind=kind, method=method, row=r, col=c,
                                 value=100.0 if r == c and kind != "prompted_vs_survey" else rng.uniform(40, 90)))
    return pd.DataFrame(rows)


CONFIGURED = {BASE: BASE_METHODS, CULTURESPA: [P1]}  # the demo's grid: no RDS/CDS, no fractions, no P2


@pytest.fixture
def results_dir(tmp_path):
    fixture_table().to_csv(tmp_path / "alignment.csv", index=False)
    fixture_matrices().to_csv(tmp_path / "matrices.csv", index=False)
    return tmp_path


def note_text(fig):
    return "\n".join(t.get_text() for t in fig.texts)


RESULTS_FIGURES = [s.name for s in figures.SPECS if "alignment" in s.inputs]


def outputs(folder, name):
    return {"pdf": str(folder / f"{name}.pdf"), "png": str(folder / f"{name}.png")}


@pytest.mark.parametrize("name", RESULTS_FIGURES)
def test_each_alignment_figure_renders_through_its_rule_entry(results_dir, name):
    files = {"alignment": str(results_dir / "alignment.csv"), "matrices": str(results_dir / "matrices.csv")}
    inputs = {k: files[k] for k in figures.spec(name).inputs}  # only what its rule gives it
    settings = figures.settings(name, {"evaluation": {"orders": ["original", "reversed"]}}, model="m", source="pipeline", variants=CONFIGURED, countries=COUNTRIES)
    figures.render(name, inputs, settings, outputs(results_dir, name))
    assert (results_dir / f"{name}.pdf").read_bytes()[:4] == b"%PDF"
    assert (results_dir / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(results_dir.glob(".*.tmp"))  # written atomically


def test_missing_strategies_are_marked_not_drawn_as_zero(results_dir):
    figures.set_style()
    res = Results.load(results_dir / "alignment.csv", "m", CONFIGURED, COUNTRIES)
    fig = figures.sampling_strategies(res)
    notes = note_text(fig)
    assert "RDS (all): not run: joint-rds-culture_aware-100 is not in sft.variants" in notes
    assert "CDS (all)" in notes
    ax = fig.axes[0]
    bars = [p for p in ax.patches if isinstance(p, Rectangle) and np.isfinite(p.get_height())]
    assert len(bars) == len(COUNTRIES) + 1  # CRQPC only: one bar per country and AVG
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "RDS: missing (×)" in legend
    crqpc_usa = res.cell(CULTURESPA, P1, "USA").value - res.cell(BASE, P1, "USA").value
    assert any(np.isclose(b.get_height(), crqpc_usa) for b in bars)


def test_all_invalid_cell_is_missing_with_its_count(tmp_path):
    fixture_table(all_invalid_nga=True).to_csv(tmp_path / "alignment.csv", index=False)
    figures.set_style()
    res = Results.load(tmp_path / "alignment.csv", "m", CONFIGURED, COUNTRIES)
    fig = figures.alignment_by_country(res)
    assert "CultureSPA (NGA): no valid answers (0 valid, 12 invalid)" in note_text(fig)
    heights = [p.get_height() for p in fig.axes[0].patches if isinstance(p, Rectangle)]
    assert 3 * 4 - 1 == sum(np.isfinite(h) and h > 0 for h in heights)


def test_released_results_lack_culturespa_and_say_so(results_dir):
    table = fixture_table()
    table = table[table.variant == BASE].drop(columns=["variant", "n_runs", "run_sd"])
    table.to_csv(results_dir / "released.csv", index=False)
    figures.set_style()
    res = Results.load(results_dir / "released.csv", "m", {BASE: ["culture_unaware", P1]}, COUNTRIES,
                       source="released")
    fig = figures.cross_cultural_matrices(res, fixture_matrices().query("variant == @BASE").drop(columns="variant"))
    notes = note_text(fig)
    assert "CultureSPA (P1): not released by the authors" in notes
    assert "Self-alignment (P3): not run: self_alignment is not in released.methods" in notes
    panels = [ax.get_title().splitlines()[0] for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert panels == ["WVS reference", "Culture-aware (P1)"]


def test_data_quantity_lists_fractions_not_run(results_dir):
    figures.set_style()
    res = Results.load(results_dir / "alignment.csv", "m", CONFIGURED, COUNTRIES)
    notes = note_text(figures.data_quantity(res))
    assert "10%, 20%, 30%, 40%, 50%, 60%, 70%, 80%, 90%: not run: the variant is not in sft.variants" in notes


def test_framework_figure_from_a_rule_graph(tmp_path):
    dot = """digraph snakemake_dag {
    0[label = "all", color = "0.1 0.6 0.85", style="rounded"];
    1[label = "collect_pairs", color = "0.2 0.6 0.85", style="rounded"];
    2[label = "answer_questions", color = "0.3 0.6 0.85", style="rounded"];
    3[label = "finetune_joint", color = "0.4 0.6 0.85", style="rounded"];
    4[label = "figure1_alignment", color = "0.4 0.6 0.85", style="rounded"];
    2 -> 1
    1 -> 3
    3 -> 4
    4 -> 0
}"""
    nodes, edges = figures.parse_rulegraph(dot)
    assert nodes["2"] == "answer_questions" and ("2", "1") in edges
    assert [figures.STEPS[figures.step_of(r)][0][0] for r in ("answer_questions", "collect_pairs", "finetune_joint")] == [
        "2", "3", "4"]
    (tmp_path / "rg.dot").write_text(dot)
    settings = figures.settings("figure2_framework", {})
    figures.render("figure2_framework", {"rulegraph": str(tmp_path / "rg.dot")}, settings, outputs(tmp_path, "f"))
    assert (tmp_path / "f.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="no rules"):
        figures.parse_rulegraph("digraph {}")


def test_data_distribution_figure(tmp_path):
    stats = pd.DataFrame({"culture": COUNTRIES, "valid": 52, "same": [50, 49, 52], "diff": [2, 3, 0],
                          "diff_rate": [2 / 52, 3 / 52, 0]})
    topics = pd.DataFrame([dict(set="CRQPC", culture=c, topic=t, topic_name=f"topic {t}", n_pairs=t % 2)
                           for c in COUNTRIES for t in range(13)])
    for name, frame in (("stats", stats), ("topics", topics)):
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    inputs = {"stats": [str(tmp_path / "stats.csv")], "topic_stats": [str(tmp_path / "topics.csv")]}
    settings = figures.settings("figure3_data", {"pairs": {"settings": ["culture_aware"]}})
    assert settings == {"pair_settings": ["culture_aware"]}
    figures.render("figure3_data", inputs, settings, outputs(tmp_path, "f"))
    assert (tmp_path / "f.pdf").exists()


def test_data_distribution_colours_a_setting_alike_in_both_panels(tmp_path):
    """Two answer settings, listed P1 first (not alphabetical): each keeps one colour in both panels,
    and one legend names them."""
    inputs = {"stats": [], "topic_stats": []}
    for setting, bump in (("culture_aware", 0), ("cross_culture", 5)):
        pd.DataFrame({"culture": COUNTRIES, "valid": 52, "same": 40, "diff": [2 + bump, 3 + bump, 1 + bump],
                      "diff_rate": 0.1}).to_csv(tmp_path / f"{setting}.csv", index=False)
        pd.DataFrame([dict(set="CRQPC", culture=c, topic=t, topic_name=f"topic {t}", n_pairs=t % 3 + bump)
                      for c in COUNTRIES for t in range(13)]).to_csv(tmp_path / f"{setting}.topics.csv", index=False)
        inputs["stats"].append(str(tmp_path / f"{setting}.csv"))
        inputs["topic_stats"].append(str(tmp_path / f"{setting}.topics.csv"))
    fig = figures.draw("figure3_data", inputs, {"pair_settings": ["culture_aware", "cross_culture"]})
    topic_ax, culture_ax = fig.axes[:2]
    for k in range(2):
        assert topic_ax.containers[k].patches[0].get_facecolor() == culture_ax.containers[k].patches[0].get_facecolor()
    # the first colour is P1's in both: its pairs per culture, and per topic (summed over the cultures)
    assert [p.get_height() for p in culture_ax.containers[0].patches] == [2, 3, 1]
    assert [p.get_width() for p in topic_ax.containers[0].patches] == [3 * (t % 3) for t in range(13)]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["Culture-aware (P1)", "Cross-culture thinking (P2)"]


def test_each_rule_names_the_inputs_of_its_spec():
    """rules/figures.smk as Snakemake parses it: one rule per figure, whose named inputs are the
    spec's and whose PNG carries the spec's caption file; a released version only where the spec
    says the released answers fill it."""
    for spec in figures.SPECS:
        roots = [("results/M", True), ("results/released/M", spec.released)] if spec.per_model else [("results", True)]
        for root, exists in roots:
            rules = producers(f"{root}/figures/{spec.name}.png")
            if not exists:
                assert rules == [], (root, spec.name)
                continue
            assert [r.name for r in rules] == [spec.name]
            assert list(rules[0].input.keys()) == list(spec.inputs), spec.name
            assert list(rules[0].output.keys()) == ["pdf", "png"]
            assert caption_of(rules[0], "png") == spec.caption
    paper = set(workflow().get_rule("paper").input)
    model = workflow().config["run_models"][0]
    released = workflow().config["released"]["models"][0]
    for ext in ("pdf", "png"):
        assert f"results/figures/figure2_framework.{ext}" in paper
        assert {f"results/{model}/figures/{name}.{ext}" for name in figures.MODEL_FIGURES} <= paper
        assert {f"results/released/{released}/figures/{name}.{ext}" for name in figures.RELEASED_FIGURES} <= paper


def test_every_figure_has_a_caption():
    for spec in figures.SPECS:
        assert len((REPO / spec.caption).read_text().strip()) > 40, spec.caption
    with pytest.raises(ValueError, match="unknown figure"):
        figures.spec("figure9")
    with pytest.raises(ValueError, match="no released version"):
        figures.settings("figure4_sampling", {}, model="m", source="released", variants={}, countries=[])


def two_country_tables(with_reason: bool):
    """The fixture tables cut to USA and CHN; r is NaN, as scoring leaves it for 2 countries."""
    table = fixture_table()
    table = table[table.country != "NGA"].copy()
    corr = table.metric == "cross_culture_correlation"
    table.loc[corr, ["value", "n_valid"]] = [np.nan, 20]
    if with_reason:  # scoring writes the reason; tables written before it have none
        table["reason"] = ""
        table.loc[corr, "reason"] = "a correlation needs at least 3 countries (2 here)"
    mats = fixture_matrices()
    return table, mats[mats.row.isin(["USA", "CHN"]) & mats.col.isin(["USA", "CHN"])]


@pytest.mark.parametrize("with_reason", [True, False])
def test_figure5_with_two_countries_says_a_correlation_needs_three(tmp_path, with_reason):
    table, mats = two_country_tables(with_reason)
    table.to_csv(tmp_path / "alignment.csv", index=False)
    figures.set_style()
    res = Results.load(tmp_path / "alignment.csv", "SmolLM2-135M-Instruct", CONFIGURED, ["USA", "CHN"])
    fig = figures.cross_cultural_matrices(res, mats)
    notes = note_text(fig)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert "× r (every panel): a correlation needs at least 3 countries (2 here)" in notes
    assert "no valid answers" not in notes + "".join(titles)
    assert len(titles) == 4 and all(t.splitlines()[-1] == "r: × (see below)" for t in titles[1:])
    # no two panel titles overlap once drawn
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [ax.title.get_window_extent(renderer) for ax in fig.axes if ax.get_title()]
    for a, b in zip(boxes, boxes[1:]):
        assert a.x1 <= b.x0, (a, b)
    figures.save(fig, tmp_path / "f5.pdf", tmp_path / "f5.png")


def test_long_panel_titles_are_wrapped_to_the_panel(tmp_path):
    _, mats = two_country_tables(True)
    figures.set_style()
    frame = mats[(mats.kind == "reference")].pivot(index="row", columns="col", values="value")
    long = "a title much longer than a panel of two countries is wide, said in many words"
    fig, axes, _ = matrix_panels([(long, frame, None), (long, frame, None), (long, frame, None)])
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [ax.title.get_window_extent(renderer) for ax in axes]
    assert all(len(ax.get_title().splitlines()) > 1 for ax in axes)
    for a, b in zip(boxes, boxes[1:]):
        assert a.x1 <= b.x0, (a, b)
