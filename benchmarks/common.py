"""Shared helpers for the benchmarks: a results table on stdout and a JSON file beside it."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "processor": platform.processor() or platform.machine(),
    }


def timed(fn: Callable[[], Any], repeats: int = 3) -> float:
    """The best wall time of ``repeats`` calls of ``fn`` (seconds), synchronising CUDA if used."""
    best = float("inf")
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def report(name: str, rows: list[dict[str, Any]], summary: dict[str, Any], out: str | None) -> None:
    """Print ``rows`` as a table and write everything to ``out`` (default benchmarks/results/NAME.json)."""
    columns = list(rows[0])
    widths = [max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print("  ".join(_fmt(r[c]).ljust(w) for c, w in zip(columns, widths)))
    for key, value in summary.items():
        print(f"{key}: {_fmt(value)}")
    path = Path(out) if out else Path(__file__).parent / "results" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"benchmark": name, "machine": machine(), "rows": rows, **summary}, indent=2))
    print(f"wrote {path}")


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
