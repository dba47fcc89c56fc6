"""A study's report without W&B: figures (PNG, with a PDF beside each), the best trials (CSV) and one HTML page.

Single objective: the objective over the trials, the objective against each searched parameter and,
when two or more parameters are searched, their importances (with one parameter there is nothing to
apportion). Several objectives: the Pareto front of the first two, each objective over the trials and
against each parameter. Parameters are shown by readable names (``model.init_args.beta`` is β),
objectives by metric and direction.
"""

from __future__ import annotations

import csv
import datetime
import html
import math
import os
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import optuna
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, NullLocator
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from infoae_pl.plotting import new_figure, save_figure
from infoae_pl.tuning.spec import Objective, StudySpec

BEST_TRIALS_SHOWN = 10
#: Front points labelled with their trial number in the Pareto figure (more would crowd it).
PARETO_LABELS_SHOWN = 12
#: Parameter names written as the letter the paper uses.
GREEK = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "eps": "ε", "zeta": "ζ", "eta": "η",
    "theta": "θ", "kappa": "κ", "lambda": "λ", "lam": "λ", "mu": "μ", "nu": "ν", "rho": "ρ", "sigma": "σ",
    "tau": "τ", "phi": "φ", "chi": "χ", "psi": "ψ", "omega": "ω",
}
_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
_DPI = 110


def parameter_label(name: str) -> str:
    """A readable name for a searched config key: the Greek letter of its last dotted part where it
    names one (``model.init_args.beta`` → β, ``lambda1`` → λ₁), else that last part itself."""
    last = name.rsplit(".", 1)[-1]
    match = re.fullmatch(r"([A-Za-z]+)_?(\d*)", last)
    if match and match.group(1).lower() in GREEK:
        return GREEK[match.group(1).lower()] + match.group(2).translate(_SUBSCRIPTS)
    return last


def parameter_labels(names: Sequence[str]) -> dict[str, str]:
    """:func:`parameter_label` of each name, made unique: names that share a label get the dotted part
    before their last in brackets (``constraints.mmd.epsilon`` → ε (mmd)); any still shared, their full name."""
    labels = {name: parameter_label(name) for name in names}
    for refine in (lambda name, label: f"{label} ({name.split('.')[-2]})" if "." in name else name,
                   lambda name, label: name):
        shared = {label for label in labels.values() if list(labels.values()).count(label) > 1}
        labels = {name: refine(name, label) if label in shared else label for name, label in labels.items()}
    return labels


def objective_label(objective: Objective) -> str:
    """The metric and its direction, e.g. ``val/nll (minimize)``."""
    return f"{objective.metric} ({objective.direction})"


def describe_distribution(distribution: BaseDistribution) -> str:
    """A searched parameter's range in words, e.g. ``float in [0.05, 20], log scale``."""
    if isinstance(distribution, (FloatDistribution, IntDistribution)):
        kind = "integer" if isinstance(distribution, IntDistribution) else "float"
        step = f", step {distribution.step:g}" if distribution.step is not None else ""
        return f"{kind} in [{distribution.low:g}, {distribution.high:g}]{', log scale' if distribution.log else ''}{step}"
    if isinstance(distribution, CategoricalDistribution):
        return "one of " + ", ".join(_choice_text(c) for c in distribution.choices)
    return type(distribution).__name__


def best_trials(spec: StudySpec, study: optuna.Study) -> list[FrozenTrial]:
    """The Pareto front (several objectives) or the trials ranked by the objective (one)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(spec.objectives) > 1:
        return sorted(study.best_trials, key=lambda t: t.values)
    sign = 1.0 if spec.directions[0] == "minimize" else -1.0
    return sorted(complete, key=lambda t: sign * t.values[0])[:BEST_TRIALS_SHOWN]


def trial_rows(spec: StudySpec, trials: list[FrozenTrial]) -> list[dict[str, Any]]:
    """One row per trial: number, objective values, parameters (config keys), seconds and run folder."""
    rows = []
    for trial in trials:
        row: dict[str, Any] = {"trial": trial.number}
        row.update(dict(zip(spec.metrics, trial.values)))
        row.update(trial.params)
        row["seconds"] = trial.duration.total_seconds() if trial.duration else float("nan")
        row["run_dir"] = str(spec.output_dir / f"trial-{trial.number:04d}")
        rows.append(row)
    return rows


# Figures --------------------------------------------------------------------------------------
def _choice_text(choice: Any) -> str:
    return "none" if choice is None else f"{choice:g}" if isinstance(choice, float) else str(choice)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _log_axis(ax: Axes) -> None:
    """A log-scaled x axis with plain numbers at 1, 2 and 5 times each power of ten (no crowded minor labels)."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _parameter_axis(ax: Axes, distribution: BaseDistribution, values: list[Any]) -> list[float]:
    """Set the x axis for one parameter and return each value's x position: numbers on a linear or log
    scale (log when the search is log-scaled, or numeric choices spanning a factor of 10 or more),
    other choices at evenly spaced positions labelled by their value."""
    if isinstance(distribution, (FloatDistribution, IntDistribution)):
        if distribution.log:
            _log_axis(ax)
        if isinstance(distribution, IntDistribution):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        return [float(v) for v in values]
    choices = list(cast(CategoricalDistribution, distribution).choices)  # the third kind a study searches
    if all(_is_number(c) for c in choices):
        low, high = min(choices), max(choices)
        if low > 0 and high / low >= 10:
            _log_axis(ax)
        ax.set_xticks([float(c) for c in choices], [_choice_text(c) for c in choices])
        ax.xaxis.set_minor_locator(NullLocator())
        return [float(v) for v in values]
    index = {repr(c): i for i, c in enumerate(choices)}
    ax.set_xticks(range(len(choices)), [_choice_text(c) for c in choices])
    ax.set_xlim(-0.5, len(choices) - 0.5)
    return [float(index[repr(v)]) for v in values]


def _trial_colourbar(figure: Any, mappable: Any, axes: Any) -> None:
    bar = figure.colorbar(mappable, ax=axes, shrink=0.9)
    bar.set_label("trial number")
    bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()


def history_figure(spec: StudySpec, complete: list[FrozenTrial]) -> Any:
    """Each objective over the trials (one panel each): every trial's value and the best so far."""
    count = len(spec.objectives)
    figure = new_figure(6.4, 3.2 * count + 0.6, layout="constrained")
    axes = figure.subplots(count, 1, squeeze=False, sharex=True)[:, 0]
    numbers = [t.number for t in complete]
    for i, (ax, objective) in enumerate(zip(axes, spec.objectives)):
        values = np.array([t.values[i] for t in complete])
        best = (np.minimum if objective.direction == "minimize" else np.maximum).accumulate(values)
        ax.plot(numbers, values, "o", color="tab:blue", ms=5, label="trial")
        ax.step(numbers, best, where="post", color="tab:red", lw=1.5, label=f"best so far ({objective.direction})")
        ax.set_ylabel(objective_label(objective))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].set_xlabel("trial number")
    figure.suptitle(f"{spec.study_name}: objective{'s' * (count > 1)} over {len(complete)} complete trials")
    return figure


def slice_figure(spec: StudySpec, complete: list[FrozenTrial], labels: dict[str, str]) -> Any:
    """Each objective (rows) against each searched parameter (columns), points coloured by trial number;
    with one objective the best trial is starred."""
    names = list(spec.search_space)
    rows, columns = len(spec.objectives), len(names)
    figure = new_figure(max(4.8, 3.6 * columns) + 1.0, 3.4 * rows + 0.6, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False, sharey="row")
    numbers = [t.number for t in complete]
    scatter = None
    for i, objective in enumerate(spec.objectives):
        values = [t.values[i] for t in complete]
        for j, name in enumerate(names):
            ax = axes[i, j]
            have = [k for k, t in enumerate(complete) if name in t.params]
            xs = _parameter_axis(ax, spec.search_space[name], [complete[k].params[name] for k in have])
            scatter = ax.scatter(xs, [values[k] for k in have], c=[numbers[k] for k in have], cmap="viridis",
                                 vmin=min(numbers), vmax=max(max(numbers), min(numbers) + 1), s=30,
                                 edgecolors="0.3", linewidths=0.4)
            if rows == 1 and have:
                pick = (min if objective.direction == "minimize" else max)(have, key=lambda k: values[k])
                ax.plot(xs[have.index(pick)], values[pick], "*", ms=16, mfc="none", mec="tab:red", mew=1.5,
                        label=f"best: trial {numbers[pick]}")
                if j == 0:
                    ax.legend(fontsize="small")
            ax.set_xlabel(labels[name])
            if j == 0:
                ax.set_ylabel(objective_label(objective))
            ax.grid(alpha=0.3)
    if scatter is not None:
        _trial_colourbar(figure, scatter, axes)
    figure.suptitle(f"{spec.study_name}: objective{'s' * (rows > 1)} against each searched parameter")
    return figure


def importance_figure(spec: StudySpec, importances: dict[str, float], labels: dict[str, str]) -> Any:
    """Horizontal bars: each parameter's share of the objective's variation, the largest on top."""
    ranked = sorted(importances.items(), key=lambda item: item[1])
    figure = new_figure(6.4, 1.2 + 0.45 * len(ranked), layout="constrained")
    ax = figure.subplots()
    bars = ax.barh([labels.get(n, n) for n, _ in ranked], [v for _, v in ranked], color="tab:blue")
    ax.bar_label(bars, fmt="%.2f", padding=3, fontsize="small")
    ax.set_xlim(0, max(1.0, max(v for _, v in ranked) * 1.15))
    ax.set_xlabel(f"importance for {objective_label(spec.objectives[0])} (normalised to sum to 1)")
    ax.grid(alpha=0.3, axis="x")
    ax.set_title(f"{spec.study_name}: parameter importances")
    return figure


def pareto_figure(spec: StudySpec, complete: list[FrozenTrial], front: list[FrozenTrial]) -> Any:
    """The first two objectives of every complete trial, the Pareto front joined and labelled by trial."""
    figure = new_figure(6.4, 5.0, layout="constrained")
    ax = figure.subplots()
    ax.scatter([t.values[0] for t in complete], [t.values[1] for t in complete], s=25, c="0.65", label="trial")
    ordered = sorted(front, key=lambda t: (t.values[0], t.values[1]))
    ax.plot([t.values[0] for t in ordered], [t.values[1] for t in ordered], "o-", color="tab:red", ms=6, lw=1,
            label=f"Pareto front ({len(front)} trial{'s' * (len(front) != 1)})")
    if len(ordered) <= PARETO_LABELS_SHOWN:
        for trial in ordered:
            ax.annotate(f"#{trial.number}", (trial.values[0], trial.values[1]), textcoords="offset points",
                        xytext=(5, 4), fontsize="small", color="tab:red")
    ax.set_xlabel(objective_label(spec.objectives[0]))
    ax.set_ylabel(objective_label(spec.objectives[1]))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    rest = f" (of {len(spec.objectives)} objectives, the first two)" if len(spec.objectives) > 2 else ""
    ax.set_title(f"{spec.study_name}: Pareto front{rest}")
    return figure


def _importances(study: optuna.Study, spec: StudySpec) -> dict[str, float] | None:
    try:
        return optuna.importance.get_param_importances(study, params=list(spec.search_space))
    except (RuntimeError, ValueError) as error:  # e.g. every trial took the same parameters
        warnings.warn(f"parameter importances skipped: {error}", stacklevel=3)
        return None


def figures(spec: StudySpec, study: optuna.Study, folder: Path) -> dict[str, Path]:
    """Draw the study's figures into ``folder`` (PNG, PDF beside each); returns the PNGs by name.
    Importances need two searched parameters and two complete trials."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    labels = parameter_labels(list(spec.search_space))
    drawn: dict[str, Callable[[], Any]] = {}
    if len(spec.objectives) > 1:
        drawn["pareto_front"] = lambda: pareto_figure(spec, complete, study.best_trials)
    drawn["optimization_history"] = lambda: history_figure(spec, complete)
    drawn["slice"] = lambda: slice_figure(spec, complete, labels)
    if len(spec.objectives) == 1 and len(spec.search_space) >= 2 and len(complete) >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            importances = _importances(study, spec)
        if importances:
            drawn["param_importances"] = lambda: importance_figure(spec, importances, labels)
    return {name: save_figure(draw(), folder / f"{name}.png", dpi=_DPI) for name, draw in drawn.items()}


# The page -------------------------------------------------------------------------------------
CAPTIONS = {
    "pareto_front": "The first two objectives of every complete trial; the Pareto front in red, by trial number.",
    "optimization_history": "Each complete trial's objective value by trial number, and the best value so far.",
    "slice": "Each objective against each searched parameter; colour is the trial number (with one objective, "
             "the best trial is starred).",
    "param_importances": "How much of the objective's variation each parameter accounts for (Optuna's default "
                         "importance evaluator, normalised to sum to 1).",
}


def write_report(spec: StudySpec, study: optuna.Study) -> dict[str, Path]:
    """Write ``OUTPUT_DIR/report/{*.png, *.pdf, best_trials.csv, report.html}``; returns the paths (PNGs)."""
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


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.5g}"
    return html.escape("none" if value is None else str(value))


def _summary(spec: StudySpec, study: optuna.Study, labels: dict[str, str]) -> list[tuple[str, str]]:
    """The study's settings and progress as (heading, HTML) pairs."""
    trials = study.get_trials(deepcopy=False)
    counts = ", ".join(f"{n} {s.name.lower()}" for s in TrialState if (n := sum(t.state == s for t in trials)))
    searched = "<br>".join(f"{html.escape(labels[n])} = <code>{html.escape(n)}</code>: "
                           f"{html.escape(describe_distribution(d))}" for n, d in spec.search_space.items())
    items = [
        ("objectives", html.escape(", ".join(objective_label(o) for o in spec.objectives))),
        ("searched parameters", searched),
        ("sampler", html.escape(spec.sampler)),
        ("pruner", html.escape(spec.pruner)),
        ("trials", html.escape(f"{counts} (budget {spec.n_trials})")),
    ]
    if len(spec.objectives) == 1:
        best = study.best_trial
        params = ", ".join(f"{labels.get(k, k)} = {_cell(v)}" for k, v in best.params.items())
        items.append(("best trial", html.escape(f"#{best.number}: {spec.metrics[0]} = {best.value:.5g} ({params})")))
    else:
        items.append(("Pareto front", html.escape(f"{len(study.best_trials)} trials")))
    items.append(("trial folders", f"<code>{html.escape(str(spec.output_dir))}/trial-NNNN</code>"))
    return items


def _html(spec: StudySpec, study: optuna.Study, columns: list[str], rows: list[dict[str, Any]],
          images: dict[str, Path]) -> str:
    labels = parameter_labels(list(spec.search_space))
    title = "Pareto front" if len(spec.objectives) > 1 else f"Best {len(rows)} trials"
    order = "all front trials, by the first objective" if len(spec.objectives) > 1 else \
        f"ranked by {spec.metrics[0]} ({spec.directions[0]})"
    summary = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in _summary(spec, study, labels))
    shown = [c for c in columns if c != "run_dir"]
    head = "".join(f'<th title="{html.escape(c)}">{html.escape(labels.get(c, c))}</th>' for c in shown)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c, ''))}</td>" for c in shown) + "</tr>" for r in rows)
    figs = "".join(
        f'<figure><img src="{os.path.basename(p)}" alt="{html.escape(name)}">'
        f"<figcaption>{html.escape(CAPTIONS.get(name, name))} "
        f'(<a href="{os.path.basename(p.with_suffix(".pdf"))}">PDF</a>)</figcaption></figure>'
        for name, p in images.items()
    )
    written = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Study {html.escape(spec.study_name)}</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.45;color:#222}}
h1{{margin-bottom:0.2em}} h2{{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:0.2em}}
table{{border-collapse:collapse;margin:0.6em 0}} td,th{{border:1px solid #ccc;padding:4px 9px}}
table.summary th{{text-align:left;background:#f5f5f5;vertical-align:top;white-space:nowrap}}
table.trials td{{text-align:right;font-variant-numeric:tabular-nums}} table.trials th{{background:#f5f5f5}}
figure{{margin:1.4em 0}} img{{max-width:100%;height:auto;border:1px solid #eee}}
figcaption{{color:#555;font-size:0.92em;max-width:760px}} code{{font-size:0.92em}}
</style></head>
<body><h1>Study {html.escape(spec.study_name)}</h1>
<p class="note">Report written {written}; the table is also in <a href="best_trials.csv">best_trials.csv</a>.</p>
<h2>Summary</h2><table class="summary">{summary}</table>
<h2>{title}</h2><p>{html.escape(order)}; each trial's run is in its trial folder.</p>
<table class="trials"><tr>{head}</tr>{body}</table>
<h2>Figures</h2>
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
