"""``infoae sweep wandb-dashboard``: the study's W&B workspace, its specification written offline and saved
online; the panels' types and the metric and parameter names they plot."""

from __future__ import annotations

import json
import sys

from infoae_pl.cli import main
from infoae_pl.tuning import load_study
from infoae_pl.tuning.wandb_dashboard import WORKSPACE_FILE, offline_reason

SEARCH_SPACE = {
    "model.init_args.beta": {"type": "float", "low": 0.1, "high": 5.0, "log": True},
    "data.batch_size": {"type": "categorical", "choices": [50, 100]},
    "model.init_args.z_divergence": {"type": "categorical", "choices": ["mmd", "js"]},
}


def _panels(view: dict) -> dict[str, list[tuple[str, dict]]]:
    """Each section's panels as (type, settings)."""
    sections = view["spec"]["section"]["panelBankConfig"]["sections"]
    return {s["name"]: [(p["viewType"], p["config"]) for p in s["panels"]] for s in sections}


def _dashboard(study, capsys, *options: str) -> dict:
    """Run the command offline; the specification it wrote, after checking that it said where."""
    assert main(["sweep", "wandb-dashboard", str(study), *options]) == 0
    path = load_study(study).output_dir / WORKSPACE_FILE
    out = capsys.readouterr().out
    assert "offline (WANDB_MODE=offline)" in out and str(path) in out
    return json.loads(path.read_text())


def test_a_single_objective_workspace_plots_it_against_each_numeric_multiplier(write_study, capsys):
    view = _dashboard(write_study(search_space=SEARCH_SPACE), capsys, "--entity", "me", "--project", "p")
    assert (view["entity"], view["project"], view["displayName"]) == ("me", "p", "infoae study tiny")
    panels = _panels(view)
    assert list(panels) == ["objectives", "search space", "training curves"]
    assert panels["objectives"] == [  # no scatter against a parameter whose values are labels; no Pareto front
        ("Scatter Plot", {"chartTitle": "val/nll vs beta", "xAxis": "config:model.value.init_args.beta",
                          "yAxis": "summary:final/val/nll", "xAxisLogScale": True}),
        ("Scatter Plot", {"chartTitle": "val/nll vs batch_size", "xAxis": "config:data.value.batch_size",
                          "yAxis": "summary:final/val/nll"}),
    ]
    ((kind, settings),) = panels["search space"]
    assert kind == "Parallel Coordinates Plot"
    assert [(c["accessor"], c.get("log")) for c in settings["columns"]] == [
        ("config:model.value.init_args.beta", True), ("config:data.value.batch_size", None),
        ("config:model.value.init_args.z_divergence", None), ("summary:final/val/nll", None),
    ]
    assert [(kind, c["metrics"], c["xAxis"]) for kind, c in panels["training curves"]] == [
        ("Run History Line Plot", ["val/nll"], "trainer/global_step"),
        ("Run History Line Plot", ["train/loss"], "trainer/global_step"),
    ]
    (runs,) = view["spec"]["section"]["runSets"]
    assert [(f["key"]["name"], f["op"], f["value"]) for f in runs["filters"]["filters"]] == [
        ("group", "=", "tiny"), ("jobType", "=", "trial")]
    assert runs["sort"]["keys"] == [{"key": {"section": "summary", "name": "final/val/nll"}, "ascending": True}]


def test_a_multi_objective_workspace_shows_the_pareto_front_and_no_curve_of_a_test_metric(write_study, capsys):
    objectives = [{"metric": "val/nll", "direction": "minimize"}, {"metric": "val/mi_ba", "direction": "maximize"},
                  {"metric": "test/nll", "direction": "minimize"}]
    panels = _panels(_dashboard(write_study(objectives=objectives), capsys))
    pareto = [(c["xAxis"], c["yAxis"]) for kind, c in panels["objectives"] if c["chartTitle"].startswith("Pareto")]
    assert pareto == [("summary:final/val/nll", "summary:final/val/mi_ba"), ("summary:final/val/nll", "summary:final/test/nll"),
                      ("summary:final/val/mi_ba", "summary:final/test/nll")]
    against_beta = [c["yAxis"] for kind, c in panels["objectives"] if c["xAxis"] == "config:model.value.init_args.beta"]
    assert against_beta == ["summary:final/val/nll", "summary:final/val/mi_ba", "summary:final/test/nll"]
    assert all(kind == "Scatter Plot" for kind, _ in panels["objectives"])
    ((_, settings),) = panels["search space"]
    assert [c["accessor"] for c in settings["columns"]] == [
        "config:model.value.init_args.beta", "summary:final/val/nll", "summary:final/val/mi_ba", "summary:final/test/nll"]
    assert [c["metrics"] for _, c in panels["training curves"]] == [["val/nll"], ["val/mi_ba"], ["train/loss"]]


def test_online_the_workspace_is_saved_to_the_project(write_study, capsys, monkeypatch):
    import wandb_workspaces.workspaces as ws

    saved = []
    monkeypatch.setattr("infoae_pl.tuning.wandb_dashboard.offline_reason", lambda: None)
    monkeypatch.setattr(ws.Workspace, "save", lambda self: saved.append(self) or self)
    study = write_study()
    assert main(["sweep", "wandb-dashboard", str(study), "--entity", "team"]) == 0
    ((workspace),) = saved
    assert (workspace.entity, workspace.project, workspace.name) == ("team", "infoae-pl", "infoae study tiny")
    assert "saved in team/infoae-pl" in capsys.readouterr().out
    assert not (load_study(study).output_dir / WORKSPACE_FILE).exists()


def test_offline_means_wandb_mode_offline_or_no_api_key(monkeypatch, tmp_path):
    assert offline_reason() == "WANDB_MODE=offline"
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert offline_reason() == "no W&B API key (run `wandb login` or set WANDB_API_KEY)"


def test_a_bad_study_is_refused_with_its_reason(tmp_path, capsys):
    assert main(["sweep", "wandb-dashboard", str(tmp_path / "missing.yaml")]) == 2
    assert "infoae sweep wandb-dashboard: study file" in capsys.readouterr().err


def test_without_wandb_workspaces_the_command_says_how_to_install_it(write_study, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb_workspaces", None)  # its import fails as if it were not installed
    assert main(["sweep", "wandb-dashboard", str(write_study())]) == 2
    assert "pip install 'infoae-pl[wandb-workspaces]'" in capsys.readouterr().err
