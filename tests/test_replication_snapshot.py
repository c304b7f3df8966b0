"""``make replication-figures`` on the committed research-scale snapshot (replication/SmolLM2-135M-Instruct,
issue 16): every figure and table of the paper rendered from it, offline, no model job, 18 cultures, and
the main table the README quotes is the one it renders."""

import json
import subprocess
import sys

from conftest import MODEL_RULES, PAPER_COUNTRIES, REPO
from culturespa.figures import MODEL_FIGURES
from culturespa.tables import TABLES

MODEL = "SmolLM2-135M-Instruct"
SNAPSHOT = REPO / "replication" / MODEL


def table_rows(markdown_file) -> list[str]:
    return [line for line in markdown_file.read_text().splitlines() if line.startswith("|")]


def readme_section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("### What CultureSPA does to SmolLM2-135M-Instruct")
    return text[start:text.index("\n## ", start)]


def test_the_committed_replication_snapshot_renders_every_figure_and_table(data_dir, tmp_path):
    provenance = json.loads((SNAPSHOT / "PROVENANCE.json").read_text())
    assert provenance["configs"] == ["replication.yaml"]
    assert sum(provenance["job_commits"].values()) > 300  # the research-scale run, not a demo
    drawn = subprocess.run([sys.executable, "-m", "culturespa", "render-snapshot", str(SNAPSHOT), "-d", str(tmp_path),
                            "--cores", "2", "--", "--config", f"data_mirror={data_dir}"],
                           capture_output=True, text=True, cwd=REPO)
    out = drawn.stdout + drawn.stderr
    assert drawn.returncode == 0, out[-4000:]
    assert not any(f"rule {rule}:" in out for rule in MODEL_RULES)
    root = tmp_path / "results" / MODEL
    for name in MODEL_FIGURES:
        assert (root / "figures" / f"{name}.png").stat().st_size > 5_000, name
    for name in TABLES:
        assert (root / "tables" / f"{name}.md").stat().st_size > 200, name
    assert "figure1_alignment" in (tmp_path / "results" / "report.html").read_text(errors="replace")
    # the main table has every culture and a score in every cell (a missing one is a dash with its reason)
    rows = table_rows(root / "tables" / "main_results.md")
    assert [cell.strip() for cell in rows[0].split("|")[2:-1]] == PAPER_COUNTRIES + ["AVG"]
    assert len(rows) >= 7 and not any("—" in row for row in rows), rows
    # the README's main table is this render's, cell for cell
    assert "\n".join(table_rows(root / "tables" / "alignment_by_continent.md")) in readme_section()
