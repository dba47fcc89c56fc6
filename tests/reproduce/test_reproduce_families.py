"""The families' sample figure: the tiny profile end to end on the ring, and the seed-spread summary."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import yaml
from matplotlib.text import Text

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
    assert {row["precision"] for row in written} == {"32-true"}  # what each run trained in
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
    assert "| aae | 3 | 0.11 ± 0.01 [0.1, 0.12] |" in summary
    assert "- mmd_x: best aae; beyond the seed range of: infovae, ali_bigan, alice, cyclegan" in summary
    assert "one seed only" not in summary
    # One seed has no spread: such families are named and left out of the comparison, even when best.
    single = [r for r in rows if r["seed"] == 0 or r["family"] in ("infogan", "alice")]
    summary = families.summarise([dict(r, mmd_x=0.01) if r["family"] == "aae" else r for r in single])
    assert "- one seed only, so no spread to compare against: infovae, aae, ali_bigan, cyclegan" in summary
    assert "- mmd_x: best infogan; beyond the seed range of: alice" in summary
    assert "best aae" not in families.summarise([r for r in rows if r["seed"] == 0])


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
    assert "| infogan | 2 | 0.1 ± 0 [0.1, 0.1] |" in (tmp_path / "summary.md").read_text()  # the table too
    with pytest.raises(FileNotFoundError, match="mnist5k"):
        families.redraw(tmp_path, ("mnist5k",))


def test_the_default_profile_plans_the_image_settings_with_three_infogan_seeds():
    runs = families.planned_runs(families.PROFILES["default"], CONFIGS, families.DATASETS)
    conv = [(f, s) for name, f, s, _ in runs if name == "mnist5k_conv"]
    assert sorted(conv) == sorted([(f, 0) for f in families.FAMILIES] + [("infogan", 1), ("infogan", 2)])
    assert {f for name, f, _, _ in runs if name == "fashion_mnist_conv"} == {"infogan", "infovae", "ali_bigan"}
    steps = {(name, f): s for name, f, _, s in runs}
    assert steps[("mnist5k_conv", "infogan")] == families.config_steps(CONFIGS / "infogan_conv_mnist5k.yaml")
    assert steps[("ring8", "aae")] == 3000


def _narrow_conv_configs(folder: Path, classifier_dir: Path) -> None:
    """Copies of the conv MNIST configs with narrow networks and a classifier of a few steps."""
    for family in families.FAMILIES:
        name = f"{family}_conv_mnist5k.yaml"
        settings = yaml.safe_load((CONFIGS / name).read_text())
        for part in ("encoder", "decoder", "x_critic", "joint_critic"):
            if part in settings["model"]["init_args"]:
                settings["model"]["init_args"][part]["init_args"].update(channels=4, hidden_dim=16)
        settings["data"]["batch_size"] = 16
        settings["trainer"]["limit_val_batches"] = 2
        (callback,) = settings["trainer"]["callbacks"]
        callback["init_args"].update(classifier_dir=str(classifier_dir), fit_examples=64, quality_max_examples=32,
                                     classifier_settings={"steps": 10, "channels": 4, "hidden_dim": 16, "batch_size": 32})
        (folder / name).write_text(yaml.safe_dump(settings))


def test_tiny_image_setting_reports_sample_quality_and_draws_the_infogan_code_grid(tmp_path, monkeypatch):
    configs = tmp_path / "configs"
    configs.mkdir()
    _narrow_conv_configs(configs, tmp_path / "classifiers")
    out = tmp_path / "out"
    modes = []  # the figures' tensors come from models in eval mode (batch norm on its running statistics)

    def recording(make):
        def made(model, *args, **kwargs):
            modes.append(model.training)
            return make(model, *args, **kwargs)
        return made

    for name in ("generate", "code_grid", "reconstructions"):
        monkeypatch.setattr(families, name, recording(getattr(families, name)))
    rows = families.reproduce(families.PROFILES["tiny"], configs, out, datasets=("mnist5k_conv",))
    assert len(modes) == 2 * len(families.FAMILIES) and not any(modes)
    assert [r["family"] for r in rows] == list(families.FAMILIES)
    written = {r["family"]: r for r in csv.DictReader((out / "results.csv").open())}
    for row in written.values():
        assert float(row["fid"]) >= 0 and 1 <= float(row["class_coverage"]) <= 10
    for key in ("code_accuracy_real", "code_purity"):
        assert 0 <= float(written["infogan"][key]) <= 1 and written["infovae"][key] == ""
    assert 0 <= float(written["ali_bigan"]["feature_accuracy"]) <= 1
    assert (out / "mnist5k_conv_samples.png").stat().st_size > 10_000
    assert (out / "mnist5k_conv_infogan_codes.png").stat().st_size > 5_000
    # Reconstructions x -> z -> x of every family with an encoder (not InfoGAN), the held-out x kept beside.
    kept = torch.load(out / "samples" / "ali_bigan_mnist5k_conv_seed0_reconstructions.pt")
    assert kept.shape == (2, families.RECONSTRUCTED_IMAGES, 784) and kept[1].min() >= 0 and kept[1].max() <= 1
    assert len({tuple(image.tolist()) for image in kept[0]}) == families.RECONSTRUCTED_IMAGES  # one image per label
    assert not (out / "samples" / "infogan_mnist5k_conv_seed0_reconstructions.pt").exists()
    assert (out / "mnist5k_conv_reconstructions.png").stat().st_size > 5_000
    (out / "mnist5k_conv_reconstructions.png").unlink()
    assert out / "mnist5k_conv_reconstructions.png" in families.redraw(out, ("mnist5k_conv",))
    summary = (out / "summary.md").read_text()
    assert "### mnist5k_conv: MNIST sample, convolutional nets (seeds 0)" in summary
    header = next(line for line in summary.splitlines() if line.startswith("| family |"))
    assert {"fid", "kid", "class_coverage", "code_accuracy_real", "feature_accuracy"} <= {c.strip() for c in header.split("|")}


def test_an_older_results_file_gains_the_new_columns_and_keeps_its_rows(tmp_path):
    old_fields = ["family", "dataset", "seed", "steps", "seconds", "mmd_x"]
    with (tmp_path / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, old_fields)
        writer.writeheader()
        writer.writerows({"family": f, "dataset": "ring8", "seed": 0, "steps": 20, "seconds": 1.0, "mmd_x": 0.5}
                         for f in families.FAMILIES)
    (tmp_path / "samples").mkdir()
    for family in families.FAMILIES:
        torch.save(torch.randn(200, 2).half(), tmp_path / "samples" / f"{family}_ring8_seed0.pt")
    rows = families.reproduce(families.PROFILES["tiny"], CONFIGS, tmp_path, datasets=("ring8",))  # all done: no training
    assert len(rows) == len(families.FAMILIES)
    header = (tmp_path / "results.csv").read_text().splitlines()[0].split(",")
    assert header == families.FIELDS
    assert [r["mmd_x"] for r in families.read_results(tmp_path / "results.csv")] == [0.5] * len(families.FAMILIES)


def test_the_image_figures_name_each_runs_own_steps(tmp_path, monkeypatch):
    rows = [{"family": f, "dataset": "mnist5k_conv", "seed": 0, "steps": 4000 if f == "infovae" else 1500}
            for f in families.FAMILIES]
    (tmp_path / "samples").mkdir()
    for family in families.FAMILIES:
        torch.save(torch.rand(64, 784).half(), tmp_path / "samples" / f"{family}_mnist5k_conv_seed0.pt")
    torch.save({"images": torch.rand(20, 784).half(), "labels": ["c = 0", "c = 1"], "continuous": 2},
               tmp_path / "samples" / "infogan_mnist5k_conv_seed0_codes.pt")
    titles = {}
    monkeypatch.setattr(families, "save_figure", lambda figure, path: titles.update({path.name: (
        figure.get_suptitle(), [ax.get_title() for ax in figure.axes], [t.get_text() for t in figure.findobj(Text)])}))
    families.draw_samples(tmp_path, "mnist5k_conv", 0, rows)
    families.draw_code_grid(tmp_path, "mnist5k_conv", 0, rows)
    suptitle, panels, _ = titles["mnist5k_conv_samples.png"]
    assert suptitle.endswith("(seed 0)") and panels[0] == "InfoVAE\n4,000 steps" and panels[2] == "InfoGAN\n1,500 steps"
    assert any(t.startswith("InfoGAN, MNIST sample, convolutional nets (seed 0, 1,500 steps)")
               for t in titles["mnist5k_conv_infogan_codes.png"][2])
    same = [dict(r, steps=1500) for r in rows]
    families.draw_samples(tmp_path, "mnist5k_conv", 0, same)
    suptitle, panels, _ = titles["mnist5k_conv_samples.png"]
    assert suptitle.endswith("(seed 0, 1,500 steps)") and panels[0] == "InfoVAE"


def test_runs_of_other_steps_or_precision_are_summarised_apart_never_pooled():
    base = {"dataset": "ring8", "seconds": 1.0}
    rows = [dict(base, family="infogan", seed=s, steps=2500, precision=None, mmd_x=0.5) for s in range(3)]
    rows += [dict(base, family="infogan", seed=s, steps=4500, precision="bf16-mixed", mmd_x=0.1 + 0.01 * s)
             for s in range(3)]
    rows += [dict(base, family="aae", seed=0, steps=3000, precision="32-true", mmd_x=0.3)]
    summary = families.summarise(rows)
    assert "| infogan (2,500 steps, precision not recorded) | 3 | 0.5 ± 0 [0.5, 0.5] |" in summary
    assert "| infogan (4,500 steps, bf16-mixed) | 3 | 0.11 ± 0.01 [0.1, 0.12] |" in summary
    assert "| aae | 1 | 0.3 |" in summary  # one kind of run: the family's name alone
    assert "- mmd_x: best infogan (4,500 steps, bf16-mixed); beyond the seed range of: infogan (2,500 steps, " \
           "precision not recorded)" in summary
