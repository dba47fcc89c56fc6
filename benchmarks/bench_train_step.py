"""Training-step throughput of the paper's MNIST MLP β-ELBO: Lightning against a plain PyTorch loop.

Both loops train the same model (784-1024-1024-50 tanh encoder, 50-1024-1024-784 Bernoulli decoder,
Adam) on the same in-memory batches of the embedded MNIST sample; steps after ``--warmup`` are timed.
Target: Lightning / plain time ratio <= 1.05 (best times over alternating repeats; the paired
ratios' median and range are reported beside it, since a shared VM's speed drifts).
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning as L
import torch
from common import report

from infoae_pl.data import InfoAEDataModule
from infoae_pl.models import BetaELBO


class StepTimer(L.Callback):
    """Wall time from the start of step ``warmup`` to the end of the last step."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end = warmup, 0.0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.end = time.perf_counter()


def batches(steps: int, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    data = InfoAEDataModule(dataset="mnist5k", batch_size=batch_size, binarize="static")
    data.setup("fit")
    loader = data.train_dataloader()
    out: list[tuple[torch.Tensor, torch.Tensor]] = []
    while len(out) < steps:
        out.extend(loader)
    return out[:steps]


def plain_loop(data: list, warmup: int) -> float:
    torch.manual_seed(0)
    model = BetaELBO()
    optimizer = model.configure_optimizers()  # the same (fused) Adam that Lightning gets
    for i, (x, _) in enumerate(data):
        if i == warmup:
            start = time.perf_counter()
        loss = model.loss_terms(x)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def lightning_loop(data: list, warmup: int) -> float:
    torch.manual_seed(0)
    model = BetaELBO()
    timer = StepTimer(warmup)
    trainer = L.Trainer(max_steps=len(data), logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[timer], accelerator="auto", devices=1)
    trainer.fit(model, torch.utils.data.DataLoader(data, batch_size=None))
    return timer.end - timer.start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=520)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5, help="alternating plain/Lightning pairs; the best time of each loop counts")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    data = batches(args.steps, args.batch_size)
    timed_steps = args.steps - args.warmup
    plain, light = [], []
    for _ in range(args.repeats):  # alternate so that drift in machine load hits both loops alike
        plain.append(plain_loop(data, args.warmup))
        light.append(lightning_loop(data, args.warmup))
    rows = [
        {"loop": "plain PyTorch", "steps_per_s": timed_steps / min(plain), "ms_per_step": 1e3 * min(plain) / timed_steps},
        {"loop": "Lightning", "steps_per_s": timed_steps / min(light), "ms_per_step": 1e3 * min(light) / timed_steps},
    ]
    ratios = [lt / pl for lt, pl in zip(light, plain)]
    ratio = min(light) / min(plain)  # best times: the least noisy estimate of each loop's own cost
    report("bench_train_step", rows, {"time_ratio_lightning_over_plain": ratio,
                                      "paired_ratio_median": statistics.median(ratios),
                                      "paired_ratio_min": min(ratios), "paired_ratio_max": max(ratios),
                                      "overhead_ms_per_step": 1e3 * (min(light) - min(plain)) / timed_steps,
                                      "target": "<= 1.05", "meets_target": ratio <= 1.05,
                                      "timed_steps": timed_steps, "repeats": args.repeats}, args.out)

if __name__ == "__main__":
    main()
