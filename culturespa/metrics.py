"""Alignment metrics: pure functions over numpy arrays, one question per position.

Conventions: an answer array holds option *numbers* (float, NaN where the answer is invalid
or the survey has no majority); ``max_dist`` holds each item's largest possible distance
(number of options - 1). Distributions are arrays over an item's options that sum to 1.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.spatial.distance import jensenshannon


def paper_score(answers: np.ndarray, majority: np.ndarray, max_dist: np.ndarray, weights=None) -> float:
    """The paper's alignment score, in points: 100 * (1 - ||a - g||_2 / ||q - 1||_2).

    Only questions with both a valid answer and a majority answer count. ``weights`` (counts per
    question) let the bootstrap resample questions without copying arrays. NaN when nothing counts.
    """
    a, g, m = (np.asarray(x, dtype=float) for x in (answers, majority, max_dist))
    mask = ~(np.isnan(a) | np.isnan(g))
    w = mask.astype(float) if weights is None else np.asarray(weights, dtype=float) * mask
    denom = np.sum(w * m**2)
    if denom <= 0:
        return float("nan")
    num = np.sum(w * np.where(mask, (a - g) ** 2, 0.0))
    return float(100.0 * (1.0 - np.sqrt(num) / np.sqrt(denom)))


def one_hot(answer: int, first: int, n_options: int) -> np.ndarray:
    v = np.zeros(n_options)
    v[answer - first] = 1.0
    return v


def js_similarity(p: np.ndarray, q: np.ndarray) -> float:
    """1 - Jensen-Shannon distance (base 2), in [0, 1]."""
    return float(1.0 - jensenshannon(p, q, base=2))


def wasserstein_similarity(p: np.ndarray, q: np.ndarray) -> float:
    """1 - W1(p, q) / (K - 1) for distributions on the ordinal positions 0..K-1."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    k = len(p)
    if k < 2:
        return 1.0
    w1 = float(np.sum(np.abs(np.cumsum(p) - np.cumsum(q))))
    return 1.0 - w1 / (k - 1)


def normalised_entropy(p: np.ndarray) -> float:
    """Shannon entropy of a distribution over K options divided by log K, in [0, 1]: 0 = all mass
    on one option, 1 = uniform (so items with different K compare). NaN for K < 2."""
    p = np.asarray(p, float)
    if len(p) < 2:
        return float("nan")
    p = p / p.sum()
    nz = p[p > 0]
    return float(-np.sum(nz * np.log(nz)) / np.log(len(p)))


def weighted_mean(values: np.ndarray, weights=None) -> float:
    v = np.asarray(values, float)
    mask = ~np.isnan(v)
    w = mask.astype(float) if weights is None else np.asarray(weights, float) * mask
    total = w.sum()
    return float(np.sum(w * np.where(mask, v, 0.0)) / total) if total > 0 else float("nan")


# --- pluralism: S[prompted as i, scored against j] ------------------------------------------


def own_vs_other_margin(matrix: np.ndarray) -> np.ndarray:
    """Per prompted country i: S[i, i] minus the mean of S[i, j] over the other countries j."""
    s = np.asarray(matrix, float)
    n = s.shape[0]
    off = (s.sum(axis=1) - np.diag(s)) / (n - 1)
    return np.diag(s) - off


def own_rank(matrix: np.ndarray) -> np.ndarray:
    """Per survey country j: the rank (1 = best) of the prompt "as j" among all prompts scored on j.

    Ties share the average rank, so a model that ignores the persona gets the middle rank. NaN
    where "as j" has no score (no valid answer, or never asked); prompts without a score are not ranked.
    """
    s = np.asarray(matrix, float)
    diag = np.diag(s)
    better = (s > diag[None, :]).sum(axis=0)
    ties = (s == diag[None, :]).sum(axis=0) - 1
    return np.where(np.isnan(diag), np.nan, 1.0 + better + ties / 2.0)


def identified(matrix: np.ndarray) -> np.ndarray:
    """Per survey country j: 1.0 if prompting as j scores strictly best against j's survey (NaN
    where "as j" has no score)."""
    rank = own_rank(matrix)
    return np.where(np.isnan(rank), np.nan, (rank == 1.0).astype(float))


def matrix_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two symmetric country x country matrices over the upper triangle."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    iu = np.triu_indices_from(a, k=1)
    x, y = a[iu], b[iu]
    ok = ~(np.isnan(x) | np.isnan(y))
    if ok.sum() < 3 or np.std(x[ok]) == 0 or np.std(y[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


# --- baselines --------------------------------------------------------------------------------


def uniform_random_answers(first: Sequence[int], n_options: Sequence[int], n_draws: int, seed: int) -> np.ndarray:
    """``n_draws`` x questions uniform draws of option numbers (seeded)."""
    rng = np.random.default_rng(seed)
    first, n = np.asarray(first), np.asarray(n_options)
    return first[None, :] + np.floor(rng.random((n_draws, len(n))) * n[None, :])


# --- confidence intervals -------------------------------------------------------------------


def bootstrap_weights(n_questions: int, n_boot: int, seed: int) -> np.ndarray:
    """``n_boot`` x ``n_questions`` resampling counts (questions drawn with replacement)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_questions, np.full(n_questions, 1.0 / n_questions), size=n_boot).astype(float)


def percentile_ci(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    s = np.asarray(samples, float)
    s = s[~np.isnan(s)]
    if s.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(s, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)
