"""Every table of the paper, rendered from the results files (never by re-running a model).

- ``registry``: one spec per table (name, caption, builder, input names, settings), ``build``
  and ``render``;
- ``formats``: the ``Table`` object and its CSV, Markdown and LaTeX writers;
- the builders, by what they read: ``alignment`` (alignment scores), ``ability`` (MMLU),
  ``data`` (questions and pairs), ``run_settings`` (hyperparameters, prompt templates);
  ``cells``: missing cells and their reasons, shared by the builders.

Nothing is filled in: a missing cell is never a zero. Missing means the variant or method was not
run (not in the config), the run left no row, or every answer was invalid (``results.Cell``); the
CSV leaves the value empty with ``status`` / ``reason``, Markdown and LaTeX show "—" and a note.
"""

from .formats import FORMATS, MISSING, Table, latex, latex_escape, markdown
from .registry import RELEASED_TABLES, REGISTRY, SPECS, TABLES, TableSpec, build, reading, render, settings, spec

__all__ = ["FORMATS", "MISSING", "REGISTRY", "RELEASED_TABLES", "SPECS", "TABLES", "Table", "TableSpec", "build",
           "latex", "latex_escape", "markdown", "reading", "render", "settings", "spec"]
