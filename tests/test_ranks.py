"""`agreement.average_ranks` is scipy's rankdata (average ties, NaN left out), the same numbers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import rankdata

from core.explain.agreement import average_ranks


@pytest.mark.parametrize("levels", [None, 3, 40])  # continuous values, heavy ties, some ties
def test_average_ranks_equal_scipys(levels):
    rng = np.random.default_rng(levels or 0)
    v = rng.random((300, 64))
    if levels:
        v = np.round(v * levels) / levels
    v[rng.random(v.shape) < 0.2] = np.nan
    v[0] = np.nan        # a row with nothing to rank
    v[1] = 0.5           # a row of one tied value
    v[2, :] = -0.0
    v[2, ::2] = 0.0      # -0 and 0 tie, as in scipy
    expected = rankdata(v, axis=1, nan_policy="omit")
    got = average_ranks(torch.from_numpy(v.copy()))
    assert got.dtype == torch.float64
    assert np.array_equal(got.numpy(), expected, equal_nan=True)


def test_average_ranks_by_hand():
    v = torch.tensor([[3.0, 1.0, 3.0, float("nan"), 2.0]], dtype=torch.float64)
    assert torch.equal(average_ranks(v).nan_to_num(-1.0), torch.tensor([[3.5, 1.0, 3.5, -1.0, 2.0]], dtype=torch.float64))
