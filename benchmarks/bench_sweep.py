"""Sweep throughput: trials per hour with 1 and 2 workers, and the sweep's overhead per trial.

The study is tiny on purpose (a 32-unit β-VAE on the 1-D mixture, ``--steps`` steps per trial) so
that the machinery shows: the overhead is a trial's wall time in a 1-worker sweep minus the time
of the same run through ``infoae fit`` (W&B run, journal storage, Optuna bookkeeping included).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import yaml
from common import report

from infoae_pl.cli import main as infoae
from infoae_pl.tuning import load_study, run_sweep


def base_config(steps: int) -> dict:
    return {
        "seed_everything": 0,
        "model": {"class_path": "infoae_pl.models.BetaELBO",
                  "init_args": {"latent_dim": 1, "likelihood": "gaussian", "hidden_dim": 32, "lr": 0.003}},
        "data": {"dataset": "mog1d", "batch_size": 200, "steps_per_epoch": steps, "val_size": 500, "test_size": 500},
        "trainer": {"max_steps": steps, "log_every_n_steps": 50, "enable_progress_bar": False,
                    "enable_model_summary": False,
                    "callbacks": [{"class_path": "infoae_pl.evaluation.EvaluationCallback",
                                   "init_args": {"nll_estimator": "quadrature", "quadrature_grid_size": 2001,
                                                 "quadrature_z_range": [-7.0, 7.0]}}]},
    }


def write_study(folder: Path, name: str, trials: int) -> Path:
    study = {
        "study_name": name, "base_config": "base.yaml", "n_trials": trials, "output_dir": str(folder / name),
        "search_space": {"model.init_args.beta": {"type": "float", "low": 0.1, "high": 5.0, "log": True}},
        "objectives": [{"metric": "val/nll", "direction": "minimize"}], "sampler": {"name": "random", "seed": 0},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps per trial")
    parser.add_argument("--trials", type=int, default=8, help="trials per study")
    parser.add_argument("--fit-repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "base.yaml").write_text(yaml.safe_dump(base_config(args.steps)))
        fits = []
        for i in range(args.fit_repeats):
            start = time.perf_counter()
            infoae(["fit", "--config", str(folder / "base.yaml"), "--trainer.logger.init_args.save_dir",
                    str(folder / f"fit{i}"), "--model.init_args.beta", "1.0"])
            fits.append(time.perf_counter() - start)
        fit_seconds = statistics.median(fits)
        rows, per_trial = [], {}
        for workers in (1, 2):
            path = write_study(folder, f"bench_{workers}w", args.trials)
            start = time.perf_counter()
            run_sweep(load_study(path), workers=workers, report=False)
            wall = time.perf_counter() - start
            per_trial[workers] = wall / args.trials
            rows.append({"workers": workers, "trials": args.trials, "wall_s": wall,
                         "trials_per_hour": 3600 * args.trials / wall, "s_per_trial": wall / args.trials})
    overhead = per_trial[1] - fit_seconds
    report("bench_sweep", rows, {
        "infoae_fit_s_median": fit_seconds, "infoae_fit_s_all": fits,
        "sweep_overhead_s_per_trial": overhead, "sweep_overhead_fraction": overhead / fit_seconds,
        "speedup_2_workers": per_trial[1] / per_trial[2], "steps_per_trial": args.steps,
        "cpu_cores": len(os.sched_getaffinity(0)),
    }, args.out)


if __name__ == "__main__":
    main()
