"""Figure files: a PDF beside every PNG, and point labels spread without overlaps."""

from __future__ import annotations

import itertools

import pytest

from infoae_pl.plotting import new_figure, save_figure, spread_labels


def test_save_figure_writes_a_png_and_a_pdf_beside_it(tmp_path):
    figure = new_figure(3.0, 2.0)
    figure.subplots().plot([0, 1], [1, 0])
    path = save_figure(figure, tmp_path / "deep" / "folder" / "curve.png")
    assert path == tmp_path / "deep" / "folder" / "curve.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"


def test_save_figure_names_the_suffix_it_needs(tmp_path):
    with pytest.raises(ValueError, match=r"\.png"):
        save_figure(new_figure(2.0, 2.0), tmp_path / "curve.svg")


def test_labels_far_apart_stay_where_their_points_are():
    assert spread_labels([0.0, 10.0, 5.0], gap=1.0) == [0.0, 10.0, 5.0]


@pytest.mark.parametrize("positions", [[1.0, 1.1, 1.2], [5.0, 0.0, 0.3, 0.2, 9.0, 9.5], [3.0, 3.0, 3.0, 3.0]])
def test_crowded_labels_are_at_least_a_gap_apart_in_the_order_of_their_points(positions):
    gap = 1.0
    placed = spread_labels(positions, gap)
    assert all(abs(a - b) >= gap - 1e-9 for a, b in itertools.combinations(placed, 2))
    by_point = sorted(range(len(positions)), key=lambda i: (positions[i], i))
    assert [placed[i] for i in by_point] == sorted(placed), "labels keep the order of their points"


def test_a_crowded_cluster_is_centred_on_its_points():
    placed = spread_labels([2.0, 2.0, 2.6], gap=1.0)
    assert sum(placed) / 3 == pytest.approx((2.0 + 2.0 + 2.6) / 3)
    assert max(placed) - min(placed) == pytest.approx(2.0)
