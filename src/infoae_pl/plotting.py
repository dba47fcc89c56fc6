"""Figure files: every figure the package writes is drawn on an Agg canvas and saved by ``save_figure``.

No pyplot: nothing changes the user's global backend and nothing needs closing. ``save_figure`` writes
a PNG (for screens, W&B and the README) and the same figure as a PDF beside it (vector, for papers and
slides). ``spread_labels`` places point labels along one axis without overlaps. Imports matplotlib only,
so the sweep report does not pay for torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: The vector copy written beside every PNG.
VECTOR_SUFFIX = ".pdf"


def new_figure(width: float, height: float, **options: Any) -> Figure:
    """A ``width`` × ``height`` inch figure on its own Agg canvas (``options`` go to ``Figure``)."""
    figure = Figure(figsize=(width, height), **options)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write ``figure`` to ``path`` (a ``.png``; parent folders created) and as a PDF beside it; returns the PNG."""
    path = Path(path)
    if path.suffix != ".png":
        raise ValueError(f"save_figure writes a .png (and a {VECTOR_SUFFIX} beside it), got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi, bbox_inches="tight")
    figure.savefig(path.with_suffix(VECTOR_SUFFIX), bbox_inches="tight")
    return path


def spread_labels(positions: Sequence[float], gap: float) -> list[float]:
    """Label positions along one axis, as close to ``positions`` as can be with at least ``gap`` between
    neighbours (in the same units): each cluster of crowded labels is spaced evenly around its mean."""
    order = sorted(range(len(positions)), key=lambda i: positions[i])
    clusters: list[list[int]] = []  # runs of labels (in order) that share one evenly spaced block
    for index in order:
        clusters.append([index])
        while len(clusters) > 1:
            low, high = clusters[-2], clusters[-1]
            if _block(positions, low, gap)[-1] + gap <= _block(positions, high, gap)[0]:
                break
            clusters[-2:] = [low + high]
    placed = [0.0] * len(positions)
    for cluster in clusters:
        for index, value in zip(cluster, _block(positions, cluster, gap)):
            placed[index] = value
    return placed


def _block(positions: Sequence[float], cluster: list[int], gap: float) -> list[float]:
    """``len(cluster)`` positions ``gap`` apart, centred on the mean of the cluster's own positions."""
    centre = sum(positions[i] for i in cluster) / len(cluster)
    start = centre - gap * (len(cluster) - 1) / 2
    return [start + gap * k for k in range(len(cluster))]
