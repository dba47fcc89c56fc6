"""``infoae sweep wandb-dashboard STUDY.yaml``: the study's W&B workspace, defined in code (wandb-workspaces).

The workspace shows the study's trial runs (group = study name, job type ``trial``) in three sections:

- *objectives*: each objective's final value (``final/<metric>`` in the run summary, the trial's Optuna
  value) against each numeric searched parameter, on a log axis where the search is log-scaled; with
  several objectives, the Pareto front: a scatter of each pair of objectives;
- *search space*: parallel coordinates over the searched parameters and the objectives;
- *training curves*: each objective's curve (and ``train/loss``), one line per trial.

Online (``WANDB_MODE`` neither ``offline`` nor ``disabled``, and an API key), the workspace is saved to
W&B as a view of the project; offline, the same workspace's specification (the view that saving would
send) is written to ``OUTPUT_DIR/wandb_workspace.json``. Needs ``pip install 'infoae-pl[wandb-workspaces]'``.
Optuna, Lightning and W&B are imported after the arguments parse, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

    from infoae_pl.tuning.spec import StudySpec

WORKSPACE_FILE = "wandb_workspace.json"
INSTALL_HINT = "pip install 'infoae-pl[wandb-workspaces]'"
#: Logged in every run: the training loss's curve is shown beside the objectives'.
TRAIN_LOSS = "train/loss"
#: The x axis of the curves: Lightning's W&B logger logs each metric against the trainer's global step.
STEP = "trainer/global_step"


def build_workspace(spec: StudySpec, entity: str, project: str) -> Any:
    """The study's ``wandb_workspaces.workspaces.Workspace`` (see the module's docstring for its panels)."""
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    from infoae_pl.loggers import FINAL

    objectives = [wr.SummaryMetric(FINAL + metric) for metric in spec.metrics]
    scatters = [
        wr.ScatterPlot(title=f"{metric} vs {_short(key)}", x=wr.Config(key), y=objective, log_x=_log(distribution))
        for metric, objective in zip(spec.metrics, objectives)
        for key, distribution in spec.search_space.items() if _numeric(distribution)
    ]
    pareto = [wr.ScatterPlot(title=f"Pareto front: {a} vs {b}", x=wr.SummaryMetric(FINAL + a), y=wr.SummaryMetric(FINAL + b))
              for a, b in combinations(spec.metrics, 2)]
    parallel = wr.ParallelCoordinatesPlot(title=f"{spec.study_name}: search space and objectives", columns=[
        *(wr.ParallelCoordinatesPlotColumn(metric=wr.Config(key), display_name=_short(key), log=_log(distribution))
          for key, distribution in spec.search_space.items()),
        *(wr.ParallelCoordinatesPlotColumn(metric=objective, display_name=metric)
          for metric, objective in zip(spec.metrics, objectives)),
    ])
    curves = [wr.LinePlot(title=f"{metric} (one line per trial)", x=STEP, y=[metric])
              for metric in dict.fromkeys([*spec.metrics, TRAIN_LOSS]) if not metric.startswith("test/")]
    first = spec.objectives[0]
    return ws.Workspace(
        entity=entity, project=project, name=f"infoae study {spec.study_name}",
        sections=[
            ws.Section(name="objectives", panels=[*pareto, *scatters], is_open=True),
            ws.Section(name="search space", panels=[parallel], is_open=True),
            ws.Section(name="training curves", panels=curves, is_open=True),
        ],
        settings=ws.WorkspaceSettings(max_runs=spec.n_trials),
        runset_settings=ws.RunsetSettings(
            filters=ws.And(ws.Metric("Group") == spec.study_name, ws.Metric("JobType") == "trial"),
            order=[ws.Ordering(ws.Summary(FINAL + first.metric), ascending=first.direction == "minimize")],
        ),
    )


def _short(key: str) -> str:
    """A searched config key's last part (``model.init_args.beta`` → ``beta``), for titles."""
    return key.rsplit(".", 1)[-1]


def _log(distribution: BaseDistribution) -> bool | None:
    return True if getattr(distribution, "log", False) else None


def _numeric(distribution: BaseDistribution) -> bool:
    """Whether a scatter can place the parameter's values on an axis (numbers, not labels)."""
    from optuna.distributions import CategoricalDistribution

    if isinstance(distribution, CategoricalDistribution):
        return all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in distribution.choices)
    return True


def offline_reason() -> str | None:
    """Why the workspace cannot be saved to W&B from here (``WANDB_MODE``, no API key), or None."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("offline", "disabled", "dryrun"):
        return f"WANDB_MODE={mode}"
    import wandb

    if not wandb.login(prompt=False, verify=False):
        return "no W&B API key (run `wandb login` or set WANDB_API_KEY)"
    return None


def write_spec(workspace: Any, folder: Path) -> Path:
    """Write the workspace's specification (the view that saving sends to W&B) as ``folder/wandb_workspace.json``."""
    from infoae_pl._compat import workspace_view

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / WORKSPACE_FILE
    path.write_text(json.dumps(workspace_view(workspace), indent=1) + "\n")
    return path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="infoae sweep wandb-dashboard",
        description="Save the study's W&B workspace (objectives against each searched parameter, parallel "
                    "coordinates, the Pareto front, training curves); offline, write its specification.",
    )
    parser.add_argument("study", help="the study YAML (see sweeps/)")
    parser.add_argument("--entity", default=os.environ.get("WANDB_ENTITY"),
                        help="W&B entity (user or team) of the workspace (default: $WANDB_ENTITY, else your "
                             "default entity when online)")
    parser.add_argument("--project", default=None, help="W&B project (default: the study's wandb_project)")
    return parser


def wandb_dashboard_main(argv: list[str]) -> int:
    """``infoae sweep wandb-dashboard``: 0 when the workspace was saved or its specification written, 2 on a
    bad study or a missing wandb-workspaces."""
    args = _parser().parse_args(argv)
    prog = "infoae sweep wandb-dashboard"
    from infoae_pl.tuning.spec import StudySpecError, load_study

    try:
        import wandb_workspaces  # noqa: F401
    except ImportError:
        print(f"{prog}: needs the wandb-workspaces package: {INSTALL_HINT}", file=sys.stderr)
        return 2
    try:
        spec = load_study(args.study)
    except StudySpecError as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 2
    project = args.project or spec.wandb_project
    reason = offline_reason()
    if reason is None:
        import wandb

        workspace = build_workspace(spec, args.entity or wandb.Api().default_entity, project)
        workspace.save()  # W&B prints the view's URL
        print(f"{prog}: workspace {workspace.name!r} saved in {workspace.entity}/{project}")
        return 0
    path = write_spec(build_workspace(spec, args.entity or "", project), spec.output_dir)
    print(f"{prog}: offline ({reason}): the workspace of study {spec.study_name} was not saved; its "
          f"specification is in {path}. Run this command online to save it to W&B "
          f"(project {project}{', entity ' + args.entity if args.entity else ''}).")
    return 0


__all__ = ["WORKSPACE_FILE", "build_workspace", "offline_reason", "wandb_dashboard_main", "write_spec"]
