"""NLL estimators' throughput (achieved GFLOP/s) against dense matmul GFLOP/s on this machine: importance
sampling (IS) and annealed importance sampling (AIS).

FLOPs counted: the decoder's matrix multiplications (2·in·out per linear layer and example). IS: one
decoder forward per (x, z_k) pair plus the encoder once per x. AIS: per (x, chain) and intermediate
distribution, ``leapfrog_steps`` gradients of log p(x, z) in z, each a decoder forward and its
backward to z (the same multiplications again, the weights' gradients are not formed): 2·2·in·out.
Each round measures, back to back, IS as it was before the fused Bernoulli log-density (torch's
``log_prob``), IS now, AIS and dense matmul, so that load drift on a shared machine hits all alike;
the medians and the spread of the per-round ratios count. Targets: IS ≥ 0.8 × matmul, AIS ≥ 0.5.
"""

from __future__ import annotations

import argparse
import statistics
from unittest import mock

import torch
from common import report, timed

from infoae_pl.evaluation import estimators
from infoae_pl.evaluation.ais import annealed_importance_sampling
from infoae_pl.evaluation.estimators import DEFAULT_CHUNK_SIZE, importance_sampled_log_likelihood
from infoae_pl.models import BetaELBO


def linear_flops(module: torch.nn.Module) -> int:
    """2·in·out summed over the linear layers of ``module``: FLOPs for one example."""
    return sum(2 * m.in_features * m.out_features for m in module.modules() if isinstance(m, torch.nn.Linear))


def matmul_gflops(n: int, device: torch.device) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    seconds = timed(lambda: a @ b, repeats=5)
    return 2 * n**3 / seconds / 1e9


def unfused_importance_sampling(model: torch.nn.Module, x: torch.Tensor, samples: int, chunk_size: int) -> torch.Tensor:
    """IS as before the fused log-density: the same loop with torch's ``Distribution.log_prob``."""
    with mock.patch.object(estimators, "log_likelihood", lambda decoded, data: decoded.log_prob(data)):
        return importance_sampled_log_likelihood(model, x, samples, chunk_size)


def _summary(name: str, rates: list[float]) -> dict[str, object]:
    return {"what": name, "median_gflops_per_s": statistics.median(rates), "min": min(rates), "max": max(rates)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--samples", type=int, default=1000, help="IS: K")
    parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE)
    parser.add_argument("--ais-steps", type=int, default=20, help="AIS: intermediate distributions")
    parser.add_argument("--ais-chains", type=int, default=16)
    parser.add_argument("--ais-leapfrog-steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved measurement rounds; medians count")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = BetaELBO().to(device).eval()
    x = torch.bernoulli(torch.full((args.examples, 784), 0.3, device=device))
    decoder_flops = linear_flops(model.decoder)
    is_flops = args.examples * (args.samples * decoder_flops + linear_flops(model.encoder))
    transitions = args.ais_steps - 1
    ais_flops = args.examples * args.ais_chains * (1 + transitions * args.ais_leapfrog_steps) * 2 * decoder_flops
    ais_settings = dict(num_steps=args.ais_steps, num_chains=args.ais_chains, leapfrog_steps=args.ais_leapfrog_steps)

    def ais() -> None:
        annealed_importance_sampling(model, x, **ais_settings)

    importance_sampled_log_likelihood(model, x, min(args.samples, 50), args.chunk_size)  # warm-up
    annealed_importance_sampling(model, x, **{**ais_settings, "num_steps": 2})
    rates: dict[str, list[float]] = {"before": [], "is": [], "ais": [], "dense": []}
    for _ in range(args.rounds):
        seconds = timed(lambda: unfused_importance_sampling(model, x, args.samples, args.chunk_size), 1)
        rates["before"].append(is_flops / seconds / 1e9)
        seconds = timed(lambda: importance_sampled_log_likelihood(model, x, args.samples, args.chunk_size), 1)
        rates["is"].append(is_flops / seconds / 1e9)
        ais_seconds = timed(ais, 1)
        rates["ais"].append(ais_flops / ais_seconds / 1e9)
        rates["ais_steps_per_s"] = [*rates.get("ais_steps_per_s", []), transitions / ais_seconds]
        rates["dense"].append(max(matmul_gflops(n, device) for n in (1024, 2048)))
    ratios = {key: [r / d for r, d in zip(rates[key], rates["dense"])] for key in ("before", "is", "ais")}
    rows = [
        _summary("dense matmul (best of 1024², 2048²)", rates["dense"]),
        _summary(f"IS before (torch log_prob), {args.examples} x × K={args.samples}, chunk {args.chunk_size}",
                 rates["before"]),
        _summary(f"IS now (fused log-density), {args.examples} x × K={args.samples}, chunk {args.chunk_size}",
                 rates["is"]),
        _summary(f"AIS, {args.examples} x × {args.ais_chains} chains, {args.ais_steps} distributions, "
                 f"{args.ais_leapfrog_steps} leapfrog steps", rates["ais"]),
    ]
    summary: dict[str, object] = {"rounds": args.rounds, "device": str(device),
                                  "per_round_gflops_per_s": {k: [round(v, 1) for v in values] for k, values in rates.items()
                                                             if k != "ais_steps_per_s"}}
    for key, target in (("before", None), ("is", 0.8), ("ais", 0.5)):
        name = {"before": "is_before", "is": "is", "ais": "ais"}[key]
        summary[f"ratio_{name}_over_matmul_median"] = statistics.median(ratios[key])
        summary[f"ratio_{name}_min"], summary[f"ratio_{name}_max"] = min(ratios[key]), max(ratios[key])
        if target is not None:
            summary[f"{name}_target"] = f">= {target}"
            summary[f"{name}_meets_target"] = statistics.median(ratios[key]) >= target
    summary["is_speedup_over_before_median"] = statistics.median(
        [now / before for now, before in zip(rates["is"], rates["before"])])
    summary["is_examples_per_s"] = args.examples * statistics.median(rates["is"]) * 1e9 / is_flops
    summary["ais_intermediate_distributions_per_s_median"] = statistics.median(rates["ais_steps_per_s"])
    summary["ais_intermediate_distributions_per_s_min_max"] = [min(rates["ais_steps_per_s"]), max(rates["ais_steps_per_s"])]
    summary["ais_chain_transitions_per_s_median"] = (
        statistics.median(rates["ais_steps_per_s"]) * args.examples * args.ais_chains)
    report("bench_nll", rows, summary, args.out)


if __name__ == "__main__":
    main()
