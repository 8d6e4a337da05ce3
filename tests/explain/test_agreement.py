"""Agreement of two maps: numbers a reader can check by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from explain.evaluate.agreement import agreement


def test_identical_opposite_and_disjoint_maps():
    rng = np.random.default_rng(0)
    a = rng.random((64, 64)).astype(np.float32)
    same = agreement(a, a)
    assert same.spearman == pytest.approx(1.0) and same.top_overlap == pytest.approx(1.0)
    opposite = agreement(a, 1 - a)
    assert opposite.spearman == pytest.approx(-1.0) and opposite.top_overlap == 0.0
    left = np.zeros((64, 64), np.float32)
    left[:, :16] = 1 + np.arange(16)  # the top 20% of cells (819): all in the left quarter
    right = left[:, ::-1].copy()
    assert agreement(left, right).top_overlap == 0.0


def test_the_correlation_is_spearmans_on_the_grid():
    rng = np.random.default_rng(1)
    a, b = rng.random((64, 64)), rng.random((64, 64))
    b = 0.5 * a + b
    assert agreement(a, b).spearman == pytest.approx(spearmanr(a.ravel(), b.ravel()).statistic,
                                                     abs=1e-4)  # float32 grid


def test_maps_of_different_resolutions_are_compared_on_one_grid():
    coarse = np.kron(np.eye(2), np.ones((32, 32)))  # 64 x 64
    fine = np.kron(np.eye(2), np.ones((128, 128)))  # 256 x 256, the same picture
    result = agreement(coarse, fine)
    assert result.spearman == pytest.approx(1.0) and result.top_overlap == pytest.approx(1.0)
