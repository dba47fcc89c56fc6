"""Figure 2 of the paper: the NLL of β-ELBO against InfoVAE = β-ELBO + λ·MMD(q(z)||p(z)) over β and λ.

The (β, λ[, seed]) grid runs as an Optuna study through the sweep engine (grid sampler, one trial per
point; ``--workers`` spreads it over processes and GPUs; re-running resumes it). By default each
worker trains all its grid points at once as one stacked, vmapped model (``--batch-trials``).  After the sweep every
finished trial's checkpoint is evaluated by importance sampling with q(z|x) as proposal on training
and test examples (binarised once with a fixed seed), and the command writes ``fig2.png`` (train and
test panels), ``results.csv`` and ``checks.json`` with the paper's claim checked per β: some λ > 0
gives a lower NLL than the β-ELBO (λ = 0), and whether the difference exceeds its spread (seed sd, or
with one seed the standard error of the paired per-example difference).

The study is the shipped ``sweeps/infovae_lambda_beta.yaml`` (read from the installed package), whose
base config ``../configs/fig2_infovae_mnist5k.yaml`` is resolved relative to the study file; a profile
changes only its sizes (data, network width, grid), steps, learning-rate milestones and seeds, so
``infoae sweep sweeps/infovae_lambda_beta.yaml`` trains the default profile's models.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
import yaml
from matplotlib.figure import Figure

from infoae_pl.data import InfoAEDataModule
from infoae_pl.evaluation.estimators import importance_sampled_log_likelihood
from infoae_pl.evaluation.figures import save_figure
from infoae_pl.models import LagrangianModule
from infoae_pl.reproduce.options import DistinctSeeds, positive_int, with_overrides
from infoae_pl.shipped import shipped_study
from infoae_pl.tuning.spec import StudySpec, parse_study
from infoae_pl.tuning.sweep import run_sweep

STUDY = "infovae_lambda_beta.yaml"  # sweeps/ in the package: Figure 2's one definition
BETA_KEY = "model.init_args.preset_params.beta"
LAMBDA_KEY = "model.init_args.lagrangian.MMD(q(z)||p(z))"
SEED_KEY = "seed_everything"
DATASETS = ("mnist5k", "mnist", "fashion_mnist")


@dataclass(frozen=True)
class Profile:
    """Everything that sizes a Figure 2 reproduction."""

    name: str
    betas: tuple[float, ...]
    lambdas: tuple[float, ...]
    seeds: tuple[int, ...]
    steps: int
    lr_milestones: tuple[int, ...]
    hidden_dim: int
    eval_samples: int  # K of the final importance-sampled NLL
    eval_examples: int | None  # training and test examples evaluated (None: all)
    sizes: dict[str, tuple[int, int, int] | None]  # dataset -> (train, val, test) sizes, None: the dataset's own


def load_study_file() -> tuple[Path, dict[str, Any]]:
    """The shipped Figure 2 study: its path and its content."""
    path = shipped_study(STUDY)
    return path, yaml.safe_load(path.read_text())


def _study_grid() -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The study file's β and λ grid: the default and paper profiles' grid."""
    space = load_study_file()[1]["search_space"]
    return tuple(space[BETA_KEY]["values"]), tuple(space[LAMBDA_KEY]["values"])


BETAS, LAMBDAS = _study_grid()
PROFILES = {
    # Paper: 50,000/10,000 MNIST, 1024 units, K = 5,000; lr 1e-3, 1e-4 after 10k, 1e-5 after 100k
    # steps (the authors' schedule); three seeds per point. Needs the MNIST IDX files and a GPU.
    "paper": Profile("paper", BETAS, LAMBDAS, (0, 1, 2), 150_000,
                     (10_000, 100_000), 1024, 5000, None,
                     {"mnist": (50_000, 10_000, 10_000), "fashion_mnist": (50_000, 10_000, 10_000), "mnist5k": None}),
    # CPU-sized (about 30 minutes on 2 cores): the embedded 5,000-image sample, the paper's networks,
    # 4,000 steps (100 epochs of 4,000 images), one seed, K = 500 on 500 train and 500 test images:
    # the study file as it is (its grid and its base config's data, width and steps).
    "default": Profile("default", BETAS, LAMBDAS, (0,), 4000, (), 1024, 500, 500,
                       {"mnist5k": None, "fashion_mnist": (4000, 500, 500), "mnist": (4000, 500, 500)}),
    # End-to-end test: two β, two λ, small networks, a few steps.
    "tiny": Profile("tiny", (0.5, 2.0), (0.0, 500.0), (0,), 6, (), 32, 20, 40,
                    {"mnist5k": None, "fashion_mnist": (200, 50, 50), "mnist": (200, 50, 50)}),
}


def study_spec(profile: Profile, dataset: str, data_dir: str | None, study_dir: Path) -> StudySpec:
    """The shipped grid study sized by one profile for one dataset (journal storage in ``study_dir``)."""
    path, raw = load_study_file()
    sizes = profile.sizes[dataset]
    data = {"data.dataset": dataset, "data.data_dir": data_dir}
    if sizes is not None:
        data.update({"data.train_size": sizes[0], "data.val_size": sizes[1], "data.test_size": sizes[2]})
    search_space = dict(raw["search_space"])
    search_space[BETA_KEY] = {"type": "grid", "values": list(profile.betas)}
    search_space[LAMBDA_KEY] = {"type": "grid", "values": list(profile.lambdas)}
    if len(profile.seeds) > 1:
        search_space[SEED_KEY] = {"type": "grid", "values": list(profile.seeds)}
    raw.update({
        "study_name": f"fig2_{profile.name}_{dataset}",
        "config": {
            **(raw.get("config") or {}),
            **data,
            "seed_everything": profile.seeds[0],
            "model.init_args.hidden_dim": profile.hidden_dim,
            "model.init_args.lr_milestones": list(profile.lr_milestones),
            "trainer.max_steps": profile.steps,
            "trainer.val_check_interval": profile.steps,
        },
        "search_space": search_space,
        "output_dir": str(study_dir),
    })
    return parse_study(raw, base_dir=path.parent)


def evaluation_data(profile: Profile, dataset: str, data_dir: str | None) -> dict[str, torch.Tensor]:
    """Training and test examples, binarised once with a fixed seed (the same for every trial)."""
    sizes = profile.sizes[dataset]
    split_sizes = {} if sizes is None else dict(zip(("train_size", "val_size", "test_size"), sizes))
    datamodule = InfoAEDataModule(dataset=dataset, data_dir=data_dir, binarize="static", seed=0, **split_sizes)
    datamodule.setup("fit")
    datamodule.setup("test")
    out = {}
    for split, loader in (("train", datamodule.train_dataloader()), ("test", datamodule.test_dataloader())):
        batches, count = [], 0
        for x, _ in loader:
            batches.append(x)
            count += len(x)
            if profile.eval_examples is not None and count >= profile.eval_examples:
                break
        x = torch.cat(batches)
        out[split] = x if profile.eval_examples is None else x[: profile.eval_examples]
    return out


@torch.no_grad()
def per_example_nll(model: LagrangianModule, x: torch.Tensor, samples: int, batch_size: int = 100) -> torch.Tensor:
    """The importance-sampled NLL of every example of ``x`` (nats, float64, on the CPU)."""
    torch.manual_seed(0)
    chunks = [-importance_sampled_log_likelihood(model, chunk, samples) for chunk in x.split(batch_size)]
    return torch.cat(chunks).cpu()


def mean_and_error(values: torch.Tensor) -> tuple[float, float]:
    """The mean of per-example values and its standard error over examples."""
    return float(values.mean()), float(values.std() / math.sqrt(len(values)))


def evaluate(spec: StudySpec, study: optuna.Study, data: dict[str, torch.Tensor], samples: int) -> list[dict[str, Any]]:
    """One row per finished trial: β, λ, seed, the sweep's val/nll and the final train/test NLL."""
    rows = []
    trials = sorted(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)),
                    key=lambda t: (t.params[BETA_KEY], t.params[LAMBDA_KEY], t.params.get(SEED_KEY, 0)))
    for trial in trials:
        checkpoints = sorted((spec.output_dir / f"trial-{trial.number:04d}").rglob("*.ckpt"))
        if not checkpoints:
            raise FileNotFoundError(f"trial {trial.number} finished but left no checkpoint under {spec.output_dir}")
        model = LagrangianModule.load_from_checkpoint(checkpoints[-1], map_location="cpu")
        model.eval()
        if torch.cuda.is_available():
            model.cuda()
        row = {"beta": trial.params[BETA_KEY], "lambda": trial.params[LAMBDA_KEY],
               "seed": trial.params.get(SEED_KEY, spec.run_config.get("seed_everything", 0)),
               "trial": trial.number, "val_nll_sweep": trial.value}
        for split, x in data.items():
            values = per_example_nll(model, x.to(model.device), samples)
            row[f"{split}_nll"], row[f"{split}_nll_se"] = mean_and_error(values)
            row[f"{split}_values"] = values  # per example, for paired comparisons; not written to the CSV
        print(f"  beta={row['beta']:g} lambda={row['lambda']:g} seed={row['seed']}: "
              f"train NLL {row['train_nll']:.2f}, test NLL {row['test_nll']:.2f}", flush=True)
        rows.append(row)
    return rows


def _mean_by_point(rows: list[dict[str, Any]], split: str) -> dict[tuple[float, float], tuple[float, float, list[float]]]:
    """(β, λ) -> (mean NLL over seeds, its uncertainty, per-seed values): the uncertainty is the seed
    standard deviation with several seeds, else the estimate's standard error."""
    points: dict[tuple[float, float], list[dict[str, Any]]] = {}
    for row in rows:
        points.setdefault((row["beta"], row["lambda"]), []).append(row)
    out = {}
    for key, group in points.items():
        values = [r[f"{split}_nll"] for r in group]
        spread = statistics.stdev(values) if len(values) > 1 else group[0][f"{split}_nll_se"]
        out[key] = (statistics.mean(values), spread, values)
    return out


def _paired_error(rows: list[dict[str, Any]], split: str, beta: float, lam: float) -> float | None:
    """Standard error of the per-example NLL difference between (β, 0) and (β, λ) on the same examples
    (one seed, per-example values known), else None."""
    pair = [[r for r in rows if r["beta"] == beta and r["lambda"] == value] for value in (0.0, lam)]
    if any(len(group) != 1 or f"{split}_values" not in group[0] for group in pair):
        return None
    return mean_and_error(pair[0][0][f"{split}_values"] - pair[1][0][f"{split}_values"])[1]


def check_claim(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per split and β: does some λ > 0 beat the β-ELBO (λ = 0), and by more than the spread?  With several
    seeds the spread combines the two points' seed standard deviations; with one seed it is the standard
    error of the paired per-example difference (the same examples under both models) where known, else
    the two estimates' standard errors combined."""
    result: dict[str, Any] = {}
    for split in ("train", "test"):
        points = _mean_by_point(rows, split)
        per_beta = {}
        for beta in sorted({b for b, _ in points}):
            if (beta, 0.0) not in points:
                continue
            base, base_spread, _ = points[(beta, 0.0)]
            candidates = [(lam, *points[(b, lam)][:2]) for b, lam in points if b == beta and lam > 0]
            if not candidates:
                continue
            lam, best, spread = min(candidates, key=lambda c: c[1])
            margin = base - best
            paired = _paired_error(rows, split, beta, lam)
            combined = paired if paired is not None else math.hypot(base_spread, spread)
            per_beta[f"{beta:g}"] = {
                "beta_elbo_nll": base, "best_lambda": lam, "best_infovae_nll": best, "improvement_nats": margin,
                "spread_nats": combined, "spread_kind": "paired standard error" if paired is not None else (
                    "seed sd" if len(points[(beta, 0.0)][2]) > 1 else "standard errors"),
                "holds": margin > 0, "exceeds_spread": abs(margin) > combined and margin > 0,
                "differs_beyond_spread": abs(margin) > combined,
            }
        result[split] = {"per_beta": per_beta, "holds_for_every_beta": all(v["holds"] for v in per_beta.values()),
                         "exceeds_spread_for_every_beta": all(v["exceeds_spread"] for v in per_beta.values())}
    return result


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    figure = Figure(figsize=(10, 4), layout="constrained")
    axes = figure.subplots(1, 2, sharey=False)
    for ax, split in zip(axes, ("train", "test")):
        points = _mean_by_point(rows, split)
        for lam in sorted({lam for _, lam in points}):
            betas = sorted(b for b, lam2 in points if lam2 == lam)
            means = [points[(b, lam)][0] for b in betas]
            errors = [points[(b, lam)][1] for b in betas]
            style = {"color": "goldenrod", "linewidth": 2.5, "marker": "s"} if lam == 0 else {"marker": "o"}
            label = "β-ELBO (λ = 0)" if lam == 0 else f"InfoVAE λ = {lam:g}"
            ax.errorbar(betas, means, yerr=errors, capsize=3, label=label, **style)
        ax.set(xscale="log", xlabel="β", ylabel="NLL (nats, importance sampled)", title=f"{split} set")
        ax.set_xticks(sorted({b for b, _ in points}), labels=[f"{b:g}" for b in sorted({b for b, _ in points})])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
        ax.legend()
    figure.suptitle(title)
    save_figure(figure, path)


def write_results(rows: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, [k for k in rows[0] if not k.endswith("_values")], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def reproduce(profile: Profile, dataset: str, out: Path, data_dir: str | None = None, workers: int = 1,
              study_dir: Path | None = None, batch_trials: int | None = None) -> dict[str, Any]:
    """Run (or resume) the sweep, evaluate every trial, write ``fig2.png``, ``results.csv``, ``checks.json``.
    ``batch_trials``: grid points trained together as one stacked model (default: a worker's share of the grid)."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset={dataset!r} is not supported; choose one of: {', '.join(DATASETS)}")
    out.mkdir(parents=True, exist_ok=True)
    study_dir = study_dir or Path("runs") / "fig2" / f"{profile.name}_{dataset}"
    spec = study_spec(profile, dataset, data_dir, study_dir)
    data = evaluation_data(profile, dataset, data_dir)  # fails on missing data before any training
    start = time.perf_counter()
    if batch_trials is None:
        batch_trials = math.ceil(spec.n_trials / workers)
    study = run_sweep(spec, workers=workers, report=False, batch_trials=batch_trials)
    train_seconds = time.perf_counter() - start
    print(f"evaluating {len(study.trials)} trials: NLL by importance sampling, K = {profile.eval_samples}, "
          f"{len(data['train'])} train and {len(data['test'])} test examples", flush=True)
    rows = evaluate(spec, study, data, profile.eval_samples)
    if not rows:
        raise RuntimeError(f"no trial of {spec.study_name} finished; see {study_dir}")
    write_results(rows, out / "results.csv")
    checks = {
        "profile": {**asdict(profile), "dataset": dataset},
        "batch_trials": batch_trials,
        "sweep_wall_seconds_this_invocation": round(train_seconds, 1),
        "trial_seconds": {t.number: round((t.datetime_complete - t.datetime_start).total_seconds(), 1)
                          for t in study.trials if t.datetime_complete is not None and t.datetime_start is not None},
        "total_wall_seconds_this_invocation": round(time.perf_counter() - start, 1),
        "claim": "for every beta, some lambda > 0 gives a lower NLL than the beta-ELBO (lambda = 0)",
        **check_claim(rows),
    }
    (out / "checks.json").write_text(json.dumps(checks, indent=2))
    seeds = len(profile.seeds)
    bars = "seed sd" if seeds > 1 else "standard error of the NLL estimate"
    plot(rows, out / "fig2.png", f"Figure 2 ({profile.name} profile, {dataset}, {seeds} seed{'s' * (seeds > 1)}; bars: {bars})")
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="infoae reproduce fig2", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default", choices=sorted(PROFILES))
    parser.add_argument("--dataset", default=None, choices=DATASETS,
                        help="default: mnist5k, or mnist for the paper profile")
    parser.add_argument("--data-dir", default=None, help="folder of the MNIST IDX files (dataset mnist)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (one GPU each where there are GPUs)")
    parser.add_argument("--batch-trials", type=positive_int, default=None, metavar="K",
                        help="grid points trained at once as one stacked model (default: all of a worker's points; "
                             "1: one run per point)")
    parser.add_argument("--seeds", type=int, nargs="+", action=DistinctSeeds, help="override the profile's seeds")
    parser.add_argument("--steps", type=positive_int, help="override the profile's training steps")
    parser.add_argument("--out", default="reproduce/fig2", help="output folder (default: reproduce/fig2)")
    parser.add_argument("--study-dir", default=None, help="where the study and its trials live (default: runs/fig2/…)")
    args = parser.parse_args(argv)
    profile = with_overrides(PROFILES[args.profile], seeds=args.seeds, steps=args.steps)
    dataset = args.dataset or ("mnist" if profile.name == "paper" else "mnist5k")
    points = len(profile.betas) * len(profile.lambdas) * len(profile.seeds)
    print(f"Figure 2, profile {profile.name!r} on {dataset}: {points} trials of {profile.steps} steps "
          f"(β {list(profile.betas)} × λ {list(profile.lambdas)} × seeds {list(profile.seeds)})", flush=True)
    checks = reproduce(profile, dataset, Path(args.out), args.data_dir, args.workers,
                       Path(args.study_dir) if args.study_dir else None, args.batch_trials)
    print(f"wrote {args.out}/fig2.png, results.csv, checks.json in {checks['total_wall_seconds_this_invocation']} s")
    for split in ("train", "test"):
        for beta, claim in checks[split]["per_beta"].items():
            verdict = "held" if claim["holds"] else "FAILED"
            beyond = "beyond" if claim["differs_beyond_spread"] else "within"
            print(f"  [{verdict}] {split}, beta={beta}: best lambda={claim['best_lambda']:g} "
                  f"{claim['improvement_nats']:+.2f} nats vs the beta-ELBO ({beyond} the "
                  f"{claim['spread_kind']} {claim['spread_nats']:.2f})")
    return 0
