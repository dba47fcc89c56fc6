"""``infoae sweep STUDY.yaml [--workers N]``, ``infoae sweep report STUDY.yaml`` and ``infoae sweep dashboard
STUDY.yaml`` (:mod:`infoae_pl.tuning.dashboard`).

Optuna, torch and Lightning are imported after the arguments parse, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infoae_pl.tuning.spec import StudySpec

EPILOG = """examples:
  infoae sweep sweeps/beta_elbo_beta.yaml                  # one worker, journal file in runs/sweeps/NAME/
  infoae sweep sweeps/beta_elbo_beta.yaml --workers 2      # two processes on this machine
  infoae sweep sweeps/beta_elbo_beta.yaml --batch-trials 8 # 8 trials at a time as one vectorised model
  export INFOAE_STORAGE=postgresql://USER:PASSWORD@HOST/DB  # the password stays out of `ps` and W&B
  infoae sweep sweeps/beta_elbo_beta.yaml --storage env:INFOAE_STORAGE --create-only
  infoae sweep sweeps/beta_elbo_beta.yaml --storage env:INFOAE_STORAGE   # then on every node
  infoae sweep report sweeps/beta_elbo_beta.yaml           # figures + best trials, no W&B needed
  infoae sweep dashboard sweeps/beta_elbo_beta.yaml        # watch it in optuna-dashboard (--help: options)
  infoae sweep wandb-dashboard sweeps/beta_elbo_beta.yaml --entity E  # its W&B workspace (offline: a spec file)
Re-running the same command resumes the study: finished trials are kept, lost and interrupted (Ctrl-C)
ones run again, failed ones with --retry-failed. A study file changed since the study was created is
refused (use a new study_name, or --allow-changed-study on purpose).
Exit status: 0 done, 1 no trial completed, 2 bad study or options, 75 database unreachable, 130 Ctrl-C."""


def _parser(report: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="infoae sweep report" if report else "infoae sweep",
        description="Write a study's report." if report else "Search Lagrange multipliers (any config key) with Optuna.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("study", help="the study YAML (see sweeps/)")
    parser.add_argument("--storage", default=None,
                        help="override the YAML's storage: a journal path, a DB URL, or env:NAME to read the URL "
                             "from the environment variable NAME (keeps a password out of the process list)")
    if not report:
        parser.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default 1)")
        parser.add_argument("--n-trials", type=int, default=None, help="override the YAML's trial budget")
        parser.add_argument("--batch-trials", type=int, default=1, metavar="K",
                            help="train K trials at a time as one stacked (vmapped) model; they may differ only in "
                                 "the model's coefficients and the seed (default 1: one trial at a time)")
        parser.add_argument("--no-report", action="store_true", help="skip the report at the end")
        parser.add_argument("--create-only", action="store_true",
                            help="check the study and create it in its storage, run nothing (cluster set-up)")
        parser.add_argument("--retry-failed", action="store_true",
                            help="run the study's failed trials again, each as a new trial with its parameters "
                                 "(the failed ones stop counting toward the budget); use it on one node")
        parser.add_argument("--allow-changed-study", action="store_true",
                            help="continue a study whose fixed settings (run config, search space, objectives) "
                                 "changed since it was created, on purpose (default: refuse)")
        parser.add_argument("--db-retry-seconds", type=_seconds, default=None, metavar="S",
                            help="wait out a database outage for up to S seconds before giving up (default 120; "
                                 "0: give up at once)")
    return parser


def _seconds(text: str) -> float:
    """A non-negative number of seconds, for ``--db-retry-seconds``."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text!r}")
    return value


def sweep_main(argv: list[str]) -> int:
    if argv[:1] == ["dashboard"]:
        from infoae_pl.tuning.dashboard import dashboard_main

        return dashboard_main(argv[1:])
    if argv[:1] == ["wandb-dashboard"]:
        from infoae_pl.tuning.wandb_dashboard import wandb_dashboard_main

        return wandb_dashboard_main(argv[1:])
    report = bool(argv) and argv[0] == "report"
    args = _parser(report).parse_args(argv[1:] if report else argv)
    from infoae_pl.tuning.credentials import hide_passwords_in_argv
    from infoae_pl.tuning.spec import StudySpecError, load_study

    if hide_passwords_in_argv():  # W&B runs and workers now see ***; `ps` still shows the password
        print("infoae sweep: warning: a password on the command line is visible to other users of this machine; "
              "export INFOAE_STORAGE=URL and pass --storage env:INFOAE_STORAGE", file=sys.stderr)

    try:
        spec = load_study(args.study, storage=args.storage, n_trials=None if report else args.n_trials)
        if report:
            from infoae_pl.tuning.report import write_report
            from infoae_pl.tuning.storage import redact, storage_url
            from infoae_pl.tuning.sweep import open_study

            try:
                study = open_study(spec)
            except KeyError:
                raise StudySpecError(f"no study {spec.study_name!r} in {redact(storage_url(spec))}; "
                                     "run `infoae sweep` first") from None
            paths = write_report(spec, study)
            for name, path in paths.items():
                print(f"{name}: {path}")
            return 0 if paths else 1
        return _sweep(spec, args)
    except StudySpecError as error:
        print(f"infoae sweep: {error}", file=sys.stderr)
        return 2


def _sweep(spec: StudySpec, args: argparse.Namespace) -> int:
    """Create or run the study. Exit status: 0 when a trial completed (or the study was created), 1 when
    none did (the reasons printed), 130 on Ctrl-C, 75 when the database stayed away; one line each."""
    import dataclasses

    from infoae_pl.tuning.interrupts import quiet_interrupt
    from infoae_pl.tuning.outage import EXIT_DATABASE, StorageUnavailableError
    from infoae_pl.tuning.sweep import EXIT_INTERRUPTED, create_study, run_sweep

    if args.db_retry_seconds is not None:
        spec = dataclasses.replace(spec, db_retry_seconds=args.db_retry_seconds)
    try:
        with quiet_interrupt():
            if args.create_only:
                create_study(spec, args.allow_changed_study, args.retry_failed)
                print(f"study {spec.study_name} ready")
                return 0
            study = run_sweep(spec, workers=args.workers, report=not args.no_report, batch_trials=args.batch_trials,
                              allow_changed=args.allow_changed_study, retry_failed_trials=args.retry_failed)
    except KeyboardInterrupt:
        print("infoae sweep: interrupted: re-run the same command to resume", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except StorageUnavailableError as error:
        print(f"infoae sweep: {error}", file=sys.stderr, flush=True)
        return EXIT_DATABASE
    return _no_trial_completed(spec, study)


def _no_trial_completed(spec: StudySpec, study: Any) -> int:
    """0 if a trial of ``study`` completed; else print why its trials failed and return 1."""
    from collections import Counter

    from optuna.trial import TrialState

    from infoae_pl.tuning.asktell import counted

    trials = counted(study.get_trials(deepcopy=False))
    if any(t.state == TrialState.COMPLETE for t in trials):
        return 0
    reasons = Counter(t.user_attrs.get("fail_reason", "no reason recorded") for t in trials if t.state == TrialState.FAIL)
    states = Counter(t.state.name.lower() for t in trials)
    lines = [f"infoae sweep: no trial of study {spec.study_name!r} completed "
             f"({', '.join(f'{n} {s}' for s, n in sorted(states.items())) or 'none ran'})"]
    lines += [f"  {n} × {reason[:500]}" for reason, n in reasons.most_common()]
    if reasons:
        lines.append("fix the cause, then run the failed trials again with --retry-failed (and --allow-changed-study "
                     "if the fix changed the study's file)")
    print("\n".join(lines), file=sys.stderr, flush=True)
    return 1
