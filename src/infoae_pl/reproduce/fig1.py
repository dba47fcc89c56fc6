"""Figure 1 of the paper: β-VAE on a 1-D mixture, estimated mutual information against true NLL.

Five configurations (β = 0.1, 0.2 with and without a 3-nat bound on the MI term, and β = 1) times
several seeds are trained together as one vectorised model (:class:`StackedModules`). Every
``eval_every`` steps the callback records, per copy: the MI estimate the paper plots
(E_q[log p(x|z)] on the training batches, averaged over the last ``smooth_steps`` steps, clipped at
the bound as the bounded runs' loss sees it), its unclipped held-out value, the Barber–Agakov bound
H(x) + E_q[log p(x|z)], the NLL by prior sampling (the paper's estimator) and by quadrature over z
(the accurate one). Claims (1)–(4) of section 4.1 are then checked from these curves. Writes
``fig1.png`` (and ``fig1.pdf``), ``curves.csv`` and ``checks.json``; ``--figures-only`` draws the figure
again from a saved ``curves.csv`` without training.

SIGTERM (a pre-empted cluster job) stops it within seconds, even mid-evaluation: the curves so far go
to ``curves.csv`` and the training state (models, optimiser, curves) to ``preempted.ckpt``, from which
the same command resumes.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import matplotlib.ticker
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch import Tensor

from infoae_pl.data import InfoAEDataModule
from infoae_pl.evaluation.estimators import prior_sampled_log_likelihood, quadrature_log_likelihood
from infoae_pl.models.stacked import StackedModules
from infoae_pl.plotting import new_figure, save_figure
from infoae_pl.preemption import Preempted, SaveOnSigterm, check
from infoae_pl.reproduce.options import DistinctSeeds, positive_int, with_overrides

RUNS: tuple[tuple[float, float | None], ...] = ((0.1, None), (0.2, None), (0.1, 3.0), (0.2, 3.0), (1.0, None))
#: What a pre-empted reproduction leaves in its output folder: the training state, and the profile it is of.
PREEMPTED, PREEMPTED_PROFILE = "preempted.ckpt", "preempted.json"


@dataclass(frozen=True)
class Profile:
    """Everything that sizes a Figure 1 reproduction."""

    name: str
    steps: int
    hidden_dim: int
    lr: float
    warmup_steps: int
    seeds: tuple[int, ...]
    eval_every: int
    nll_examples: int
    prior_samples: int
    quadrature_examples: int
    quadrature_grid: int
    batch_size: int = 500
    warmup_weight: float = 0.01
    activation: str = "leaky_relu"
    init: str = "glorot_uniform"
    std_transform: str = "sigmoid"
    min_std: float = 5e-4
    smooth_steps: int = 100
    early_evals: tuple[int, ...] = field(default=(100, 200, 500))
    log_evals: int = 0
    # (z, x) pairs per decoder call in the NLL estimators: few Python iterations over the quadrature
    # grid, within memory (2^24 pairs: ~6,700 grid points × 2,500 x, 64 MiB per float32 tensor).
    chunk_size: int = 16_384
    mi_bound: float = 3.0

    def eval_steps(self) -> list[int]:
        """When curves are recorded: ``log_evals`` log-spaced steps from 100 (the figure's axis is
        logarithmic), or else ``early_evals`` and every ``eval_every`` steps; always the last step."""
        if self.log_evals:
            points = np.geomspace(min(100, self.steps), self.steps, self.log_evals)
            steps = {int(float(f"{p:.2g}")) for p in points}
        else:
            steps = {s for s in self.early_evals if s < self.steps} | set(range(self.eval_every, self.steps + 1, self.eval_every))
        return sorted(s for s in steps | {self.steps} if 0 < s <= self.steps)


PROFILES: dict[str, Profile] = {
    # Section 4.1 / appendix C.1: 1024 units, Adam 1e-4, batch 500, warm-up 2,000 steps, 100k steps,
    # NLL from 25,000 prior samples on 2,500 held-out x every 1,000 steps. Activation, init and the
    # std floor follow the authors' released code (the paper is silent on them).
    "paper": Profile(
        name="paper", steps=100_000, hidden_dim=1024, lr=1e-4, warmup_steps=2_000, seeds=(0, 1, 2),
        eval_every=1_000, nll_examples=2_500, prior_samples=25_000, quadrature_examples=2_500,
        quadrature_grid=200_001, chunk_size=2**24,
    ),
    # CPU-sized, about 15 minutes on 2 cores for 3 seeds: 128 units and lr 3e-4 (instead of 200-1024
    # and 1e-4) so that 26k steps cover most of the dynamics of the paper's 100k; 24 log-spaced evaluations.
    "default": Profile(
        name="default", steps=26_000, hidden_dim=128, lr=3e-4, warmup_steps=2_000, seeds=(0, 1, 2),
        eval_every=1_000, nll_examples=500, prior_samples=25_000, quadrature_examples=200,
        quadrature_grid=50_001, log_evals=24,
    ),
    # Seconds: exercises the whole pipeline in tests; its claims are not expected to hold.
    "tiny": Profile(
        name="tiny", steps=60, hidden_dim=16, lr=1e-3, warmup_steps=10, seeds=(0, 1),
        eval_every=20, nll_examples=50, prior_samples=500, quadrature_examples=20, quadrature_grid=2_001,
        batch_size=64, smooth_steps=5, early_evals=(5,),
    ),
}


def run_name(beta: float, bound: float | None) -> str:
    """The curve's label, e.g. ``beta=0.1`` or ``beta=0.1,bounded``."""
    return f"beta={beta:g}" + (",bounded" if bound is not None else "")


class Fig1Recorder(L.Callback):
    """Records every copy's MI and NLL curves at the profile's evaluation steps."""

    def __init__(self, profile: Profile, held_out: Tensor, data_entropy: float, runs: list[dict[str, Any]],
                 true_log_density: Tensor) -> None:
        self.profile = profile
        self.held_out = held_out
        self.true_log_density = true_log_density
        self.data_entropy = data_entropy
        self.runs = runs
        self.rows: list[dict[str, Any]] = []
        self.convergence: list[dict[str, Any]] = []
        self._recent: list[Tensor] = []
        self._eval_steps = set(profile.eval_steps())

    def state_dict(self) -> dict[str, Any]:
        """The curves so far and the recent training terms, saved in a pre-empted run's checkpoint."""
        return {"rows": self.rows, "convergence": self.convergence, "recent": [t.cpu() for t in self._recent]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows, self.convergence, self._recent = state_dict["rows"], state_dict["convergence"], state_dict["recent"]

    def on_train_start(self, trainer: L.Trainer, pl_module: StackedModules) -> None:
        step = trainer.global_step  # resumed from a pre-emption in the middle of this step's evaluation
        if step in self._eval_steps and not any(r["step"] == step for r in self.rows):
            self._recent = [t.to(pl_module.device) for t in self._recent]
            self.rows.extend(self.evaluate(pl_module, step))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: StackedModules, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._recent.append(pl_module.last_terms["recon_nll"])
        self._recent = self._recent[-self.profile.smooth_steps :]
        step = trainer.global_step
        if step in self._eval_steps:
            rows = self.evaluate(pl_module, step)
            self.rows.extend(rows)
            summary = "  ".join(
                f"{r['run']}: MI {r['mi_estimate']:.2f} NLL {r['nll_prior_sampling']:.2f}/{r['nll_quadrature']:.2f}"
                for r in rows if r["seed"] == rows[0]["seed"]
            )
            rank_zero_info(f"[fig1 step {step}] seed {rows[0]['seed']}, NLL prior-sampled/quadrature: {summary}")

    @torch.no_grad()
    def evaluate(self, pl_module: StackedModules, step: int) -> list[dict[str, Any]]:
        p = self.profile
        train_log_px_z = -torch.stack(self._recent).mean(0)  # [K], E_q[log p(x|z)] on training batches
        x = self.held_out.to(pl_module.device)
        rows = []
        for i, (model, run) in enumerate(zip(pl_module.unstack(), self.runs)):
            check(pl_module.trainer)  # SIGTERM: stop within one copy's evaluation, not all of them
            model.eval()
            x_eval = x[: p.nll_examples]
            log_px_z = model.decode(model.encode(x_eval).sample()).log_prob(x_eval).mean().item()
            bound = math.inf if run["bound"] is None else run["bound"]
            nll_prior = -prior_sampled_log_likelihood(model, x[: p.nll_examples], p.prior_samples, p.chunk_size).mean().item()
            nll_quad = quadrature_nll_of(model, x[: p.quadrature_examples], p.quadrature_grid, p.chunk_size)
            if step == p.steps:  # is the grid fine enough? The last models are the most deterministic.
                finer = quadrature_nll_of(model, x[: p.quadrature_examples], 4 * p.quadrature_grid - 3, p.chunk_size)
                self.convergence.append({**run, "grid": p.quadrature_grid, "nll": nll_quad,
                                         "finer_grid": 4 * p.quadrature_grid - 3, "finer_nll": finer})
            rows.append({
                "step": step, **run,
                "true_nll_prior_sampling_points": -self.true_log_density[: p.nll_examples].mean().item(),
                "true_nll_quadrature_points": -self.true_log_density[: p.quadrature_examples].mean().item(),
                "mi_estimate": min(train_log_px_z[i].item(), bound),
                "heldout_log_px_z": log_px_z,
                "mi_barber_agakov": self.data_entropy + log_px_z,
                "nll_prior_sampling": nll_prior,
                "nll_quadrature": nll_quad,
                "kl": pl_module.last_terms["kl"][i].item(),
            })
        return rows


def quadrature_nll_of(model: Any, x: Tensor, grid: int, chunk_size: int) -> float:
    """Mean NLL by quadrature over z on ``grid`` points in [−7, 7] (p(z) beyond is below 1e-11)."""
    return -quadrature_log_likelihood(
        model, x, grid_size=grid, z_range=(-7.0, 7.0), chunk_size=chunk_size
    ).mean().item()


def build_model(profile: Profile) -> tuple[StackedModules, list[dict[str, Any]]]:
    """The 5 × len(seeds) stacked β-VAEs of the figure and the description of each copy."""
    shared = dict(
        data_dim=1, latent_dim=1, likelihood="gaussian", hidden_dim=profile.hidden_dim, num_hidden_layers=2,
        activation=profile.activation, init=profile.init, std_transform=profile.std_transform,
        min_std=profile.min_std, lr=profile.lr, kl_warmup_steps=profile.warmup_steps,
        kl_warmup_weight=profile.warmup_weight,
    )
    copies, names, seeds, runs = [], [], [], []
    for seed in profile.seeds:
        for beta, bound in RUNS:
            bound = None if bound is None else profile.mi_bound
            copies.append({"beta": beta, "mi_bound": bound})
            names.append(f"{run_name(beta, bound)},seed={seed}")
            seeds.append(1000 * seed + len(copies))
            runs.append({"run": run_name(beta, bound), "beta": beta, "bound": bound, "seed": seed})
    model = StackedModules("infoae_pl.models.BetaELBO", shared, copies, names=names, seeds=seeds)
    return model, runs


def train(profile: Profile, progress: bool = True, out: Path | None = None) -> tuple[Fig1Recorder, float, float]:
    """Train the figure's copies; returns the recorder (curves), the data entropy and the wall time in seconds.
    With ``out``: SIGTERM saves the curves so far and the training state there, and a later call resumes from it."""
    L.seed_everything(0, workers=True, verbose=False)
    data = InfoAEDataModule(
        dataset="mog1d", batch_size=profile.batch_size, steps_per_epoch=profile.steps,
        val_size=max(profile.nll_examples, profile.quadrature_examples), seed=0,
    )
    data.setup("fit")
    held_out = torch.cat([batch[0] for batch in data.val_dataloader()])
    model, runs = build_model(profile)
    recorder = Fig1Recorder(profile, held_out, data.data_entropy, runs, data.mixture.log_prob(held_out))
    save = SaveOnSigterm(None if out is None else out / PREEMPTED)
    trainer = L.Trainer(
        max_steps=profile.steps, max_epochs=1, accelerator="auto", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=progress, enable_model_summary=False, limit_val_batches=0,
        callbacks=[recorder, *([save] if out is not None else [])],
    )
    resume = None if out is None else preempted_state(profile, out)
    if resume is not None:
        print(f"resuming from {resume} (a pre-empted run of this profile)", flush=True)
    start = time.perf_counter()
    try:
        trainer.fit(model, datamodule=data, ckpt_path=resume)
    except SIGTERMException as stop:
        if out is None:
            raise
        if recorder.rows:
            write_curves(recorder.rows, out / "curves.csv")
        if save.saved:
            (out / PREEMPTED_PROFILE).write_text(json.dumps(asdict(profile)))
        done = f" at step {save.saved[1]}; state saved in {save.saved[0]}" if save.saved else ""
        raise Preempted(f"pre-empted (SIGTERM){done}; curves so far in {out / 'curves.csv'}") from stop
    return recorder, float(data.data_entropy), time.perf_counter() - start


def preempted_state(profile: Profile, out: Path) -> Path | None:
    """The state a pre-empted run of ``profile`` left in ``out``; a ValueError if ``out`` holds one of
    another profile (resuming it with other settings would mix two runs' curves)."""
    state, saved = out / PREEMPTED, out / PREEMPTED_PROFILE
    if not (state.is_file() and saved.is_file()):
        return None
    theirs, ours = json.loads(saved.read_text()), json.loads(json.dumps(asdict(profile)))
    if theirs != ours:
        changed = ", ".join(f"{k} {theirs.get(k)} (now {v})" for k, v in ours.items() if theirs.get(k) != v)
        raise ValueError(f"{out} holds a pre-empted run with other settings ({changed}): re-run with those to "
                         f"resume it, or choose another --out")
    return state


# Claims ---------------------------------------------------------------------------------------
def _curves(rows: list[dict[str, Any]], run: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps and a [seeds, steps] array of ``key`` for one run."""
    seeds = sorted({r["seed"] for r in rows if r["run"] == run})
    steps = sorted({r["step"] for r in rows if r["run"] == run})
    table = {(r["seed"], r["step"]): r[key] for r in rows if r["run"] == run}
    return np.array(steps), np.array([[table[(s, t)] for t in steps] for s in seeds], dtype=float)


def check_claims(rows: list[dict[str, Any]], nll_key: str = "nll_prior_sampling", bound: float = 3.0,
                 warmup_steps: int = 0) -> dict[str, Any]:
    """Claims (1)–(4) of section 4.1, each with the numbers behind it, judged per seed and on the mean.

    (1) unbounded β < 1 reaches an MI estimate at least 1 nat above β = 1's final one;
    (2) while its MI grows (before it first reaches 90% of its maximum), its NLL exceeds β = 1's at
        the same step by more than 0.5 nats somewhere;
    (3) once β is in force (after the warm-up), its NLL falls from its peak: the final NLL recovers at
        least half of the excess (peak − β = 1's final NLL);
    (4) bounded runs keep the held-out E_q[log p(x|z)] at most 0.25 nats above the bound after the
        warm-up, and end with an NLL within 0.5 nats of β = 1's final NLL.
    A claim holds when it holds for every seed.
    """
    steps, ref_nll = _curves(rows, "beta=1", nll_key)
    _, ref_mi = _curves(rows, "beta=1", "mi_estimate")
    ref_final_nll, ref_final_mi = ref_nll[:, -1], ref_mi[:, -1]
    claims: dict[str, Any] = {}
    for beta in (0.1, 0.2):
        run = run_name(beta, None)
        _, mi = _curves(rows, run, "mi_estimate")
        _, nll = _curves(rows, run, nll_key)
        max_mi = mi.max(axis=1)
        c1 = max_mi - ref_final_mi
        growth_end = np.array([int(np.argmax(m >= 0.9 * m.max())) for m in mi])
        excess = np.array([(n[: g + 1] - r[: g + 1]).max() for n, r, g in zip(nll, ref_nll, growth_end)])
        after_warmup = steps > warmup_steps
        peak = nll[:, after_warmup].max(axis=1)
        peak_step = steps[after_warmup][nll[:, after_warmup].argmax(axis=1)]
        final = nll[:, -1]
        recovered = (peak - final) / np.maximum(peak - ref_final_nll, 1e-9)
        claims[f"1_mi_far_larger:{run}"] = {
            "holds": bool((c1 >= 1.0).all()), "max_mi_per_seed": max_mi.tolist(),
            "beta1_final_mi_per_seed": ref_final_mi.tolist(), "margin_nats_per_seed": c1.tolist(), "threshold": 1.0,
        }
        claims[f"2_nll_worse_while_mi_grows:{run}"] = {
            "holds": bool((excess > 0.5).all()), "growth_end_step_per_seed": steps[growth_end].tolist(),
            "max_nll_excess_over_beta1_per_seed": excess.tolist(), "threshold": 0.5,
        }
        claims[f"3_nll_improves_after:{run}"] = {
            "holds": bool(((recovered >= 0.5) & (peak - final > 0)).all()),
            "peak_nll_per_seed": peak.tolist(), "peak_step_per_seed": peak_step.tolist(),
            "final_nll_per_seed": final.tolist(), "fraction_of_excess_recovered_per_seed": recovered.tolist(),
            "threshold": 0.5,
        }
        run_b = run_name(beta, bound)
        steps_b, held = _curves(rows, run_b, "heldout_log_px_z")
        _, nll_b = _curves(rows, run_b, nll_key)
        after = steps_b > warmup_steps
        max_over = held[:, after].max(axis=1) - bound
        gap = nll_b[:, -1] - ref_final_nll
        claims[f"4_bounded_stays_and_matches:{run_b}"] = {
            "holds": bool((max_over <= 0.25).all() and (np.abs(gap) <= 0.5).all()),
            "max_heldout_mi_over_bound_per_seed": max_over.tolist(), "bound": bound, "tolerance": 0.25,
            "final_nll_per_seed": nll_b[:, -1].tolist(), "beta1_final_nll_per_seed": ref_final_nll.tolist(),
            "final_nll_gap_per_seed": gap.tolist(), "gap_threshold": 0.5,
        }
    return claims


# Outputs --------------------------------------------------------------------------------------
def write_curves(rows: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def read_curves(path: Path) -> list[dict[str, Any]]:
    numeric = {"step": int, "seed": int}
    rows = []
    with path.open() as f:
        for row in csv.DictReader(f):
            rows.append({k: (numeric[k](v) if k in numeric else (v if k == "run" else (None if v == "" else float(v))))
                         for k, v in row.items()})
    return rows


COLOURS = {0.1: "tab:blue", 0.2: "tab:orange", 1.0: "tab:green"}
#: The three panels: curve key, title, y label, log-scaled y.
PANELS = (
    ("mi_estimate", "(a) estimated mutual information", r"$E_q[\log p(x|z)]$ (nats)", False),
    ("nll_prior_sampling", "(b) NLL by prior sampling (the paper's estimator)", "NLL (nats)", True),
    ("nll_quadrature", "(c) NLL by quadrature over z (accurate)", "NLL (nats)", True),
)


def legend_label(beta: float, bound: float | None) -> str:
    r"""A run's legend entry with β in mathtext, e.g. ``$\beta = 0.1$, MI bounded at 3``."""
    return rf"$\beta = {beta:g}$" + (f", MI bounded at {bound:g}" if bound is not None else "")


def figure_title(profile_name: str, seeds: int) -> str:
    """The figure's title: the profile, and what lines and bands show when there are several seeds."""
    return (f"Figure 1: β-VAE on the 1-D mixture ({profile_name} profile; "
            + (f"lines: mean of {seeds} seeds, bands: min–max)" if seeds > 1 else "1 seed)"))


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Three panels like the paper's: MI, and the NLL by each estimator (log scale), against the iteration
    (log scale); each run's mean over seeds, with a light min–max band; written as PNG and PDF."""
    figure = new_figure(15.0, 4.6, layout="constrained")
    axes = figure.subplots(1, 3)
    for ax, (key, panel_title, label, log_y) in zip(axes, PANELS):
        if key.startswith("nll"):
            best = rows[0][f"true_{key}_points"]
            ax.axhline(best, color="k", lw=0.9, ls=":", label=f"true density on these x: {best:.2f} nats")
        for beta, bound in dict.fromkeys((r["beta"], r["bound"]) for r in rows):  # the runs, in RUNS' order
            steps, values = _curves(rows, run_name(beta, bound), key)
            ax.plot(steps, values.mean(0), color=COLOURS[beta], ls="--" if bound is not None else "-", lw=1.6,
                    label=legend_label(beta, bound))
            if len(values) > 1:
                ax.fill_between(steps, values.min(0), values.max(0), color=COLOURS[beta], alpha=0.07, lw=0)
        ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.0)))
            ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
            ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(panel_title)
        ax.set_xlabel("iteration")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=9)
    for ax in axes[1:]:
        ax.legend(fontsize=9, handles=ax.get_legend_handles_labels()[0][:1])
    figure.suptitle(title)
    save_figure(figure, path, dpi=110)


def redraw(out: Path) -> Path:
    """Draw ``fig1.png`` (and its PDF) again from the ``curves.csv`` saved in ``out``, without training;
    the title names the profile recorded in ``checks.json`` when there is one."""
    curves = out / "curves.csv"
    if not curves.is_file():
        raise FileNotFoundError(f"--figures-only draws from {curves}, which does not exist: run the reproduction first")
    rows = read_curves(curves)
    checks = out / "checks.json"
    name = json.loads(checks.read_text())["profile"]["name"] if checks.is_file() else "saved"
    plot(rows, out / "fig1.png", figure_title(name, len({r["seed"] for r in rows})))
    return out / "fig1.png"


def reproduce(profile: Profile, out: Path, progress: bool = True) -> dict[str, Any]:
    """Train, then write ``fig1.png`` (and ``fig1.pdf``), ``curves.csv`` and ``checks.json`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    recorder, entropy, seconds = train(profile, progress=progress, out=out)
    rows = recorder.rows
    write_curves(rows, out / "curves.csv")
    worst = max(recorder.convergence, key=lambda c: abs(c["finer_nll"] - c["nll"]))
    checks = {
        "profile": asdict(profile),
        "wall_time_seconds": round(seconds, 1),
        "data_entropy_nats": entropy,
        "quadrature_convergence": {
            "max_abs_change_with_4x_finer_grid_nats": abs(worst["finer_nll"] - worst["nll"]), "worst": worst,
            "all": recorder.convergence,
        },
        "claims_on_prior_sampling_nll": check_claims(rows, "nll_prior_sampling", profile.mi_bound, profile.warmup_steps),
        "claims_on_quadrature_nll": check_claims(rows, "nll_quadrature", profile.mi_bound, profile.warmup_steps),
    }
    checks["all_hold_prior_sampling"] = all(c["holds"] for c in checks["claims_on_prior_sampling_nll"].values())
    checks["all_hold_quadrature"] = all(c["holds"] for c in checks["claims_on_quadrature_nll"].values())
    (out / "checks.json").write_text(json.dumps(checks, indent=2))
    plot(rows, out / "fig1.png", figure_title(profile.name, len(profile.seeds)))
    for name in (PREEMPTED, PREEMPTED_PROFILE):  # the complete outputs supersede a pre-empted run's state
        (out / name).unlink(missing_ok=True)
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="infoae reproduce fig1", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default", choices=sorted(PROFILES))
    parser.add_argument("--out", default="reproduce/fig1", help="output folder (default: reproduce/fig1)")
    parser.add_argument("--steps", type=positive_int, help="override the profile's number of steps")
    parser.add_argument("--seeds", type=int, nargs="+", action=DistinctSeeds, help="override the profile's seeds (e.g. --seeds 0)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--figures-only", action="store_true",
                        help="no training: draw fig1.png and fig1.pdf again from the curves.csv saved in --out")
    args = parser.parse_args(argv)
    if args.figures_only:
        print(f"wrote {redraw(Path(args.out))} and its PDF from {args.out}/curves.csv")
        return 0
    profile = with_overrides(PROFILES[args.profile], seeds=args.seeds, steps=args.steps)
    try:
        preempted_state(profile, Path(args.out))
    except ValueError as error:
        parser.error(str(error))
    print(f"Figure 1, profile {profile.name!r}: {len(RUNS)} runs x {len(profile.seeds)} seeds, "
          f"{profile.steps} steps, trained together")
    checks = reproduce(profile, Path(args.out), progress=not args.no_progress)
    print(f"wrote {args.out}/fig1.png, curves.csv, checks.json in {checks['wall_time_seconds']} s")
    for which in ("prior_sampling", "quadrature"):
        for name, claim in checks[f"claims_on_{which}_nll"].items():
            print(f"  [{'held' if claim['holds'] else 'FAILED'}] {name} (NLL by {which.replace('_', ' ')})")
    return 0
