"""Throughput of K stacked configurations (one vectorised model) against K sequential runs.

Both sides train through Lightning on the same in-memory batches: the stacked side is one
:class:`~infoae_pl.models.stacked.StackedModules` of K β-ELBO copies with different β and seeds,
the sequential side K ordinary runs one after the other. Throughput is training examples per
second summed over configurations, timed after ``--warmup`` steps (CUDA synchronised), best of
``--repeats`` alternating rounds (a shared machine's speed drifts). Networks:
the paper's MNIST MLP (784-1024-1024-50 tanh encoder, Bernoulli decoder, batch 100) and the
Figure 1 MLP (1-H-H-1 leaky-ReLU, Gaussian decoder, batch 500; H = 1024 in the paper profile,
128 in the CPU profile). Targets: stacked >= sequential on CPU; >= 8x at K = 16 for Figure 1 on a GPU.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import lightning as L
import torch
from common import report

from infoae_pl.data import InfoAEDataModule
from infoae_pl.models import BetaELBO
from infoae_pl.models.stacked import StackedModules
from infoae_pl.reproduce import fig1


class StepTimer(L.Callback):
    """Wall time from the start of step ``warmup`` to the end of the last step (CUDA synchronised)."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end = warmup, 0.0, 0.0

    def _now(self) -> float:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.warmup:
            self.start = self._now()

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.end = self._now()


def networks(fig1_profile: str) -> dict[str, dict[str, Any]]:
    """The two benchmarked networks: shared constructor arguments, batch size and data."""
    p = fig1.PROFILES[fig1_profile]
    return {
        "mnist_paper_mlp": {
            "shared": dict(data_dim=784, latent_dim=50, likelihood="bernoulli", hidden_dim=1024, activation="tanh"),
            "batch_size": 100, "dataset": "mnist5k",
        },
        f"fig1_mlp_h{p.hidden_dim}": {
            "shared": dict(data_dim=1, latent_dim=1, likelihood="gaussian", hidden_dim=p.hidden_dim,
                           activation=p.activation, init=p.init, std_transform=p.std_transform, min_std=p.min_std,
                           lr=p.lr),
            "batch_size": p.batch_size, "dataset": "mog1d",
        },
    }


def batches(dataset: str, batch_size: int, steps: int, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``steps`` training batches, already on ``device`` (data loading is not what is measured)."""
    toy = dataset == "mog1d"
    data = InfoAEDataModule(dataset=dataset, batch_size=batch_size, binarize="none" if toy else "static",
                            **({"steps_per_epoch": steps} if toy else {}))
    data.setup("fit")
    out: list[tuple[torch.Tensor, torch.Tensor]] = []
    while len(out) < steps:
        out.extend((x.to(device), y.to(device)) for x, y in data.train_dataloader())
    return out[:steps]


def fit_seconds(model: L.LightningModule, data: list[tuple[torch.Tensor, torch.Tensor]], warmup: int) -> float:
    """Seconds for the steps after ``warmup`` of one Lightning fit over ``data``."""
    timer = StepTimer(warmup)
    trainer = L.Trainer(max_steps=len(data), accelerator="auto", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[timer])
    trainer.fit(model, torch.utils.data.DataLoader(data, batch_size=None))
    return timer.end - timer.start


def copies(k: int) -> list[dict[str, float]]:
    """K configurations: β spread over [0.1, 4] on a log scale."""
    return [{"beta": float(0.1 * 40 ** (i / max(k - 1, 1)))} for i in range(k)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--steps", type=int, default=None, help="timed steps per run (default 10 on CPU, 100 on GPU)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2, help="alternating rounds; the best time of each side counts")
    parser.add_argument("--fig1-profile", choices=("default", "paper"), default=None,
                        help="width of the Figure 1 MLP (default: paper on a GPU, default on a CPU)")
    parser.add_argument("--networks", nargs="+", default=None, help="only these networks")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    steps = args.steps or (100 if cuda else 10)
    rows = []
    for net, spec in networks(args.fig1_profile or ("paper" if cuda else "default")).items():
        if args.networks and net not in args.networks:
            continue
        data = batches(spec["dataset"], spec["batch_size"], args.warmup + steps, device)
        examples = steps * spec["batch_size"]
        for k in args.copies:
            configs = copies(k)
            stacked_s = sequential_s = float("inf")
            for _ in range(args.repeats):
                stacked = StackedModules("infoae_pl.models.BetaELBO", spec["shared"], configs, seeds=list(range(k)))
                groups = [len(g) for g in stacked.groups]
                stacked_s = min(stacked_s, fit_seconds(stacked, data, args.warmup))
                del stacked
                seconds = 0.0
                for seed, config in enumerate(configs):
                    torch.manual_seed(seed)
                    seconds += fit_seconds(BetaELBO(**spec["shared"], **config), data, args.warmup)
                sequential_s = min(sequential_s, seconds)
            row = {
                "network": net, "K": k, "device": "cuda" if cuda else f"cpu x{torch.get_num_threads()}",
                "vmap_groups": f"{len(groups)}x{groups[0]}",
                "stacked_examples_per_s": k * examples / stacked_s,
                "sequential_examples_per_s": k * examples / sequential_s,
                "speedup": sequential_s / stacked_s,
                "stacked_s": stacked_s, "sequential_s": sequential_s,
            }
            rows.append(row)
            print(f"{net} K={k}: stacked {row['stacked_examples_per_s']:.0f} ex/s, sequential "
                  f"{row['sequential_examples_per_s']:.0f} ex/s, speedup {row['speedup']:.2f}", flush=True)
    target_rows = [r for r in rows if r["K"] == 16 and r["network"].startswith("fig1")]
    summary = {
        "timed_steps_per_run": steps, "warmup_steps": args.warmup, "repeats": args.repeats,
        "cpu_target_met (stacked >= sequential at every K)": all(r["speedup"] >= 1.0 for r in rows),
    }
    if cuda and target_rows:
        summary["gpu_target_met (fig1 K=16 speedup >= 8)"] = target_rows[0]["speedup"] >= 8.0
    report("bench_vectorised", rows, summary, args.out)


if __name__ == "__main__":
    main()
