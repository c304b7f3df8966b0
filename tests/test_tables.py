"""The paper's tables from small synthetic results files: every table builds, writes CSV, Markdown
and LaTeX, and shows a missing cell as missing with its reason (never as a number)."""

from __future__ import annotations

import copy
import json
import math
import re

import pandas as pd
import pytest

from conftest import with_deltas
from workflow_rules import REPO, caption_of, producers, workflow

from culturespa import design, tables
from culturespa.design import AVG, BASE, CULTURESPA, SPECIFIC
from culturespa.methods import CULTURE_UNAWARE, P1, P3
from culturespa.results import released_methods, variant_methods
from culturespa.tables.alignment import TOPIC_ROWS

MODEL = "TinyModel"
COUNTRIES = ["USA", "CHN"]
CONTINENTS = {"USA": "America", "CHN": "Asia"}  # config.yaml's catalogue
ALIGNMENT_COLUMNS = ["model", "variant", "method", "country", "metric", "value", "ci_low", "ci_high", "n_valid",
                     "n_invalid", "n_runs", "run_sd"]
BASE_METHODS = [CULTURE_UNAWARE, P1, P3]
# CultureSPA answering with P1 for CHN: every answer invalid
INVALID = (CULTURESPA, P1, "CHN")


def _score(variant, method, country, value, n_valid=40, n_invalid=0):
    lo, hi = (value - 5, value + 5) if not math.isnan(value) else (math.nan, math.nan)
    return dict(model=MODEL, variant=variant, method=method, country=country, metric="paper_score", value=value,
                ci_low=lo, ci_high=hi, n_valid=n_valid, n_invalid=n_invalid, n_runs=1, run_sd=math.nan)


def alignment_rows():
    rows = []
    methods = [(BASE, m) for m in [*BASE_METHODS, "baseline_uniform", "baseline_majority_USA"]]
    methods += [(CULTURESPA, P1), (design.fraction_variant(50), P1)]
    for k, (variant, method) in enumerate(methods):
        values = []
        for j, country in enumerate(COUNTRIES):
            if (variant, method, country) == INVALID:
                rows.append(_score(variant, method, country, math.nan, n_valid=0, n_invalid=5))
                continue
            value = 40.0 + k + j
            values.append(value)
            rows.append(_score(variant, method, country, value))
            # its continent (one country each here), as the aggregation adds it
            rows.append(_score(variant, method, CONTINENTS[country], value))
        rows.append(_score(variant, method, AVG, sum(values) / len(values)))
        # another metric that the tables must not mix in
        rows.append({**_score(variant, method, AVG, 0.5), "metric": "js_similarity"})
    return rows


def topic_rows(with_variant=True):
    rows = []
    for variant, method in [(BASE, CULTURE_UNAWARE), (BASE, P1), (CULTURESPA, P1)]:
        for t in range(13):
            if t == 3:  # no evaluated item of this topic
                continue
            for country in [*COUNTRIES, AVG]:
                value = math.nan if (t == 5 and variant == CULTURESPA) else 30.0 + t
                n_invalid = 4 if math.isnan(value) else 0
                rows.append(dict(model=MODEL, variant=variant, method=method, country=country, topic=t,
                                 topic_name=design_topic(t), metric="paper_score", value=value,
                                 n_valid=0 if n_invalid else 3, n_invalid=n_invalid))
    frame = pd.DataFrame(rows)
    return frame if with_variant else frame[frame.variant == BASE].drop(columns="variant")


def design_topic(t):
    from culturespa.wvs import TOPIC_NAMES

    return TOPIC_NAMES[t]


@pytest.fixture
def config(paper_config):
    cfg = copy.deepcopy(paper_config)
    cfg["countries"] = list(COUNTRIES)
    cfg["sft"]["variants"] = [CULTURESPA, design.fraction_variant(50)]  # SPECIFIC, CCT, RDS, CDS not run
    cfg["evaluation"].update(base_methods=list(BASE_METHODS), tuned_methods=[P1], runs=1, max_items=60)
    cfg["pairs"]["settings"] = ["culture_aware"]
    cfg["questions"].update(source="released", per_topic=2)
    cfg["mmlu"].update(enabled=True, variants=[CULTURESPA, SPECIFIC], subjects=["sociology"], max_per_subject=5)
    return cfg


@pytest.fixture
def root(tmp_path, config):
    """results/{model} with every file a table reads."""
    r = tmp_path / "results" / MODEL
    (r / "pairs/released/culture_aware").mkdir(parents=True)
    (r / "questions/released").mkdir(parents=True)
    with_deltas(pd.DataFrame(alignment_rows(), columns=ALIGNMENT_COLUMNS)).to_csv(r / "alignment.csv", index=False)
    topic_rows().to_csv(r / "alignment_by_topic.csv", index=False)
    mmlu = []
    for cat, base, tuned, n in [("STEM", 0.5, 0.4, 10), ("Social Sciences", 0.6, 0.7, 10), ("overall", 0.55, 0.55, 20)]:
        mmlu += [dict(model=MODEL, variant=CULTURESPA, category=cat, metric="accuracy_base", value=base,
                      ci_low=base - 0.1, ci_high=base + 0.1, n=n),
                 dict(model=MODEL, variant=CULTURESPA, category=cat, metric="accuracy", value=tuned,
                      ci_low=tuned - 0.1, ci_high=tuned + 0.1, n=n),
                 dict(model=MODEL, variant=CULTURESPA, category=cat, metric="delta", value=tuned - base,
                      ci_low=-0.2, ci_high=0.2, n=n)]
    pd.DataFrame(mmlu).to_csv(r / "mmlu.csv", index=False)
    pd.DataFrame([
        dict(culture="USA", valid=20, same=18, diff=2, diff_rate=0.1, invalid_unaware=1, invalid_aware=0,
             missing_aware=0, n_CRQPC=2, n_RDS=2, n_CDS=2, cds_shortfall=0),
        dict(culture="CHN", valid=0, same=0, diff=0, diff_rate=math.nan, invalid_unaware=0, invalid_aware=20,
             missing_aware=0, n_CRQPC=0, n_RDS=0, n_CDS=0, cds_shortfall=0),
    ]).to_csv(r / "pairs/released/culture_aware/stats.csv", index=False)
    pd.DataFrame([dict(set=s, culture=c, topic=t, topic_name=design_topic(t), n_pairs=1 if (t == 8 and c == "USA") else 0)
                  for s in ("CRQPC", "RDS", "CDS") for c in COUNTRIES for t in range(13)]
                 ).to_csv(r / "pairs/released/culture_aware/topic_stats.csv", index=False)
    pd.DataFrame([dict(stage="input", n_kept=26, n_dropped=0), dict(stage="exact_duplicate", n_kept=25, n_dropped=1),
                  dict(stage="unexplained_numeric_scale", n_kept=25, n_dropped=0),
                  dict(stage="strip_number_prefix", n_kept=25, n_dropped=0),
                  dict(stage="endpoint_card", n_kept=25, n_dropped=0),
                  dict(stage="near_duplicate", n_kept=24, n_dropped=1),
                  dict(stage="per_topic_budget", n_kept=23, n_dropped=1)]
                 ).to_csv(r / "questions/released/filter_counts.csv", index=False)
    pd.DataFrame([dict(stage=s, topic=t, n_kept=2, n_dropped=0) for s in ("input", "exact_duplicate", "near_duplicate")
                  for t in range(13)]).to_csv(r / "questions/released/topic_counts.csv", index=False)
    with open(r / "questions/released/pool.jsonl", "w") as fh:
        for t in range(13):
            if t == 12:  # no question of the last topic survived
                continue
            for k in range(2 if t != 0 else 1):
                fh.write(json.dumps(dict(qid=f"T{t:02d}-{k:05d}", topic=t, topic_name=design_topic(t),
                                         question=f"Q{t}.{k}: 50% & more_under {{x}}?",
                                         options=["Yes", "No"], first=1)) + "\n")
    (r / f"sft/{CULTURESPA}").mkdir(parents=True)
    (r / f"sft/{CULTURESPA}/train_stats.json").write_text(json.dumps({"n_examples": 7, "n_records": 7}))
    (r / f"sft/{design.fraction_variant(50)}").mkdir(parents=True)
    (r / f"sft/{design.fraction_variant(50)}/train_stats.json").write_text(json.dumps({"n_records": 3}))
    return r


def inputs_for(name, root, config):
    """The named inputs the table's rule gives it (rules/tables.smk), only those of its spec."""
    source = config["questions"]["source"]
    settings = config["pairs"]["settings"]
    fractions = [design.fraction_variant(p) for p in design.FRACTIONS]
    paths = {
        "alignment": root / "alignment.csv",
        "by_topic": root / "alignment_by_topic.csv",
        "train_stats": [root / f"sft/{v}/train_stats.json" for v in fractions if v in config["sft"]["variants"]],
        "mmlu": root / "mmlu.csv" if config["mmlu"]["enabled"] and config["mmlu"]["variants"] else [],
        "pairs_stats": [root / f"pairs/{source}/{s}/stats.csv" for s in settings],
        "filter_counts": root / f"questions/{source}/filter_counts.csv",
        "topic_counts": root / f"questions/{source}/topic_counts.csv",
        "pool": root / f"questions/{source}/pool.jsonl",
        "pair_topics": [root / f"pairs/{source}/{s}/topic_stats.csv" for s in settings],
        "prompts": REPO / "culturespa/prompts.py",
    }
    return {k: paths[k] for k in tables.spec(name).inputs}


def settings_for(name, config, released=False):
    """The params its rule passes (rules/paper.smk)."""
    variants = released_methods(config) if released else variant_methods(config)
    return tables.settings(name, config, countries=config["countries"], variants=variants,
                           source="released" if released else "pipeline")


def render(name, root, config, tmp_path):
    out = {ext: tmp_path / "out" / f"{name}.{ext}" for ext in ("csv", "md", "tex")}
    table = tables.render(name, inputs_for(name, root, config), settings_for(name, config), out)
    return table, pd.read_csv(out["csv"]), out["md"].read_text(), out["tex"].read_text()


def parse_markdown(text):
    """(header, rows) of the first pipe table in ``text`` (cells split on unescaped '|')."""
    lines = [l for l in text.splitlines() if l.startswith("|")]
    split = lambda l: [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", l)[1:-1]]  # noqa: E731
    header, sep, *rows = (split(l) for l in lines)
    assert all(re.fullmatch(r":?-+:?", c) for c in sep)
    assert all(len(r) == len(header) for r in rows)
    return header, rows


def notes_of(md):
    return md.split("Notes:", 1)[1] if "Notes:" in md else ""


EXPECTED_FIRST_COLUMN = {
    "main_results": [design.row_label(v, m) for v, m in design.MAIN_ROWS]
    + ["Uniform random answers (reference)", "USA survey majority answers (reference)"],
    "joint_specific_cct": ["Base model + P1", *design.TRAINING_VARIANTS,
                           *[f"Δ {label} − base P1" for label in design.TRAINING_VARIANTS],
                           "Δ Culture-joint − culture-specific", "Δ Culture-joint − CCT"],
    "sampling_strategies": ["Base model + P1", *design.SAMPLING, *[f"Δ {n} − base P1" for n in design.SAMPLING],
                            "Δ CRQPC − RDS", "Δ CRQPC − CDS"],
    "data_quantity": ["0 (base model)", *[str(p) for p in design.FRACTIONS[:-1]], "100 (CultureSPA)"],
    "collected_pairs": ["USA", "CHN", "Total"],
    "question_filtering": ["input", "exact_duplicate", "unexplained_numeric_scale", "strip_number_prefix",
                           "endpoint_card", "near_duplicate", "per_topic_budget"],
    "topic_distribution": [str(t) for t in range(13)] + [""],
    "example_questions": [design_topic(t) for t in range(13)],
    "alignment_by_topic": [f"{t}: {design_topic(t)}" for t in range(13)],
    "general_ability": ["STEM", "Social Sciences", "overall"],
    "alignment_by_continent": [*[design.row_label(BASE, m) for v, m in design.MAIN_ROWS if v == BASE],
                               *[f"{label} + P1" for label in design.TRAINING_VARIANTS],
                               "RDS (joint) + P1", "CDS (joint) + P1",
                               *[f"Δ {label} − base P1" for label in design.TRAINING_VARIANTS],
                               "Δ Culture-joint − culture-specific", "Δ Culture-joint − CCT", "Δ CRQPC − RDS",
                               "Δ CRQPC − CDS"],
}
EXPECTED_HEADER = {
    "main_results": ["Method", *COUNTRIES, AVG, "Order-robust AVG"],  # config.yaml: two option orders
    "combined_prompting": ["Method", *COUNTRIES, AVG],
    "joint_specific_cct": ["Model", *COUNTRIES, AVG],
    "sampling_strategies": ["Training data", *COUNTRIES, AVG],
    "alignment_by_continent": ["Model", "America", "Asia", AVG],
    "data_quantity": ["Training data (%)", "Training pairs", f"{AVG} score (P1)", f"Δ {AVG} vs base P1"],
    "alignment_by_topic": ["Topic", *[design.row_label(v, m) for v, m in TOPIC_ROWS]],
    "hyperparameters": ["Group", "Setting", "Value"],
    "prompt_templates": ["Template", "Used by", "Role", "Text"],
    "question_filtering": ["Stage", "Filter", "What it does", "Kept", "Dropped"],
}


@pytest.mark.parametrize("name", tables.TABLES)
def test_every_table_renders_three_formats(name, root, config, tmp_path):
    table, csv, md, tex = render(name, root, config, tmp_path)
    header, rows = parse_markdown(md)
    assert md.startswith(f"**{table.caption}**")
    assert header == list(table.display.columns)
    assert len(rows) == len(table.display)
    if name in EXPECTED_HEADER:
        assert header == EXPECTED_HEADER[name]
    if name in EXPECTED_FIRST_COLUMN:
        assert [r[0] for r in rows] == EXPECTED_FIRST_COLUMN[name]
    # LaTeX: a float with booktabs rules, caption, label, notes in footnote size
    for token in (r"\begin{table}", r"\toprule", r"\midrule", r"\bottomrule", r"\caption{", f"\\label{{tab:{name}}}",
                  r"\footnotesize"):
        assert token in tex, token
    n_cols = len(header)
    body = tex.split(r"\midrule", 1)[1].split(r"\bottomrule", 1)[0]
    for line in body.splitlines():
        if line.endswith(r"\\") and "tabular}[t]" not in line:
            assert len(re.split(r"(?<!\\)&", line)) == n_cols, line
    # every special character is escaped: no bare _ % & # outside the column separators
    text_only = re.sub(r"(?<!\\) & ", " ", tex.replace(f"\\label{{tab:{name}}}", ""))
    for math_mode in (r"$\Delta$", r"$\geq$", r"$\leq$", r"$\pm$", r"$-$"):
        text_only = text_only.replace(math_mode, "")
    text_only = "\n".join(l.rstrip("%") for l in text_only.splitlines() if not l.startswith("%"))
    assert not re.search(r"(?<!\\)[_%&#$]", text_only), name
    assert not csv.empty


def test_main_results_values_and_baselines(root, config, tmp_path):
    table, csv, md, tex = render("main_results", root, config, tmp_path)
    header, rows = parse_markdown(md)
    unaware = rows[0]
    assert unaware[1] == "40.00 [35.00, 45.00]" and unaware[3].startswith("40.50")
    uniform = csv[(csv.method == "baseline_uniform") & (csv.country == "USA")]
    assert uniform.value.iloc[0] == pytest.approx(43.0) and uniform.status.iloc[0] == "ok"
    assert set(csv.metric) == {"paper_score"}
    assert "1 evaluation run on a seeded sample of 60 WVS items" in md


def test_missing_variant_shows_reason_not_a_number(root, config, tmp_path):
    """SPECIFIC is not in sft.variants: missing in every format, with the config key."""
    table, csv, md, tex = render("joint_specific_cct", root, config, tmp_path)
    rows = csv[(csv.variant == SPECIFIC) & (csv.metric == "paper_score")]
    assert len(rows) == len(COUNTRIES) + 1
    assert rows.value.isna().all() and rows.ci_low.isna().all() and rows.n_valid.isna().all()
    assert (rows.status == "missing").all()
    assert rows.reason.str.contains(f"not run: {SPECIFIC} is not in sft.variants").all()
    header, md_rows = parse_markdown(md)
    specific = next(r for r in md_rows if r[0] == "Culture-specific")
    assert specific[1:] == ["—"] * (len(COUNTRIES) + 1)
    assert next(r for r in md_rows if r[0] == "Δ Culture-joint − culture-specific")[1:] == ["—"] * (len(COUNTRIES) + 1)
    assert f"Culture-specific (every column): not run: {SPECIFIC} is not in sft.variants" in notes_of(md)
    tex_row = next(l for l in tex.splitlines() if l.startswith("Culture-specific &"))
    assert "—" in tex_row and not re.search(r"\d", tex_row)
    assert "not run: specific-crqpc-culture\\_aware-100 is not in sft.variants" in tex


def test_all_invalid_cell_is_missing_with_counts(root, config, tmp_path):
    table, csv, md, tex = render("main_results", root, config, tmp_path)
    variant, method, country = INVALID
    row = csv[(csv.variant == variant) & (csv.method == method) & (csv.country == country)].iloc[0]
    assert math.isnan(row.value) and row.status == "missing"
    assert row.n_invalid == 5 and row.n_valid == 0
    assert row.reason == "no valid answers (0 valid, 5 invalid)"
    header, rows = parse_markdown(md)
    spa = rows[len(design.MAIN_ROWS) - 1]
    assert spa[header.index(country)] == "—"
    assert spa[header.index("USA")].startswith("4")
    assert f"({country}): no valid answers (0 valid, 5 invalid)" in notes_of(md)
    assert "no valid answers (0 valid, 5 invalid)" in tex
    # the combined table: the paired change for that country is missing too, not a number
    _, csv2, md2, _ = render("combined_prompting", root, config, tmp_path)
    change = csv2[(csv2.metric == design.delta_metric(BASE, P1)) & (csv2.method == P1)].set_index("country")
    assert math.isnan(change.loc[country, "value"]) and change.loc[country, "status"] == "missing"
    assert change.loc["USA", "value"] == pytest.approx(45.0 - 41.0)  # CultureSPA minus base P1
    assert change.loc["USA", "ci_low"] < change.loc["USA", "value"] < change.loc["USA", "ci_high"]


def test_continent_columns_average_their_countries(root, config, tmp_path):
    table, csv, md, _ = render("alignment_by_continent", root, config, tmp_path)
    header, rows = parse_markdown(md)
    p1 = next(r for r in rows if r[0] == design.row_label(BASE, P1))
    assert p1[header.index("America")] == "41.00 [36.00, 46.00]"  # USA's score: its only country
    joint = next(r for r in rows if r[0] == "Culture-joint + P1")
    assert joint[header.index("Asia")] == "—"  # CHN's answers were all invalid
    delta = next(r for r in rows if r[0] == "Δ Culture-joint − base P1")
    assert delta[header.index("America")].startswith("+4.00")
    assert "Continents: the mean over the continent's countries" in md and "America: USA; Asia: CHN" in md
    assert "not run: specific-crqpc-culture_aware-100 is not in sft.variants" in notes_of(md)
    # an alignment table aggregated before the continent rows: one note says so, not one per cell
    table = pd.read_csv(root / "alignment.csv")
    table[~table.country.isin(CONTINENTS.values())].to_csv(root / "alignment.csv", index=False)
    _, csv, md, _ = render("alignment_by_continent", root, config, tmp_path)
    notes = notes_of(md)
    assert "— America, Asia (every row): no per-continent rows in alignment.csv" in notes
    assert not re.search(r"no result row for [^/]+/[^/]+/(America|Asia)/", notes)
    assert csv[csv.country == AVG].status.eq("ok").any()


def test_sampling_change_and_data_quantity_pairs(root, config, tmp_path):
    _, csv, md, _ = render("sampling_strategies", root, config, tmp_path)
    header, rows = parse_markdown(md)
    crqpc = next(r for r in rows if r[0] == "Δ CRQPC − base P1")
    assert crqpc[-1] == "+3.50 [1.50, 5.50]"  # CultureSPA AVG 45 (USA only: CHN all invalid) minus base P1 AVG 41.5
    assert next(r for r in rows if r[0] == "Δ RDS − base P1")[-1] == "—"
    _, csv, md, _ = render("data_quantity", root, config, tmp_path)
    header, rows = parse_markdown(md)
    by = {r[0]: r for r in rows}
    assert by["100 (CultureSPA)"][1] == "7" and by["50"][1] == "3"
    assert by["40"][1:] == ["—", "—", "—"]
    assert by["100 (CultureSPA)"][3].startswith("+")
    assert "not run: " in notes_of(md) and "joint-crqpc-culture_aware-40" in notes_of(md)
    row40 = csv[csv.percent == 40].iloc[0]
    assert pd.isna(row40.n_pairs) and pd.isna(row40.value)


def test_released_table_marks_culturespa_not_released(tmp_path, config):
    rel = tmp_path / "results/released" / MODEL
    rel.mkdir(parents=True)
    frame = pd.DataFrame([r for r in alignment_rows() if r["variant"] == BASE and r["method"] != P3])
    frame.drop(columns=["variant", "n_runs", "run_sd"]).to_csv(rel / "alignment.csv", index=False)
    topic_rows(with_variant=False).to_csv(rel / "alignment_by_topic.csv", index=False)
    for name in tables.RELEASED_TABLES:
        out = {ext: tmp_path / f"{name}.{ext}" for ext in ("csv", "md", "tex")}
        tables.render(name, inputs_for(name, rel, config), settings_for(name, config, released=True), out)
        md = out["md"].read_text()
        assert "not released by the authors" in md
        csv = pd.read_csv(out["csv"])
        spa = csv[csv.variant == CULTURESPA]
        assert spa.value.isna().all() and spa.reason.str.contains("not released by the authors").all()
    md = (tmp_path / "main_results.md").read_text()
    assert "not run: self_alignment is not in released.methods" in md
    assert "the answers the authors released" in md


def test_alignment_by_topic_missing_topics_and_invalid(root, config, tmp_path):
    _, csv, md, tex = render("alignment_by_topic", root, config, tmp_path)
    header, rows = parse_markdown(md)
    assert rows[3][1:] == ["—", "—", "—"]
    assert "topic 3 (every column): no WVS item of this topic was evaluated" in notes_of(md)
    assert rows[5][1] == "35.00" and rows[5][3] == "—"
    assert "(5): no valid answers (0 valid, 4 invalid)" in notes_of(md)
    row = csv[(csv.topic == 5) & (csv.variant == CULTURESPA)].iloc[0]
    assert math.isnan(row.value) and row.n_invalid == 4


def test_general_ability(root, config, tmp_path):
    _, csv, md, _ = render("general_ability", root, config, tmp_path)
    header, rows = parse_markdown(md)
    label = design.variant_label(CULTURESPA)
    assert header[:4] == ["Category", "n", "Base model", label]
    assert rows[0][2] == "50.0 [40.0, 60.0]" and rows[0][header.index(f"Δ {label}")].startswith("-10.0")
    spec = design.variant_label(SPECIFIC)
    assert all(r[header.index(spec)] == "—" for r in rows)
    assert f"not run: {SPECIFIC} is not in sft.variants" in notes_of(md)
    # MMLU not run: no input (the rule gives an empty list), every cell missing with the reason
    config["mmlu"]["enabled"] = False
    assert inputs_for("general_ability", root, config) == {"mmlu": []}
    _, csv, md, _ = render("general_ability", root, config, tmp_path)
    assert "MMLU not run (mmlu.enabled is false or mmlu.variants is empty)" in md
    assert csv.value.isna().all() and (csv.status == "missing").all()


def test_collected_pairs_and_topics(root, config, tmp_path):
    _, csv, md, tex = render("collected_pairs", root, config, tmp_path)
    header, rows = parse_markdown(md)
    by = {r[0]: r for r in rows}
    assert by["USA"][header.index("Diff rate (%)")] == "10.0"
    assert by["CHN"][header.index("Diff rate (%)")] == "—"
    assert by["Total"][header.index("Diff")] == "2"
    assert "no question with two valid answers" in notes_of(md)
    assert "Cross-culture thinking (P2) pairs: not collected (cross_culture is not in pairs.settings)" in md
    assert r"Diff rate (\%)" in tex
    _, csv, md, tex = render("topic_distribution", root, config, tmp_path)
    header, rows = parse_markdown(md)
    assert header == ["Topic", "Name", "Generated", "After filters", "In pool", "CRQPC pairs"]
    assert rows[8][1] == "Science & Technology" and rows[8][-1] == "1"
    assert rows[12][4] == "0" and rows[-1][1:] == ["Total", "26", "26", "23", "1"]
    assert r"Science \& Technology" in tex


def test_question_filtering_marks_paper_and_ours(root, config, tmp_path):
    _, csv, md, _ = render("question_filtering", root, config, tmp_path)
    origin = dict(zip(csv.stage, csv["filter"]))
    assert [origin[s] for s in ("exact_duplicate", "unexplained_numeric_scale", "strip_number_prefix",
                                "endpoint_card")] == ["paper (1)", "paper (2)", "paper (3)", "paper (4)"]
    assert origin["near_duplicate"] == origin["per_topic_budget"] == "ours"
    assert "at most 2 questions per topic" in md


def test_example_questions_escape_and_missing_topic(root, config, tmp_path):
    _, csv, md, tex = render("example_questions", root, config, tmp_path)
    header, rows = parse_markdown(md)
    assert rows[0][1] == "Q0.0: 50% & more_under {x}?" and rows[0][2] == "1.Yes 2.No"
    assert rows[12][1:] == ["—", "—"]
    assert "topics 12: no question of the topic in the pool" in md
    assert r"Q0.0: 50\% \& more\_under \{x\}?" in tex


def test_hyperparameters_resolve_the_preset(root, config, tmp_path):
    _, csv, md, _ = render("hyperparameters", root, config, tmp_path)
    values = {(g, s): v for g, s, v in csv[["group", "setting", "value"]].itertuples(index=False)}
    assert values[("Fine-tuning (preset paper)", "effective_batch")] == "128 (joint), 8 (specific)"
    assert values[("Fine-tuning (preset paper)", "learning_rate")] == "0.0001"
    assert values[("Answering", "temperature")] == "0.6"
    assert values[("Evaluation", "max_items")] == "60"
    config["evaluation"]["max_items"] = None
    config["sft"]["preset"] = "mine"
    config["sft"]["presets"] = {"mine": {"lora_rank": 4, "effective_batch": 16, "per_device_batch": 8}}
    _, csv, md, _ = render("hyperparameters", root, config, tmp_path)
    values = {(g, s): v for g, s, v in csv[["group", "setting", "value"]].itertuples(index=False)}
    assert values[("Fine-tuning (preset mine)", "lora_rank")] == "4"
    assert values[("Evaluation", "max_items")] == "all items"


def test_prompt_templates_show_placeholders(root, config, tmp_path):
    from culturespa import prompts

    _, csv, md, tex = render("prompt_templates", root, config, tmp_path)
    texts = dict(zip(csv.template, csv.text))
    assert texts["USER_QUESTION"] == prompts.USER_QUESTION
    assert '{"Question:" ..., "Options": [..., ..., ...]}' in texts["USER_QUESTION_GENERATION"]
    assert "{topic}" in texts["USER_QUESTION_GENERATION"]
    assert r"\#Question: \{question\}\newline" in tex
    assert "#Question: {question}<br>#Options: {options}" in md


def test_each_rule_names_the_inputs_of_its_spec():
    """rules/tables.smk as Snakemake parses it: one rule per table (and per released table),
    whose named inputs are the spec's, with the report caption; released tables only where the
    spec says the released answers fill them."""
    for spec in tables.SPECS:
        for root, exists in (("results", True), ("results/released", spec.released)):
            rules = producers(f"{root}/M/tables/{spec.name}.csv")
            if not exists:
                assert rules == [], (root, spec.name)
                continue
            assert len(rules) == 1, (root, spec.name, [r.name for r in rules])
            rule = rules[0]
            assert list(rule.input.keys()) == list(spec.inputs), rule.name
            assert list(rule.output.keys()) == ["csv", "md", "tex"]
            assert caption_of(rule, "csv") == "report/table.rst"
    paper = set(workflow().get_rule("paper").input)
    model = workflow().config["run_models"][0]
    released = workflow().config["released"]["models"][0]
    for ext in tables.FORMATS:
        assert {f"results/{model}/tables/{name}.{ext}" for name in tables.TABLES} <= paper
        assert {f"results/released/{released}/tables/{name}.{ext}" for name in tables.RELEASED_TABLES} <= paper


def test_every_table_has_a_caption():
    assert "{{ snakemake.params.caption }}" in (REPO / "report/table.rst").read_text()
    for spec in tables.SPECS:
        assert len(spec.caption) > 40 and spec.caption.endswith("."), spec.name
    with pytest.raises(Exception, match="unknown table"):
        tables.spec("figure9")


def test_settings_for_the_paper_config(paper_config):
    for name in tables.TABLES:
        json.dumps(settings_for(name, paper_config))  # plain data: Snakemake compares params between runs
    for name in tables.RELEASED_TABLES:
        json.dumps(settings_for(name, paper_config, released=True))
    scores = settings_for("main_results", paper_config)
    assert scores["variants"][BASE] == paper_config["evaluation"]["base_methods"]
    assert "hyper" not in scores  # a table gets only the settings it shows
    with pytest.raises(Exception, match="no released version"):
        settings_for("combined_prompting", paper_config, released=True)
    with pytest.raises(Exception, match="question_filtering: the config has no 'questions' section"):
        tables.settings("question_filtering", {"pairs": {}})


def test_a_config_change_touches_only_the_tables_that_show_it(paper_config):
    """The rules pass these settings as params: Snakemake re-renders a table when they change."""
    before = {name: settings_for(name, paper_config) for name in tables.TABLES}

    def changed(section, key, value):
        cfg = copy.deepcopy(paper_config)
        cfg[section][key] = value
        return {name for name in tables.TABLES if settings_for(name, cfg) != before[name]}

    def changed_top(section, value):
        cfg = copy.deepcopy(paper_config)
        cfg[section] = value
        return {name for name in tables.TABLES if settings_for(name, cfg) != before[name]}

    scored = {"main_results", "combined_prompting", "joint_specific_cct", "sampling_strategies", "data_quantity",
              "order_robustness", "order_diagnostics", "alignment_by_continent"}
    assert changed("scoring", "n_boot", 17) == scored | {"hyperparameters"}
    assert changed("scoring", "majority_baseline", "CHN") == {"main_results", "order_robustness", "order_diagnostics",
                                                             "hyperparameters"}
    assert changed("answering", "compile", not paper_config["answering"].get("compile")) == set()
    assert changed("pairs", "seed", 99) == {"hyperparameters"}
    assert "prompt_templates" not in changed("evaluation", "runs", 3)
    assert changed("questions", "near_duplicate_threshold", 0.5) == {"question_filtering", "hyperparameters"}
    moved = [{**c, "continent": "Oceania"} if c["code"] == "CHN" else c for c in paper_config["cultures"]]
    assert changed_top("cultures", moved) == {"alignment_by_continent"}


def test_latex_escape():
    assert tables.latex_escape("a_b & 50% #1 {x} ~^\\ <>") == (
        r"a\_b \& 50\% \#1 \{x\} \textasciitilde{}\textasciicircum{}\textbackslash{} \textless{}\textgreater{}")
    assert tables.latex_escape("Δ ≥") == r"$\Delta$ $\geq$"
