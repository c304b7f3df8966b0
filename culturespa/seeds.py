"""Seeds and seeded draws: which random numbers an answer is drawn with (numpy only, no torch).

An answer in logprob mode is an option drawn from the model's option probabilities sharpened to the
choice temperature, with a uniform number from an RNG seeded from (seed, question key)
(``draw_choice``): the draw does not depend on batching, and a stored answer can be recomputed from
its probabilities.

``answering.draws`` decides the seed each persona (culture-unaware, or a culture) draws with:

* ``independent`` (the default, the paper's behaviour): every (method, persona) gets its own seed
  (``persona_seed``), so the culture-unaware and a culture-aware answer to the same question are
  independent draws, as in the authors' scripts, which sample each run from one global RNG stream.
  Two answers then differ either because the distribution moved or by sampling noise alone: with
  the same distribution p at temperature T they still differ with probability 1 - sum_k q_k^2
  (q = p sharpened), so CRQPC is larger than under shared draws.
* ``shared``: every persona draws with the same seed, hence the same uniform number per question
  (common random numbers): a "diff" means the distribution moved enough to cross the draw, never
  sampling noise, and CRQPC is smaller.

In generate mode the seed feeds ``torch.manual_seed`` per batch of free-text sampling; the tokens
drawn depend on the prompt, so there is no shared-draw notion there: ``independent`` seeds each
persona apart, ``shared`` reuses one seed (which couples the token draws only loosely, through equal
batch layouts).

Evaluation runs are seeded as the authors seed them: run r uses ``seed - r`` (``set_seed(42 - run_id)``).
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

DRAWS = ("independent", "shared")
DEFAULT_DRAWS = "independent"
NO_PERSONA = "none"  # the persona of culture-unaware answers (as scoring.NO_PERSONA)


def derive_seed(*parts) -> int:
    """A 63-bit seed from any printable parts, stable across runs and platforms."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def sharpen(probs: Sequence[float], temperature: float) -> np.ndarray:
    """p^(1/T), renormalised (T -> 0: the argmax)."""
    p = np.asarray(probs, dtype=np.float64)
    if temperature <= 0:
        out = np.zeros_like(p)
        out[int(np.argmax(p))] = 1.0
        return out
    with np.errstate(divide="ignore"):
        logp = np.log(p) / temperature
    logp -= logp.max()
    q = np.exp(logp)
    return q / q.sum()


def draw_choice(options: Sequence[int], probs: Sequence[float], seed: int, key: str, temperature: float) -> int:
    """An option drawn from ``probs`` at ``temperature`` with an RNG seeded from (seed, key)."""
    q = sharpen(probs, temperature)
    u = np.random.default_rng(derive_seed(seed, key)).random()
    idx = int(np.searchsorted(np.cumsum(q), u, side="right"))
    return int(options[min(idx, len(options) - 1)])


def persona_seed(seed: int, draws: str, method: str, persona: str) -> int:
    """The seed the answers of ``method`` as ``persona`` are drawn with (see the module docstring)."""
    if draws == "shared":
        return seed
    if draws == "independent":
        return derive_seed(seed, "draws", method, persona)
    raise ValueError(f"answering.draws: {draws!r} is not one of {', '.join(DRAWS)}")


def run_seed(seed: int, run: int) -> int:
    """The seed of evaluation run ``run``: ``seed - run``, as the authors' ``set_seed(42 - run_id)``."""
    return seed - run


def disagreement(p: Sequence[float], q: Sequence[float], temperature: float) -> float:
    """The probability that independent draws from ``p`` and ``q`` (each sharpened to
    ``temperature``) differ: 1 - sum_k p_k q_k."""
    return float(1.0 - np.dot(sharpen(p, temperature), sharpen(q, temperature)))
