"""pyplot, seaborn and matplotlib.ticker, imported on first use.

The Snakefile imports the figure registry to plan its jobs; importing the plotting libraries there
cost every Snakemake start ~2.5 s (and every cluster job, which parses the Snakefile again). The
first use selects the Agg backend: rules run without a display.
"""

from __future__ import annotations

import importlib
import sys
import types


class _LazyModule(types.ModuleType):
    def __getattr__(self, attr):
        module = _load(self.__name__)
        return getattr(module, attr)


def _load(name: str) -> types.ModuleType:
    if "matplotlib.pyplot" not in sys.modules:  # seaborn imports pyplot too
        import matplotlib

        matplotlib.use("Agg")
    return importlib.import_module(name)


plt = _LazyModule("matplotlib.pyplot")
sns = _LazyModule("seaborn")
ticker = _LazyModule("matplotlib.ticker")
