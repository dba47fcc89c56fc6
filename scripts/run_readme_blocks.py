#!/usr/bin/env python3
"""Run every ``bash`` block of README.md, in a tiny form, in a fresh clone of this repository.

Each command line of the README is matched against :data:`TINY_FORMS`, which appends the options that
make it small (a few steps, tiny profiles, tiny studies) and leaves the command itself as written; a
command line with no tiny form fails the run, so the README cannot gain a command that nothing runs.
Blocks run in order, each as one ``bash -e`` script from the clone's root (``. .venv/bin/activate``
included), so a block's later lines see what its earlier lines wrote (``runs/infoae/version_0``).

Usage: ``python scripts/run_readme_blocks.py [--keep DIR]`` from the repository root, after
``make install`` (the clone borrows ``.venv`` and imports its own ``src/``).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

#: Options that keep a training run to a few steps and a small evaluation.
TINY_FIT = ("--trainer.max_steps 4 --trainer.val_check_interval 2 --trainer.check_val_every_n_epoch null "
            "--trainer.limit_val_batches 2 --trainer.limit_test_batches 2 --trainer.enable_progress_bar false")
#: (pattern of a README command line, what to append to it; None: the line is covered elsewhere).
TINY_FORMS: list[tuple[str, str | None]] = [
    (r"^make test$", None),  # the suite itself: CI runs it right before this script
    (r"^make reproduce-fig1$", "PROFILE=tiny"),
    (r"^\. \.venv/bin/activate$", ""),
    (r"^infoae fit .*--print_config", ""),
    (r"^infoae fit ", TINY_FIT),
    (r"^infoae test ", "--trainer.limit_test_batches 2 --trainer.enable_progress_bar false"),
    (r"^infoae --help$", ""),
    (r"^infoae theory ", ""),
    (r"^infoae sweep report ", ""),  # reads the tiny study the sweep lines wrote
    # a server: serve the tiny study for 20 s on a free port, then Ctrl-C it (it exits 0)
    (r"^infoae sweep wandb-dashboard ", ""),  # offline: writes the workspace's specification
    (r"^infoae sweep dashboard ", "--port 0 & server=$!; sleep 20; kill -INT $server; wait $server"),
    (r"^infoae reproduce \w+ .*--figures-only", ""),  # redraws from the committed results: already quick
    (r"^infoae sweep ", "--n-trials 2"),
    (r"^\.venv/bin/python benchmarks/bench_train_step\.py$", "--steps 6 --warmup 1 --repeats 1 --out {tmp}/b1.json"),
    (r"^\.venv/bin/python benchmarks/bench_train_step\.py --model conv_infogan( --\S+ [\w-]+)*$",
     "--steps 4 --warmup 1 --repeats 1 --out {tmp}/b5.json"),
    (r"^\.venv/bin/python benchmarks/bench_nll\.py$", "--examples 4 --samples 16 --rounds 1 --out {tmp}/b2.json"),
    (r"^\.venv/bin/python benchmarks/bench_sweep\.py$", "--steps 4 --trials 2 --fit-repeats 1 --out {tmp}/b3.json"),
    (r"^\.venv/bin/python benchmarks/bench_vectorised\.py$",
     "--copies 1 2 --steps 2 --warmup 1 --repeats 1 --out {tmp}/b4.json"),
]
#: A shipped study made tiny: few steps, validation at the end, every trial run to the end.
TINY_STUDY = {"trainer.max_steps": 4, "trainer.val_check_interval": 4, "trainer.check_val_every_n_epoch": None,
              "trainer.limit_val_batches": 2, "data.val_size": 100, "data.test_size": 100}


def bash_blocks(readme: str) -> list[list[str]]:
    """The command lines of every ```bash block (comments and blank lines dropped, trailing comments cut)."""
    blocks = []
    for block in re.findall(r"```bash\n(.*?)```", readme, re.S):
        lines = []
        for line in block.splitlines():
            line = re.sub(r"\s{2,}#.*$", "", line).strip()
            if line and not line.startswith("#"):
                lines.append(line)
        blocks.append(lines)
    return blocks


def tiny_form(line: str, tmp: Path) -> str | None:
    """``line`` with its tiny options appended (None: covered elsewhere); KeyError when it has no tiny form."""
    for pattern, extra in TINY_FORMS:
        if re.search(pattern, line):
            if extra is None:
                return None
            if " > " in line:  # options go before a redirection
                command, _, target = line.partition(" > ")
                return f"{command} {extra.format(tmp=tmp)} > {target}".replace("  ", " ")
            return f"{line} {extra.format(tmp=tmp)}".strip()
    raise KeyError(f"README command with no tiny form in scripts/run_readme_blocks.py: {line!r}")


def make_studies_tiny(clone: Path) -> None:
    """Every shipped study, in the clone, trains a few steps (its search space and objectives unchanged)."""
    for path in sorted((clone / "src" / "infoae_pl" / "sweeps").glob("*.yaml")):
        study = yaml.safe_load(path.read_text())
        study["config"] = {**(study.get("config") or {}), **TINY_STUDY}
        study["storage"] = None  # a journal in the clone's runs/
        path.write_text(yaml.safe_dump(study, sort_keys=False, allow_unicode=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", default=None, help="clone into this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    blocks = bash_blocks((ROOT / "README.md").read_text())
    with tempfile.TemporaryDirectory(prefix="readme-blocks-") as scratch:
        clone = Path(args.keep) if args.keep else Path(scratch) / "clone"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        (clone / ".venv").symlink_to(ROOT / ".venv")
        os.utime(clone / "pyproject.toml", (0, 0))  # older than the borrowed .venv/.installed: make keeps it
        make_studies_tiny(clone)
        # The README activates .venv once (block 2) and later blocks assume it: every block gets it on PATH.
        env = {**os.environ, "PYTHONPATH": str(clone / "src"), "WANDB_MODE": "offline", "WANDB_SILENT": "true",
               "PATH": f"{clone / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
        failures = 0
        for number, lines in enumerate(blocks, 1):
            script = [form for line in lines if (form := tiny_form(line, Path(scratch))) is not None]
            if not script:
                continue
            start = time.perf_counter()
            print(f"README block {number}:\n  " + "\n  ".join(script), flush=True)
            result = subprocess.run(["bash", "-e", "-c", "\n".join(script)], cwd=clone, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            seconds = time.perf_counter() - start
            if result.returncode:
                failures += 1
                print(result.stdout[-6000:])
                print(f"README block {number}: FAILED (exit {result.returncode}, {seconds:.0f} s)", flush=True)
            else:
                print(f"README block {number}: ok ({seconds:.0f} s)", flush=True)
        ran = sum(1 for lines in blocks if any(tiny_form(line, Path(scratch)) is not None for line in lines))
        print(f"README blocks: {ran - failures} ran clean, {failures} failed")
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
