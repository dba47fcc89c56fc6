"""Learned against fixed multipliers (section 4.1): the MI / consistency trade-off of InfoVAE-type objectives.

Both sides train ``LagrangianModule`` on L = −I_q + λ_ELBO·(−ELBO) + λ_MMD·MMD(q(z)‖p(z)) with λ_MMD
fixed: the fixed-λ runs take λ_ELBO from a grid, the learned-λ runs are given a budget −ELBO ≤ ε and
learn λ_ELBO ≥ 0 by projected ascent.  Each run is measured on held-out data: the −ELBO (consistency)
and the rate E_q[KL(q(z|x)‖p(z))], which bounds I_q from above and equals it when q(z) = p(z), as the
MMD term enforces (the aggregate-posterior estimate saturates at log N, far below these values).
Writes ``pareto.png`` (and ``pareto.pdf``), ``results.csv`` and ``checks.json``: which budgets end active,
and whether each learned point lies on the front of the fixed grid (no fixed run has both a lower −ELBO
and a higher rate). ``--figures-only`` draws the figure again from a saved ``results.csv`` without training.

SIGTERM (a pre-empted cluster job) stops it within seconds: the finished runs' rows and the running
run's checkpoint go to ``preempted.json`` and ``preempted.ckpt``, from which the same command resumes.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch.distributions import kl_divergence

from infoae_pl.data import InfoAEDataModule
from infoae_pl.evaluation.estimators import elbo
from infoae_pl.models import LagrangianModule
from infoae_pl.plotting import new_figure, save_figure, spread_labels
from infoae_pl.preemption import Preempted, SaveOnSigterm
from infoae_pl.reproduce.options import positive_int, with_overrides


@dataclass(frozen=True)
class Profile:
    """Everything that sizes the learned-against-fixed comparison."""

    name: str
    dataset: str
    fixed_lambdas: tuple[float, ...]
    budgets: tuple[float, ...]
    mmd_lambda: float
    steps: int
    hidden_dim: int
    latent_dim: int
    eval_examples: int
    seed: int = 0


PROFILES = {
    "default": Profile("default", "mnist5k", (1.1, 1.25, 1.5, 2.0, 4.0), (100.0, 110.0, 125.0, 150.0), 1000.0,
                       2500, 512, 32, 500),
    "paper": Profile("paper", "mnist", (1.05, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0), (90.0, 95.0, 100.0, 110.0, 125.0, 150.0),
                     1000.0, 100_000, 1024, 50, 10_000),
    "tiny": Profile("tiny", "mnist5k", (1.25, 2.0), (150.0,), 1000.0, 8, 32, 4, 50),
}


def build(profile: Profile, fixed_lambda: float | None, budget: float | None) -> LagrangianModule:
    """A fixed-λ run (``fixed_lambda``) or a learned-λ run (``budget``), otherwise identical."""
    objective = {"I_q": -1.0, "MMD(q(z)||p(z))": profile.mmd_lambda}
    options: dict[str, Any] = dict(
        mmd_kernel_bandwidth="dim_squared", latent_dim=profile.latent_dim, hidden_dim=profile.hidden_dim,
        likelihood="bernoulli", activation="tanh", lr=1e-3,
    )
    if budget is None:  # −ELBO is the `elbo` preset, KL(q(x|z)||p(x|z)) + KL(q(z)||p(z)), up to H(x)
        fixed = {"KL(q(x|z)||p(x|z))": fixed_lambda, "KL(q(z)||p(z))": fixed_lambda}
        return LagrangianModule(lagrangian={**objective, **fixed}, **options)
    constraint = {"neg_elbo": {"preset": "elbo", "epsilon": budget, "initial": 2.0}}
    return LagrangianModule(lagrangian=objective, constraints=constraint, multiplier_optimizer="adam",
                            multiplier_lr=0.05, **options)


@torch.no_grad()
def measure(model: LagrangianModule, x: torch.Tensor) -> dict[str, float]:
    """−ELBO (10 samples per x) and the rate E_q[KL(q(z|x)‖p(z))] on held-out ``x``, in nats."""
    torch.manual_seed(0)
    model.eval()
    neg_elbo = -elbo(model, x, num_samples=10).mean()
    rate = kl_divergence(model.encode(x), model.prior()).mean()
    return {"neg_elbo": float(neg_elbo), "rate": float(rate)}


#: What a pre-empted reproduction leaves in its output folder: the running run's state, and the
#: profile with the finished runs' rows.
PREEMPTED, PREEMPTED_ROWS = "preempted.ckpt", "preempted.json"


def train(model: LagrangianModule, profile: Profile, data_dir: str | None, save: SaveOnSigterm | None = None,
          resume: Path | None = None) -> float:
    """Train one run; ``save`` checkpoints it on SIGTERM, ``resume`` continues a pre-empted one."""
    L.seed_everything(profile.seed, verbose=False)
    datamodule = InfoAEDataModule(dataset=profile.dataset, data_dir=data_dir, binarize="dynamic", batch_size=100)
    trainer = L.Trainer(max_steps=profile.steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, devices=1, callbacks=[save] if save else None)
    start = time.perf_counter()
    trainer.fit(model, datamodule, ckpt_path=resume)
    return time.perf_counter() - start


def preempted_rows(profile: Profile, out: Path) -> tuple[list[dict[str, Any]], Path | None]:
    """The finished rows and the running run's checkpoint a pre-empted run of ``profile`` left in ``out``;
    a ValueError if ``out`` holds one of another profile."""
    saved = out / PREEMPTED_ROWS
    if not saved.is_file():
        return [], None
    note = json.loads(saved.read_text())
    ours = json.loads(json.dumps(asdict(profile)))
    if note["profile"] != ours:
        changed = ", ".join(f"{k} {note['profile'].get(k)} (now {v})" for k, v in ours.items()
                            if note["profile"].get(k) != v)
        raise ValueError(f"{out} holds a pre-empted run with other settings ({changed}): re-run with those to "
                         "resume it, or choose another --out")
    checkpoint = out / PREEMPTED
    return note["rows"], checkpoint if checkpoint.is_file() else None


def held_out(profile: Profile, data_dir: str | None) -> torch.Tensor:
    datamodule = InfoAEDataModule(dataset=profile.dataset, data_dir=data_dir, binarize="static", seed=0)
    datamodule.setup("test")
    return torch.cat([x for x, _ in datamodule.test_dataloader()])[: profile.eval_examples]


def front_check(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per learned run: active or slack, and whether a fixed run dominates it (lower −ELBO, higher rate)."""
    fixed = [r for r in rows if r["kind"] == "fixed"]
    out = {}
    for row in (r for r in rows if r["kind"] == "learned"):
        dominated_by = [f["lambda_elbo"] for f in fixed if f["neg_elbo"] < row["neg_elbo"] and f["rate"] > row["rate"]]
        out[f"epsilon={row['epsilon']:g}"] = {
            "neg_elbo": row["neg_elbo"], "rate": row["rate"], "learned_lambda": row["lambda_elbo"],
            "status": row["status"], "dominated_by_fixed_lambdas": dominated_by, "on_front": not dominated_by,
        }
    return {"per_budget": out, "all_on_front": all(v["on_front"] for v in out.values())}


X_LABEL = "−ELBO on held-out data (nats): consistency"
Y_LABEL = r"rate $E_q\,$KL(q(z|x)‖p(z)) ≥ $I_q$ (nats)"


def point_label(row: dict[str, Any]) -> str:
    """``λ=1.5`` for a fixed run; ``ε=100: λ→34`` for a learned one (``slack`` when its budget ends slack)."""
    if row["kind"] == "fixed":
        return f"λ={row['lambda_elbo']:g}"
    return f"ε={row['epsilon']:g}: λ→{row['lambda_elbo']:.2g}" + (" (slack)" if row.get("status") == "slack" else "")


def zoom_box(rows: list[dict[str, Any]]) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1) of the zoom on the fixed-λ grid, where the runs crowd: its extent with a margin of
    15% (at least 2 nats), widened on the left for the learned runs' labels and on the right for the fixed
    runs'; learned points outside it are shown in the overview only."""
    fixed = [r for r in rows if r["kind"] == "fixed"] or rows
    xs, ys = [r["neg_elbo"] for r in fixed], [r["rate"] for r in fixed]
    pad_x, pad_y = max(2.0, 0.15 * (max(xs) - min(xs))), max(2.0, 0.15 * (max(ys) - min(ys)))
    width = max(xs) - min(xs) + 2 * pad_x
    return min(xs) - pad_x - 0.45 * width, max(xs) + pad_x + 0.15 * width, min(ys) - pad_y, max(ys) + pad_y


def _inside(row: dict[str, Any], box: tuple[float, float, float, float]) -> bool:
    return box[0] <= row["neg_elbo"] <= box[1] and box[2] <= row["rate"] <= box[3]


def _draw_runs(ax: Any, rows: list[dict[str, Any]]) -> None:
    """The fixed grid as a line, the learned runs as stars and each budget ε as a dotted line."""
    fixed = sorted((r for r in rows if r["kind"] == "fixed"), key=lambda r: r["neg_elbo"])
    ax.plot([r["neg_elbo"] for r in fixed], [r["rate"] for r in fixed], "o-", color="tab:blue", ms=5,
            label="fixed λ (grid)")
    learned = [r for r in rows if r["kind"] == "learned"]
    ax.plot([r["neg_elbo"] for r in learned], [r["rate"] for r in learned], "*", ms=13, color="tab:red",
            label="learned λ (budget ε)")
    for i, r in enumerate(learned):
        ax.axvline(r["epsilon"], color="tab:red", lw=0.7, ls=":", alpha=0.7,
                   label="budget ε on the training −ELBO" if i == 0 else None)
    ax.set_xlabel(X_LABEL)
    ax.grid(alpha=0.3)


def _label_points(ax: Any, rows: list[dict[str, Any]], side: str, limits: tuple[float, float, float, float]) -> None:
    """Label ``rows`` on one ``side`` of their points ("left"/"right"), the labels moved apart vertically
    (at least 7% of the panel's height) and joined to their points by thin lines."""
    x0, x1, y0, y1 = limits
    heights = spread_labels([r["rate"] for r in rows], 0.07 * (y1 - y0))
    sign = -1 if side == "left" else 1
    for row, height in zip(rows, heights):
        colour = "tab:blue" if row["kind"] == "fixed" else "tab:red"
        ax.annotate(point_label(row), (row["neg_elbo"], row["rate"]), xytext=(row["neg_elbo"] + sign * 0.06 * (x1 - x0), height),
                    textcoords="data", ha="right" if side == "left" else "left", va="center", fontsize=9, color=colour,
                    arrowprops={"arrowstyle": "-", "color": colour, "lw": 0.6, "shrinkA": 1, "shrinkB": 4})


def pareto_figure(rows: list[dict[str, Any]], title: str) -> Figure:
    """The rate against the held-out −ELBO of every run, labelled without overlaps: where learned points lie
    far from the fixed grid, an overview of all runs (left) beside a zoom on the grid (right)."""
    box = zoom_box(rows)
    inside = [r for r in rows if _inside(r, box)]
    outside = [r for r in rows if not _inside(r, box)]
    figure = new_figure(13.0 if outside else 7.5, 5.2, layout="constrained")
    axes = figure.subplots(1, 2 if outside else 1, squeeze=False, width_ratios=[1, 1.3] if outside else None)[0]
    zoom = axes[-1]
    _draw_runs(zoom, rows)
    limits = x0, x1, y0, y1 = box
    zoom.set_xlim(x0, x1)
    zoom.set_ylim(y0, y1)
    _label_points(zoom, [r for r in inside if r["kind"] == "fixed"], "right", limits)
    _label_points(zoom, [r for r in inside if r["kind"] == "learned"], "left", limits)
    zoom.set_ylabel(Y_LABEL)
    zoom.legend(loc="lower right", fontsize=9)
    if outside:
        overview = axes[0]
        _draw_runs(overview, rows)
        overview.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ls="--", lw=0.9, color="0.4"))
        overview.annotate("zoom (right)", (x1, y0), xytext=(4, 2), textcoords="offset points", fontsize=9, color="0.3")
        xs, ys = [r["neg_elbo"] for r in rows] + [x0, x1], [r["rate"] for r in rows] + [y0, y1]
        span_x, span_y = max(xs) - min(xs), max(ys) - min(ys)
        overview_limits = (min(xs) - 0.04 * span_x, max(xs) + 0.06 * span_x, min(ys) - 0.05 * span_y,
                           max(ys) + 0.08 * span_y)
        overview.set_xlim(overview_limits[0], overview_limits[1])
        overview.set_ylim(overview_limits[2], overview_limits[3])
        _label_points(overview, outside, "left", overview_limits)
        overview.set_ylabel(Y_LABEL)
        overview.set_title("all runs")
        zoom.set_title("zoom on the fixed-λ grid")
    figure.suptitle(title)
    return figure


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Write :func:`pareto_figure` to ``path`` (PNG) and beside it as PDF."""
    save_figure(pareto_figure(rows, title), path, dpi=110)


def redraw(out: Path) -> Path:
    """Draw ``pareto.png`` (and its PDF) again from the ``results.csv`` saved in ``out``, without training;
    the title names the profile recorded in ``checks.json`` when there is one."""
    results = out / "results.csv"
    if not results.is_file():
        raise FileNotFoundError(f"--figures-only draws from {results}, which does not exist: run the reproduction first")
    rows = [{k: v if k in ("kind", "status") else (float(v) if v != "" else None) for k, v in row.items()}
            for row in csv.DictReader(results.open())]
    checks = out / "checks.json"
    profile = json.loads(checks.read_text())["profile"] if checks.is_file() else None
    plot(rows, out / "pareto.png", figure_title(profile))
    return out / "pareto.png"


def figure_title(profile: dict[str, Any] | None) -> str:
    """The figure's title, naming the profile, dataset and seed where known."""
    if profile is None:
        return "learned vs fixed λ"
    return f"learned vs fixed λ ({profile['name']} profile, {profile['dataset']}, seed {profile['seed']})"


def reproduce(profile: Profile, out: Path, data_dir: str | None = None) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    x = held_out(profile, data_dir)
    runs = [("fixed", lam, None) for lam in profile.fixed_lambdas] + [("learned", None, eps) for eps in profile.budgets]
    rows, resume = preempted_rows(profile, out)
    if rows or resume:
        print(f"  resuming a pre-empted run: {len(rows)} of {len(runs)} runs done", flush=True)
    for kind, lam, eps in runs[len(rows):]:
        torch.manual_seed(profile.seed)  # every run starts from the same weights (the first used to be unseeded)
        model = build(profile, lam, eps)
        save = SaveOnSigterm(out / PREEMPTED)
        try:
            seconds = train(model, profile, data_dir, save, resume)
        except SIGTERMException as stop:
            (out / PREEMPTED_ROWS).write_text(json.dumps({"profile": asdict(profile), "rows": rows}))
            at = f" at step {save.saved[1]} of run {len(rows) + 1}" if save.saved else ""
            raise Preempted(f"pre-empted (SIGTERM){at}; {len(rows)} finished runs and the running one's state "
                            f"kept in {out}") from stop
        resume = None
        (out / PREEMPTED).unlink(missing_ok=True)  # used: a later pre-emption must not resume another run from it
        row = {"kind": kind, "epsilon": eps, "lambda_elbo": lam, "seconds": round(seconds, 1), **measure(model, x)}
        if kind == "learned":
            (table,) = model.multipliers.table()
            row.update(lambda_elbo=table["lambda"], status=table["status"], train_neg_elbo=table["value"])
        rows.append(row)
        print(f"  {kind} {'λ=' + format(lam, 'g') if lam is not None else 'ε=' + format(eps, 'g')}: "
              f"-ELBO {row['neg_elbo']:.2f}, rate {row['rate']:.2f}"
              + (f", learned λ {row['lambda_elbo']:.3g} ({row['status']})" if kind == "learned" else "")
              + f" ({seconds:.0f} s)", flush=True)
    with (out / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["kind", "epsilon", "lambda_elbo", "status", "neg_elbo", "train_neg_elbo",
                                         "rate", "seconds"], restval="")
        writer.writeheader()
        writer.writerows(rows)
    checks = {"profile": asdict(profile), **front_check(rows),
              "wall_seconds": round(sum(r["seconds"] for r in rows), 1)}
    (out / "checks.json").write_text(json.dumps(checks, indent=2))
    plot(rows, out / "pareto.png", figure_title(asdict(profile)))
    for name in (PREEMPTED, PREEMPTED_ROWS):  # the complete outputs supersede a pre-empted run's state
        (out / name).unlink(missing_ok=True)
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="infoae reproduce lagrangian", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default", choices=sorted(PROFILES))
    parser.add_argument("--data-dir", default=None, help="folder of the MNIST IDX files (paper profile)")
    parser.add_argument("--steps", type=positive_int, help="override the profile's training steps")
    parser.add_argument("--out", default="reproduce/lagrangian", help="output folder (default: reproduce/lagrangian)")
    parser.add_argument("--figures-only", action="store_true",
                        help="no training: draw pareto.png and pareto.pdf again from the results.csv saved in --out")
    args = parser.parse_args(argv)
    if args.figures_only:
        print(f"wrote {redraw(Path(args.out))} and its PDF from {args.out}/results.csv")
        return 0
    profile = with_overrides(PROFILES[args.profile], steps=args.steps)
    try:
        preempted_rows(profile, Path(args.out))
    except ValueError as error:
        parser.error(str(error))
    print(f"learned vs fixed λ, profile {profile.name!r} on {profile.dataset}: {len(profile.fixed_lambdas)} fixed "
          f"and {len(profile.budgets)} learned runs of {profile.steps} steps", flush=True)
    checks = reproduce(profile, Path(args.out), args.data_dir)
    print(f"wrote {args.out}/pareto.png, results.csv, checks.json ({checks['wall_seconds']} s of training)")
    for name, check in checks["per_budget"].items():
        print(f"  {name}: {check['status']}, learned λ {check['learned_lambda']:.3g}, "
              f"{'on the front' if check['on_front'] else 'dominated by fixed λ ' + str(check['dominated_by_fixed_lambdas'])}")
    return 0
