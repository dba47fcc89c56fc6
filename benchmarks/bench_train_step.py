"""Training-step throughput through Lightning against a plain PyTorch loop over the same networks.

``--model mlp_vae`` (default): the paper's MNIST MLP β-ELBO (784-1024-1024-50 tanh encoder,
50-1024-1024-784 Bernoulli decoder, Adam; batch 100). ``--model conv_infogan``: the shipped
convolutional InfoGAN (``configs/infogan_conv_mnist5k.yaml``'s networks; batch 64), one discriminator
step then one generator step, each loop freezing the other side's parameters during a step as
Lightning's ``toggle_optimizer`` does. Both loops train on the same in-memory batches of the embedded
MNIST sample; steps after ``--warmup`` are timed. ``--precision bf16-mixed`` (the shipped conv InfoGAN's,
where the CPU has bf16) runs both under bf16 autocast: the plain loop's step inside ``torch.autocast``,
Lightning's through its precision plugin; on a CPU without bf16 both run in float32, said in one line.
Lightning's plugin opens autocast with ``cache_enabled=False`` (every pass casts the weights again, and
each use's gradient reaches the float32 weight on its own); the plain loop keeps torch's default, which
caches the casts, unless ``--plain-cast-cache off`` makes it do the same arithmetic as Lightning.
Target: Lightning / plain time ratio <= 1.05 (best times over alternating repeats; the paired ratios'
median and range are reported beside it, since a shared VM's speed drifts).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import lightning as L
import torch
from common import report

from infoae_pl.data import InfoAEDataModule
from infoae_pl.models import BetaELBO, InfoGAN
from infoae_pl.nets import ConvCritic, ConvDecoder, RandomAffine
from infoae_pl.precision import float32_fallback


def conv_infogan() -> InfoGAN:
    """The shipped conv InfoGAN's model (configs/infogan_conv_mnist5k.yaml)."""
    return InfoGAN(noise_dim=62, num_categories=10, num_continuous=2, mi_weight=0.5, q_trains_trunk=True,
                   q_optimizer="critic", code_prior="uniform", continuous_std=3.16, code_augmentation=RandomAffine(),
                   likelihood="bernoulli", lr=1e-3,
                   betas=(0.5, 0.999), critic_lr=2e-4, critic_betas=(0.5, 0.999),
                   decoder=ConvDecoder(in_dim=74, likelihood="bernoulli"), x_critic=ConvCritic())


MODELS = {"mlp_vae": (BetaELBO, 100, "static"), "conv_infogan": (conv_infogan, 64, "none")}


class StepTimer(L.Callback):
    """Wall time from the start of step ``warmup`` to the end of the last step."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end = warmup, 0.0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.end = time.perf_counter()


def batches(steps: int, batch_size: int, binarize: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    data = InfoAEDataModule(dataset="mnist5k", batch_size=batch_size, binarize=binarize)
    data.setup("fit")
    loader = data.train_dataloader()
    out: list[tuple[torch.Tensor, torch.Tensor]] = []
    while len(out) < steps:
        out.extend(loader)
    return out[:steps]


def _set_trainable(parameters: list[torch.nn.Parameter], trainable: bool) -> None:
    for p in parameters:
        p.requires_grad_(trainable)


def plain_loop(build, data: list, warmup: int, precision: str = "32-true", cast_cache: bool = True) -> float:
    """One autocast region per step, as Lightning's precision plugin opens: a region kept across steps
    would keep serving the bf16 copies of weights cast before the optimiser updated them."""
    torch.manual_seed(0)
    model = build()
    step_context = functools.partial(torch.autocast, "cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed",
                                     cache_enabled=cast_cache)
    if model.automatic_optimization:
        optimizer = model.configure_optimizers()  # the same (fused) Adam that Lightning gets
        for i, (x, _) in enumerate(data):
            if i == warmup:
                start = time.perf_counter()
            with step_context():
                loss = model.loss_terms(x)["loss"]
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        return time.perf_counter() - start
    model_config, critic_config = model.configure_optimizers()
    model_optimizer, critic_optimizer = model_config["optimizer"], critic_config["optimizer"]
    critic_params = model.critic_parameters()
    critic_ids = {id(p) for p in critic_params}
    model_params = [p for p in model.parameters() if id(p) not in critic_ids]
    for i, (x, _) in enumerate(data):
        if i == warmup:
            start = time.perf_counter()
        with step_context():
            _set_trainable(model_params, False)
            critic_loss = model.critic_loss(x)
            critic_optimizer.zero_grad(set_to_none=True)
            critic_loss.backward()
            critic_optimizer.step()
            _set_trainable(model_params, True)
            _set_trainable(critic_params, False)
            loss = model.loss_terms(x)["loss"]
            model_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            model_optimizer.step()
            _set_trainable(critic_params, True)
    return time.perf_counter() - start


def lightning_loop(build, data: list, warmup: int, precision: str = "32-true") -> float:
    torch.manual_seed(0)
    model = build()
    timer = StepTimer(warmup)
    trainer = L.Trainer(max_steps=len(data), logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[timer], accelerator="auto", devices=1,
                        precision=precision)
    trainer.fit(model, torch.utils.data.DataLoader(data, batch_size=None))
    return timer.end - timer.start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="mlp_vae")
    parser.add_argument("--steps", type=int, default=520)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=None, help="default: 100 (mlp_vae), 64 (conv_infogan)")
    parser.add_argument("--repeats", type=int, default=5, help="alternating plain/Lightning pairs; the best time of each loop counts")
    parser.add_argument("--precision", choices=("32-true", "bf16-mixed"), default="32-true",
                        help="both loops in float32, or both under bf16 autocast (on CPU: only where it has bf16)")
    parser.add_argument("--plain-cast-cache", choices=("on", "off"), default="on",
                        help="bf16: the plain loop caches weight casts (torch's default) or not (as Lightning's plugin)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    fallback = float32_fallback(args.precision, "cpu")  # both loops run on the CPU
    if fallback:  # emulated bf16 would time the emulation: measure what a shipped config runs here
        print(fallback.replace("trainer.precision", "--precision").replace("training in", "timing"), flush=True)
        args.precision = "32-true"
    build, batch_size, binarize = MODELS[args.model]
    data = batches(args.steps, args.batch_size or batch_size, binarize)
    timed_steps = args.steps - args.warmup
    plain, light = [], []
    for _ in range(args.repeats):  # alternate so that drift in machine load hits both loops alike
        plain.append(plain_loop(build, data, args.warmup, args.precision, args.plain_cast_cache == "on"))
        light.append(lightning_loop(build, data, args.warmup, args.precision))
    rows = [
        {"loop": "plain PyTorch", "steps_per_s": timed_steps / min(plain), "ms_per_step": 1e3 * min(plain) / timed_steps},
        {"loop": "Lightning", "steps_per_s": timed_steps / min(light), "ms_per_step": 1e3 * min(light) / timed_steps},
    ]
    ratios = [lt / pl for lt, pl in zip(light, plain)]
    ratio = min(light) / min(plain)  # best times: the least noisy estimate of each loop's own cost
    name = "bench_train_step" if args.model == "mlp_vae" else f"bench_train_step_{args.model}"
    name += "" if args.precision == "32-true" else f"_{args.precision.replace('-', '_')}"
    name += "" if args.precision == "32-true" or args.plain_cast_cache == "on" else "_plain_no_cast_cache"
    report(name, rows, {"model": args.model, "precision": args.precision, "plain_cast_cache": args.plain_cast_cache,
                        "time_ratio_lightning_over_plain": ratio,
                                      "paired_ratio_median": statistics.median(ratios),
                                      "paired_ratio_min": min(ratios), "paired_ratio_max": max(ratios),
                                      "overhead_ms_per_step": 1e3 * (min(light) - min(plain)) / timed_steps,
                                      "target": "<= 1.05", "meets_target": ratio <= 1.05,
                                      "timed_steps": timed_steps, "repeats": args.repeats}, args.out)

if __name__ == "__main__":
    main()
