import math

import numpy as np
import pytest

from culturespa import metrics


def test_paper_score_hand_computed():
    # two 4-option items and one 10-option item; answers off by 1, 0 and 3
    a = np.array([2, 1, 7])
    g = np.array([1, 1, 4])
    q = np.array([3, 3, 9])  # max distances
    expected = 100 * (1 - math.sqrt(1 + 0 + 9) / math.sqrt(9 + 9 + 81))
    assert metrics.paper_score(a, g, q) == pytest.approx(expected)


def test_paper_score_skips_invalid_and_missing_majority():
    a = np.array([2, np.nan, 1])
    g = np.array([2, 1, np.nan])
    assert metrics.paper_score(a, g, np.array([3, 3, 3])) == pytest.approx(100.0)
    assert math.isnan(metrics.paper_score(np.array([np.nan]), np.array([1.0]), np.array([3])))


def test_paper_score_extremes_and_weights():
    g = np.array([1.0, 1.0])
    q = np.array([3.0, 3.0])
    assert metrics.paper_score(np.array([4.0, 4.0]), g, q) == pytest.approx(0.0)
    # weights are resampling counts: doubling the first item equals repeating it
    w = np.array([2.0, 1.0])
    rep = metrics.paper_score(np.array([4.0, 4.0, 1.0]), np.array([1.0, 1.0, 1.0]), np.array([3.0, 3.0, 3.0]))
    assert metrics.paper_score(np.array([4.0, 1.0]), g, q, weights=w) == pytest.approx(rep)


def test_js_similarity_hand_computed():
    p = np.array([1.0, 0.0])
    q = np.array([0.5, 0.5])
    js = 0.5 * (1 * math.log2(1 / 0.75)) + 0.5 * (0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25))
    assert metrics.js_similarity(p, q) == pytest.approx(1 - math.sqrt(js))
    assert metrics.js_similarity(p, p) == pytest.approx(1.0)
    assert metrics.js_similarity(np.array([1.0, 0]), np.array([0, 1.0])) == pytest.approx(0.0)


def test_wasserstein_similarity_hand_computed():
    # mass moved from position 0 to position 3 of a 4-point scale: W1 = 3 = K-1
    assert metrics.wasserstein_similarity(np.array([1, 0, 0, 0.0]), np.array([0, 0, 0, 1.0])) == pytest.approx(0.0)
    # half the mass moves one step: W1 = 0.5, similarity 1 - 0.5/3
    sim = metrics.wasserstein_similarity(np.array([1, 0, 0, 0.0]), np.array([0.5, 0.5, 0, 0]))
    assert sim == pytest.approx(1 - 0.5 / 3)


def test_pluralism_metrics_hand_computed():
    s = np.array(
        [
            [80.0, 60.0, 70.0],  # prompted as A
            [75.0, 90.0, 60.0],  # prompted as B
            [85.0, 50.0, 65.0],  # prompted as C
        ]
    )
    np.testing.assert_allclose(metrics.own_vs_other_margin(s), [80 - 65, 90 - 67.5, 65 - 67.5])
    # survey A: C (85) beats own (80) -> rank 2; survey B: own best -> 1; survey C: A 70 > own 65 > B 60 -> 2
    np.testing.assert_allclose(metrics.own_rank(s), [2, 1, 2])
    np.testing.assert_allclose(metrics.identified(s), [0, 1, 0])


def test_own_rank_ties_share_the_middle():
    s = np.full((3, 3), 50.0)  # a model that ignores the persona
    np.testing.assert_allclose(metrics.own_rank(s), [2, 2, 2])
    assert metrics.identified(s).sum() == 0


def test_uniform_random_answers_are_seeded_and_in_range():
    first, n = np.array([1, 0, 1]), np.array([4, 11, 2])
    a = metrics.uniform_random_answers(first, n, 500, seed=3)
    b = metrics.uniform_random_answers(first, n, 500, seed=3)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (500, 3)
    assert (a >= first).all() and (a < first + n).all()
    assert set(np.unique(a[:, 1])) == set(range(0, 11))


def test_bootstrap_weights_and_ci():
    w = metrics.bootstrap_weights(10, 200, seed=1)
    assert w.shape == (200, 10)
    assert (w.sum(axis=1) == 10).all()
    np.testing.assert_array_equal(w, metrics.bootstrap_weights(10, 200, seed=1))
    lo, hi = metrics.percentile_ci(np.arange(1001.0), 0.95)
    assert lo == pytest.approx(25.0) and hi == pytest.approx(975.0)


def test_matrix_correlation_upper_triangle():
    a = np.array([[100, 1, 2], [1, 100, 3], [2, 3, 100.0]])
    b = np.array([[0, 2, 4], [2, 0, 6], [4, 6, 0.0]])  # diagonal ignored
    assert metrics.matrix_correlation(a, b) == pytest.approx(1.0)
    assert np.isnan(metrics.matrix_correlation(np.ones((3, 3)), b))


def test_normalised_entropy():
    from culturespa.metrics import normalised_entropy

    assert normalised_entropy([1, 0, 0, 0]) == 0.0
    assert normalised_entropy([0.25] * 4) == pytest.approx(1.0)
    assert normalised_entropy([0.5, 0.5, 0, 0]) == pytest.approx(0.5)  # log 2 / log 4
    assert normalised_entropy([2, 2]) == pytest.approx(1.0)  # counts are normalised
    assert math.isnan(normalised_entropy([1.0]))
