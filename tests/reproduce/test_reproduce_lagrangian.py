"""The learned-against-fixed multipliers figure: the front check on hand-made points, the tiny profile end to end."""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json

import pytest
import torch

from infoae_pl.reproduce import lagrangian


def test_a_learned_point_is_on_the_front_unless_a_fixed_run_beats_it_on_both_axes():
    rows = [
        {"kind": "fixed", "lambda_elbo": 1.5, "neg_elbo": 100.0, "rate": 20.0},
        {"kind": "fixed", "lambda_elbo": 3.0, "neg_elbo": 95.0, "rate": 10.0},
        {"kind": "learned", "epsilon": 101.0, "lambda_elbo": 1.4, "status": "active", "neg_elbo": 101.0, "rate": 22.0},
        {"kind": "learned", "epsilon": 102.0, "lambda_elbo": 1.2, "status": "active", "neg_elbo": 102.0, "rate": 15.0},
    ]
    checks = lagrangian.front_check(rows)
    assert checks["per_budget"]["epsilon=101"]["on_front"]
    assert checks["per_budget"]["epsilon=102"]["dominated_by_fixed_lambdas"] == [1.5]
    assert not checks["all_on_front"]


def test_tiny_profile_end_to_end(tmp_path):
    checks = lagrangian.reproduce(lagrangian.PROFILES["tiny"], tmp_path)
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert [r["kind"] for r in rows] == ["fixed", "fixed", "learned"]
    assert all(float(r["neg_elbo"]) > 0 and float(r["rate"]) >= 0 for r in rows)
    assert rows[2]["status"] in ("active", "slack", "violated") and float(rows[2]["lambda_elbo"]) >= 0
    assert set(json.loads((tmp_path / "checks.json").read_text())["per_budget"]) == {"epsilon=150"}
    assert checks["profile"]["name"] == "tiny" and (tmp_path / "pareto.png").stat().st_size > 10_000


def test_every_run_starts_from_the_profile_seed_whatever_ran_before(tmp_path):
    """The first run's weights used to come from the unseeded global generator: results changed run to run."""
    profile = dataclasses.replace(lagrangian.PROFILES["tiny"], steps=2, budgets=())
    results = []
    for seed in (1, 2):
        torch.manual_seed(seed)  # whatever state the caller left behind
        lagrangian.reproduce(profile, tmp_path / str(seed))
        results.append([{k: r[k] for k in ("neg_elbo", "rate")} for r in csv.DictReader((tmp_path / str(seed) / "results.csv").open())])
    assert results[0] == results[1]


#: The shape of the default profile's measured runs: a fixed grid and four budgets, two of them far off the grid.
MEASURED = [
    {"kind": "fixed", "epsilon": None, "lambda_elbo": 1.1, "status": None, "neg_elbo": 132.5, "rate": 65.4},
    {"kind": "fixed", "epsilon": None, "lambda_elbo": 1.25, "status": None, "neg_elbo": 119.6, "rate": 49.0},
    {"kind": "fixed", "epsilon": None, "lambda_elbo": 1.5, "status": None, "neg_elbo": 114.6, "rate": 39.1},
    {"kind": "fixed", "epsilon": None, "lambda_elbo": 2.0, "status": None, "neg_elbo": 111.4, "rate": 32.4},
    {"kind": "fixed", "epsilon": None, "lambda_elbo": 4.0, "status": None, "neg_elbo": 110.2, "rate": 27.4},
    {"kind": "learned", "epsilon": 100.0, "lambda_elbo": 33.7, "status": "active", "neg_elbo": 110.3, "rate": 24.6},
    {"kind": "learned", "epsilon": 110.0, "lambda_elbo": 1.48, "status": "active", "neg_elbo": 109.3, "rate": 31.7},
    {"kind": "learned", "epsilon": 125.0, "lambda_elbo": 0.67, "status": "active", "neg_elbo": 170.7, "rate": 94.7},
    {"kind": "learned", "epsilon": 150.0, "lambda_elbo": 0.33, "status": "slack", "neg_elbo": 216.5, "rate": 135.2},
]


def test_every_point_is_shown_and_no_two_labels_overlap():
    crowded = [*MEASURED, {"kind": "fixed", "epsilon": None, "lambda_elbo": 3.0, "status": None, "neg_elbo": 110.7,
                           "rate": 28.5}]  # 1.1 nats above λ=4: labels at their points would overlap
    figure = lagrangian.pareto_figure(crowded, "measured")
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    overview, zoom = figure.axes
    labelled = []
    for ax in (overview, zoom):
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        shown = {lagrangian.point_label(r) for r in crowded if x0 <= r["neg_elbo"] <= x1 and y0 <= r["rate"] <= y1}
        texts = [t for t in ax.texts if t.get_text() in shown]
        labelled += [t.get_text() for t in texts]
        boxes = [t.get_window_extent(renderer) for t in texts]
        assert not [(a, b) for a, b in itertools.combinations(range(len(boxes)), 2) if boxes[a].overlaps(boxes[b])]
        assert all(ax.get_window_extent(renderer).contains(box.x0, box.y0) for box in boxes), "labels inside the panel"
    assert sorted(labelled) == sorted(lagrangian.point_label(r) for r in crowded), "every run labelled once"
    (x0, x1), (y0, y1) = zoom.get_xlim(), zoom.get_ylim()
    assert x1 - x0 < 60 and y1 - y0 < 60, "the zoom spreads the crowded grid instead of the outliers' range"


def test_figures_only_redraws_the_figure_from_saved_results_without_training(tmp_path, monkeypatch):
    columns = ["kind", "epsilon", "lambda_elbo", "status", "neg_elbo", "train_neg_elbo", "rate", "seconds"]
    with (tmp_path / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, restval="")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in MEASURED)
    monkeypatch.setattr(lagrangian, "train", lambda *args, **kwargs: pytest.fail("--figures-only must not train"))
    assert lagrangian.main(["--figures-only", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "pareto.png").stat().st_size > 10_000
    assert (tmp_path / "pareto.pdf").read_bytes()[:5] == b"%PDF-"
    with pytest.raises(FileNotFoundError, match=r"results\.csv"):
        lagrangian.main(["--figures-only", "--out", str(tmp_path / "empty")])
