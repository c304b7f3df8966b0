"""What the tables and figures registries share: one spec per rendered output, and the settings
it takes from the config.

A spec's ``settings`` function names what it reads: its positional parameters are config
sections (``config[name]`` is passed), its keyword-only parameters the rule's context
(``model``, ``source``, ``countries``, ``variants``). It returns plain data, which the rule passes
as params: Snakemake re-renders an output when its params change, so each output gets only
the keys it shows, and a config change re-renders only what it touches.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class Spec:
    name: str
    caption: str  # tables: the caption text; figures: the caption file (report/figures/*.rst)
    inputs: tuple[str, ...]  # the named inputs of its rule
    settings: Callable[..., dict]
    released: bool = False  # the authors' released answers (results/released/{model}) can fill it

    def settings_for(self, config: Mapping, **context: Any) -> dict:
        """The settings from ``config`` and the rule's ``context`` (only what the function names)."""
        args, kwargs = [], {}
        for p in inspect.signature(self.settings).parameters.values():
            if p.kind is p.POSITIONAL_OR_KEYWORD:
                if p.name not in config:
                    raise ConfigError(f"{self.name}: the config has no '{p.name}' section")
                args.append(config[p.name])
            elif p.kind is p.KEYWORD_ONLY:
                if p.name not in context:
                    raise TypeError(f"{self.name}: settings need {p.name!r} from the rule")
                kwargs[p.name] = context[p.name]
        return self.settings(*args, **kwargs)


def as_mapping(obj) -> dict:
    """A dict from a Snakemake namedlist/Params (or a dict, a namespace, nothing)."""
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    if hasattr(obj, "items"):
        return dict(obj.items())
    return dict(vars(obj))
