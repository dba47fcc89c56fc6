"""The families' sample figure: the tiny profile end to end on the ring, and the seed-spread summary."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from infoae_pl.reproduce import families

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_tiny_profile_trains_every_family_through_its_config(tmp_path):
    rows = families.reproduce(families.PROFILES["tiny"], CONFIGS, tmp_path, datasets=("ring8",))
    assert [r["family"] for r in rows] == list(families.FAMILIES)
    written = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert len(written) == len(families.FAMILIES)
    for row in written:
        assert float(row["mmd_x"]) >= 0 and 0 <= int(float(row["modes_hit"])) <= 8
    assert written[2]["code_accuracy"] != "" and written[0]["code_accuracy"] == ""  # InfoGAN only
    assert (tmp_path / "ring8_samples.png").stat().st_size > 10_000
    assert "| infogan |" in (tmp_path / "summary.md").read_text()
    # A re-run keeps every finished run: nothing is retrained and no row is duplicated.
    again = families.reproduce(families.PROFILES["tiny"], CONFIGS, tmp_path, datasets=("ring8",))
    assert again == families.read_results(tmp_path / "results.csv") and len(again) == len(families.FAMILIES)
    assert [r["mmd_x"] for r in again] == [float(r["mmd_x"]) for r in written]


def test_summary_names_the_differences_beyond_the_seed_range():
    rows = [{"family": f, "dataset": "ring8", "seed": s, "seconds": 1.0, "mmd_x": value + 0.01 * s}
            for f, value in zip(families.FAMILIES, (0.5, 0.1, 0.11, 0.5, 0.5, 0.5)) for s in range(3)]
    summary = families.summarise(rows)
    assert "| aae | 0.11 ± 0.01 [0.1, 0.12] |" in summary
    assert "- mmd_x: best aae; beyond the seed range of: infovae, ali_bigan, alice, cyclegan" in summary


def test_figures_only_redraws_the_ring_from_kept_samples_without_training(tmp_path, monkeypatch):
    with (tmp_path / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, families.FIELDS, restval="")
        writer.writeheader()
        writer.writerows({"family": f, "dataset": "ring8", "seed": s, "steps": 30, "seconds": 1.0, "mmd_x": 0.1}
                         for f in families.FAMILIES for s in (2, 1))
    (tmp_path / "samples").mkdir()
    for family in families.FAMILIES:  # seed 2 kept no samples: the figure is of seed 1
        torch.save(torch.randn(200, 2).half(), tmp_path / "samples" / f"{family}_ring8_seed1.pt")
    monkeypatch.setattr(families, "train_one", lambda *args, **kwargs: pytest.fail("--figures-only must not train"))
    assert families.main(["--figures-only", "--datasets", "ring8", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "ring8_samples.png").stat().st_size > 10_000
    assert (tmp_path / "ring8_samples.pdf").read_bytes()[:5] == b"%PDF-"
    with pytest.raises(FileNotFoundError, match="mnist5k"):
        families.redraw(tmp_path, ("mnist5k",))
