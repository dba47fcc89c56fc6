"""Optuna studies over Lagrange multipliers (or any config key): spec, storage, trials, workers, report.

The public names load their modules on first use (PEP 562), so that ``infoae sweep --help`` and
``import infoae_pl.tuning.cli`` do not import Optuna, torch or Lightning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infoae_pl.tuning.spec import Objective, StudySpec, StudySpecError, load_study, parse_study
    from infoae_pl.tuning.sweep import open_study, run_sweep

__all__ = ["Objective", "StudySpec", "StudySpecError", "load_study", "open_study", "parse_study", "run_sweep"]


def __getattr__(name: str) -> Any:
    if name in ("Objective", "StudySpec", "StudySpecError", "load_study", "parse_study"):
        from infoae_pl.tuning import spec

        return getattr(spec, name)
    if name in ("open_study", "run_sweep"):
        from infoae_pl.tuning import sweep

        return getattr(sweep, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
