"""A study's report without W&B: figures (PNG), the best trials (CSV) and one HTML page with both.

Single objective: optimisation history, parameter importances, and the objective against each
parameter. Several objectives: the Pareto front (first two objectives) and one history each.
"""

from __future__ import annotations

import csv
import html
import os
import warnings
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import optuna
from optuna.trial import FrozenTrial, TrialState
from optuna.visualization import matplotlib as optuna_plots

from infoae_pl.tuning.spec import StudySpec

BEST_TRIALS_SHOWN = 10


def best_trials(spec: StudySpec, study: optuna.Study) -> list[FrozenTrial]:
    """The Pareto front (several objectives) or the trials ranked by the objective (one)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(spec.objectives) > 1:
        return sorted(study.best_trials, key=lambda t: t.values)
    sign = 1.0 if spec.directions[0] == "minimize" else -1.0
    return sorted(complete, key=lambda t: sign * t.values[0])[:BEST_TRIALS_SHOWN]


def trial_rows(spec: StudySpec, trials: list[FrozenTrial]) -> list[dict[str, Any]]:
    rows = []
    for trial in trials:
        row: dict[str, Any] = {"trial": trial.number}
        row.update(dict(zip(spec.metrics, trial.values)))
        row.update(trial.params)
        row["seconds"] = trial.duration.total_seconds() if trial.duration else float("nan")
        row["run_dir"] = str(spec.output_dir / f"trial-{trial.number:04d}")
        rows.append(row)
    return rows


def _save(axes: Any, path: Path) -> Path:
    figure = axes.flat[0].figure if hasattr(axes, "flat") else axes.figure
    figure.set_size_inches(max(6.4, figure.get_figwidth()), 4.8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def figures(spec: StudySpec, study: optuna.Study, folder: Path) -> dict[str, Path]:
    """Draw the study's figures into ``folder``; figures that need more finished trials are skipped."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    out: dict[str, Path] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if len(spec.objectives) == 1:
            out["history"] = _save(optuna_plots.plot_optimization_history(study, target_name=spec.metrics[0]),
                                   folder / "optimization_history.png")
            if len(complete) >= 2 and len(spec.search_space) >= 1:
                try:
                    out["importance"] = _save(optuna_plots.plot_param_importances(study),
                                              folder / "param_importances.png")
                except (RuntimeError, ValueError) as error:  # e.g. every trial took the same parameters
                    warnings.warn(f"parameter importances skipped: {error}", stacklevel=2)
            out["slice"] = _save(optuna_plots.plot_slice(study, target_name=spec.metrics[0]), folder / "slice.png")
        else:
            out["pareto"] = _save(
                optuna_plots.plot_pareto_front(study, targets=lambda t: t.values[:2], target_names=spec.metrics[:2]),
                folder / "pareto_front.png",
            )
            for i, metric in enumerate(spec.metrics):
                name = metric.replace("/", "_")
                out[f"history_{name}"] = _save(
                    optuna_plots.plot_optimization_history(study, target=lambda t, i=i: t.values[i], target_name=metric),
                    folder / f"optimization_history_{name}.png",
                )
    return out


def write_report(spec: StudySpec, study: optuna.Study) -> dict[str, Path]:
    """Write ``OUTPUT_DIR/report/{*.png, best_trials.csv, report.html}``; returns the paths."""
    folder = spec.output_dir / "report"
    folder.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    if not any(t.state == TrialState.COMPLETE for t in trials):
        print(f"[sweep {spec.study_name}] no complete trial yet: no report", flush=True)
        return {}
    rows = trial_rows(spec, best_trials(spec, study))
    columns = list(dict.fromkeys(k for row in rows for k in row))
    table = folder / "best_trials.csv"
    with table.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    images = figures(spec, study, folder)
    page = folder / "report.html"
    page.write_text(_html(spec, study, columns, rows, images))
    return {"html": page, "csv": table, **images}


def _html(spec: StudySpec, study: optuna.Study, columns: list[str], rows: list[dict[str, Any]],
          images: dict[str, Path]) -> str:
    states = {s.name: sum(t.state == s for t in study.get_trials(deepcopy=False)) for s in TrialState}
    what = "Pareto front" if len(spec.objectives) > 1 else f"best {len(rows)} trials"
    objectives = ", ".join(f"{o.metric} ({o.direction})" for o in spec.objectives)

    def cell(value: Any) -> str:
        return html.escape(f"{value:.5g}" if isinstance(value, float) else str(value))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c, ''))}</td>" for c in columns) + "</tr>" for r in rows)
    figs = "".join(f'<figure><img src="{os.path.basename(p)}" alt="{k}"><figcaption>{k}</figcaption></figure>'
                   for k, p in images.items())
    counts = ", ".join(f"{n} {s.lower()}" for s, n in states.items() if n)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(spec.study_name)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}} img{{max-width:720px}}</style></head>
<body><h1>Study {html.escape(spec.study_name)}</h1>
<p>Objectives: {html.escape(objectives)}. Sampler {spec.sampler}, pruner {spec.pruner}, budget {spec.n_trials} trials.
Trials: {counts}.</p>
<h2>{what}</h2><table><tr>{head}</tr>{body}</table>
{figs}
</body></html>
"""


def wandb_summary(spec: StudySpec, study: optuna.Study, paths: dict[str, Path]) -> Path | None:
    """One W&B run for the whole study (same group as its trials): the figures and the best trials.

    Offline unless ``WANDB_MODE`` says otherwise, like every run of the package; returns its folder.
    """
    import wandb

    mode = os.environ.get("WANDB_MODE") or "offline"
    if mode == "disabled" or not paths:
        return None
    run = wandb.init(
        project=spec.wandb_project, group=spec.study_name, name=f"{spec.study_name}-summary", job_type="summary",
        dir=str(spec.output_dir), mode=mode,
        config={"study": spec.study_name, "objectives": [o.__dict__ for o in spec.objectives],
                "sampler": spec.sampler, "pruner": spec.pruner, "n_trials": spec.n_trials},
    )
    try:
        with paths["csv"].open() as f:
            rows = list(csv.reader(f))
        run.log({
            "best_trials": wandb.Table(columns=rows[0], data=rows[1:]),
            **{f"figures/{k}": wandb.Image(str(p)) for k, p in paths.items() if p.suffix == ".png"},
        })
        return Path(run.dir).parent
    finally:
        run.finish()
