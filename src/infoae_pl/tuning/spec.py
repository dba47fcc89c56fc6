"""A sweep study as data: the YAML schema, its validation, and the Optuna objects it describes.

Every check here runs before the first trial, and every error names the offending key and what
would be accepted, so that a typo costs a second rather than a cluster allocation.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from infoae_pl.validation import check_choice
from infoae_pl.yaml_loading import load_yaml_file

STUDY_KEYS = (
    "study_name", "base_config", "config", "search_space", "objectives", "sampler", "pruner", "n_trials",
    "storage", "heartbeat", "output_dir", "wandb_project",
)
PARAM_TYPES = ("float", "int", "categorical", "grid")
PARAM_KEYS = {
    "float": ("type", "low", "high", "log", "step"),
    "int": ("type", "low", "high", "log", "step"),
    "categorical": ("type", "choices"),
    "grid": ("type", "values"),
}
DIRECTIONS = ("minimize", "maximize")
SAMPLERS = ("tpe", "gp", "nsga2", "cmaes", "random", "grid")
SINGLE_OBJECTIVE_SAMPLERS = ("cmaes",)
PRUNERS = ("median", "hyperband", "none")
HEARTBEAT_KEYS = ("interval", "grace_period", "max_retry")
# Trials run quietly (one line per trial from the sweep replaces Lightning's bars and summaries) and
# on one device: several GPUs are used by several workers (`--workers`), never by one trial, since
# a multi-device trial would relaunch the sweep command on each rank.
TRIAL_TRAINER_DEFAULTS = {"enable_progress_bar": False, "enable_model_summary": False, "devices": 1}
#: Default of ``--db-retry-seconds``: below the default heartbeat grace period (180 s), so that an
#: outage waited out does not also fail the running trials as stale.
DB_RETRY_SECONDS = 120.0


class StudySpecError(ValueError):
    """A study YAML that cannot run; the message names the key and the accepted values."""


@dataclass(frozen=True)
class Objective:
    """One metric the study optimises, read from the trial's logged metrics after training."""

    metric: str
    direction: str


@dataclass(frozen=True)
class Heartbeat:
    """RDB storages only: how often workers report alive, when a silent trial counts as dead, and
    how many times a dead worker's trial is retried."""

    interval: int = 60
    grace_period: int = 180
    max_retry: int = 3


@dataclass(frozen=True)
class StudySpec:
    """A validated study: the trial config template, the search space and the Optuna settings."""

    study_name: str
    run_config: dict[str, Any]
    search_space: dict[str, optuna.distributions.BaseDistribution]
    objectives: tuple[Objective, ...]
    sampler: str
    sampler_options: dict[str, Any]
    pruner: str
    pruner_options: dict[str, Any]
    n_trials: int
    storage: str | None
    output_dir: Path
    heartbeat: Heartbeat = field(default_factory=Heartbeat)
    wandb_project: str = "infoae-pl"
    grid: tuple[dict[str, Any], ...] = ()
    #: RDB storages: how long each storage call retries through a database outage (``--db-retry-seconds``).
    db_retry_seconds: float = DB_RETRY_SECONDS

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    @property
    def metrics(self) -> list[str]:
        return [o.metric for o in self.objectives]

    @property
    def fixed_settings(self) -> str:
        """What makes two runs of a study the same study, as canonical JSON: the trials' run config (base
        config with the fixed overrides), the search space and the objectives; not the trial budget, the
        storage, the sampler or how many workers run it."""
        return json.dumps({
            "config": self.run_config,
            "search_space": {k: json.loads(optuna.distributions.distribution_to_json(d))
                             for k, d in self.search_space.items()},
            "objectives": [[o.metric, o.direction] for o in self.objectives],
        }, sort_keys=True, default=repr)

    @property
    def fingerprint(self) -> str:
        """A short hash of :attr:`fixed_settings`, stored with the study when it is created."""
        return hashlib.sha256(self.fixed_settings.encode()).hexdigest()[:16]

    def trial_config(self, params: dict[str, Any]) -> dict[str, Any]:
        """The run config of one trial: the template with each sampled value set at its dotted key."""
        config = copy.deepcopy(self.run_config)
        for key, value in params.items():
            set_dotted(config, key, value)
        return config

    def make_sampler(self, worker_key: str | None = None) -> optuna.samplers.BaseSampler:
        """The sampler; with ``worker_key``, a seeded sampler's seed is mixed with it, so that workers
        (several processes, several nodes, or a resumed run) never replay one random sequence."""
        options = dict(self.sampler_options)
        if worker_key is not None and options.get("seed") is not None:
            digest = hashlib.sha256(f"{options['seed']}/{worker_key}".encode()).digest()
            options["seed"] = int.from_bytes(digest[:4], "little")
        if self.sampler == "grid":
            space = {k: list(d.choices) for k, d in self.search_space.items()}
            return EnqueuedGridSampler(space, **options)
        return SAMPLER_CLASSES[self.sampler](**options)

    def make_pruner(self) -> optuna.pruners.BasePruner:
        if self.pruner == "none":
            return optuna.pruners.NopPruner()
        return PRUNER_CLASSES[self.pruner](**self.pruner_options)


class EnqueuedGridSampler(optuna.samplers.GridSampler):
    """The grid sampler of a sweep, which enqueues every grid point and ends at its budget. Optuna's
    ``after_trial`` would stop the study at its last unvisited point by the trial's ``grid_id``, which
    enqueued trials lack: a KeyError whenever one grid point is left (a one-point grid)."""

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, state: optuna.trial.TrialState,
                    values: Any) -> None:
        """Nothing: the sweep's budget ends the study."""


SAMPLER_CLASSES: dict[str, Any] = {
    "tpe": optuna.samplers.TPESampler,
    "gp": optuna.samplers.GPSampler,
    "nsga2": optuna.samplers.NSGAIISampler,
    "cmaes": optuna.samplers.CmaEsSampler,
    "random": optuna.samplers.RandomSampler,
}
PRUNER_CLASSES: dict[str, Any] = {
    "median": optuna.pruners.MedianPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
}


def set_dotted(config: dict[str, Any], key: str, value: Any) -> None:
    """``config["a"]["b"]["c"] = value`` for ``key="a.b.c"``, creating the mappings on the way."""
    *parents, last = key.split(".")
    node = config
    for i, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise StudySpecError(f"config key {key!r}: {'.'.join(parents[: i + 1])!r} is {child!r}, not a mapping")
        node = child
    node[last] = value


def load_study(path: str | Path, storage: str | None = None, n_trials: int | None = None) -> StudySpec:
    """Read and validate a study YAML; ``storage``/``n_trials`` override the file's values."""
    path = Path(path)
    if not path.is_file():
        raise StudySpecError(f"study file {str(path)!r} does not exist")
    raw = load_yaml_file(path, "study file", StudySpecError) or {}  # not UTF-8, not YAML, a key twice: refused
    if not isinstance(raw, dict):
        raise StudySpecError(f"{path}: a study file is a mapping with keys {', '.join(STUDY_KEYS)}")
    if storage is not None:
        raw["storage"] = storage
    if n_trials is not None:
        raw["n_trials"] = n_trials
    return parse_study(raw, base_dir=path.parent)


def parse_study(raw: dict[str, Any], base_dir: Path = Path(".")) -> StudySpec:
    """Validate a study given as a mapping (the YAML's content). ``base_config`` is relative to
    ``base_dir`` (the study file's folder), so the shipped studies' ``../configs/….yaml`` is the
    package's config whether they are read from ``sweeps/`` in a checkout (a symlink into the package)
    or from an installed package; ``output_dir`` and a journal path, like every run folder
    of the package, to the working directory."""
    _check_keys("study", raw, STUDY_KEYS)
    name = raw.get("study_name")
    if not isinstance(name, str) or not name or "/" in name:
        raise StudySpecError(f"study_name must be a non-empty string without '/', got {name!r}")
    run_config = _run_config(raw, base_dir)
    space, grid = _search_space(raw.get("search_space"), raw.get("sampler") or {})
    objectives = _objectives(raw.get("objectives"))
    sampler, sampler_options = _component("sampler", raw.get("sampler", "tpe"), SAMPLERS)
    pruner, pruner_options = _component("pruner", raw.get("pruner", "none"), PRUNERS)
    if len(objectives) > 1 and pruner != "none":
        raise StudySpecError(
            f"pruner={pruner!r} needs a single objective (Optuna cannot prune multi-objective trials); "
            f"this study has {len(objectives)}: set pruner: none"
        )
    if len(objectives) > 1 and sampler in SINGLE_OBJECTIVE_SAMPLERS:
        raise StudySpecError(f"sampler={sampler!r} supports one objective only; use tpe, gp, nsga2, random or grid")
    if sampler == "grid" and not grid:
        raise StudySpecError("sampler grid needs every search_space entry to be of type grid or categorical")
    if grid and sampler != "grid":
        raise StudySpecError(f"search_space entries of type grid need sampler: grid, not {sampler!r}")
    if sampler != "grid":
        _check_options(f"sampler {sampler}", SAMPLER_CLASSES[sampler], sampler_options)
    else:
        _check_options("sampler grid", optuna.samplers.GridSampler, sampler_options, exclude=("search_space",))
    if pruner != "none":
        _check_options(f"pruner {pruner}", PRUNER_CLASSES[pruner], pruner_options)
    n_trials = raw.get("n_trials")
    if n_trials is None and grid:
        n_trials = len(grid)
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise StudySpecError(f"n_trials must be an integer >= 1, got {n_trials!r}")
    if grid and n_trials > len(grid):
        raise StudySpecError(f"n_trials={n_trials} exceeds the grid's {len(grid)} points")
    storage = raw.get("storage")
    if storage is not None and not isinstance(storage, str):
        raise StudySpecError(f"storage must be a URL or a journal file path, got {storage!r}")
    heartbeat = raw.get("heartbeat") or {}
    _check_keys("heartbeat", heartbeat, HEARTBEAT_KEYS)
    for key, value in heartbeat.items():
        least = 0 if key == "max_retry" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise StudySpecError(f"heartbeat.{key} must be an integer >= {least}, got {value!r}")
    beat = Heartbeat(**heartbeat)
    if beat.grace_period <= beat.interval:
        raise StudySpecError(f"heartbeat.grace_period ({beat.grace_period}) must exceed heartbeat.interval ({beat.interval})")
    output_dir = Path(raw.get("output_dir") or Path("runs") / "sweeps" / name)
    return StudySpec(
        study_name=name, run_config=run_config, search_space=space, objectives=objectives, sampler=sampler,
        sampler_options=sampler_options, pruner=pruner, pruner_options=pruner_options, n_trials=n_trials,
        storage=storage, output_dir=output_dir, heartbeat=beat,
        wandb_project=str(raw.get("wandb_project") or "infoae-pl"), grid=tuple(grid),
    )


def _check_keys(where: str, mapping: Any, allowed: tuple[str, ...]) -> None:
    if not isinstance(mapping, dict):
        raise StudySpecError(f"{where} must be a mapping with keys {', '.join(allowed)}, got {mapping!r}")
    unknown = sorted(set(mapping) - set(allowed))
    if unknown:
        raise StudySpecError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}")


def _run_config(raw: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """The base run config (an ``infoae fit`` config file) with the study's fixed overrides."""
    base = raw.get("base_config")
    if base is None:
        raise StudySpecError("base_config is required: the `infoae fit` config file that every trial starts from")
    base_path = Path(base) if Path(base).is_absolute() else base_dir / base
    if not base_path.is_file():
        raise StudySpecError(f"base_config {str(base)!r} not found (looked at {base_path})")
    config = load_yaml_file(base_path, "base_config", StudySpecError) or {}
    if not isinstance(config, dict):
        raise StudySpecError(f"base_config {str(base)!r} is not a mapping")
    overrides = raw.get("config") or {}
    if not isinstance(overrides, dict):
        raise StudySpecError(f"config must map dotted keys to values (e.g. trainer.max_steps: 1000), got {overrides!r}")
    trainer = config.setdefault("trainer", {})
    for key, value in TRIAL_TRAINER_DEFAULTS.items():
        trainer.setdefault(key, value)
    for key, value in overrides.items():
        set_dotted(config, str(key), value)
    devices = config["trainer"].get("devices")
    if devices not in (1, "1") and not (isinstance(devices, list) and len(devices) == 1):
        raise StudySpecError(f"trainer.devices={devices!r}: a sweep trial runs on one device; "
                             "use --workers N to run N trials at once on N GPUs")
    return config


def _search_space(raw: Any, sampler: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    if not isinstance(raw, dict) or not raw:
        raise StudySpecError("search_space must map dotted config keys (e.g. model.init_args.beta) to parameter specs")
    sampler_name = sampler if isinstance(sampler, str) else (sampler or {}).get("name")
    space: dict[str, Any] = {}
    grid_values: dict[str, list[Any]] = {}
    for key, spec in raw.items():
        where = f"search_space.{key}"
        if not isinstance(spec, dict) or "type" not in spec:
            raise StudySpecError(f"{where} must be a mapping with a type: {', '.join(PARAM_TYPES)}")
        kind = spec["type"]
        if kind not in PARAM_TYPES:
            raise StudySpecError(f"{where}.type={kind!r} is not supported; choose one of: {', '.join(PARAM_TYPES)}")
        _check_keys(where, spec, PARAM_KEYS[kind])
        if kind in ("float", "int"):
            space[key] = _numeric(where, kind, spec)
        else:
            values = spec.get("choices" if kind == "categorical" else "values")
            if not isinstance(values, list) or not values:
                raise StudySpecError(f"{where}: {'choices' if kind == 'categorical' else 'values'} must be a non-empty list")
            if len(set(map(repr, values))) != len(values):
                raise StudySpecError(f"{where}: repeated values in {values}")
            space[key] = optuna.distributions.CategoricalDistribution(values)
            if kind == "grid" or sampler_name == "grid":
                grid_values[key] = values
    if grid_values and len(grid_values) != len(space):
        numeric = sorted(set(space) - set(grid_values))
        raise StudySpecError(f"a grid study needs every parameter on the grid; {', '.join(numeric)} are continuous")
    if not grid_values:
        return space, []
    grid = [dict(zip(grid_values, point)) for point in itertools.product(*grid_values.values())]
    return space, grid


def _numeric(where: str, kind: str, spec: dict[str, Any]) -> optuna.distributions.BaseDistribution:
    low, high, log, step = spec.get("low"), spec.get("high"), spec.get("log", False), spec.get("step")
    number = int if kind == "int" else (int, float)
    for name, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, number) or not math.isfinite(value):
            raise StudySpecError(f"{where}.{name} must be a finite {'integer' if kind == 'int' else 'number'}, got {value!r}")
    if not low < high:
        raise StudySpecError(f"{where}: low ({low}) must be below high ({high})")
    if not isinstance(log, bool):
        raise StudySpecError(f"{where}.log must be true or false, got {log!r}")
    if log and low <= 0:
        raise StudySpecError(f"{where}: a log scale needs low > 0, got {low}")
    if log and step is not None:
        raise StudySpecError(f"{where}: step and log cannot be combined")
    if step is not None and (isinstance(step, bool) or not isinstance(step, number) or step <= 0):
        raise StudySpecError(f"{where}.step must be a positive number, got {step!r}")
    if kind == "int":
        return optuna.distributions.IntDistribution(low, high, log=log, step=step or 1)
    return optuna.distributions.FloatDistribution(float(low), float(high), log=log, step=step)


def _objectives(raw: Any) -> tuple[Objective, ...]:
    if not isinstance(raw, list) or not raw:
        raise StudySpecError("objectives must be a non-empty list of {metric: val/..., direction: minimize|maximize}")
    objectives = []
    for i, entry in enumerate(raw):
        _check_keys(f"objectives[{i}]", entry, ("metric", "direction"))
        metric = entry.get("metric")
        if not isinstance(metric, str) or not metric.startswith(("val/", "test/", "train/")):
            raise StudySpecError(f"objectives[{i}].metric must be a logged metric such as val/nll, got {metric!r}")
        try:
            check_choice(f"objectives[{i}].direction", entry.get("direction"), DIRECTIONS)
        except ValueError as error:
            raise StudySpecError(str(error)) from None
        objectives.append(Objective(metric, entry["direction"]))
    if len({o.metric for o in objectives}) != len(objectives):
        raise StudySpecError("objectives: each metric may appear once")
    return tuple(objectives)


def _component(where: str, raw: Any, allowed: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    """``name`` or ``{name: ..., **options}`` → (name, options); options are constructor arguments."""
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict) or "name" not in raw:
        raise StudySpecError(f"{where} must be a name ({', '.join(allowed)}) or a mapping with name: and options")
    options = {k: v for k, v in raw.items() if k != "name"}
    try:
        check_choice(f"{where}.name", raw["name"], allowed)
    except ValueError as error:
        raise StudySpecError(str(error)) from None
    return raw["name"], options


def _check_options(where: str, cls: Any, options: dict[str, Any], exclude: tuple[str, ...] = ()) -> None:
    accepted = [p for p in inspect.signature(cls).parameters if p not in exclude and p not in ("self", "kwargs")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise StudySpecError(f"{where}: unknown option(s) {', '.join(unknown)}; accepted: {', '.join(accepted)}")
