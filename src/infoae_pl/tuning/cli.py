"""``infoae sweep STUDY.yaml [--workers N]`` and ``infoae sweep report STUDY.yaml``.

Optuna, torch and Lightning are imported after the arguments parse, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys

EPILOG = """examples:
  infoae sweep sweeps/beta_elbo_beta.yaml                  # one worker, journal file in runs/sweeps/NAME/
  infoae sweep sweeps/beta_elbo_beta.yaml --workers 2      # two processes on this machine
  infoae sweep sweeps/beta_elbo_beta.yaml --batch-trials 8 # 8 trials at a time as one vectorised model
  infoae sweep sweeps/beta_elbo_beta.yaml --storage postgresql://USER:PASSWORD@HOST/DB --create-only
  infoae sweep sweeps/beta_elbo_beta.yaml --storage postgresql://USER:PASSWORD@HOST/DB   # then on every node
  infoae sweep report sweeps/beta_elbo_beta.yaml           # figures + best trials, no W&B needed
Re-running the same command resumes the study: finished trials are kept, lost ones run again."""


def _parser(report: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="infoae sweep report" if report else "infoae sweep",
        description="Write a study's report." if report else "Search Lagrange multipliers (any config key) with Optuna.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("study", help="the study YAML (see sweeps/)")
    parser.add_argument("--storage", default=None, help="override the YAML's storage (journal path or DB URL)")
    if not report:
        parser.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default 1)")
        parser.add_argument("--n-trials", type=int, default=None, help="override the YAML's trial budget")
        parser.add_argument("--batch-trials", type=int, default=1, metavar="K",
                            help="train K trials at a time as one stacked (vmapped) model; they may differ only in "
                                 "the model's coefficients and the seed (default 1: one trial at a time)")
        parser.add_argument("--no-report", action="store_true", help="skip the report at the end")
        parser.add_argument("--create-only", action="store_true",
                            help="check the study and create it in its storage, run nothing (cluster set-up)")
    return parser


def sweep_main(argv: list[str]) -> int:
    report = bool(argv) and argv[0] == "report"
    args = _parser(report).parse_args(argv[1:] if report else argv)
    from infoae_pl.tuning.spec import StudySpecError, load_study

    try:
        spec = load_study(args.study, storage=args.storage, n_trials=None if report else args.n_trials)
        if report:
            from infoae_pl.tuning.report import write_report
            from infoae_pl.tuning.sweep import open_study

            try:
                study = open_study(spec)
            except KeyError:
                raise StudySpecError(f"no study {spec.study_name!r} in {spec.storage or spec.output_dir}; "
                                     "run `infoae sweep` first") from None
            paths = write_report(spec, study)
            for name, path in paths.items():
                print(f"{name}: {path}")
            return 0 if paths else 1
        from infoae_pl.tuning.sweep import create_study, run_sweep

        if args.create_only:
            create_study(spec)
            print(f"study {spec.study_name} ready")
            return 0
        run_sweep(spec, workers=args.workers, report=not args.no_report, batch_trials=args.batch_trials)
    except StudySpecError as error:
        print(f"infoae sweep: {error}", file=sys.stderr)
        return 2
    return 0
