"""Figure 2 of the paper: the NLL of β-ELBO against InfoVAE = β-ELBO + λ·MMD(q(z)||p(z)) over β and λ.

The (β, λ, seed) grid runs as an Optuna study through the sweep engine (grid sampler, one trial per
point; ``--workers`` spreads it over processes and GPUs; re-running resumes it). By default each
worker trains all its grid points at once as one stacked, vmapped model (``--batch-trials``).  After the
sweep every finished trial's checkpoint is evaluated on the same training and test examples (binarised
once with a fixed seed) by three estimators of the NLL (:data:`ESTIMATORS`): importance sampling with
the amortised q(z|x) as proposal, importance sampling with q(z|x) re-fitted per image (decoder frozen,
as the authors' evaluation did), and annealed importance sampling on a subset of the test images.
The command writes ``fig2.png`` (one panel per estimator and split), ``results.csv`` (one row per
trial and estimator), ``estimator_shifts.csv`` (how far the refit and AIS move each model's NLL on the
same images) and ``checks.json``: the paper's claim (some λ > 0 gives a lower NLL than the β-ELBO,
λ = 0) per β and estimator, where a difference counts only if it exceeds both the seed spread and the
paired per-example error within a seed, and which verdict survives all three estimators.

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
from infoae_pl.evaluation.ais import ais_log_likelihood
from infoae_pl.evaluation.estimators import importance_sampled_log_likelihood
from infoae_pl.evaluation.figures import save_figure
from infoae_pl.evaluation.refit import refit_posterior
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
#: The NLL estimators, in the order of the figure's columns.
ESTIMATORS = {"is": "IS, amortised q(z|x)", "is_refit": "IS, q(z|x) refitted per image", "ais": "AIS (test subset)"}
VERDICTS = ("holds", "fails", "undecided")


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
    eval_samples: int  # K of the final importance-sampled NLLs (amortised and refitted q)
    eval_examples: int | None  # training and test examples evaluated (None: all)
    sizes: dict[str, tuple[int, int, int] | None]  # dataset -> (train, val, test) sizes, None: the dataset's own
    refit_steps: int  # Adam steps of the per-image refit of q(z|x) before importance sampling
    ais_examples: int  # test images (evenly spaced among the evaluated ones) whose NLL AIS estimates
    ais_steps: int  # AIS: intermediate distributions
    ais_chains: int  # AIS: chains per image
    ais_leapfrog_steps: int  # AIS: leapfrog steps per HMC transition
    dataset: str = "mnist5k"  # the dataset run when --dataset is not given


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
                     {"mnist": (50_000, 10_000, 10_000), "fashion_mnist": (50_000, 10_000, 10_000), "mnist5k": None},
                     refit_steps=500, ais_examples=1000, ais_steps=1000, ais_chains=8, ais_leapfrog_steps=2,
                     dataset="mnist"),
    # Fashion-MNIST at the paper's size and schedule (the Debian IDX files: 50,000/10,000 of the training
    # file, the 10,000 test images), three seeds, for one GPU; IS on the 10,000 test and the first 10,000
    # training images, AIS on 1,000 test images. Not run here (no GPU): its cost is estimated from the
    # measured CPU step time. One step of the 45 stacked copies at 1024 units is ~104 GFLOP (2.3 per
    # copy: forward and backward, batch 100) and took 1.75 s of one core (59 GFLOP/s); at an assumed
    # 15 TFLOP/s on an H100-class GPU (fp32, ~25% of peak at these sizes) that is ~7 ms, ~10 ms with
    # kernel launches: 150,000 steps ≈ 25 min. Evaluation per model (decoder FLOPs, a gradient in z
    # twice a forward): IS K = 5,000 on 20,000 images 380 TFLOP, twice (amortised and refitted q), the
    # refit 80 TFLOP, AIS 120 TFLOP: 43 PFLOP for 45 models ≈ 50 min. Total ≈ 1.3 h on one GPU
    # (--workers spreads the trials over several).
    "paper_fashion": Profile("paper_fashion", BETAS, LAMBDAS, (0, 1, 2), 150_000, (10_000, 100_000), 1024, 5000, 10_000,
                             {"fashion_mnist": (50_000, 10_000, 10_000), "mnist": (50_000, 10_000, 10_000), "mnist5k": None},
                             refit_steps=500, ais_examples=1000, ais_steps=1000, ais_chains=8, ais_leapfrog_steps=2,
                             dataset="fashion_mnist"),
    # CPU-sized, the shipped study as it is: ≤ 60 minutes on 2 cores with evaluation. 45 trials (5 β × 3 λ
    # × 3 seeds) stacked as one model, 4,000 steps (100 epochs of the 4,000-image sample), 512 units.
    # Sized from measured step times of the 45 stacked copies (benchmarked on this shared machine, load
    # 2-13 on 2 cores, so by one-thread CPU time while loaded, by wall time on 2 threads when the load
    # fell to ~1.7): 1.75 CPU-s a step at 1024 units, 0.61 at 512, 0.34 at 256; on 2 threads 0.86 s at
    # 1024 (the recorded idle one-seed run of the previous default, 15 copies, gives 0.87) and 0.32 s at
    # 512. Training: 4,000 × 0.32 s ≈ 21 min (1024 units: 57 min; 2,000 steps at 1024 with its 2.8x dearer
    # evaluation: > 60). Evaluation per 512-unit model on 2 threads: IS K = 500 on 500 + 500 images 5.3 s;
    # the refit (100 Adam steps, one draw a step) and IS 7.9 s; AIS on 100 test images (300 distributions
    # from q(z|x), 4 chains, 2 leapfrog steps: within 0.09 nats of 1,000 distributions there, where 100
    # distributions and 8 chains were 0.25 away at 0.7x the cost) 5.0 s: 14 min for 45. Predicted ≈ 37 min
    # in all with start-up and checkpoints; the margin is for a machine that is not idle (there
    # INFOAE_THREADS=1 may be faster: two threads slowed the tiny profile's small operations 100x).
    "default": Profile("default", BETAS, LAMBDAS, (0, 1, 2), 4000, (), 512, 500, 500,
                       {"mnist5k": None, "fashion_mnist": (4000, 500, 500), "mnist": (4000, 500, 500)},
                       refit_steps=100, ais_examples=100, ais_steps=300, ais_chains=4, ais_leapfrog_steps=2),
    # End-to-end test: two β, two λ, one seed, small networks, a few steps, every estimator at toy settings.
    "tiny": Profile("tiny", (0.5, 2.0), (0.0, 500.0), (0,), 6, (), 32, 20, 40,
                    {"mnist5k": None, "fashion_mnist": (200, 50, 50), "mnist": (200, 50, 50)},
                    refit_steps=10, ais_examples=8, ais_steps=10, ais_chains=2, ais_leapfrog_steps=2),
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
    else:  # one seed: the run config's seed_everything, not the study's seed grid
        search_space.pop(SEED_KEY, None)
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
def per_example_nll(model: LagrangianModule, x: torch.Tensor, samples: int, batch_size: int = 100,
                    refit_steps: int = 0) -> torch.Tensor:
    """The importance-sampled NLL of every example of ``x`` (nats, float64, on the CPU); with
    ``refit_steps`` > 0 the proposal is q(z|x) re-fitted per image first (``evaluation.refit``)."""
    torch.manual_seed(0)
    chunks = []
    for chunk in x.split(batch_size):
        proposal = refit_posterior(model, chunk, refit_steps) if refit_steps else model
        chunks.append(-importance_sampled_log_likelihood(proposal, chunk, samples))
    return torch.cat(chunks).cpu()


def per_example_ais_nll(model: LagrangianModule, x: torch.Tensor, profile: Profile) -> torch.Tensor:
    """The AIS NLL of every example of ``x`` with the profile's settings, chains started from q(z|x)."""
    torch.manual_seed(0)
    return -ais_log_likelihood(model, x, num_steps=profile.ais_steps, num_chains=profile.ais_chains,
                               leapfrog_steps=profile.ais_leapfrog_steps, initial="posterior").cpu()


def ais_indices(available: int, wanted: int) -> torch.Tensor:
    """The test images AIS estimates: ``wanted`` of the ``available`` evaluated ones, evenly spaced (the
    mnist5k test split is sorted by class, so its first images would all be zeros)."""
    return torch.linspace(0, available - 1, min(wanted, available)).round().long()


def estimate(model: LagrangianModule, data: dict[str, torch.Tensor], profile: Profile) -> dict[str, dict[str, torch.Tensor]]:
    """Per-example NLLs: estimator -> split -> values, every estimator on the same images (AIS on the
    test images of :func:`ais_indices` only)."""
    out: dict[str, dict[str, torch.Tensor]] = {name: {} for name in ESTIMATORS}
    for split, x in data.items():
        out["is"][split] = per_example_nll(model, x, profile.eval_samples)
        out["is_refit"][split] = per_example_nll(model, x, profile.eval_samples, refit_steps=profile.refit_steps)
    if profile.ais_examples:
        index = ais_indices(len(data["test"]), profile.ais_examples).to(data["test"].device)
        out["ais"]["test"] = per_example_ais_nll(model, data["test"][index], profile)
    return out


def mean_and_error(values: torch.Tensor) -> tuple[float, float]:
    """The mean of per-example values and its standard error over examples."""
    return float(values.mean()), float(values.std() / math.sqrt(len(values)))


def evaluate(spec: StudySpec, study: optuna.Study, data: dict[str, torch.Tensor], profile: Profile) -> list[dict[str, Any]]:
    """One row per finished trial and estimator: β, λ, seed, the sweep's val/nll and the final train/test
    NLL (None where the estimator did not run on that split), with the per-example values kept."""
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
        point = {"beta": trial.params[BETA_KEY], "lambda": trial.params[LAMBDA_KEY],
                 "seed": trial.params.get(SEED_KEY, spec.run_config.get("seed_everything", 0)),
                 "trial": trial.number, "val_nll_sweep": trial.value}
        device_data = {split: x.to(model.device) for split, x in data.items()}
        for estimator, splits in estimate(model, device_data, profile).items():
            row = {**point, "estimator": estimator}
            for split in ("train", "test"):
                values = splits.get(split)
                row[f"{split}_nll"], row[f"{split}_nll_se"] = mean_and_error(values) if values is not None else (None, None)
                row[f"{split}_examples"] = 0 if values is None else len(values)
                if values is not None:
                    row[f"{split}_values"] = values  # per example, for paired comparisons; not written to the CSV
            rows.append(row)
        numbers = ", ".join(f"{r['estimator']} " + "/".join("-" if r[f"{s}_nll"] is None else f"{r[f'{s}_nll']:.2f}"
                                                            for s in ("train", "test")) for r in rows[-len(ESTIMATORS):])
        print(f"  beta={point['beta']:g} lambda={point['lambda']:g} seed={point['seed']}: train/test NLL {numbers}",
              flush=True)
    return rows


def _mean_by_point(rows: list[dict[str, Any]], split: str) -> dict[tuple[float, float], tuple[float, float, list[float]]]:
    """(β, λ) -> (mean NLL over seeds, its spread, per-seed values) over the rows that have this split: the
    spread is the seed standard deviation with several seeds, else the estimate's standard error."""
    points: dict[tuple[float, float], list[dict[str, Any]]] = {}
    for row in rows:
        if row.get(f"{split}_nll") is not None:
            points.setdefault((row["beta"], row["lambda"]), []).append(row)
    out = {}
    for key, group in points.items():
        values = [r[f"{split}_nll"] for r in group]
        spread = statistics.stdev(values) if len(values) > 1 else group[0][f"{split}_nll_se"]
        out[key] = (statistics.mean(values), spread, values)
    return out


def _paired_error(rows: list[dict[str, Any]], split: str, beta: float, lam: float) -> float | None:
    """Standard error of the mean over seeds of the per-example NLL difference between (β, 0) and (β, λ)
    of the same seed on the same examples: √(Σ_s se_s²) / seeds; None unless every seed has both
    points' per-example values."""
    by_seed: dict[Any, dict[float, dict[str, Any]]] = {}
    for row in rows:
        if row["beta"] == beta and row["lambda"] in (0.0, lam) and row.get(f"{split}_nll") is not None:
            by_seed.setdefault(row["seed"], {})[row["lambda"]] = row
    pairs = [(seed_rows.get(0.0), seed_rows.get(lam)) for seed_rows in by_seed.values()]
    if not pairs or any(a is None or b is None or f"{split}_values" not in a or f"{split}_values" not in b
                        for a, b in pairs):
        return None
    errors = [mean_and_error(a[f"{split}_values"] - b[f"{split}_values"])[1] for a, b in pairs]
    return math.sqrt(sum(e * e for e in errors)) / len(errors)


def check_claim(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per split and β (rows of one estimator): does some λ > 0 beat the β-ELBO (λ = 0), and by more than
    its uncertainty?  A difference counts only if it exceeds both the seed spread (the two points' seed
    standard deviations combined; several seeds only) and the paired error within a seed (the standard
    error of the per-example difference on the same examples, combined over seeds; where per-example
    values are known, else the estimates' standard errors combined). The verdict is "holds" (λ > 0 lower
    beyond both), "fails" (the β-ELBO lower beyond both) or "undecided"."""
    result: dict[str, Any] = {}
    for split in ("train", "test"):
        points = _mean_by_point(rows, split)
        if not points:
            continue
        per_beta = {}
        for beta in sorted({b for b, _ in points}):
            if (beta, 0.0) not in points:
                continue
            base, base_spread, base_seeds = points[(beta, 0.0)]
            candidates = [(lam, *points[(b, lam)]) for b, lam in points if b == beta and lam > 0]
            if not candidates:
                continue
            lam, best, spread, best_seeds = min(candidates, key=lambda c: c[1])
            margin = base - best
            several = len(base_seeds) > 1 and len(best_seeds) > 1
            seed_spread = math.hypot(base_spread, spread) if several else None
            paired = _paired_error(rows, split, beta, lam)
            if paired is None and not several:
                paired = math.hypot(base_spread, spread)  # one seed, no per-example values: the two standard errors
                paired_kind = "standard errors"
            else:
                paired_kind = "paired standard error"
            bounds = {"seed sd": seed_spread, paired_kind: paired}
            kind, combined = max(((k, v) for k, v in bounds.items() if v is not None), key=lambda kv: kv[1])
            verdict = "holds" if margin > combined else "fails" if -margin > combined else "undecided"
            per_beta[f"{beta:g}"] = {
                "beta_elbo_nll": base, "best_lambda": lam, "best_infovae_nll": best, "improvement_nats": margin,
                "seeds": min(len(base_seeds), len(best_seeds)),
                "seed_spread_nats": seed_spread, "paired_error_nats": paired,
                "spread_nats": combined, "spread_kind": kind,
                "holds": margin > 0, "exceeds_spread": verdict == "holds",
                "differs_beyond_spread": verdict != "undecided", "verdict": verdict,
            }
        verdicts = [v["verdict"] for v in per_beta.values()]
        result[split] = {
            "per_beta": per_beta,
            "holds_for_every_beta": all(v["holds"] for v in per_beta.values()),
            "exceeds_spread_for_every_beta": all(v == "holds" for v in verdicts),
            "verdict": "holds" if all(v == "holds" for v in verdicts) else "fails" if "fails" in verdicts else "undecided",
        }
    return result


def check_claims(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """:func:`check_claim` under each estimator present in ``rows`` (column ``estimator``)."""
    return {name: check_claim([r for r in rows if r["estimator"] == name])
            for name in ESTIMATORS if any(r["estimator"] == name for r in rows)}


def surviving_verdicts(claims: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per split: each β's verdict under every estimator that ran on that split and the one that survives
    all of them (None where they disagree), and the same for the claim as a whole (every β)."""
    out: dict[str, Any] = {}
    for split in ("train", "test"):
        ran = {name: claim[split] for name, claim in claims.items() if split in claim}
        if not ran:
            continue
        betas = sorted({beta for claim in ran.values() for beta in claim["per_beta"]}, key=float)
        per_beta = {}
        for beta in betas:
            verdicts = {name: claim["per_beta"][beta]["verdict"] for name, claim in ran.items() if beta in claim["per_beta"]}
            per_beta[beta] = {"verdicts": verdicts,
                              "survives": next(iter(verdicts.values())) if len(set(verdicts.values())) == 1 else None}
        overall = {name: claim["verdict"] for name, claim in ran.items()}
        out[split] = {"per_beta": per_beta, "claim_verdicts": overall, "estimators": sorted(ran, key=list(ESTIMATORS).index),
                      "claim_survives": next(iter(overall.values())) if len(set(overall.values())) == 1 else None}
    return out


def estimator_shifts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model (trial): its NLL under each estimator on the same images and how far the refitted q and
    AIS move it from amortised importance sampling: on the AIS test images (:func:`ais_indices`; all three
    estimators) and on all evaluated train and test images (the refit)."""
    by_trial: dict[int, dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_trial.setdefault(row["trial"], {})[row["estimator"]] = row
    table = []
    for _, found in sorted(by_trial.items()):
        if "is" not in found:
            continue
        first = found["is"]
        entry = {k: first[k] for k in ("beta", "lambda", "seed", "trial")}
        if "is_refit" in found:
            for split in ("train", "test"):
                if f"{split}_values" in first and f"{split}_values" in found["is_refit"]:
                    entry[f"{split}_refit_minus_is"] = float(
                        (found["is_refit"][f"{split}_values"] - first[f"{split}_values"]).mean())
        ais = found.get("ais", {}).get("test_values")
        if ais is not None:
            entry["ais_examples"] = len(ais)
            index = ais_indices(len(first["test_values"]), len(ais))
            subset = {name: float(found[name]["test_values"][index].mean()) for name in ("is", "is_refit") if name in found}
            entry.update({f"subset_{name}_nll": value for name, value in subset.items()})
            entry["subset_ais_nll"] = float(ais.mean())
            for name, value in subset.items():
                entry[f"subset_ais_minus_{name}"] = float(ais.mean()) - value
        table.append(entry)
    return table


def _write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """``rows`` as CSV, columns in first-seen order, per-example values left out, missing cells empty."""
    columns = list(dict.fromkeys(k for row in rows for k in row if not k.endswith("_values")))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """One panel per estimator (columns) and split (rows): NLL against β, one line per λ, bars the seed
    spread. The β-ELBO is drawn last, black and dashed, and the λ lines are offset in β, so that no line
    hides another where they coincide."""
    estimators = [name for name in ESTIMATORS if any(r["estimator"] == name for r in rows)]
    figure = Figure(figsize=(4.2 * len(estimators), 7.5), layout="constrained")
    axes = figure.subplots(2, len(estimators), squeeze=False)
    for column, name in enumerate(estimators):
        subset = [r for r in rows if r["estimator"] == name]
        for ax, split in zip(axes[:, column], ("train", "test")):
            points = _mean_by_point(subset, split)
            if not points:
                ax.axis("off")
                ax.text(0.5, 0.5, f"{ESTIMATORS[name]}:\nnot estimated on the {split} set", ha="center", va="center")
                continue
            lambdas = sorted({lam for _, lam in points})
            for k, lam in enumerate(lambdas):
                betas = sorted(b for b, lam2 in points if lam2 == lam)
                offset = 1.0 + 0.035 * (k - (len(lambdas) - 1) / 2)  # multiplicative: the β axis is logarithmic
                means = [points[(b, lam)][0] for b in betas]
                errors = [points[(b, lam)][1] for b in betas]
                if lam == 0:
                    style = {"color": "black", "linestyle": "--", "linewidth": 2.2, "marker": "s", "markersize": 7,
                             "markerfacecolor": "white", "zorder": 5, "label": "β-ELBO (λ = 0)"}
                else:
                    style = {"marker": "o", "linewidth": 1.4, "zorder": 3, "label": f"InfoVAE λ = {lam:g}"}
                ax.errorbar([b * offset for b in betas], means, yerr=errors, capsize=3, **style)
            all_betas = sorted({b for b, _ in points})
            ax.set(xscale="log", xlabel="β", ylabel="NLL (nats)", title=f"{ESTIMATORS[name]}: {split} set")
            ax.set_xticks(all_betas, labels=[f"{b:g}" for b in all_betas])
            ax.minorticks_off()
            ax.grid(alpha=0.3)
            ax.legend(fontsize="small")
    figure.suptitle(title)
    save_figure(figure, path)


def shift_summary(table: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """The mean over seeds of each shift of :func:`estimator_shifts`, per "β=…, λ=…" point (nats)."""
    groups: dict[tuple[float, float], list[dict[str, Any]]] = {}
    for entry in table:
        groups.setdefault((entry["beta"], entry["lambda"]), []).append(entry)
    keys = [k for k in dict.fromkeys(k for e in table for k in e) if "minus" in k]
    return {f"beta={beta:g}, lambda={lam:g}": {k: statistics.mean(e[k] for e in group if k in e)
                                              for k in keys if any(k in e for e in group)}
            for (beta, lam), group in sorted(groups.items())}


def reproduce(profile: Profile, dataset: str, out: Path, data_dir: str | None = None, workers: int = 1,
              study_dir: Path | None = None, batch_trials: int | None = None) -> dict[str, Any]:
    """Run (or resume) the sweep, evaluate every trial with every estimator, write ``fig2.png``,
    ``results.csv``, ``estimator_shifts.csv`` and ``checks.json``.
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
    ais_count = min(profile.ais_examples, len(data["test"]))
    print(f"evaluating {len(study.trials)} trials on {len(data['train'])} train and {len(data['test'])} test "
          f"examples: IS with the amortised q and with q refitted ({profile.refit_steps} steps), K = "
          f"{profile.eval_samples}; AIS on {ais_count} test examples ({profile.ais_steps} distributions, "
          f"{profile.ais_chains} chains, {profile.ais_leapfrog_steps} leapfrog steps)", flush=True)
    rows = evaluate(spec, study, data, profile)
    if not rows:
        raise RuntimeError(f"no trial of {spec.study_name} finished; see {study_dir}")
    evaluation_seconds = time.perf_counter() - start - train_seconds
    _write_csv(rows, out / "results.csv")
    shifts = estimator_shifts(rows)
    _write_csv(shifts, out / "estimator_shifts.csv")
    claims = check_claims(rows)
    checks = {
        "profile": {**asdict(profile), "dataset": dataset},
        "batch_trials": batch_trials,
        "sweep_wall_seconds_this_invocation": round(train_seconds, 1),
        "evaluation_wall_seconds": round(evaluation_seconds, 1),
        "trial_seconds": {t.number: round((t.datetime_complete - t.datetime_start).total_seconds(), 1)
                          for t in study.trials if t.datetime_complete is not None and t.datetime_start is not None},
        "total_wall_seconds_this_invocation": round(time.perf_counter() - start, 1),
        "claim": "for every beta, some lambda > 0 gives a lower NLL than the beta-ELBO (lambda = 0)",
        "estimators": {name: label for name, label in ESTIMATORS.items() if name in claims},
        "ais_examples": ais_count,
        "claims": claims,
        "surviving": surviving_verdicts(claims),
        "estimator_shifts_nats": shift_summary(shifts),
    }
    (out / "checks.json").write_text(json.dumps(checks, indent=2))
    seeds = len(profile.seeds)
    bars = "seed sd" if seeds > 1 else "standard error over examples"
    plot(rows, out / "fig2.png", f"Figure 2 ({profile.name} profile, {dataset}, {seeds} seed{'s' * (seeds > 1)}; bars: {bars})")
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="infoae reproduce fig2", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default", choices=sorted(PROFILES))
    parser.add_argument("--dataset", default=None, choices=DATASETS,
                        help="default: the profile's (mnist5k; mnist for paper, fashion_mnist for paper_fashion)")
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
    dataset = args.dataset or profile.dataset
    points = len(profile.betas) * len(profile.lambdas) * len(profile.seeds)
    print(f"Figure 2, profile {profile.name!r} on {dataset}: {points} trials of {profile.steps} steps "
          f"(β {list(profile.betas)} × λ {list(profile.lambdas)} × seeds {list(profile.seeds)})", flush=True)
    checks = reproduce(profile, dataset, Path(args.out), args.data_dir, args.workers,
                       Path(args.study_dir) if args.study_dir else None, args.batch_trials)
    print(f"wrote {args.out}/fig2.png, results.csv, estimator_shifts.csv, checks.json in "
          f"{checks['total_wall_seconds_this_invocation']} s")
    for split, surviving in checks["surviving"].items():
        for beta, verdicts in surviving["per_beta"].items():
            each = ", ".join(f"{ESTIMATORS[name]}: {verdict}" for name, verdict in verdicts["verdicts"].items())
            print(f"  {split}, beta={beta}: {verdicts['survives'] or 'estimators disagree'} ({each})")
        print(f"  {split}, the claim for every beta: {surviving['claim_survives'] or 'estimators disagree'} "
              f"({surviving['claim_verdicts']})")
    print("  how far the estimators move each model's NLL (nats, mean over seeds):")
    for point, shifts in checks["estimator_shifts_nats"].items():
        print(f"    {point}: " + ", ".join(f"{k} {v:+.2f}" for k, v in shifts.items()))
    return 0
