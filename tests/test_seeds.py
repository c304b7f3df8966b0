"""Which seed an answer is drawn with: shared vs independent draws, evaluation runs."""

import numpy as np
import pytest

from culturespa.seeds import disagreement, draw_choice, persona_seed, run_seed


def test_shared_draws_reuse_the_seed_and_independent_draws_separate_personas():
    assert persona_seed(42, "shared", "culture_aware", "USA") == persona_seed(42, "shared", "culture_unaware", "none") == 42
    independent = {persona_seed(42, "independent", m, p) for m in ("culture_unaware", "culture_aware") for p in ("none", "USA", "CHN")}
    assert len(independent) == 6 and 42 not in independent
    with pytest.raises(ValueError, match="answering.draws"):
        persona_seed(42, "coupled", "culture_aware", "USA")


def test_evaluation_runs_are_seeded_as_the_authors_do():
    assert [run_seed(42, r) for r in range(3)] == [42, 41, 40]


def test_disagreement_is_the_rate_of_independent_draws():
    p, q = [0.6, 0.3, 0.1], [0.2, 0.5, 0.3]
    seeds_p = [persona_seed(1, "independent", "a", str(i)) for i in range(3000)]
    seeds_q = [persona_seed(1, "independent", "b", str(i)) for i in range(3000)]
    rate = np.mean([draw_choice([1, 2, 3], p, a, "Q1", 0.6) != draw_choice([1, 2, 3], q, b, "Q1", 0.6)
                    for a, b in zip(seeds_p, seeds_q)])
    assert rate == pytest.approx(disagreement(p, q, 0.6), abs=0.03)
