"""Run a study: create it once, start the workers, keep the trial budget exact, report at the end.

A worker asks Optuna for one trial at a time until the budget is used (the budget, the asking and
the telling are :mod:`infoae_pl.tuning.asktell`'s). So re-running the same command resumes a study
without repeating or losing anything. With ``batch_trials`` K > 1 a worker asks for K trials at once
and trains them as one stacked model (:mod:`infoae_pl.tuning.batched`).

Before any trial the study's objectives are checked (:mod:`infoae_pl.tuning.preflight`) and, for a
study that exists, its fixed settings against those it was created with (:func:`check_fingerprint`).
Ctrl-C stops every worker quietly, their running trials to run again on resume; a database outage is
waited out (:mod:`infoae_pl.tuning.outage`).
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
import warnings
from collections import Counter
from typing import Any

import optuna
import torch
from lightning.pytorch.utilities import rank_zero_only
from optuna.trial import FrozenTrial, TrialState

from infoae_pl.preemption import (
    EXIT_CODE,
    REASON,
    RESUME_ATTR,
    Preempted,
    forward_sigterm,
    resume_attrs,
    stop_on_sigterm,
)
from infoae_pl.tuning.asktell import (
    ask,
    budget_left,
    counted,
    heartbeats,
    make_objective,
    retry_failed,
    run_again,
    run_again_my_running_trials,
    tell,
    trials_to_run,
)
from infoae_pl.tuning.batched import check_batchable, run_trial_batch
from infoae_pl.tuning.interrupts import interrupt_taken, quiet_interrupt
from infoae_pl.tuning.outage import (
    EXIT_DATABASE,
    StorageUnavailableError,
    gave_up,
    retry_opening,
    with_retries,
)
from infoae_pl.tuning.preflight import check_objectives
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

#: The exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130
#: Seconds the workers have to stop after Ctrl-C before they are killed (their trials then run again
#: when the study resumes, as a killed worker's do).
STOP_SECONDS = 60.0


def open_study(spec: StudySpec, create: bool = False, worker_key: str | None = None,
               allow_changed: bool = False) -> optuna.Study:
    """The study in its storage (a database one waits out outages of up to ``spec.db_retry_seconds``);
    with ``create``, created if new, checked against its fixed settings (:func:`check_fingerprint`),
    and its grid points not yet in it enqueued. ``worker_key`` varies a seeded sampler per worker
    (see :meth:`StudySpec.make_sampler`)."""
    storage = with_retries(make_storage(spec), spec.db_retry_seconds, redact(storage_url(spec)))
    if create:
        study = optuna.create_study(
            study_name=spec.study_name, storage=storage, directions=spec.directions, load_if_exists=True,
            sampler=spec.make_sampler(), pruner=spec.make_pruner(),
        )
        stored = [d.name.lower() for d in study.directions]
        if stored != spec.directions:
            raise StudySpecError(f"study {spec.study_name!r} already exists in {redact(storage_url(spec))} with "
                                 f"directions {stored}, not {spec.directions}: choose another study_name")
        check_fingerprint(spec, study, allow_changed)
        if study.metric_names is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(spec.metrics)
        for point in spec.grid[: spec.n_trials]:  # points already in the study (any state) are skipped
            study.enqueue_trial(point, skip_if_exists=True)
        return study
    return optuna.load_study(study_name=spec.study_name, storage=storage, sampler=spec.make_sampler(worker_key),
                             pruner=spec.make_pruner())


def check_fingerprint(spec: StudySpec, study: optuna.Study, allow_changed: bool = False) -> None:
    """Record the study's fixed settings (:attr:`StudySpec.fixed_settings`) when it is new (or was
    created before they were recorded); refuse, before any trial, to run it with other ones unless
    ``allow_changed`` (``--allow-changed-study``), which records the new ones."""
    stored = study.user_attrs.get("fingerprint")
    if stored == spec.fingerprint:
        return
    if stored is not None and not allow_changed:
        changes = settings_changes(json.loads(study.user_attrs.get("fixed_settings", "{}")), json.loads(spec.fixed_settings))
        ran = len(study.get_trials(deepcopy=False))
        raise StudySpecError(
            f"study {spec.study_name!r} in {redact(storage_url(spec))} was created with other fixed settings "
            f"({'; '.join(changes[:5])}{'; …' if len(changes) > 5 else ''}), and its {ran} trial(s) ran with them. "
            "To start a new study, change study_name (or output_dir/storage); to continue this one with the new "
            "settings on purpose, add --allow-changed-study (each trial records the fingerprint of its settings)"
        )
    if stored is not None:
        print(f"[sweep {spec.study_name}] fixed settings changed on purpose (--allow-changed-study): trials from now "
              f"on record fingerprint {spec.fingerprint}, earlier ones {stored}", flush=True)
        study.set_user_attr("earlier_fingerprints", [*study.user_attrs.get("earlier_fingerprints", []), stored])
    study.set_user_attr("fixed_settings", spec.fixed_settings)
    study.set_user_attr("fingerprint", spec.fingerprint)


def settings_changes(old: Any, new: Any, key: str = "") -> list[str]:
    """``key: old → new`` for each dotted key whose value differs between two settings mappings."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [change for k in sorted(set(old) | set(new), key=str)
                for change in settings_changes(old.get(k, "(unset)"), new.get(k, "(unset)"), f"{key}.{k}" if key else str(k))]
    return [] if old == new else [f"{key}: {json.dumps(old, default=str)} → {json.dumps(new, default=str)}"]


def run_batch(spec: StudySpec, study: optuna.Study, size: int, worker: int) -> int:
    """Ask for up to ``size`` trials, train them as one stacked model, tell each outcome; returns how many ran.
    Retries of pre-empted trials among them resume from their checkpoints, one at a time, first."""
    trials, params = ask(spec, study, size)
    if not trials:
        return 0
    with heartbeats(study, trials):
        resuming = [(t, p) for t, p in zip(trials, params) if RESUME_ATTR in t.user_attrs]
        for trial, p in resuming:
            run_resumed(spec, study, trial, p, worker)
        batch = [(t, p) for t, p in zip(trials, params) if RESUME_ATTR not in t.user_attrs]
        if not batch:
            return len(trials)
        start = time.perf_counter()
        slots = run_trial_batch(spec, [t for t, _ in batch], [p for _, p in batch])
    seconds = time.perf_counter() - start
    for slot in slots:
        if slot.state == "preempted":
            run_again(study, slot.trial, REASON, fail=True, resume=slot.resume)
        else:
            tell(study, slot.trial, slot.state, slot.values, slot.reason)
    preempted = [s.trial.number for s in slots if s.state == "preempted"]
    if preempted:
        raise Preempted(f"trials {', '.join(map(str, preempted))} pre-empted (SIGTERM); they run again from their "
                        "checkpoints")
    finished = {t.number: t for t in study.get_trials(deepcopy=False)}
    for slot in slots:
        print(f"{describe(spec, finished[slot.trial.number], seconds)} [worker {worker}, batch of {len(slots)}; "
              f"study: {tally(study)}]", flush=True)
    return len(trials)


def run_resumed(spec: StudySpec, study: optuna.Study, trial: optuna.Trial, params: dict[str, Any], worker: int) -> None:
    """Train an asked retry of a pre-empted trial alone, resuming from its checkpoint (a stacked model
    starts all its copies at step 0), and tell its outcome."""
    start = time.perf_counter()
    try:
        values = run_trial(spec, trial, params, spec.output_dir / f"trial-{trial.number:04d}")
    except optuna.TrialPruned:
        tell(study, trial, "pruned")
    except Preempted as stop:
        run_again(study, trial, REASON, fail=True, resume=resume_attrs(stop, spec.output_dir))
        raise
    except Exception as error:
        tell(study, trial, "failed", reason=f"{type(error).__name__}: {error}")
    else:
        tell(study, trial, "complete", values)
    finished = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
    print(f"{describe(spec, finished, time.perf_counter() - start)} [worker {worker}, resumed; study: {tally(study)}]",
          flush=True)


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
         exact_seed: bool = False, batch_trials: int = 1, stop: Any = None) -> int:
    """Run trials until the budget is used; returns how many this worker ran. ``exact_seed``: the
    sampler's seed as written (one worker starting a new study: reproducible); otherwise mixed with
    this host and process. ``batch_trials``: trials asked for and trained together as one stacked model.
    ``stop``: an event that, once set, stops the worker as Ctrl-C does. On KeyboardInterrupt the trials
    this worker was running are failed and enqueued to run again, then it is raised again."""
    if cuda_device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = cuda_device
    if threads:
        torch.set_num_threads(threads)
    run_trials_as_one_process()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    key = None if exact_seed else f"{socket.gethostname()}/{os.getpid()}"
    study = retry_opening(lambda: open_study(spec, worker_key=key), spec.db_retry_seconds, redact(storage_url(spec)))
    objective, ran, me = make_objective(spec, study, run_trial), 0, this_worker()
    try:
        while budget_left(spec, study):
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt
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
                    print(f"{describe(spec, last, time.perf_counter() - start)} [worker {worker}; study: "
                          f"{tally(study)}]", flush=True)
    except KeyboardInterrupt:
        interrupt_taken()
        run_again_my_running_trials(study, "interrupted (Ctrl-C)")
        raise
    except Preempted:  # SIGTERM: trials not yet saved (still starting, or waiting in a batch) run again afresh
        run_again_my_running_trials(study, REASON)
        raise
    return ran


def worker_process(spec: StudySpec, worker: int, stop: Any, options: dict[str, Any]) -> None:
    """A worker process of :func:`run_sweep`: :func:`work`, ending quietly with exit status 130 when
    interrupted (Ctrl-C, or ``stop`` set by the parent) and 75 when the database stayed away."""
    with quiet_interrupt():
        if stop.is_set():  # Ctrl-C came before this process could take it (it starts with SIGINT ignored)
            sys.exit(EXIT_INTERRUPTED)
        try:
            with stop_on_sigterm("infoae sweep", hint="re-run the same command to resume"):
                work(spec, worker, stop=stop, **options)
        except KeyboardInterrupt:
            interrupt_taken()
            sys.exit(EXIT_INTERRUPTED)
        except Exception as error:
            if gave_up(error):
                sys.exit(EXIT_DATABASE)
            raise


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


def create_study(spec: StudySpec, allow_changed: bool = False, retry_failed_trials: bool = False,
                 batched: bool = False) -> optuna.Study:
    """Check that a trial's config parses and logs the objectives (``batched``: trials trained as one
    stacked model), then create the study (idempotent) or check an existing one's fixed settings;
    ``retry_failed_trials``: its failed trials run again (:func:`~infoae_pl.tuning.asktell.retry_failed`)."""
    run_trials_as_one_process()
    check_run_config(spec)
    check_objectives(spec, batched)
    study = open_study(spec, create=True, allow_changed=allow_changed)
    if retry_failed_trials:
        for trial in retry_failed(spec, study):
            reason = str(trial.user_attrs.get("fail_reason", "failed"))[:120]
            print(f"[sweep {spec.study_name}] trial {trial.number} ({reason}) runs again (--retry-failed)", flush=True)
    return study


def run_sweep(spec: StudySpec, workers: int = 1, report: bool = True, batch_trials: int = 1,
              allow_changed: bool = False, retry_failed_trials: bool = False) -> optuna.Study:
    """Check the study, create it, run ``workers`` processes on this machine (each training
    ``batch_trials`` trials at a time as one stacked model), then write its report.
    ``allow_changed``/``retry_failed_trials``: see :func:`create_study`. Raises KeyboardInterrupt on
    Ctrl-C once every worker has stopped, and :class:`StorageUnavailableError` when the database
    stayed away longer than ``spec.db_retry_seconds``."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise StudySpecError(f"--workers must be an integer >= 1, got {workers!r}")
    check_batchable(spec, batch_trials)
    study = create_study(spec, allow_changed, retry_failed_trials, batched=batch_trials > 1)
    if not uses_heartbeats(spec):
        for number in recover_dead_local_trials(study):
            print(f"[sweep {spec.study_name}] trial {number} lost its worker; it will run again", flush=True)
    done = sum(t.state.is_finished() for t in counted(study.get_trials(deepcopy=False)))
    print(f"[sweep {spec.study_name}] storage {redact(storage_url(spec))}; {done}/{spec.n_trials} trials done; "
          f"{workers} worker(s)" + (f", {batch_trials} trials per stacked model" if batch_trials > 1 else "")
          + f"; runs under {spec.output_dir}", flush=True)
    if workers == 1:  # in this process, on every device it sees (a trial may itself use several GPUs)
        try:
            with stop_on_sigterm("infoae sweep", hint="re-run the same command to resume"):
                work(spec, 0, exact_seed=not study.get_trials(deepcopy=False), batch_trials=batch_trials)
        except Exception as error:
            unavailable = gave_up(error)
            if unavailable is None:
                raise
            raise StorageUnavailableError(str(unavailable)) from None
    else:
        run_workers(spec, workers, batch_trials)
    print(f"[sweep {spec.study_name}] finished: {tally(study)}", flush=True)
    if report:
        from infoae_pl.tuning.report import wandb_summary, write_report

        paths = write_report(spec, study)
        if paths:
            print(f"[sweep {spec.study_name}] report: {paths['html']}", flush=True)
            wandb_summary(spec, study, paths)
    return study


def run_workers(spec: StudySpec, workers: int, batch_trials: int) -> None:
    """Run :func:`worker_process` in ``workers`` processes until they end. Ctrl-C: each worker stops
    (its running trials enqueued to run again), then KeyboardInterrupt is raised here."""
    placement = worker_placement(workers)
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    processes = [context.Process(target=worker_process, name=f"sweep-worker-{i}",
                                 args=(spec, i, stop, {**placement[i], "batch_trials": batch_trials}))
                 for i in range(workers)]
    # The workers start with Ctrl-C ignored (a Python process keeps an ignored SIGINT) until they can
    # take it quietly; one that is still starting sees `stop` instead.
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main_thread else None
    try:
        for process in processes:
            process.start()
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, previous)
    try:
        with forward_sigterm(processes):  # each worker saves its trials and stops
            for process in processes:
                process.join()
    except KeyboardInterrupt:
        interrupt_taken()
        stop_workers(processes, stop)
        raise
    if any(p.exitcode == EXIT_DATABASE for p in processes):
        raise StorageUnavailableError(f"the database {redact(storage_url(spec))} did not answer for "
                                      f"{spec.db_retry_seconds:g} s (--db-retry-seconds); re-run the same command "
                                      "to resume once it answers")
    if any(p.exitcode == EXIT_CODE for p in processes):  # each such worker said which trials it saved
        raise Preempted()
    crashed = [p.name for p in processes if p.exitcode != 0]
    if crashed:
        print(f"[sweep {spec.study_name}] worker(s) {', '.join(crashed)} exited abnormally; "
              "re-run the same command to finish the study", flush=True)


def stop_workers(processes: list[Any], stop: Any) -> None:
    """Ask each running worker to stop as after Ctrl-C (a worker that got the terminal's Ctrl-C itself
    ignores the second one) and wait up to :data:`STOP_SECONDS`; then kill those still running."""
    stop.set()
    for process in processes:
        if process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGINT)
    deadline = time.monotonic() + STOP_SECONDS
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join()


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) and math.isfinite(value) else str(value)
