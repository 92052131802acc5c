"""The expected best of n proposals (Dodge et al. 2019), checked against brute force."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from tunebook.analysis.search import expected_best


def test_it_equals_the_best_of_every_draw_with_replacement_enumerated():
    values = [0.81, 0.84, 0.79, 0.86, 0.83]
    for n, mean, sd in expected_best(values):
        draws = [max(d) for d in itertools.product(values, repeat=n)]  # all 5^n draws, equally likely
        exact = sum(draws) / len(draws)
        assert mean == pytest.approx(exact, abs=1e-12)
        assert sd == pytest.approx(math.sqrt(sum((d - exact) ** 2 for d in draws) / len(draws)), abs=1e-9)


def test_one_proposal_expects_the_mean_and_many_expect_the_best():
    rng = random.Random(3)
    values = [rng.random() for _ in range(40)]
    curve = expected_best(values)
    assert curve[0][1] == pytest.approx(sum(values) / len(values))
    assert all(b[1] >= a[1] for a, b in zip(curve, curve[1:]))  # more proposals never expect worse
    assert curve[-1][1] <= max(values) and max(values) - curve[-1][1] < 0.05
    assert len(curve) == 40 and [c[0] for c in curve] == list(range(1, 41))


def test_for_a_loss_the_best_is_the_smallest():
    curve = expected_best([0.5, 0.3, 0.4], maximize=False)
    assert curve[0][1] == pytest.approx(0.4) and curve[-1][1] < 0.4 and curve[-1][1] >= 0.3


def test_on_random_search_it_predicts_a_fresh_search_s_best_without_bias():
    """Its assumption holds for random search (independent draws): from the values of one
    search of 30, the expected best of 10 matches the mean best of fresh searches of 10
    drawn from the same distribution, within Monte Carlo error, over 400 repetitions."""
    rng = random.Random(20261201)
    draw = lambda: 0.85 + 0.02 * rng.gauss(0, 1) - 0.05 * rng.random() ** 3  # noqa: E731
    errors = []
    for _ in range(400):
        seen = [draw() for _ in range(30)]
        predicted = expected_best(seen)[9][1]
        fresh = max(draw() for _ in range(10))
        errors.append(predicted - fresh)
    mean = sum(errors) / len(errors)
    sd = math.sqrt(sum((e - mean) ** 2 for e in errors) / (len(errors) - 1))
    assert abs(mean) < 3 * sd / math.sqrt(len(errors))  # no bias beyond 3 standard errors
