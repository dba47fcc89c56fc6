"""Importance-sampled NLL throughput (achieved GFLOP/s) against dense matmul GFLOP/s on this machine.

FLOPs counted: the decoder's matrix multiplications for every (x, z_k) pair plus the encoder once
per x (2·in·out per linear layer and example). Target: NLL GFLOP/s >= 0.6 × matmul GFLOP/s, as the
median over interleaved rounds (a shared VM's speed drifts by ±20% between seconds).
"""

from __future__ import annotations

import argparse
import statistics

import torch
from common import report, timed

from infoae_pl.evaluation.estimators import DEFAULT_CHUNK_SIZE, importance_sampled_log_likelihood
from infoae_pl.models import BetaELBO


def linear_flops(module: torch.nn.Module) -> int:
    """2·in·out summed over the linear layers of ``module``: FLOPs for one example."""
    return sum(2 * m.in_features * m.out_features for m in module.modules() if isinstance(m, torch.nn.Linear))


def matmul_gflops(n: int, device: torch.device) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    seconds = timed(lambda: a @ b, repeats=5)
    return 2 * n**3 / seconds / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE)
    parser.add_argument("--rounds", type=int, default=5, help="NLL/matmul measurement pairs; the median ratio counts")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = BetaELBO().to(device).eval()
    x = torch.bernoulli(torch.full((args.examples, 784), 0.3, device=device))
    flops = args.examples * (args.samples * linear_flops(model.decoder) + linear_flops(model.encoder))
    importance_sampled_log_likelihood(model, x, min(args.samples, 50), args.chunk_size)  # warm-up
    nll_rates, dense_rates = [], []
    for _ in range(args.rounds):  # interleaved, so that load drift on a shared machine hits both alike
        seconds = timed(lambda: importance_sampled_log_likelihood(model, x, args.samples, args.chunk_size), 1)
        nll_rates.append(flops / seconds / 1e9)
        dense_rates.append(max(matmul_gflops(n, device) for n in (1024, 2048)))
    ratios = [n / d for n, d in zip(nll_rates, dense_rates)]
    rows = [
        {"what": "dense matmul (best of 1024², 2048²)", "median_gflops_per_s": statistics.median(dense_rates),
         "min": min(dense_rates), "max": max(dense_rates)},
        {"what": f"IS-NLL, {args.examples} x × K={args.samples}, chunk {args.chunk_size}",
         "median_gflops_per_s": statistics.median(nll_rates), "min": min(nll_rates), "max": max(nll_rates)},
    ]
    ratio = statistics.median(ratios)
    report("bench_nll", rows, {"ratio_nll_over_matmul_median": ratio, "ratio_min": min(ratios),
                               "ratio_max": max(ratios), "rounds": args.rounds, "target": ">= 0.6",
                               "meets_target": ratio >= 0.6,
                               "examples_per_s": args.examples * statistics.median(nll_rates) * 1e9 / flops,
                               "device": str(device)}, args.out)


if __name__ == "__main__":
    main()
