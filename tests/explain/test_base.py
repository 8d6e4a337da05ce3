"""Shared arithmetic of explain/base.py, checked with numbers."""

import numpy as np
import torch

from explain.core.results import to_heatmap


def test_channels_reduce_by_the_largest_magnitude_not_the_largest_value():
    """Saliency is max_c |d y / d x_c|: a strong negative gradient is strong evidence."""
    raw = torch.tensor([[[-8.0, 0.5], [0.0, 1.0]],
                        [[1.0, -2.0], [0.0, 0.5]],
                        [[2.0, 1.0], [-4.0, 0.0]]])
    heat = to_heatmap(raw, (2, 2))
    np.testing.assert_allclose(heat, [[1.0, 0.25], [0.5, 0.125]])  # |.| max over channels / 8
    # a plain maximum would give [[2, 1], [0, 1]] / 2: the -8 and -4 would vanish


def test_a_two_d_map_keeps_its_positive_evidence_and_resizes_bilinearly():
    raw = torch.tensor([[-3.0, 1.0], [2.0, 4.0]])
    np.testing.assert_allclose(to_heatmap(raw, (2, 2)), [[0.0, 0.25], [0.5, 1.0]])
    big = to_heatmap(raw, (4, 4))
    assert big.shape == (4, 4) and big.max() == 1.0 and big.min() == 0.0
    assert not to_heatmap(torch.zeros(3, 2, 2), (5, 5)).any()  # all zero stays all zero
