"""Samples of every likelihood-free family from its shipped example config: ring of 8 Gaussians and MNIST.

Each family (InfoVAE, AAE, InfoGAN, ALI/BiGAN, ALICE, CycleGAN) trains through ``infoae fit`` from
the package's ``configs/<family>_<dataset>.yaml`` (``--configs`` for another folder); the final
evaluation's metrics (MMD of generated to real x, ring mode coverage, reconstruction error, InfoGAN's
code accuracy) go to ``results.csv`` and, as mean, sd and range over seeds, to ``summary.md``;
``ring8_samples.png`` and ``mnist5k_samples.png`` (each with a PDF) show samples; ``--figures-only`` draws
them again from the kept samples without training. Each finished run's row and samples are
written at once, and a re-run skips the runs already done. SIGTERM (a pre-empted cluster job) stops the
running run with a checkpoint, as ``infoae fit`` does; the same command then resumes it from there.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure

from infoae_pl.data import InfoAEDataModule
from infoae_pl.evaluation.figures import image_grid, save_figure
from infoae_pl.evaluation.sampling import decoded_x
from infoae_pl.reproduce.options import DistinctSeeds
from infoae_pl.shipped import CONFIGS, shipped_dir
from infoae_pl.training import build_cli

FAMILIES = ("infovae", "aae", "infogan", "ali_bigan", "alice", "cyclegan")
#: The families as the paper writes them, for figure titles.
FAMILY_NAMES = {"infovae": "InfoVAE", "aae": "AAE", "infogan": "InfoGAN", "ali_bigan": "ALI/BiGAN", "alice": "ALICE",
                "cyclegan": "CycleGAN"}
DATASETS = ("ring8", "mnist5k")
#: Final-evaluation keys reported per run, and whether lower is better (None: no ordering).
METRICS = {
    "mmd_x": True,
    "modes_hit": False,
    "high_quality_fraction": False,
    "reconstruction_error": True,
    "code_accuracy": False,
}


@dataclass(frozen=True)
class Profile:
    """Steps and seeds per dataset."""

    name: str
    steps: dict[str, int]
    seeds: dict[str, tuple[int, ...]]


PROFILES = {
    "default": Profile("default", {"ring8": 3000, "mnist5k": 2000}, {"ring8": (0, 1, 2), "mnist5k": (0,)}),
    "tiny": Profile("tiny", {"ring8": 20, "mnist5k": 4}, {"ring8": (0,), "mnist5k": (0,)}),
}


def train_one(config: Path, steps: int, seed: int, out: Path, name: str) -> tuple[Any, dict[str, float], float]:
    """Train ``config`` for ``steps`` with ``seed`` through ``infoae fit``; the model, final metrics and seconds."""
    start = time.perf_counter()
    command_line, sys.argv = sys.argv, sys.argv[:1]  # LightningCLI reads sys.argv too when given args
    try:
        cli = build_cli([
            "fit", "--config", str(config), "--seed_everything", str(seed),
            "--trainer.max_steps", str(steps), "--trainer.val_check_interval", str(steps),
            "--trainer.check_val_every_n_epoch", "null", "--trainer.enable_progress_bar", "false",
            "--trainer.enable_checkpointing", "false", "--trainer.enable_model_summary", "false",
            "--trainer.logger.init_args.save_dir", str(out / "runs"), "--trainer.logger.init_args.name", name,
        ])
    finally:
        sys.argv = command_line
    logged = cli.trainer.callback_metrics
    metrics = {key: float(logged[f"val/{key}"]) for key in METRICS if f"val/{key}" in logged}
    return cli.model, metrics, time.perf_counter() - start


@torch.no_grad()
def generate(model: Any, count: int, images: bool, seed: int = 0) -> torch.Tensor:
    """``count`` generated x from the prior, reproducibly: draws of the model (``sample_x``), or for
    images the mean of p(x|z) where the model has a density (the usual way to show a VAE's samples)."""
    torch.manual_seed(seed)
    z = model.prior().sample(torch.Size([count]))
    return (decoded_x(model, z) if images else model.sample_x(z)).cpu()


def plot_ring(samples: dict[str, torch.Tensor], data: torch.Tensor, centres: torch.Tensor, path: Path,
              title: str) -> None:
    """The data first, then each family's samples with the data's modes ringed on top (black circles), so
    that modes without samples show even where samples are dense."""
    figure = Figure(figsize=(2.9 * (len(samples) + 1), 3.4), layout="constrained")
    axes = figure.subplots(1, len(samples) + 1, squeeze=False)[0]
    axes[0].scatter(data[:, 0], data[:, 1], s=3, c="k", alpha=0.6, linewidths=0)
    axes[0].set_title(f"data ({len(data)} draws)")
    for ax, (family, x) in zip(axes[1:], samples.items()):
        ax.scatter(x[:, 0], x[:, 1], s=3, c="tab:blue", alpha=0.5, linewidths=0)
        ax.scatter(centres[:, 0], centres[:, 1], s=110, facecolors="none", edgecolors="k", linewidths=0.9, zorder=3)
        ax.set_title(FAMILY_NAMES.get(family, family))
    for ax in axes:
        ax.set(xlim=(-3, 3), ylim=(-3, 3), aspect="equal", xticks=[], yticks=[])
    figure.suptitle(title)
    save_figure(figure, path)


def plot_images(samples: dict[str, torch.Tensor], path: Path, title: str) -> None:
    figure = Figure(figsize=(2.6 * len(samples), 3.0), layout="constrained")
    axes = figure.subplots(1, len(samples), squeeze=False)[0]
    for ax, (family, x) in zip(axes, samples.items()):
        ax.imshow(image_grid(x.reshape(-1, 1, 28, 28).numpy(), 8), cmap="gray", vmin=0, vmax=1)
        ax.set(title=FAMILY_NAMES.get(family, family), xticks=[], yticks=[])
    figure.suptitle(title)
    save_figure(figure, path)


def summarise(rows: list[dict[str, Any]]) -> str:
    """A markdown table per dataset: mean ± sd [min, max] over seeds, and which families the best one beats
    beyond the seed spread (their ranges do not overlap)."""
    lines = []
    for dataset in DATASETS:
        subset = [r for r in rows if r["dataset"] == dataset]
        if not subset:
            continue
        seeds = sorted({r["seed"] for r in subset})
        keys = [k for k in METRICS if any(r.get(k) not in (None, "") for r in subset)]
        lines += [f"### {dataset} ({len(seeds)} seed{'s' * (len(seeds) != 1)}: {', '.join(map(str, seeds))})", "",
                  "| family | " + " | ".join(keys) + " | wall s |", "|---" * (len(keys) + 2) + "|"]
        values = {f: {k: [r[k] for r in subset if r["family"] == f and r.get(k) not in (None, "")] for k in keys}
                  for f in FAMILIES}
        for family in FAMILIES:
            cells = []
            for key in keys:
                v = values[family][key]
                if not v:
                    cells.append("–")
                elif len(v) == 1:
                    cells.append(f"{v[0]:.4g}")
                else:
                    cells.append(f"{statistics.mean(v):.4g} ± {statistics.stdev(v):.2g} [{min(v):.4g}, {max(v):.4g}]")
            wall = [r["seconds"] for r in subset if r["family"] == family]
            if wall:
                lines.append(f"| {family} | " + " | ".join(cells) + f" | {statistics.mean(wall):.0f} |")
        lines.append("")
        if len(seeds) > 1:
            for key in keys:
                ranked = [(f, values[f][key]) for f in FAMILIES if values[f][key]]
                lower = METRICS[key]
                best, best_values = (min if lower else max)(ranked, key=lambda fv: statistics.mean(fv[1]))
                beaten = [f for f, v in ranked if f != best
                          and (max(best_values) < min(v) if lower else min(best_values) > max(v))]
                lines.append(f"- {key}: best {best}; beyond the seed range of: {', '.join(beaten) or 'none'}")
            lines.append("")
    return "\n".join(lines)


FIELDS = ["family", "dataset", "seed", "steps", "seconds", *METRICS]


def read_results(path: Path) -> list[dict[str, Any]]:
    """The rows of ``results.csv`` (numbers parsed), or none."""
    if not path.exists():
        return []
    rows = []
    for row in csv.DictReader(path.open()):
        rows.append({k: (v if k in ("family", "dataset") else (float(v) if v != "" else None)) for k, v in row.items()})
        rows[-1]["seed"], rows[-1]["steps"] = int(rows[-1]["seed"]), int(rows[-1]["steps"])
    return rows


def draw_samples(out: Path, dataset: str, seed: int, steps: int) -> Path:
    """Draw ``out/<dataset>_samples.png`` (and its PDF) from the samples kept in ``out/samples`` for ``seed``."""
    samples = {f: torch.load(out / "samples" / f"{f}_{dataset}_seed{seed}.pt").float() for f in FAMILIES}
    note = f"seed {seed}, {steps} steps"
    path = out / f"{dataset}_samples.png"
    if dataset == "ring8":
        mixture = InfoAEDataModule(dataset="ring8").mixture
        data = mixture.sample(2500, torch.Generator().manual_seed(0))[0]
        plot_ring(samples, data, mixture.centres, path,
                  f"ring of 8 Gaussians: the data, and each family's samples (blue) with the data's modes ringed ({note})")
    else:
        plot_images(samples, path, f"mnist5k: generated x, G(z) or mean of p(x|z) ({note})")
    return path


def redraw(out: Path, datasets: tuple[str, ...] = DATASETS) -> list[Path]:
    """Draw the sample figures again from what ``out`` keeps (``results.csv`` and ``samples/``), without
    training: per dataset, the lowest seed whose samples every family kept."""
    rows = read_results(out / "results.csv")
    if not rows:
        raise FileNotFoundError(f"--figures-only draws from {out / 'results.csv'}, which holds no runs: "
                                "run the reproduction first")
    paths = []
    for dataset in datasets:
        kept = sorted((r["seed"], r["steps"]) for r in rows if r["dataset"] == dataset and all(
            (out / "samples" / f"{f}_{dataset}_seed{r['seed']}.pt").is_file() for f in FAMILIES))
        if not kept:
            raise FileNotFoundError(f"{out / 'samples'} lacks the {dataset} samples of every family for any seed")
        paths.append(draw_samples(out, dataset, *kept[0]))
    return paths


def reproduce(profile: Profile, configs: Path, out: Path, datasets: tuple[str, ...] = DATASETS) -> list[dict[str, Any]]:
    """Train every family on ``datasets`` (skipping runs already in ``results.csv``); write the figures,
    ``results.csv`` and ``summary.md`` into ``out``."""
    (out / "samples").mkdir(parents=True, exist_ok=True)
    missing = [f"{f}_{d}.yaml" for f in FAMILIES for d in datasets if not (configs / f"{f}_{d}.yaml").exists()]
    if missing:
        raise FileNotFoundError(f"--configs {configs} lacks {', '.join(missing)}")
    results = out / "results.csv"
    rows = [r for r in read_results(results) if r["dataset"] in datasets]
    done = {(r["family"], r["dataset"], r["seed"], r["steps"]) for r in rows}
    if not results.exists():
        with results.open("w", newline="") as handle:
            csv.DictWriter(handle, FIELDS).writeheader()
    for dataset in datasets:
        for family in FAMILIES:
            for seed in profile.seeds[dataset]:
                name = f"{family}_{dataset}_seed{seed}"
                if (family, dataset, seed, profile.steps[dataset]) in done:
                    print(f"{name}: done before, skipped", flush=True)
                    continue
                print(f"{name}: {profile.steps[dataset]} steps", flush=True)
                model, metrics, seconds = train_one(configs / f"{family}_{dataset}.yaml", profile.steps[dataset],
                                                    seed, out, name)
                row = {"family": family, "dataset": dataset, "seed": seed, "steps": profile.steps[dataset],
                       "seconds": round(seconds, 1), **metrics}
                with results.open("a", newline="") as handle:
                    csv.DictWriter(handle, FIELDS, restval="").writerow(row)
                rows.append(row)
                if seed == profile.seeds[dataset][0]:  # the figure's seed; kept (float16) so a re-run can redraw it
                    images = dataset != "ring8"
                    torch.save(generate(model, 64 if images else 2500, images).half(), out / "samples" / f"{name}.pt")
                print("    " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()) + f" ({seconds:.0f} s)", flush=True)
        draw_samples(out, dataset, profile.seeds[dataset][0], profile.steps[dataset])
    (out / "summary.md").write_text(summarise(read_results(results)))  # every dataset run so far
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="infoae reproduce families", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default", choices=sorted(PROFILES))
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--seeds", type=int, nargs="+", action=DistinctSeeds, help="override the profile's ring8 seeds")
    parser.add_argument("--configs", default=None,
                        help="folder of the example configs (default: the configs/ shipped in the package)")
    parser.add_argument("--out", default="reproduce/families", help="output folder (default: reproduce/families)")
    parser.add_argument("--figures-only", action="store_true",
                        help="no training: draw the sample figures (PNG and PDF) again from --out's results.csv and samples/")
    args = parser.parse_args(argv)
    if args.figures_only:
        for path in redraw(Path(args.out), tuple(args.datasets)):
            print(f"wrote {path} and its PDF")
        return 0
    profile = PROFILES[args.profile]
    if args.seeds is not None:
        profile = replace(profile, seeds={**profile.seeds, "ring8": args.seeds})
    runs = sum(len(profile.seeds[d]) for d in args.datasets) * len(FAMILIES)
    print(f"families, profile {profile.name!r}: {runs} runs on {', '.join(args.datasets)}")
    start = time.perf_counter()
    configs = Path(args.configs) if args.configs is not None else shipped_dir(CONFIGS)
    reproduce(profile, configs, Path(args.out), tuple(args.datasets))
    print(f"wrote {args.out}/summary.md, results.csv and the sample figures in {math.ceil(time.perf_counter() - start)} s")
    return 0
