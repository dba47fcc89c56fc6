"""Optuna studies over Lagrange multipliers (or any config key): spec, storage, trials, workers, report."""

from infoae_pl.tuning.spec import Objective, StudySpec, StudySpecError, load_study, parse_study
from infoae_pl.tuning.sweep import open_study, run_sweep

__all__ = ["Objective", "StudySpec", "StudySpecError", "load_study", "open_study", "parse_study", "run_sweep"]
