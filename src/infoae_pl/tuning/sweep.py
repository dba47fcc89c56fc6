"""Run a study: create it once, start the workers, keep the trial budget exact, report at the end.

A worker asks Optuna for one trial at a time until the budget is used (the budget, the asking and
the telling are :mod:`infoae_pl.tuning.asktell`'s). So re-running the same command resumes a study
without repeating or losing anything. With ``batch_trials`` K > 1 a worker asks for K trials at once
and trains them as one stacked model (:mod:`infoae_pl.tuning.batched`).
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
from lightning.pytorch.utilities import rank_zero_only
from optuna.trial import FrozenTrial, TrialState

from infoae_pl.tuning.asktell import (
    ask,
    budget_left,
    counts_toward_budget,
    heartbeats,
    make_objective,
    tell,
    trials_to_run,
)
from infoae_pl.tuning.batched import check_batchable, run_trial_batch
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


def open_study(spec: StudySpec, create: bool = False, worker_key: str | None = None) -> optuna.Study:
    """The study in its storage; with ``create``, created if new and its grid points not yet in it
    enqueued. ``worker_key`` varies a seeded sampler per worker (see :meth:`StudySpec.make_sampler`)."""
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
        for point in spec.grid[: spec.n_trials]:  # points already in the study (any state) are skipped
            study.enqueue_trial(point, skip_if_exists=True)
        return study
    return optuna.load_study(study_name=spec.study_name, storage=storage, sampler=spec.make_sampler(worker_key),
                             pruner=spec.make_pruner())


def run_batch(spec: StudySpec, study: optuna.Study, size: int, worker: int) -> int:
    """Ask for up to ``size`` trials, train them as one stacked model, tell each outcome; returns how many ran."""
    trials, params = ask(spec, study, size)
    if not trials:
        return 0
    start = time.perf_counter()
    with heartbeats(study, trials):
        slots = run_trial_batch(spec, trials, params)
    seconds = time.perf_counter() - start
    for slot in slots:
        tell(study, slot.trial, slot.state, slot.values, slot.reason)
    finished = {t.number: t for t in study.get_trials(deepcopy=False)}
    for slot in slots:
        print(f"{describe(spec, finished[slot.trial.number], seconds)} [worker {worker}, batch of {len(slots)}; "
              f"study: {tally(study)}]", flush=True)
    return len(slots)


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


def run_trials_as_one_process() -> None:
    """Under `srun`, Lightning takes SLURM_PROCID as this process's rank (and checks SLURM's task
    counts), which would silence every rank-zero-only write (CSV metrics, W&B runs) on all nodes but
    the first. A sweep's trial is one process: it is rank 0 of its own run."""
    for variable in ("SLURM_NTASKS", "SLURM_NTASKS_PER_NODE", "SLURM_PROCID", "SLURM_LOCALID"):
        os.environ.pop(variable, None)
    rank_zero_only.rank = 0


def work(spec: StudySpec, worker: int = 0, threads: int | None = None, cuda_device: str | None = None,
         exact_seed: bool = False, batch_trials: int = 1) -> int:
    """Run trials until the budget is used; returns how many this worker ran. ``exact_seed``: the
    sampler's seed as written (one worker starting a new study: reproducible); otherwise mixed with
    this host and process. ``batch_trials``: trials asked for and trained together as one stacked model."""
    if cuda_device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = cuda_device
    if threads:
        torch.set_num_threads(threads)
    run_trials_as_one_process()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(spec, worker_key=None if exact_seed else f"{socket.gethostname()}/{os.getpid()}")
    objective, ran, me = make_objective(spec, study, run_trial), 0, this_worker()
    while budget_left(spec, study):
        if batch_trials > 1 and trials_to_run(spec, study) > 1:  # a lone trial runs unstacked
            ran += run_batch(spec, study, batch_trials, worker)
            continue
        start = time.perf_counter()
        study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=True)
        mine = [t for t in study.get_trials(deepcopy=False)
                if {k: t.user_attrs.get(k) for k in me} == me and t.state.is_finished()]
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
        inherited = os.environ.get("CUDA_VISIBLE_DEVICES")  # e.g. "2,3" from SLURM: stay inside it
        visible = [d.strip() for d in inherited.split(",")] if inherited else [str(i) for i in range(gpus)]
        return [{"cuda_device": visible[i % gpus], "threads": None} for i in range(workers)]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return [{"cuda_device": None, "threads": max(1, cores // workers)} for _ in range(workers)]


def create_study(spec: StudySpec) -> optuna.Study:
    """Check that a trial's config parses, then create the study (idempotent)."""
    run_trials_as_one_process()
    check_run_config(spec)
    return open_study(spec, create=True)


def run_sweep(spec: StudySpec, workers: int = 1, report: bool = True, batch_trials: int = 1) -> optuna.Study:
    """Check the study, create it, run ``workers`` processes on this machine (each training
    ``batch_trials`` trials at a time as one stacked model), then write its report."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise StudySpecError(f"--workers must be an integer >= 1, got {workers!r}")
    check_batchable(spec, batch_trials)
    study = create_study(spec)
    if not uses_heartbeats(spec):
        for number in recover_dead_local_trials(study):
            print(f"[sweep {spec.study_name}] trial {number} lost its worker; it will run again", flush=True)
    done = sum(counts_toward_budget(t) and t.state.is_finished() for t in study.get_trials(deepcopy=False))
    print(f"[sweep {spec.study_name}] storage {redact(storage_url(spec))}; {done}/{spec.n_trials} trials done; "
          f"{workers} worker(s)" + (f", {batch_trials} trials per stacked model" if batch_trials > 1 else "")
          + f"; runs under {spec.output_dir}", flush=True)
    if workers == 1:  # in this process, on every device it sees (a trial may itself use several GPUs)
        work(spec, 0, exact_seed=not study.get_trials(deepcopy=False), batch_trials=batch_trials)
    else:
        placement = worker_placement(workers)
        context = multiprocessing.get_context("spawn")
        processes = [context.Process(target=work, args=(spec, i), kwargs={**placement[i], "batch_trials": batch_trials},
                                     name=f"sweep-worker-{i}")
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
