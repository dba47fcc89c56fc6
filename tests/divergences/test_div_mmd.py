"""MMD and its kernels against direct double loops, the bias of the two estimators, and vmap."""

from __future__ import annotations

import copy
import math
import pickle
from collections.abc import Callable
from functools import partial

import numpy as np
import pytest
import torch
from torch.func import vmap

from infoae_pl.divergences import (
    KERNELS,
    gaussian_kernel,
    inverse_multiquadric_kernel,
    make_kernel,
    median_heuristic_bandwidth,
    mmd,
)

PairKernel = Callable[[torch.Tensor, torch.Tensor], float]
IMQ_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def _sq(ai: torch.Tensor, bj: torch.Tensor) -> float:
    return sum((float(p) - float(q)) ** 2 for p, q in zip(ai, bj))


def _gaussian_pair(bandwidth: float) -> PairKernel:
    return lambda ai, bj: math.exp(-_sq(ai, bj) / bandwidth)


def _imq_pair(base: float, scales: tuple[float, ...] = IMQ_SCALES) -> PairKernel:
    return lambda ai, bj: sum(s * base / (s * base + _sq(ai, bj)) for s in scales)


def _numpy_median(a: torch.Tensor, b: torch.Tensor) -> float:
    pooled = torch.cat([a, b]).numpy()
    n = len(pooled)
    return float(
        np.median([((pooled[i] - pooled[j]) ** 2).sum() for i in range(n) for j in range(n) if i != j])
    )


def _kernel_loop(a: torch.Tensor, b: torch.Tensor, pair: PairKernel) -> torch.Tensor:
    return torch.tensor([[pair(ai, bj) for bj in b] for ai in a], dtype=torch.float64)


def _mmd_loop(x: torch.Tensor, y: torch.Tensor, pair: PairKernel, unbiased: bool) -> float:
    n, m = len(x), len(y)
    k_xx, k_yy, k_xy = (_kernel_loop(a, b, pair) for a, b in ((x, x), (y, y), (x, y)))
    if unbiased:
        within_x = sum(k_xx[i, j] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
        within_y = sum(k_yy[i, j] for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    else:
        within_x = sum(k_xx[i, j] for i in range(n) for j in range(n)) / n**2
        within_y = sum(k_yy[i, j] for i in range(m) for j in range(m)) / m**2
    cross = sum(k_xy[i, j] for i in range(n) for j in range(m)) / (n * m)
    return float(within_x + within_y - 2 * cross)


# (make_kernel arguments, the loop's pair kernel for inputs of dimension 3 given the pooled sample)
KERNEL_CASES: list[
    tuple[tuple[str, float | str | None], Callable[[torch.Tensor, torch.Tensor], PairKernel]]
] = [
    (("gaussian", None), lambda x, y: _gaussian_pair(3.0)),
    (("gaussian", 0.5), lambda x, y: _gaussian_pair(0.5)),
    (("gaussian", "dim_squared"), lambda x, y: _gaussian_pair(9.0)),
    (("gaussian", "median"), lambda x, y: _gaussian_pair(_numpy_median(x, y))),
    (("imq", None), lambda x, y: _imq_pair(6.0)),
    (("imq", 1.5), lambda x, y: _imq_pair(1.5)),
]
CASE_IDS = [f"{name}-{bandwidth}" for (name, bandwidth), _ in KERNEL_CASES]


def test_gaussian_kernel_default_bandwidth_is_the_dimension() -> None:
    torch.manual_seed(0)
    a, b = torch.randn(6, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    for bandwidth, value in ((None, 3.0), ("dim", 3.0), (9.0, 9.0), ("dim_squared", 9.0)):
        expected = _kernel_loop(a, b, _gaussian_pair(value))
        torch.testing.assert_close(gaussian_kernel(a, b, bandwidth), expected, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="bandwidth"):
        gaussian_kernel(a, b, bandwidth=0.0)
    with pytest.raises(ValueError, match=r"bandwidth='dims'.*dim, dim_squared, median"):
        gaussian_kernel(a, b, bandwidth="dims")


def test_imq_kernel_matches_a_double_loop() -> None:
    torch.manual_seed(0)
    a, b = torch.randn(6, 3, dtype=torch.float64), 2.0 * torch.randn(4, 3, dtype=torch.float64)
    for kwargs, pair in (
        ({}, _imq_pair(6.0)),  # base 2·d
        ({"base": 0.7}, _imq_pair(0.7)),
        ({"scales": (1.0,), "base": 2.0}, _imq_pair(2.0, (1.0,))),
    ):
        expected = _kernel_loop(a, b, pair)
        torch.testing.assert_close(
            inverse_multiquadric_kernel(a, b, **kwargs), expected, rtol=1e-10, atol=1e-12
        )
    with pytest.raises(ValueError, match="positive"):
        inverse_multiquadric_kernel(a, b, base=-1.0)


def test_median_heuristic_is_the_numpy_median_of_off_diagonal_pooled_distances() -> None:
    torch.manual_seed(0)
    for n, m in ((6, 4), (5, 4), (1, 1)):  # even and odd numbers of distinct pairs
        a = torch.randn(n, 3, dtype=torch.float64, requires_grad=True)
        b = torch.randn(m, 3, dtype=torch.float64) + 1.0
        median = median_heuristic_bandwidth(a, b)
        assert median.shape == () and not median.requires_grad
        assert median.item() == pytest.approx(_numpy_median(a.detach(), b), rel=1e-10)
        expected = _kernel_loop(a.detach(), b, _gaussian_pair(median.item()))
        torch.testing.assert_close(gaussian_kernel(a, b, bandwidth=median), expected, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(
            gaussian_kernel(a, b, bandwidth="median"), expected, rtol=1e-10, atol=1e-12
        )
    x = torch.randn(7, 2, dtype=torch.float64)
    pairs = [((x[i] - x[j]) ** 2).sum().item() for i in range(7) for j in range(7) if i != j]
    assert median_heuristic_bandwidth(x, x).item() == pytest.approx(float(np.median(pairs)), rel=1e-10)
    single = x[:1]
    with pytest.raises(ValueError, match="at least 2"):
        median_heuristic_bandwidth(single, single)


@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize(("spec", "pair_for"), KERNEL_CASES, ids=CASE_IDS)
def test_mmd_matches_a_double_loop(
    spec: tuple[str, float | str | None], pair_for: Callable[..., PairKernel], unbiased: bool
) -> None:
    torch.manual_seed(1)
    x, y = torch.randn(7, 3, dtype=torch.float64), 0.5 + torch.randn(5, 3, dtype=torch.float64)
    expected = _mmd_loop(x, y, pair_for(x, y), unbiased=unbiased)
    value = mmd(x, y, kernel=make_kernel(*spec), unbiased=unbiased).item()
    assert value == pytest.approx(expected, rel=1e-10, abs=1e-12)
    if not unbiased:
        assert value >= 0


def test_mmd_with_a_bare_gaussian_kernel_partial_matches_the_loop() -> None:
    torch.manual_seed(1)
    x, y = torch.randn(7, 3, dtype=torch.float64), 0.5 + torch.randn(5, 3, dtype=torch.float64)
    kernel = partial(gaussian_kernel, bandwidth=0.5)
    expected = _mmd_loop(x, y, _gaussian_pair(0.5), unbiased=True)
    assert mmd(x, y, kernel=kernel, unbiased=True).item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("name", KERNELS)
def test_unbiased_mmd_has_zero_mean_on_identical_distributions(name: str) -> None:
    torch.manual_seed(2)
    kernel = make_kernel(name)
    biased, unbiased = [], []
    for _ in range(400):
        x, y = torch.randn(20, 2, dtype=torch.float64), torch.randn(20, 2, dtype=torch.float64)
        biased.append(mmd(x, y, kernel).item())
        unbiased.append(mmd(x, y, kernel, unbiased=True).item())
    unbiased_t, biased_t = torch.tensor(unbiased), torch.tensor(biased)
    assert abs(unbiased_t.mean()) < 3 * unbiased_t.std() / len(unbiased) ** 0.5
    assert (biased_t > 0).all() and biased_t.mean() > 10 * unbiased_t.std() / len(unbiased) ** 0.5


@pytest.mark.parametrize(("spec", "pair_for"), KERNEL_CASES, ids=CASE_IDS)
def test_mmd_separates_shifted_samples_and_has_finite_gradients(
    spec: tuple[str, float | str | None], pair_for: Callable[..., PairKernel]
) -> None:
    torch.manual_seed(3)
    kernel = make_kernel(*spec)
    x = torch.randn(200, 4, requires_grad=True)
    same, shifted = (
        mmd(x, torch.randn(200, 4), kernel, unbiased=True),
        mmd(x, torch.randn(200, 4) + 1.0, kernel, unbiased=True),
    )
    assert shifted > 10 * same.abs()
    mmd(x, x.detach().clone(), kernel).backward()  # zero distances on the diagonal must not give NaN
    assert torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="at least 2"):
        mmd(x[:1], x[:3], kernel, unbiased=True)


@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize(("spec", "pair_for"), KERNEL_CASES, ids=CASE_IDS)
def test_vmapped_mmd_equals_the_loop_over_the_leading_dimension(
    spec: tuple[str, float | str | None], pair_for: Callable[..., PairKernel], unbiased: bool
) -> None:
    torch.manual_seed(4)
    xs, ys = torch.randn(3, 6, 3, dtype=torch.float64), 1.0 + torch.randn(3, 5, 3, dtype=torch.float64)
    values = vmap(partial(mmd, kernel=make_kernel(*spec), unbiased=unbiased))(xs, ys)
    expected = torch.tensor(
        [_mmd_loop(x, y, pair_for(x, y), unbiased) for x, y in zip(xs, ys)], dtype=torch.float64
    )
    torch.testing.assert_close(values, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("spec", "pair_for"), KERNEL_CASES, ids=CASE_IDS)
def test_made_kernels_survive_pickling_and_deep_copies(
    spec: tuple[str, float | str | None], pair_for: Callable[..., PairKernel]
) -> None:
    torch.manual_seed(5)
    a, b = torch.randn(4, 3, dtype=torch.float64), torch.randn(3, 3, dtype=torch.float64)
    kernel = make_kernel(*spec)
    for clone in (pickle.loads(pickle.dumps(kernel)), copy.deepcopy(kernel)):
        torch.testing.assert_close(clone(a, b), kernel(a, b), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("name", "bandwidth", "message"),
    [
        ("rbf", None, "kernel='rbf'.*gaussian, imq"),
        ("gaussian", "dims", "bandwidth='dims'.*None, a positive number, 'dim', 'dim_squared', 'median'"),
        ("gaussian", 0.0, "bandwidth=0.0.*None, a positive number, 'dim'"),
        ("gaussian", -2, "bandwidth=-2.*None, a positive number"),
        ("gaussian", float("inf"), "bandwidth=inf.*a positive number"),
        ("gaussian", True, "bandwidth=True.*a positive number"),
        ("imq", "median", "bandwidth='median'.*kernel='imq'.*None, a positive number$"),
        ("imq", -1.0, "bandwidth=-1.0.*kernel='imq'.*None, a positive number$"),
    ],
)
def test_make_kernel_errors_name_the_option_and_the_allowed_values(
    name: str, bandwidth: float | str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make_kernel(name, bandwidth)
