"""MMD and the Gaussian kernel against direct double loops, and the bias of the two estimators."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch

from infoae_pl.divergences import gaussian_kernel, mmd


def _kernel_loop(a: torch.Tensor, b: torch.Tensor, bandwidth: float) -> torch.Tensor:
    return torch.tensor(
        [[math.exp(-((ai - bj) ** 2).sum().item() / bandwidth) for bj in b] for ai in a], dtype=torch.float64
    )


def _mmd_loop(x: torch.Tensor, y: torch.Tensor, bandwidth: float, unbiased: bool) -> float:
    n, m = len(x), len(y)
    k_xx, k_yy, k_xy = (_kernel_loop(a, b, bandwidth) for a, b in ((x, x), (y, y), (x, y)))
    if unbiased:
        within_x = sum(k_xx[i, j] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
        within_y = sum(k_yy[i, j] for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    else:
        within_x = sum(k_xx[i, j] for i in range(n) for j in range(n)) / n**2
        within_y = sum(k_yy[i, j] for i in range(m) for j in range(m)) / m**2
    cross = sum(k_xy[i, j] for i in range(n) for j in range(m)) / (n * m)
    return float(within_x + within_y - 2 * cross)


def test_gaussian_kernel_default_bandwidth_is_the_dimension() -> None:
    torch.manual_seed(0)
    a, b = torch.randn(6, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    torch.testing.assert_close(gaussian_kernel(a, b), _kernel_loop(a, b, bandwidth=3.0))
    torch.testing.assert_close(gaussian_kernel(a, b, bandwidth=9.0), _kernel_loop(a, b, bandwidth=9.0))
    with pytest.raises(ValueError, match="bandwidth"):
        gaussian_kernel(a, b, bandwidth=0.0)


@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize("bandwidth", [None, 0.5])
def test_mmd_matches_a_double_loop(unbiased: bool, bandwidth: float | None) -> None:
    torch.manual_seed(1)
    x, y = torch.randn(7, 3, dtype=torch.float64), 0.5 + torch.randn(5, 3, dtype=torch.float64)
    kernel = partial(gaussian_kernel, bandwidth=bandwidth)
    expected = _mmd_loop(x, y, bandwidth=bandwidth or 3.0, unbiased=unbiased)
    assert mmd(x, y, kernel=kernel, unbiased=unbiased).item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_unbiased_mmd_has_zero_mean_on_identical_distributions() -> None:
    torch.manual_seed(2)
    biased, unbiased = [], []
    for _ in range(300):
        x, y = torch.randn(20, 2, dtype=torch.float64), torch.randn(20, 2, dtype=torch.float64)
        biased.append(mmd(x, y).item())
        unbiased.append(mmd(x, y, unbiased=True).item())
    unbiased_t, biased_t = torch.tensor(unbiased), torch.tensor(biased)
    assert abs(unbiased_t.mean()) < 3 * unbiased_t.std() / len(unbiased) ** 0.5
    assert (biased_t > 0).all() and biased_t.mean() > 10 * unbiased_t.std() / len(unbiased) ** 0.5


def test_mmd_separates_shifted_samples_and_has_finite_gradients() -> None:
    torch.manual_seed(3)
    x = torch.randn(200, 4, requires_grad=True)
    same, shifted = (
        mmd(x, torch.randn(200, 4), unbiased=True),
        mmd(x, torch.randn(200, 4) + 1.0, unbiased=True),
    )
    assert shifted > 20 * same.abs()
    mmd(x, x.detach().clone()).backward()  # zero distances on the diagonal must not give NaN
    assert torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="at least 2"):
        mmd(x[:1], x[:3], unbiased=True)
