"""Run a study: create it once, start the workers, keep the trial budget exact, report at the end.

A worker asks Optuna for one trial at a time until the budget is used. The budget counts trials
that are COMPLETE, PRUNED, RUNNING or WAITING, and FAILED trials that failed on their own (a NaN
loss, an exception); trials lost with a dead worker are retried instead and do not count. So
re-running the same command resumes a study without repeating or losing anything.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import socket
import time
import warnings
from collections import Counter
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from infoae_pl.tuning.spec import StudySpec, StudySpecError
from infoae_pl.tuning.storage import (
    make_storage,
    recover_dead_local_trials,
    redact,
    storage_url,
    this_worker,
    uses_heartbeats,
)
from infoae_pl.tuning.trial import check_run_config, run_trial

THREADS_ENV = "INFOAE_SWEEP_THREADS"


class SurplusTrialError(RuntimeError):
    """Another worker took the last trial of the budget at the same moment; this one does not run."""


def counts_toward_budget(trial: FrozenTrial) -> bool:
    """Whether ``trial`` uses one of the study's ``n_trials`` (lost and surplus trials do not)."""
    if trial.state != TrialState.FAIL:
        return True
    attrs = trial.user_attrs
    return bool(attrs.get("fail_reason")) and not attrs.get("retried") and not attrs.get("surplus")


def _enqueued(trial: FrozenTrial) -> bool:
    """Grid points and retries were enqueued: they always run, whatever the budget says."""
    return "fixed_params" in trial.system_attrs or "failed_trial" in trial.system_attrs


def open_study(spec: StudySpec, create: bool = False, worker_key: str | None = None) -> optuna.Study:
    """The study in its storage (created, with its grid enqueued once, when ``create``); ``worker_key``
    varies a seeded sampler per worker (see :meth:`StudySpec.make_sampler`)."""
    storage = make_storage(spec)
    if create:
        study = optuna.create_study(
            study_name=spec.study_name, storage=storage, directions=spec.directions, load_if_exists=True,
            sampler=spec.make_sampler(), pruner=spec.make_pruner(),
        )
        stored = [d.name.lower() for d in study.directions]
        if stored != spec.directions:
            raise StudySpecError(f"study {spec.study_name!r} already exists in {redact(storage_url(spec))} with "
                                 f"directions {stored}, not {spec.directions}: choose another study_name")
        if study.metric_names is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(spec.metrics)
        if spec.grid and not study.user_attrs.get("grid_enqueued"):
            for point in spec.grid[: spec.n_trials]:
                study.enqueue_trial(point, skip_if_exists=True)
            study.set_user_attr("grid_enqueued", len(spec.grid))
        return study
    return optuna.load_study(study_name=spec.study_name, storage=storage, sampler=spec.make_sampler(worker_key),
                             pruner=spec.make_pruner())


def budget_left(spec: StudySpec, study: optuna.Study) -> bool:
    """Whether a worker should ask for another trial."""
    if uses_heartbeats(spec):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # dead workers' trials become retries first
    trials = study.get_trials(deepcopy=False)
    if any(t.state == TrialState.WAITING for t in trials):
        return True
    return sum(counts_toward_budget(t) for t in trials) < spec.n_trials


def suggest(trial: optuna.Trial, name: str, distribution: optuna.distributions.BaseDistribution) -> Any:
    """Ask ``trial`` for ``name`` through the public suggest API of its distribution's kind."""
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    if isinstance(distribution, optuna.distributions.IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high, step=distribution.step, log=distribution.log)
    return trial.suggest_float(name, distribution.low, distribution.high, step=distribution.step, log=distribution.log)


def make_objective(spec: StudySpec, study: optuna.Study):
    """The Optuna objective: claim the trial, sample its parameters, run it, record why it failed."""

    def objective(trial: optuna.Trial) -> float | list[float]:
        for key, value in this_worker().items():
            trial.set_user_attr(key, value)
        frozen = study._storage.get_trial(trial._trial_id)
        if not _enqueued(frozen):
            earlier = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number]
            if sum(counts_toward_budget(t) for t in earlier) >= spec.n_trials:
                trial.set_user_attr("surplus", True)
                trial.set_user_attr("fail_reason", "surplus: the budget was used up by other workers")
                raise SurplusTrialError("the budget was used up by other workers at the same moment")
        params = {name: suggest(trial, name, d) for name, d in spec.search_space.items()}
        trial_dir = spec.output_dir / f"trial-{trial.number:04d}"
        try:
            values = run_trial(spec, trial, params, trial_dir)
        except optuna.TrialPruned:
            raise
        except Exception as error:
            trial.set_user_attr("fail_reason", f"{type(error).__name__}: {error}"[:2000])
            raise
        return values[0] if len(values) == 1 else values

    return objective


def describe(spec: StudySpec, trial: FrozenTrial, seconds: float) -> str:
    """One progress line per finished trial."""
    params = ", ".join(f"{k.rsplit('.', 1)[-1]}={_short(v)}" for k, v in trial.params.items())
    if trial.state == TrialState.COMPLETE:
        outcome = ", ".join(f"{m}={v:.4g}" for m, v in zip(spec.metrics, trial.values))
    elif trial.state == TrialState.FAIL:
        outcome = trial.user_attrs.get("fail_reason", "failed")
    else:
        outcome = f"pruned at epoch {max(trial.intermediate_values, default=0)}"
    return f"[sweep {spec.study_name}] trial {trial.number} {trial.state.name} in {seconds:.1f} s: {outcome} | {params}"


def tally(study: optuna.Study) -> str:
    counts = Counter(t.state.name for t in study.get_trials(deepcopy=False))
    return ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))


def work(spec: StudySpec, worker: int = 0, threads: int | None = None, cuda_device: str | None = None,
         exact_seed: bool = False) -> int:
    """Run trials until the budget is used; returns how many this worker ran. ``exact_seed``: the
    sampler's seed as written (one worker starting a new study: reproducible); otherwise mixed with
    this host and process."""
    if cuda_device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = cuda_device
    if threads:
        torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(spec, worker_key=None if exact_seed else f"{socket.gethostname()}/{os.getpid()}")
    objective, ran = make_objective(spec, study), 0
    while budget_left(spec, study):
        start = time.perf_counter()
        study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=True)
        mine = [t for t in study.get_trials(deepcopy=False)
                if t.user_attrs.get("worker_pid") == os.getpid() and t.state.is_finished()]
        if mine:
            last = max(mine, key=lambda t: t.number)
            if not last.user_attrs.get("surplus"):
                ran += 1
                print(f"{describe(spec, last, time.perf_counter() - start)} [worker {worker}; study: {tally(study)}]",
                      flush=True)
    return ran


def worker_placement(workers: int) -> list[dict[str, Any]]:
    """One GPU per worker where there are GPUs (round robin beyond their count), else the CPU
    threads split evenly between the workers."""
    gpus = torch.cuda.device_count()
    if gpus:
        if workers > gpus:
            warnings.warn(f"{workers} workers share {gpus} GPUs", stacklevel=2)
        return [{"cuda_device": str(i % gpus), "threads": None} for i in range(workers)]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return [{"cuda_device": None, "threads": max(1, cores // workers)} for _ in range(workers)]


def create_study(spec: StudySpec) -> optuna.Study:
    """Check that a trial's config parses, then create the study (idempotent)."""
    check_run_config(spec)
    return open_study(spec, create=True)


def run_sweep(spec: StudySpec, workers: int = 1, report: bool = True) -> optuna.Study:
    """Check the study, create it, run ``workers`` processes on this machine, then write its report."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise StudySpecError(f"--workers must be an integer >= 1, got {workers!r}")
    study = create_study(spec)
    if not uses_heartbeats(spec):
        for number in recover_dead_local_trials(study):
            print(f"[sweep {spec.study_name}] trial {number} lost its worker; it will run again", flush=True)
    done = sum(counts_toward_budget(t) and t.state.is_finished() for t in study.get_trials(deepcopy=False))
    print(f"[sweep {spec.study_name}] storage {redact(storage_url(spec))}; {done}/{spec.n_trials} trials done; "
          f"{workers} worker(s); runs under {spec.output_dir}", flush=True)
    if workers == 1:  # in this process, on every device it sees (a trial may itself use several GPUs)
        work(spec, 0, exact_seed=not study.get_trials(deepcopy=False))
    else:
        placement = worker_placement(workers)
        context = multiprocessing.get_context("spawn")
        processes = [context.Process(target=work, args=(spec, i), kwargs=placement[i], name=f"sweep-worker-{i}")
                     for i in range(workers)]
        for process in processes:
            process.start()
        for process in processes:
            process.join()
        crashed = [p.name for p in processes if p.exitcode != 0]
        if crashed:
            print(f"[sweep {spec.study_name}] worker(s) {', '.join(crashed)} exited abnormally; "
                  "re-run the same command to finish the study", flush=True)
    study = open_study(spec)
    print(f"[sweep {spec.study_name}] finished: {tally(study)}", flush=True)
    if report:
        from infoae_pl.tuning.report import wandb_summary, write_report

        paths = write_report(spec, study)
        if paths:
            print(f"[sweep {spec.study_name}] report: {paths['html']}", flush=True)
            wandb_summary(spec, study, paths)
    return study


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) and math.isfinite(value) else str(value)
