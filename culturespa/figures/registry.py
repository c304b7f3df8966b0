"""Every figure, one spec each: name, caption file, builder, the named inputs of its rule, the
settings it takes from the config, whether the authors' released answers can fill it, and how its
inputs become the builder's arguments. ``render`` draws one figure through its spec.

The rules (rules/figures.smk) list each figure's inputs by these names; ``tests/test_figures.py``
checks that they agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from .. import io
from ..registry import Spec, as_mapping
from ..results import Results
from . import alignment, data, framework, matrices, robustness
from .style import save, set_style


@dataclass(frozen=True, kw_only=True)
class FigureSpec(Spec):
    draw: Callable[..., Any]  # the builder: a matplotlib Figure from what ``load`` returns
    load: Callable[[Mapping, Mapping], tuple]  # (named inputs, settings) -> the builder's arguments
    per_model: bool = True  # False: one figure for the whole workflow (results/figures/)


# --- settings ---------------------------------------------------------------------------------------


def results_settings(*, model: str, source: str, variants: Mapping, countries: Sequence[str]) -> dict:
    """What the run asked for (a variant or method outside it is drawn as 'not run'), and the
    country order."""
    return {"model": model, "source": source, "variants": {k: list(v) for k, v in variants.items()},
            "countries": list(countries)}


def order_settings(evaluation: Mapping, *, model: str, source: str, variants: Mapping,
                   countries: Sequence[str]) -> dict:
    """``results_settings`` and the option orders configured (the released answers have the
    original order only: their other cells say so)."""
    orders = list(evaluation.get("orders", ["original"]))
    return {**results_settings(model=model, source=source, variants=variants, countries=countries),
            "orders": orders}


def pair_settings(pairs: Mapping) -> dict:
    """The answer settings whose pairs were collected, in the order of the rule's inputs."""
    return {"pair_settings": list(pairs["settings"])}


def no_settings() -> dict:
    return {}


# --- inputs -> the builders' arguments ----------------------------------------------------------------


def _results(inputs: Mapping, settings: Mapping) -> Results:
    return Results.load(inputs["alignment"], settings["model"], settings["variants"], settings["countries"],
                        source=settings["source"], orders=settings.get("orders"))


def load_results(inputs: Mapping, settings: Mapping) -> tuple:
    return (_results(inputs, settings),)


def load_results_and_matrices(inputs: Mapping, settings: Mapping) -> tuple:
    return _results(inputs, settings), io.read_csv(inputs["matrices"])


def load_rulegraph(inputs: Mapping, settings: Mapping) -> tuple:
    return (Path(inputs["rulegraph"]).read_text(),)


def load_pair_stats(inputs: Mapping, settings: Mapping) -> tuple:
    """The pair statistics of every answer setting, with a ``setting`` column."""
    pairs = settings["pair_settings"]
    stats = pd.concat([io.read_csv(p).assign(setting=s) for p, s in zip(inputs["stats"], pairs)])
    topics = pd.concat([io.read_csv(p).assign(setting=s) for p, s in zip(inputs["topic_stats"], pairs)])
    return stats, topics


def _caption(name: str) -> str:
    return f"report/figures/{name}.rst"


SPECS = [
    FigureSpec(
        name="figure1_alignment", caption=_caption("figure1_alignment"), draw=alignment.alignment_by_country,
        load=load_results, inputs=("alignment",), settings=results_settings, released=True,
    ),
    FigureSpec(
        name="figure2_framework", caption=_caption("figure2_framework"), draw=framework.framework,
        load=load_rulegraph, inputs=("rulegraph",), settings=no_settings, per_model=False,
    ),
    FigureSpec(
        name="figure3_data", caption=_caption("figure3_data"), draw=data.data_distribution,
        load=load_pair_stats, inputs=("stats", "topic_stats"), settings=pair_settings,
    ),
    FigureSpec(
        name="figure4_sampling", caption=_caption("figure4_sampling"), draw=alignment.sampling_strategies,
        load=load_results, inputs=("alignment",), settings=results_settings,
    ),
    FigureSpec(
        name="figure5_matrices", caption=_caption("figure5_matrices"), draw=matrices.cross_cultural_matrices,
        load=load_results_and_matrices, inputs=("alignment", "matrices"), settings=results_settings, released=True,
    ),
    FigureSpec(
        name="figure6_data_quantity", caption=_caption("figure6_data_quantity"), draw=alignment.data_quantity,
        load=load_results, inputs=("alignment",), settings=results_settings,
    ),
    FigureSpec(
        name="figure_pluralism", caption=_caption("figure_pluralism"), draw=matrices.pluralism,
        load=load_results_and_matrices, inputs=("alignment", "matrices"), settings=results_settings, released=True,
    ),
    FigureSpec(
        name="figure_distributional", caption=_caption("figure_distributional"), draw=alignment.distributional,
        load=load_results, inputs=("alignment",), settings=results_settings, released=True,
    ),
    FigureSpec(
        name="figure_order_robustness", caption=_caption("figure_order_robustness"),
        draw=robustness.order_robustness_figure, load=load_results, inputs=("alignment",), settings=order_settings,
        released=True,
    ),
]
REGISTRY: dict[str, FigureSpec] = {s.name: s for s in SPECS}
FIGURES = list(REGISTRY)
MODEL_FIGURES = [s.name for s in SPECS if s.per_model]
RELEASED_FIGURES = [s.name for s in SPECS if s.released]


def spec(name: str) -> FigureSpec:
    if name not in REGISTRY:
        raise ValueError(f"unknown figure {name!r} (known: {', '.join(FIGURES)})")
    return REGISTRY[name]


def reading(*inputs: str) -> list[str]:
    """The figures whose inputs are exactly ``inputs``."""
    return [s.name for s in SPECS if s.inputs == inputs]


def settings(name: str, config: Mapping, **context) -> dict:
    """What figure ``name`` takes from the config (its rule's params); ``context``: the rule's
    ``model``, ``source``, ``variants`` and ``countries``."""
    s = spec(name)
    if context.get("source") == "released" and not s.released:
        raise ValueError(f"figure {name!r} has no released version (only {', '.join(RELEASED_FIGURES)})")
    return s.settings_for(config, **context)


def draw(name: str, inputs, settings):
    """Figure ``name`` (a matplotlib Figure) from its named inputs and settings."""
    s = spec(name)
    set_style()
    return s.draw(*s.load(as_mapping(inputs), as_mapping(settings)))


def render(name: str, inputs, settings, outputs) -> None:
    """Draw figure ``name`` from its rule's named inputs into ``outputs`` pdf and png."""
    out = as_mapping(outputs)
    save(draw(name, inputs, settings), out["pdf"], out["png"])
