"""``infoae theory``: print the appendix's subspace table, or compile a Lagrangian given on the command line.

Examples::

    infoae theory table
    infoae theory compile --term 'I_q=-0.5' --term 'KL(q(x|z)||p(x|z))=1' --term 'KL(q(z)||p(z))=1.5' --json
    infoae theory compile --preset beta_elbo --param beta=0.5
    infoae theory compile --preset beta_elbo --param beta=0.5 --term 'MMD(p(z)||q(z))=10'

Terms given with ``--preset`` are added to the preset.  Exit status 2 on bad syntax or unknown
names (the message lists the valid ones).
"""

from __future__ import annotations

import argparse
import json
import sys
from fractions import Fraction

from infoae_pl.objectives.compiler import CompiledObjective, compile
from infoae_pl.objectives.lagrangian import Lagrangian
from infoae_pl.objectives.presets import PRESETS, identify_preset, preset
from infoae_pl.objectives.table import format_table, subspace_table
from infoae_pl.objectives.terms import format_formula, format_number


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="infoae theory", description="The objective algebra of the paper's appendix B."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{table,compile}")
    table = commands.add_parser("table", help="compute the appendix's subspace-dimension table")
    table.add_argument("--json", action="store_true", help="print one JSON object")
    comp = commands.add_parser(
        "compile", help="compile a Lagrangian: membership, class, tractable form, preset"
    )
    comp.add_argument(
        "--term",
        action="append",
        default=[],
        metavar="NAME=COEF",
        help="a Lagrangian term, e.g. 'I_q=-0.5' (repeatable)",
    )
    comp.add_argument("--preset", choices=list(PRESETS), help="start from a named preset")
    comp.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a preset parameter, e.g. beta=0.5 (repeatable)",
    )
    comp.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _lagrangian(args: argparse.Namespace) -> Lagrangian:
    if args.param and not args.preset:
        raise ValueError("--param needs --preset")
    if not args.term and not args.preset:
        raise ValueError("give at least one --term NAME=COEF or a --preset")
    params: dict[str, str] = {}
    for spec in args.param:
        name, sep, value = spec.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"expected --param NAME=VALUE, got {spec!r}")
        params[name.strip()] = value
    lagrangian = Lagrangian.parse(args.term)
    return preset(args.preset, **params) + lagrangian if args.preset else lagrangian


def _floats(coefficients: dict[str, Fraction]) -> dict[str, float]:
    return {n: float(c) for n, c in coefficients.items()}


def _report(compiled: CompiledObjective, as_json: bool) -> str:
    lagrangian = compiled.lagrangian
    membership = lagrangian.membership()
    match = identify_preset(lagrangian)
    if as_json:
        return json.dumps(
            {
                "lagrangian": _floats(dict(lagrangian)),
                "member": membership.member,
                "constraint_set": membership.constraint_set,
                "class": compiled.tractability_class,
                "tractable_form": _floats(compiled.tractable_form) if compiled.is_tractable else None,
                "certificate": _floats(compiled.certificate),
                "uncovered_terms": list(compiled.uncovered_terms),
                "preset": None if match is None else {"name": match.name, "params": _floats(match.params)},
            }
        )
    lines = [
        f"lagrangian:  {lagrangian}",
        f"member:      {'yes' if membership.member else 'no'} ({membership.reason})",
        f"class:       {compiled.tractability_class}",
    ]
    if compiled.is_tractable:
        lines.append(f"tractable:   {compiled.formula()}")
    else:
        lines.append(f"covered:     {compiled.formula()}")
        lines.append(f"uncovered:   {format_formula({n: lagrangian[n] for n in compiled.uncovered_terms})}")
        lines.append(f"why:         {compiled.message}")
    lines.append("certificate: (elementary transformations used, each equivalent to 0)")
    lines += [f"  {format_number(c):>6} x [{n}]" for n, c in compiled.certificate.items()] or ["  none"]
    lines.append(f"preset:      {match if match is not None else 'none'}")
    return "\n".join(lines)


def theory_main(argv: list[str] | None = None) -> int:
    """Run ``infoae theory`` on ``argv`` (the arguments after ``theory``; default ``sys.argv[1:]``, for
    ``python -m infoae_pl.objectives.cli``) and return the exit status (0, or 2 for usage errors)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parser().parse_args(argv)
    except SystemExit as stop:  # argparse already printed its message
        return stop.code if isinstance(stop.code, int) else 2
    if args.command == "table":
        rows = subspace_table()
        if args.json:
            print(json.dumps({"rows": [{"subspace": r.label, "dimension": r.dimension} for r in rows]}))
        else:
            print(format_table(rows))
        return 0
    try:
        compiled = compile(_lagrangian(args))
    except ValueError as error:
        print(f"infoae theory compile: {error}", file=sys.stderr)
        return 2
    print(_report(compiled, args.json))
    return 0


if __name__ == "__main__":
    sys.exit(theory_main())
