"""The table object and its three formats.

- CSV (``write_csv``): ``Table.frame``, tidy, for machines: numbers, an empty cell where a value
  is missing, ``status`` / ``reason`` columns saying why;
- Markdown (``markdown``): a bold caption line, a pipe table (``DataFrame.to_markdown``) of
  ``Table.display``, the notes as a list;
- LaTeX (``latex``): a ``table`` float (``Styler.to_latex``) with booktabs rules, caption and
  label, escaped text, section rules, notes in footnote size.

Nothing here knows a particular table: the builders fill a ``Table``; the registry gives it its
name and caption.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd

from .. import io

MISSING = "—"
FORMATS = ("csv", "md", "tex")
WIDE = 7  # more display columns than this (and no paragraph column): scaled to the text width


@dataclass
class Table:
    """One table: ``frame`` for the CSV, ``display`` (strings) for Markdown and LaTeX."""

    frame: pd.DataFrame
    display: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    # LaTeX column types, one per display column (default: l for text, r for numbers)
    align: list[str] | None = None
    # display row positions that start a new group (a \midrule before them)
    sections: list[int] = field(default_factory=list)
    # LaTeX: "value [lo, hi]" cells as the value over a small CI line (keeps wide tables legible)
    stack_ci: bool = False
    # from the table's registry entry (tables.registry.build)
    name: str = ""
    caption: str = ""

    def column_types(self) -> list[str]:
        if self.align is not None:
            return list(self.align)
        return ["l" if i == 0 or not _numeric_column(self.display[c]) else "r"
                for i, c in enumerate(self.display.columns)]


def _numeric_column(values: pd.Series) -> bool:
    shown = [v for v in values if v not in (MISSING, "")]
    return bool(shown) and all(re.fullmatch(r"[+\-−]?[0-9.,]+( \[.*\])?%?", str(v)) for v in shown)


# --- CSV --------------------------------------------------------------------------------------------


def write_csv(table: Table, path) -> None:
    io.write_csv(path, table.frame)


# --- Markdown ---------------------------------------------------------------------------------------


def _md(text, cell: bool = True) -> str:
    """A pipe table cell on one line: '|' escaped, newlines as <br>."""
    text = str(text)
    if cell:
        text = text.replace("|", r"\|").replace("\r\n", "\n").replace("\n", "<br>")
    return text


def markdown(table: Table) -> str:
    shown = table.display.map(_md).rename(columns=_md)
    align = ["right" if t == "r" else "left" for t in table.column_types()]
    # every cell is already text as shown: no number parsing, no whitespace stripped
    body = shown.to_markdown(index=False, colalign=align, disable_numparse=True, preserve_whitespace=True)
    lines = [f"**{_md(table.caption)}**", "", body]
    if table.notes:
        lines += ["", "Notes:", ""]
        lines += [f"- {_md(n, cell=False)}" for n in table.notes]
    return "\n".join(lines) + "\n"


def write_markdown(table: Table, path) -> None:
    io.write_text(path, markdown(table))


# --- LaTeX ------------------------------------------------------------------------------------------


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "Δ": r"$\Delta$",
    "±": r"$\pm$",
    "≥": r"$\geq$",
    "≤": r"$\leq$",
    "−": r"$-$",
}
_LATEX_RE = re.compile("|".join(re.escape(k) for k in _LATEX_SPECIAL))


def latex_escape(text) -> str:
    """Text safe in LaTeX's text mode: the ten special characters, <, >, a few symbols; newlines
    become \\newline (for p columns)."""
    out = _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group(0)], str(text))
    return out.replace("\r\n", "\n").replace("\n", r"\newline ")


_WITH_CI = re.compile(r"^(\S+) (\[[^\]]+\])$")


def _latex_stacked(text) -> str:
    """'value [lo, hi]' as the value over the CI in small type (one line of source)."""
    m = _WITH_CI.match(str(text))
    if not m:
        return latex_escape(text)
    return (r"\begin{tabular}[t]{@{}r@{}}" + latex_escape(m.group(1)) + r"\\{\scriptsize "
            + latex_escape(m.group(2)) + r"}\end{tabular}")


def latex(table: Table) -> str:
    types = table.column_types()
    wide = len(table.display.columns) > WIDE and not any(t.startswith("p") for t in types)
    styler = table.display.style.hide(axis="index")
    styler = styler.format(_latex_stacked if table.stack_ci else latex_escape)
    styler = styler.format_index(latex_escape, axis=1)
    text = styler.to_latex(column_format="".join(types), position="htbp", position_float="centering",
                           hrules=True, label=f"tab:{table.name}", caption=latex_escape(table.caption),
                           environment="table")
    lines = text.rstrip("\n").split("\n")
    # what Styler cannot do: rules between row groups, scaling a wide tabular, the notes
    first = lines.index(r"\midrule") + 1
    last = lines.index(r"\bottomrule")
    rows = lines[first:last]
    if len(rows) != len(table.display):
        raise AssertionError(f"table {table.name}: {len(rows)} LaTeX rows for {len(table.display)} display rows")
    body = []
    for i, row in enumerate(rows):
        if i in table.sections and i > 0:
            body.append(r"\midrule")
        body.append(row)
    lines[first:last] = body
    if wide:
        begin = next(i for i, line in enumerate(lines) if line.startswith(r"\begin{tabular}"))
        lines.insert(begin, r"\resizebox{\textwidth}{!}{%")
        end = lines.index(r"\end{tabular}")
        lines[end:end + 1] = [r"\end{tabular}%", "}"]
    if table.notes:
        notes = r" \newline ".join(latex_escape(n) for n in table.notes)
        end = lines.index(r"\end{table}")
        lines[end:end] = [r"\par\smallskip", f"{{\\footnotesize\\raggedright Notes: {notes}\\par}}"]
    header = (f"% {table.name}: generated by culturespa from the results files; needs \\usepackage{{booktabs}}"
              + (" and graphicx" if wide else ""))
    return "\n".join([header, *lines]) + "\n"


def write_latex(table: Table, path) -> None:
    io.write_text(path, latex(table))


def write_all(table: Table, outputs) -> None:
    """The three formats into ``outputs['csv']``, ``['md']``, ``['tex']``."""
    write_csv(table, outputs["csv"])
    write_markdown(table, outputs["md"])
    write_latex(table, outputs["tex"])
