"""Matplotlib figures for evaluation: image grids, 1-D densities and 2-D scatters.

Figures are drawn on an explicit Agg canvas (no pyplot), so nothing changes the user's global
backend and nothing needs closing; ``save_figure`` (from :mod:`infoae_pl.plotting`, re-exported here)
writes each as a PNG with a PDF beside it.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from infoae_pl.plotting import new_figure
from infoae_pl.plotting import save_figure as save_figure


def image_grid(images: np.ndarray, num_columns: int, padding: int = 1) -> np.ndarray:
    """Tile images ``[N, C, H, W]`` into one ``[rows·(H+p), cols·(W+p)(, C)]`` array clipped to [0, 1]."""
    count, channels, height, width = images.shape
    num_rows = math.ceil(count / num_columns)
    grid = np.ones(
        (num_rows * (height + padding) + padding, num_columns * (width + padding) + padding, channels)
    )
    for index, image in enumerate(np.clip(images, 0.0, 1.0)):
        top = padding + (index // num_columns) * (height + padding)
        left = padding + (index % num_columns) * (width + padding)
        grid[top : top + height, left : left + width] = image.transpose(1, 2, 0)
    return grid[..., 0] if channels == 1 else grid


def image_grid_figure(
    images: np.ndarray, num_columns: int, title: str, row_labels: list[str] | None = None
) -> Figure:
    """A titled figure showing ``image_grid(images, num_columns)``, optionally one y tick label per row."""
    grid = image_grid(images, num_columns)
    figure = new_figure(max(2.0, grid.shape[1] / 20), max(2.0, grid.shape[0] / 20))
    axes = figure.subplots()
    axes.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
    axes.set_title(title)
    if row_labels is None:
        axes.axis("off")
    else:
        height = images.shape[2]
        axes.set_yticks([1 + row * (height + 1) + (height - 1) / 2 for row in range(len(row_labels))])
        axes.set_yticklabels(row_labels)
        axes.set_xticks([])
        axes.tick_params(length=0)
        for spine in axes.spines.values():
            spine.set_visible(False)
    return figure


def scatter_figure(
    point_sets: list[tuple[str, np.ndarray]], title: str, background: np.ndarray | None = None
) -> Figure:
    """2-D points ``[N, 2]``, one colour and legend entry per labelled set, over grey ``background`` data."""
    figure = new_figure(6.0, 6.0)
    axes = figure.subplots()
    if background is not None:
        axes.scatter(background[:, 0], background[:, 1], s=4, c="0.6", alpha=0.5, linewidths=0, label="data")
    for label, points in point_sets:
        axes.scatter(points[:, 0], points[:, 1], s=4, alpha=0.7, linewidths=0, label=label)
    axes.set_aspect("equal", adjustable="datalim")
    axes.set_xlabel("x₁")
    axes.set_ylabel("x₂")
    axes.set_title(title)
    axes.legend(markerscale=3, fontsize="small")
    return figure


def density_figure(
    data: np.ndarray,
    title: str,
    grid: np.ndarray | None = None,
    model_density: np.ndarray | None = None,
    model_samples: np.ndarray | None = None,
    bins: int = 60,
) -> Figure:
    """Histogram of 1-D ``data`` against the model: a density curve on ``grid`` and/or a sample histogram."""
    figure = new_figure(6.0, 4.0)
    axes = figure.subplots()
    axes.hist(data, bins=bins, density=True, alpha=0.5, label="data")
    if model_samples is not None:
        axes.hist(
            model_samples, bins=bins, density=True, histtype="step", linewidth=1.5, label="model samples"
        )
    if grid is not None and model_density is not None:
        axes.plot(grid, model_density, linewidth=1.5, label="model p(x)")
    axes.set_xlabel("x")
    axes.set_ylabel("density")
    axes.set_title(title)
    axes.legend()
    return figure
