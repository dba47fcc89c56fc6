"""Samples and sample quality of every likelihood-free family from its shipped example configs.

Four settings: the ring of 8 Gaussians and the MNIST sample with MLPs, and with the convolutional parts
(``infoae_pl.nets.Conv*``) the MNIST sample (every family; InfoGAN with 3 seeds) and Fashion-MNIST
(InfoGAN, InfoVAE and ALI/BiGAN: one family of each kind). Each run trains through ``infoae fit`` from
the package's ``configs/`` (``--configs`` for another folder); the final evaluation's metrics (MMD of
generated to real x, ring mode coverage, reconstruction error, InfoGAN's code accuracy on generated x;
for images the Fréchet distance and KID in the package classifier's feature space, class coverage,
InfoGAN's code accuracy on real held-out images and 1-NN accuracy on E(x) against raw pixels) go to
``results.csv`` and, as mean ± sd [range] over seeds, to ``summary.md``; ``<setting>_samples.png``
(each with a PDF) shows every family's samples, ``<setting>_reconstructions.png`` the images setting's
reconstructions x → z → x (families with an encoder); ``--figures-only`` draws them and ``summary.md`` again
from the kept samples and ``results.csv`` without training. Each finished run's row and samples are written at once, and a re-run skips
the runs already done, so the set can be completed over several invocations. SIGTERM (a pre-empted
cluster job) stops the running run with a checkpoint, as ``infoae fit`` does; the same command then
resumes it from there.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import yaml
from matplotlib.figure import Figure

from infoae_pl.data import InfoAEDataModule
from infoae_pl.evaluation.figures import image_grid, image_grid_figure, save_figure
from infoae_pl.evaluation.sampling import decoded_x, reconstruct
from infoae_pl.reproduce.options import DistinctSeeds
from infoae_pl.shipped import CONFIGS, shipped_dir
from infoae_pl.training import build_cli

FAMILIES = ("infovae", "aae", "infogan", "ali_bigan", "alice", "cyclegan")
#: The families as the paper writes them, for figure titles.
FAMILY_NAMES = {"infovae": "InfoVAE", "aae": "AAE", "infogan": "InfoGAN", "ali_bigan": "ALI/BiGAN", "alice": "ALICE",
                "cyclegan": "CycleGAN"}


@dataclass(frozen=True)
class Setting:
    """A group of runs: a data set, the networks (the config file of each family) and the families run."""

    name: str
    dataset: str
    config: str
    families: tuple[str, ...]
    title: str

    def config_file(self, family: str) -> str:
        return self.config.format(family=family)

    @property
    def images(self) -> bool:
        return self.dataset != "ring8"


SETTINGS = {s.name: s for s in (
    Setting("ring8", "ring8", "{family}_ring8.yaml", FAMILIES, "ring of 8 Gaussians, MLPs"),
    Setting("mnist5k", "mnist5k", "{family}_mnist5k.yaml", FAMILIES, "MNIST sample, MLPs"),
    Setting("mnist5k_conv", "mnist5k", "{family}_conv_mnist5k.yaml", FAMILIES, "MNIST sample, convolutional nets"),
    Setting("fashion_mnist_conv", "fashion_mnist", "{family}_conv_fashion_mnist.yaml", ("infogan", "infovae", "ali_bigan"),
            "Fashion-MNIST, convolutional nets"),
)}
DATASETS = tuple(SETTINGS)
#: Final-evaluation keys reported per run, and whether lower is better (None: no ordering).
METRICS = {
    "mmd_x": True,
    "modes_hit": False,
    "high_quality_fraction": False,
    "reconstruction_error": True,
    "code_accuracy": False,
    "fid": True,
    "kid": True,
    "class_coverage": False,
    "class_kl": True,
    "code_purity": False,
    "code_accuracy_real": False,
    "feature_accuracy": False,
    "pixel_accuracy": None,
}


@dataclass(frozen=True)
class Profile:
    """Steps and seeds per setting (steps None: each config's own ``max_steps``); ``family_seeds`` give
    some (setting, family) more seeds."""

    name: str
    steps: dict[str, int | None]
    seeds: dict[str, tuple[int, ...]]
    family_seeds: dict[tuple[str, str], tuple[int, ...]] = field(default_factory=dict)

    def seeds_of(self, setting: str, family: str) -> tuple[int, ...]:
        return self.family_seeds.get((setting, family), self.seeds[setting])


PROFILES = {
    "default": Profile(
        "default",
        {"ring8": 3000, "mnist5k": 2000, "mnist5k_conv": None, "fashion_mnist_conv": None},
        {"ring8": (0, 1, 2), "mnist5k": (0,), "mnist5k_conv": (0,), "fashion_mnist_conv": (0,)},
        {("mnist5k_conv", "infogan"): (0, 1, 2)},
    ),
    "tiny": Profile("tiny", {"ring8": 20, "mnist5k": 4, "mnist5k_conv": 4, "fashion_mnist_conv": 4},
                    {name: (0,) for name in SETTINGS}),
}


def config_steps(config: Path) -> int:
    """The ``trainer.max_steps`` of a config file."""
    steps = ((yaml.safe_load(config.read_text()) or {}).get("trainer") or {}).get("max_steps")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"{config} sets no trainer.max_steps; the profile must give the steps")
    return steps


def train_one(config: Path, steps: int, seed: int, out: Path, name: str) -> tuple[Any, Any, dict[str, Any], float]:
    """Train ``config`` for ``steps`` with ``seed`` through ``infoae fit``; the model, its datamodule, the
    precision it trained in and the final metrics, and the seconds."""
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
    return cli.model, cli.datamodule, {"precision": cli.trainer.precision, **metrics}, time.perf_counter() - start


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


def plot_images(samples: dict[str, torch.Tensor], path: Path, title: str, notes: dict[str, str] | None = None) -> None:
    """One 8×8 grid of images per family; ``notes`` (by family) are added to the panel titles."""
    figure = Figure(figsize=(2.6 * len(samples), 3.0), layout="constrained")
    axes = figure.subplots(1, len(samples), squeeze=False)[0]
    for ax, (family, x) in zip(axes, samples.items()):
        ax.imshow(image_grid(x.reshape(-1, 1, 28, 28).numpy(), 8), cmap="gray", vmin=0, vmax=1)
        note = (notes or {}).get(family)
        ax.set(title=FAMILY_NAMES.get(family, family) + (f"\n{note}" if note else ""), xticks=[], yticks=[])
    figure.suptitle(title)
    save_figure(figure, path)


#: Columns of InfoGAN's code figure: each of its continuous codes swept over this many values.
CODE_GRID_COLUMNS = 10


@torch.no_grad()
def code_grid(model: Any, seed: int = 0) -> tuple[torch.Tensor, list[str]]:
    """InfoGAN's ``latent_grid`` decoded: one row per categorical code value, the columns sweeping each
    continuous code from −2 to 2 with the noise fixed (``[rows·CODE_GRID_COLUMNS, 784]``), and the row labels."""
    torch.manual_seed(seed)
    latents, labels = model.latent_grid(CODE_GRID_COLUMNS)
    return decoded_x(model, latents).cpu(), labels


#: Held-out images in the reconstruction figure.
RECONSTRUCTED_IMAGES = 10


@torch.no_grad()
def reconstructions(model: Any, datamodule: Any) -> torch.Tensor:
    """The first validation image (as the model sees it) of each of the first ``RECONSTRUCTED_IMAGES`` labels,
    and x̂ = mean of p(x|z) or G(z) at z = E(x), the posterior mean: ``[2, n, 784]``."""
    first: dict[int, torch.Tensor] = {}
    for x, y in datamodule.val_dataloader():
        for image, label in zip(x, y.tolist()):
            first.setdefault(label, image)
        if len(first) >= RECONSTRUCTED_IMAGES:
            break
    x = torch.stack([first[label] for label in sorted(first)[:RECONSTRUCTED_IMAGES]])
    return torch.stack([x, reconstruct(model, x.to(next(model.parameters()).device)).cpu()]).flatten(2)


def draw_reconstructions(out: Path, name: str, seed: int, rows: list[dict[str, Any]]) -> Path | None:
    """Draw ``out/<setting>_reconstructions.png`` (and its PDF): per family with an encoder (InfoGAN's Q infers
    the codes only, so G(Q(x)) is no reconstruction), a row of held-out images and a row of their
    reconstructions x → z → x; None until every such family of the setting has its row and reconstructions."""
    families = [f for f in SETTINGS[name].families if f != "infogan"]
    kept = [out / "samples" / f"{f}_{name}_seed{seed}_reconstructions.pt" for f in families]
    steps = _steps_of(rows, name, seed)
    if not families or not all(path.is_file() for path in kept) or not set(families) <= set(steps):
        return None
    pairs = [torch.load(path).float() for path in kept]
    images = torch.cat([image for pair in pairs for image in pair])
    labels = [label for f in families for label in (f"{FAMILY_NAMES[f]}: x", f"x̂ ({steps[f]:,} steps)")]
    path = out / f"{name}_reconstructions.png"
    figure = image_grid_figure(images.reshape(-1, 1, 28, 28).numpy(), pairs[0].shape[1],
                               f"{SETTINGS[name].title}: held-out images x and reconstructions x̂ = G(E(x)) "
                               f"or the mean of p(x|E(x)) (seed {seed})", labels)
    save_figure(figure, path)
    return path


def plot_code_grid(images: torch.Tensor, labels: list[str], continuous: int, path: Path, title: str) -> None:
    per_code = CODE_GRID_COLUMNS // max(continuous, 1)
    sweep = ", ".join(f"columns {i * per_code + 1}–{(i + 1) * per_code}: continuous code {i + 1} from −2 to 2"
                      for i in range(continuous))
    figure = image_grid_figure(images.reshape(-1, 1, 28, 28).numpy(), CODE_GRID_COLUMNS,
                               f"{title}\nrows: categorical code" + (f"; {sweep}" if sweep else ""), labels)
    save_figure(figure, path)


def _cell(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.mean(values):.4g} ± {statistics.stdev(values):.2g} [{min(values):.4g}, {max(values):.4g}]"


def _kind(row: dict[str, Any]) -> tuple[int, str]:
    """A run's (steps, precision): what makes two runs of one family with other seeds comparable."""
    return int(row.get("steps") or 0), row.get("precision") or ""


def _groups(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """``rows`` (of one setting) by family, in FAMILIES' order; a family run with several step counts or
    precisions (a changed config, a machine without bf16) gets a group for each, named by what differs."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for family in FAMILIES:
        runs = [r for r in rows if r["family"] == family]
        kinds = sorted({_kind(r) for r in runs})
        for steps, precision in kinds:
            parts = ([f"{steps:,} steps"] if len({k[0] for k in kinds}) > 1 else []) \
                + ([precision or "precision not recorded"] if len({k[1] for k in kinds}) > 1 else [])
            name = f"{family} ({', '.join(parts)})" if parts else family
            groups[name] = [r for r in runs if _kind(r) == (steps, precision)]
    return groups


def summarise(rows: list[dict[str, Any]]) -> str:
    """A markdown table per setting: mean ± sd [min, max] over seeds, and for each metric with an order
    which families the best one beats beyond the seed spread (their ranges do not overlap), among the
    families run with several seeds (a one-seed family has no spread to judge a difference by). Runs of
    one family with other steps or precision are rows of their own (:func:`_groups`), never pooled."""
    lines = []
    for name, setting in SETTINGS.items():
        subset = [r for r in rows if r["dataset"] == name]
        if not subset:
            continue
        seeds = sorted({r["seed"] for r in subset})
        keys = [k for k in METRICS if any(r.get(k) not in (None, "") for r in subset)]
        lines += [f"### {name}: {setting.title} (seeds {', '.join(map(str, seeds))})", "",
                  "| family | seeds | " + " | ".join(keys) + " | wall s |", "|---" * (len(keys) + 3) + "|"]
        groups = _groups(subset)
        values = {g: {k: [r[k] for r in runs if r.get(k) not in (None, "")] for k in keys} for g, runs in groups.items()}
        for group, runs in groups.items():
            cells = " | ".join(_cell(values[group][key]) for key in keys)
            lines.append(f"| {group} | {len(runs)} | {cells} | {statistics.mean(r['seconds'] for r in runs):.0f} |")
        lines.append("")
        single = [g for g, runs in groups.items() if len({r["seed"] for r in runs}) == 1]
        if single and len(single) < len(groups):
            lines.append(f"- one seed only, so no spread to compare against: {', '.join(single)}")
        for key in keys:
            ranked = [(g, values[g][key]) for g in groups if len(values[g][key]) > 1]
            lower = METRICS[key]
            if lower is None or len(ranked) < 2:
                continue
            best, best_values = (min if lower else max)(ranked, key=lambda fv: statistics.mean(fv[1]))
            beaten = [f for f, v in ranked if f != best
                      and (max(best_values) < min(v) if lower else min(best_values) > max(v))]
            lines.append(f"- {key}: best {best}; beyond the seed range of: {', '.join(beaten) or 'none'}")
        lines.append("")
    return "\n".join(lines)


#: ``precision``: what the run trained in (a config's bf16 falls back to 32-true where the hardware lacks bf16);
#: empty in rows of releases before it was recorded.
FIELDS = ["family", "dataset", "seed", "steps", "seconds", "precision", *METRICS]
_TEXT_FIELDS = ("family", "dataset", "precision")


def read_results(path: Path) -> list[dict[str, Any]]:
    """The rows of ``results.csv`` (numbers parsed), or none; the ``dataset`` column names the setting."""
    if not path.exists():
        return []
    rows = []
    for row in csv.DictReader(path.open()):
        rows.append({k: ((v or None) if k in _TEXT_FIELDS else (float(v) if v not in ("", None) else None))
                     for k, v in row.items()})
        rows[-1]["seed"], rows[-1]["steps"] = int(rows[-1]["seed"]), int(rows[-1]["steps"])
    return rows


def _write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """``results.csv`` with today's columns (a file from an older release gains the new ones, empty)."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)


def _steps_of(rows: list[dict[str, Any]], name: str, seed: int) -> dict[str, int]:
    """Family -> training steps of the runs of setting ``name`` with ``seed``."""
    return {r["family"]: int(r["steps"]) for r in rows if r["dataset"] == name and r["seed"] == seed}


def draw_samples(out: Path, name: str, seed: int, rows: list[dict[str, Any]]) -> Path:
    """Draw ``out/<setting>_samples.png`` (and its PDF) from the samples kept in ``out/samples`` for ``seed``;
    the steps of each run (from ``rows``) go to the title, or to each panel where the families differ."""
    setting = SETTINGS[name]
    samples = {f: torch.load(out / "samples" / f"{f}_{name}_seed{seed}.pt").float() for f in setting.families}
    steps = _steps_of(rows, name, seed)
    same = len(set(steps.values())) == 1
    note = f"seed {seed}, {next(iter(steps.values())):,} steps" if same else f"seed {seed}"
    notes = None if same else {f: f"{count:,} steps" for f, count in steps.items()}
    path = out / f"{name}_samples.png"
    if not setting.images:
        mixture = InfoAEDataModule(dataset="ring8").mixture
        data = mixture.sample(2500, torch.Generator().manual_seed(0))[0]
        plot_ring(samples, data, mixture.centres, path,
                  f"ring of 8 Gaussians: the data, and each family's samples (blue) with the data's modes ringed ({note})")
    else:
        plot_images(samples, path, f"{setting.title}: generated x, G(z) or mean of p(x|z) ({note})", notes)
    return path


def draw_code_grid(out: Path, name: str, seed: int, rows: list[dict[str, Any]]) -> Path | None:
    """Draw ``out/<setting>_infogan_codes.png`` (and its PDF) from InfoGAN's kept code grid of ``seed``, if kept
    (and its run is in ``rows``)."""
    codes = out / "samples" / f"infogan_{name}_seed{seed}_codes.pt"
    steps = _steps_of(rows, name, seed).get("infogan")
    if steps is None or not codes.is_file():
        return None
    kept = torch.load(codes)
    path = out / f"{name}_infogan_codes.png"
    plot_code_grid(kept["images"].float(), kept["labels"], kept["continuous"], path,
                   f"InfoGAN, {SETTINGS[name].title} (seed {seed}, {steps:,} steps)")
    return path


def draw_setting(out: Path, name: str, seed: int, rows: list[dict[str, Any]]) -> list[Path]:
    """Every figure of setting ``name`` that ``out/samples`` keeps for ``seed`` of runs in ``rows``: the samples
    (once every family kept them), InfoGAN's code grid and the reconstructions."""
    drawn = []
    families = SETTINGS[name].families
    if set(families) <= set(_steps_of(rows, name, seed)) and all(
            (out / "samples" / f"{f}_{name}_seed{seed}.pt").is_file() for f in families):
        drawn.append(draw_samples(out, name, seed, rows))
    drawn += [p for p in (draw_code_grid(out, name, seed, rows), draw_reconstructions(out, name, seed, rows))
              if p is not None]
    return drawn


def redraw(out: Path, names: tuple[str, ...] = DATASETS) -> list[Path]:
    """Draw the figures again from what ``out`` keeps (``results.csv`` and ``samples/``), without training:
    per setting, the figures of the lowest seed that every family kept samples of, else of InfoGAN's
    lowest seed; a setting with neither is an error."""
    rows = read_results(out / "results.csv")
    if not rows:
        raise FileNotFoundError(f"--figures-only draws from {out / 'results.csv'}, which holds no runs: "
                                "run the reproduction first")
    paths = []
    for name in names:
        kept = sorted(r["seed"] for r in rows if r["dataset"] == name and all(
            (out / "samples" / f"{f}_{name}_seed{r['seed']}.pt").is_file() for f in SETTINGS[name].families))
        seeds = kept or sorted(r["seed"] for r in rows if r["dataset"] == name and r["family"] == "infogan")
        drawn = draw_setting(out, name, seeds[0], rows) if seeds else []
        if not drawn:
            raise FileNotFoundError(f"{out / 'samples'} lacks the {name} samples of every family for any seed")
        paths += drawn
    return paths


def planned_runs(profile: Profile, configs: Path, names: tuple[str, ...],
                 only: tuple[str, ...] = FAMILIES) -> list[tuple[str, str, int, int]]:
    """(setting, family, seed, steps) of every run of ``profile`` on the settings ``names`` (families in ``only``)."""
    return [(name, family, seed, profile.steps[name] or config_steps(configs / SETTINGS[name].config_file(family)))
            for name in names for family in SETTINGS[name].families if family in only
            for seed in profile.seeds_of(name, family)]


def reproduce(profile: Profile, configs: Path, out: Path, datasets: tuple[str, ...] = DATASETS,
              only: tuple[str, ...] = FAMILIES) -> list[dict[str, Any]]:
    """Train every family (of ``only``) of the settings ``datasets``, skipping runs already in ``results.csv``;
    write the figures (of the settings whose figure seed every family has finished), ``results.csv`` and
    ``summary.md`` into ``out``."""
    (out / "samples").mkdir(parents=True, exist_ok=True)
    missing = [SETTINGS[n].config_file(f) for n in datasets for f in SETTINGS[n].families
               if f in only and not (configs / SETTINGS[n].config_file(f)).exists()]
    if missing:
        raise FileNotFoundError(f"--configs {configs} lacks {', '.join(missing)}")
    runs = planned_runs(profile, configs, datasets, only)
    results = out / "results.csv"
    kept = read_results(results)
    _write_rows(results, kept)
    rows = [r for r in kept if r["dataset"] in datasets]
    done = {(r["family"], r["dataset"], r["seed"], r["steps"]) for r in rows}
    todo = sum((family, name, seed, steps) not in done for name, family, seed, steps in runs)
    print(f"{len(runs)} runs planned, {len(runs) - todo} done before, {todo} to train", flush=True)
    for index, (name, family, seed, steps) in enumerate(runs, 1):
        run = f"{family}_{name}_seed{seed}"
        if (family, name, seed, steps) in done:
            continue
        print(f"[{index}/{len(runs)}] {run}: {steps} steps", flush=True)
        model, datamodule, metrics, seconds = train_one(configs / SETTINGS[name].config_file(family), steps, seed, out, run)
        model.eval()  # fit leaves it in training mode, where batch norm would use the statistics of the batch drawn
        row = {"family": family, "dataset": name, "seed": seed, "steps": steps, "seconds": round(seconds, 1), **metrics}
        with results.open("a", newline="") as handle:
            csv.DictWriter(handle, FIELDS, restval="").writerow(row)
        rows.append(row)
        if seed == profile.seeds[name][0]:  # the figure's seed; kept (float16) so a re-run can redraw it
            images = SETTINGS[name].images
            torch.save(generate(model, 64 if images else 2500, images).half(), out / "samples" / f"{run}.pt")
            if images and family == "infogan":
                grid, labels = code_grid(model)
                torch.save({"images": grid.half(), "labels": labels, "continuous": model.code_sizes[2]},
                           out / "samples" / f"{run}_codes.pt")
            elif images:
                torch.save(reconstructions(model, datamodule).half(), out / "samples" / f"{run}_reconstructions.pt")
        print("    " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k in METRICS)
              + f" ({seconds:.0f} s, {metrics['precision']})", flush=True)
    for name in datasets:
        draw_setting(out, name, profile.seeds[name][0], rows)
    (out / "summary.md").write_text(summarise(read_results(results)))  # every setting run so far
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="infoae reproduce families", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default", choices=sorted(PROFILES))
    parser.add_argument("--datasets", nargs="+", default=None, choices=DATASETS, metavar="SETTING",
                        help=f"settings to run (default: all; with --figures-only, those with results): {', '.join(DATASETS)}")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES, metavar="FAMILY",
                        help=f"families to run (default: every family of each setting): {', '.join(FAMILIES)}")
    parser.add_argument("--seeds", type=int, nargs="+", action=DistinctSeeds, help="override the profile's ring8 seeds")
    parser.add_argument("--configs", default=None,
                        help="folder of the example configs (default: the configs/ shipped in the package)")
    parser.add_argument("--out", default="reproduce/families", help="output folder (default: reproduce/families)")
    parser.add_argument("--figures-only", action="store_true",
                        help="no training: draw the sample figures (PNG and PDF) and summary.md again from --out's results.csv and samples/")
    args = parser.parse_args(argv)
    if args.figures_only:
        kept = {r["dataset"] for r in read_results(Path(args.out) / "results.csv")}
        names = tuple(args.datasets or [name for name in DATASETS if name in kept] or DATASETS)
        for path in redraw(Path(args.out), names):
            print(f"wrote {path} and its PDF")
        summary = Path(args.out) / "summary.md"
        summary.write_text(summarise(read_results(Path(args.out) / "results.csv")))
        print(f"wrote {summary}")
        return 0
    profile = PROFILES[args.profile]
    if args.seeds is not None:
        profile = replace(profile, seeds={**profile.seeds, "ring8": args.seeds})
    configs = Path(args.configs) if args.configs is not None else shipped_dir(CONFIGS)
    names = tuple(args.datasets or DATASETS)
    print(f"families, profile {profile.name!r} on {', '.join(names)}")
    start = time.perf_counter()
    reproduce(profile, configs, Path(args.out), names, tuple(args.families))
    print(f"wrote {args.out}/summary.md, results.csv and the sample figures in {math.ceil(time.perf_counter() - start)} s")
    return 0
