"""The study report on studies built in memory (no training): readable names, which figures, the page."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.trial import TrialState

from infoae_pl.tuning import report
from infoae_pl.tuning.report import objective_label, parameter_label, parameter_labels
from infoae_pl.tuning.spec import parse_study

BETA = {"model.init_args.beta": {"type": "float", "low": 0.05, "high": 20.0, "log": True}}
NLL = [{"metric": "val/nll", "direction": "minimize"}]


def study_of(tmp_path, search_space, objectives, values, n=6):
    """A spec and an in-memory study whose ``n`` trials take evenly spread parameters and ``values(params)``."""
    (tmp_path / "base.yaml").write_text("model:\n  class_path: infoae_pl.models.BetaELBO\n")
    spec = parse_study({"study_name": "demo", "base_config": "base.yaml", "search_space": search_space,
                        "objectives": objectives, "sampler": {"name": "random", "seed": 0}, "n_trials": n,
                        "output_dir": str(tmp_path / "out")}, base_dir=tmp_path)
    study = optuna.create_study(directions=spec.directions)
    for i in range(n):
        params = {}
        for name, distribution in spec.search_space.items():
            if isinstance(distribution, optuna.distributions.CategoricalDistribution):
                params[name] = distribution.choices[i % len(distribution.choices)]
            else:
                params[name] = distribution.low + (distribution.high - distribution.low) * i / (n - 1)
        study.add_trial(optuna.trial.create_trial(params=params, distributions=spec.search_space,
                                                  values=values(params)))
    return spec, study


@pytest.mark.parametrize(("name", "label"), [
    ("model.init_args.beta", "β"),
    ("model.init_args.preset_params.beta", "β"),
    ("model.init_args.lambda", "λ"),
    ("model.init_args.lambda1", "λ₁"),
    ("model.init_args.lambda_2", "λ₂"),
    ("model.init_args.alpha", "α"),
    ("model.init_args.constraints.neg_elbo.epsilon", "ε"),
    ("model.init_args.hidden_dim", "hidden_dim"),
    ("model.init_args.lagrangian.MMD(q(z)||p(z))", "MMD(q(z)||p(z))"),
    ("seed_everything", "seed_everything"),
    ("model.init_args.betas", "betas"),
])
def test_a_parameter_is_named_by_its_letter_or_its_last_dotted_part(name, label):
    assert parameter_label(name) == label


def test_parameters_that_share_a_letter_keep_apart_by_their_parent_key():
    labels = parameter_labels(["model.init_args.constraints.neg_elbo.epsilon", "model.init_args.constraints.mmd.epsilon",
                               "model.init_args.beta"])
    assert labels == {"model.init_args.constraints.neg_elbo.epsilon": "ε (neg_elbo)",
                      "model.init_args.constraints.mmd.epsilon": "ε (mmd)", "model.init_args.beta": "β"}
    same_parent = parameter_labels(["a.x.beta", "b.x.beta"])
    assert same_parent == {"a.x.beta": "a.x.beta", "b.x.beta": "b.x.beta"}


def test_one_searched_parameter_gives_no_importance_figure_and_slices_labelled_by_its_letter(tmp_path):
    spec, study = study_of(tmp_path, BETA, NLL, lambda p: [1.0 + math.log(p["model.init_args.beta"]) ** 2])
    paths = report.write_report(spec, study)
    assert "param_importances" not in paths and not (spec.output_dir / "report" / "param_importances.png").exists()
    assert {"optimization_history", "slice", "html", "csv"} <= set(paths)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    (ax, *_colourbar) = report.slice_figure(spec, complete, parameter_labels(list(spec.search_space))).axes
    assert ax.get_xlabel() == "β" and ax.get_xscale() == "log"
    assert ax.get_ylabel() == "val/nll (minimize)"


def test_two_searched_parameters_give_importances_by_their_letters(tmp_path):
    space = {**BETA, "model.init_args.lambda1": {"type": "float", "low": 0.0, "high": 10.0}}
    spec, study = study_of(tmp_path, space, NLL, lambda p: [p["model.init_args.beta"] + 0.1 * p["model.init_args.lambda1"]])
    paths = report.write_report(spec, study)
    assert paths["param_importances"].is_file()
    importances = optuna.importance.get_param_importances(study)
    figure = report.importance_figure(spec, importances, parameter_labels(list(spec.search_space)))
    assert {tick.get_text() for tick in figure.axes[0].get_yticklabels()} == {"β", "λ₁"}


def test_every_figure_of_the_report_has_a_pdf_beside_it(tmp_path):
    spec, study = study_of(tmp_path, BETA, NLL, lambda p: [p["model.init_args.beta"]])
    pngs = [p for p in report.write_report(spec, study).values() if p.suffix == ".png"]
    assert pngs and all(p.with_suffix(".pdf").is_file() for p in pngs)


def shown_ticks(axis, limits):
    return [t for t in axis.get_ticklocs() if limits[0] <= t <= limits[1]]


def test_trial_number_axes_have_integer_ticks(tmp_path):
    spec, study = study_of(tmp_path, BETA, NLL, lambda p: [p["model.init_args.beta"]], n=7)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    history = report.history_figure(spec, complete)
    history.canvas.draw()
    (ax,) = history.axes
    ticks = shown_ticks(ax.xaxis, ax.get_xlim())
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks) and ax.get_xlabel() == "trial number"
    sliced = report.slice_figure(spec, complete, parameter_labels(list(spec.search_space)))
    sliced.canvas.draw()
    colourbar = sliced.axes[-1]
    ticks = shown_ticks(colourbar.yaxis, colourbar.get_ylim())
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks) and colourbar.get_ylabel() == "trial number"


def test_the_pareto_figure_names_both_objectives_with_their_directions(tmp_path):
    objectives = [{"metric": "val/mi_aggregate", "direction": "maximize"}, {"metric": "val/elbo", "direction": "maximize"}]
    spec, study = study_of(tmp_path, BETA, objectives,
                           lambda p: [p["model.init_args.beta"], -p["model.init_args.beta"] ** 2], n=5)
    paths = report.write_report(spec, study)
    assert paths["pareto_front"].is_file() and paths["pareto_front"].with_suffix(".pdf").is_file()
    figure = report.pareto_figure(spec, study.get_trials(states=(TrialState.COMPLETE,)), study.best_trials)
    (ax,) = figure.axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("val/mi_aggregate (maximize)", "val/elbo (maximize)")
    assert objective_label(spec.objectives[1]) == "val/elbo (maximize)"
    assert {t.get_text() for t in ax.texts} == {f"#{t.number}" for t in study.best_trials}


def test_the_page_has_a_summary_the_best_trials_by_readable_names_and_the_figures(tmp_path):
    spec, study = study_of(tmp_path, BETA, NLL, lambda p: [abs(p["model.init_args.beta"] - 5.0)])
    paths = report.write_report(spec, study)
    page = paths["html"].read_text()
    for heading in ("<h1>Study demo</h1>", "<h2>Summary</h2>", "<h2>Best 6 trials</h2>", "<h2>Figures</h2>"):
        assert heading in page
    assert '<th title="model.init_args.beta">β</th>' in page
    assert "float in [0.05, 20], log scale" in page and "val/nll (minimize)" in page
    assert f"#{study.best_trial.number}: val/nll = {study.best_value:.5g}" in page
    for name in ("optimization_history", "slice"):
        assert f'src="{name}.png"' in page and f'href="{name}.pdf"' in page
    assert "max-width:100%" in page, "figures shrink to the page, never past their own size"
