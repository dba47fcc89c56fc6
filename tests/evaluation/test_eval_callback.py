"""EvaluationCallback in tiny Lightning runs: logged keys, cadence, figures, implicit and code models."""

from __future__ import annotations

import csv
import logging
import math
import warnings
from pathlib import Path
from types import SimpleNamespace
from unittest.mock import MagicMock

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Normal
from torch.utils.data import DataLoader, TensorDataset

from infoae_pl.data.toy import ring8
from infoae_pl.evaluation import EvaluationCallback

KEYS = ("nll", "elbo", "mi_ba", "mi_aggregate", "mmd_qz_pz")


class TinyDataModule(L.LightningDataModule):
    """Data drawn from a fixed tensor, with the attributes the callback reads."""

    def __init__(self, x: Tensor, data_shape: tuple[int, ...], data_entropy: float | None) -> None:
        super().__init__()
        self.x, self.data_shape, self.data_entropy = x, data_shape, data_entropy
        self.data_dim = x.shape[1]

    def _loader(self, shuffle: bool) -> DataLoader:
        dataset = TensorDataset(self.x, torch.zeros(len(self.x), dtype=torch.long))
        return DataLoader(dataset, batch_size=16, shuffle=shuffle)

    def train_dataloader(self) -> DataLoader:
        return self._loader(shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(shuffle=False)


class LinearGaussianModule(L.LightningModule):
    """Exposes prior/encode/decode of a linear-Gaussian model and trains it on the negative ELBO."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def prior(self) -> Distribution:
        return self.model.prior()

    def encode(self, x: Tensor) -> Distribution:
        return self.model.encode(x)

    def decode(self, z: Tensor) -> Distribution:
        return self.model.decode(z)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x = batch[0]
        q = self.encode(x)
        z = q.rsample()
        return -(self.decode(z).log_prob(x) + self.prior().log_prob(z) - q.log_prob(z)).mean()

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.log("val/loss", self.training_step(batch, batch_idx))

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.log("test/loss", self.training_step(batch, batch_idx))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=1e-3)


class ImplicitGeneratorModule(L.LightningModule):
    """Only ``prior`` and ``sample_x`` (an InfoGAN-like generator): nothing likelihood-based applies."""

    def __init__(self) -> None:
        super().__init__()
        self.generator = nn.Linear(1, 1)

    def prior(self) -> Distribution:
        return Independent(Normal(torch.zeros(1), torch.ones(1)), 1)

    def sample_x(self, z: Tensor) -> Tensor:
        return self.generator(z)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.log("val/loss", self.generator(batch[0]).mean())


def _trainer(tmp_path: Path, callback: EvaluationCallback, **kwargs) -> L.Trainer:
    return L.Trainer(
        logger=CSVLogger(tmp_path),
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        accelerator="cpu",
        **kwargs,
    )


def _rows(trainer: L.Trainer) -> list[dict[str, str]]:
    with open(Path(trainer.logger.log_dir) / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


def _values(rows: list[dict[str, str]], key: str) -> list[float]:
    return [float(row[key]) for row in rows if row.get(key)]


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="nll_estimator must be one of"):
        EvaluationCallback(nll_estimator="exact")
    with pytest.raises(ValueError, match="every_n_validations"):
        EvaluationCallback(every_n_validations=0)
    with pytest.raises(ValueError, match="ais_initial='q' is not supported; choose one of: prior, posterior"):
        EvaluationCallback(nll_estimator="ais", ais_initial="q")
    with pytest.raises(ValueError, match="ais_num_chains must be an integer >= 1"):
        EvaluationCallback(ais_num_chains=0)


def test_fit_and_test_log_every_metric_and_a_density_figure(tmp_path, make_linear_gaussian) -> None:
    L.seed_everything(0, workers=True)
    model = make_linear_gaussian(data_dim=1, latent_dim=1, scales=[1.0], noise_std=0.5, dtype=torch.float32)
    x = model.sample_data(64).float()
    datamodule = TinyDataModule(x, data_shape=(1,), data_entropy=model.marginal().entropy().item())
    callback = EvaluationCallback(importance_samples=64, quadrature_grid_size=801, max_examples=40)
    trainer = _trainer(tmp_path, callback, max_steps=8, val_check_interval=4, num_sanity_val_steps=1)
    trainer.fit(LinearGaussianModule(model), datamodule=datamodule)
    trainer.test(LinearGaussianModule(model), datamodule=datamodule, verbose=False)
    rows = _rows(trainer)
    for stage in ("val", "test"):
        for key in KEYS:
            values = _values(rows, f"{stage}/{key}")
            assert values and all(math.isfinite(value) for value in values), f"{stage}/{key}"
    assert len(_values(rows, "val/nll")) == 2  # two validations, the sanity check is skipped
    figures = sorted(path.name for path in (Path(trainer.log_dir) / "figures").iterdir())
    assert "val_density_step0000004.png" in figures and "test_density_step0000008.png" in figures


def test_validate_logs_the_exact_nll_and_skips_unscheduled_validations(
    tmp_path, make_linear_gaussian
) -> None:
    L.seed_everything(0, workers=True)
    model = make_linear_gaussian(data_dim=2, latent_dim=1, scales=[1.3], noise_std=0.4, dtype=torch.float32)
    x = model.sample_data(48).float()
    exact_nll = -model.marginal().log_prob(x[:32]).mean().item()
    datamodule = TinyDataModule(x, data_shape=(2,), data_entropy=None)
    for estimator in ("importance", "quadrature"):
        callback = EvaluationCallback(
            nll_estimator=estimator, importance_samples=8, max_batches=2, figures=False
        )
        trainer = _trainer(tmp_path / estimator, callback)
        logged = trainer.validate(LinearGaussianModule(model), datamodule=datamodule, verbose=False)[0]
        assert logged["val/nll"] == pytest.approx(exact_nll, abs=1e-4)
        assert "val/mi_ba" not in logged  # no data entropy known
    callback = EvaluationCallback(importance_samples=8, every_n_validations=2, figures=False)
    trainer = _trainer(
        tmp_path / "cadence", callback, max_steps=9, val_check_interval=3, num_sanity_val_steps=0
    )
    trainer.fit(LinearGaussianModule(model), datamodule=datamodule)
    rows = _rows(trainer)
    assert len(_values(rows, "val/loss")) == 3 and len(_values(rows, "val/nll")) == 1


def test_ais_and_a_refitted_proposal_give_the_exact_nll_under_lightning_inference_mode(
    tmp_path, make_linear_gaussian
) -> None:
    """Lightning validates under ``torch.inference_mode``, where no gradient exists: AIS (HMC needs
    gradients in z) and the refit (Adam on q's parameters) leave it and still reach the exact NLL of a
    model whose encoder is off by one posterior-width multiple."""
    L.seed_everything(0, workers=True)
    model = make_linear_gaussian(
        data_dim=2, latent_dim=1, scales=[1.3], noise_std=0.4, posterior_shift=0.5, dtype=torch.float32
    )
    x = model.sample_data(48).float()
    exact_nll = -model.marginal().log_prob(x[:32]).mean().item()
    datamodule = TinyDataModule(x, data_shape=(2,), data_entropy=None)
    for name, options in {
        "ais": dict(nll_estimator="ais", ais_num_steps=200, ais_num_chains=8, ais_leapfrog_steps=2),
        "refit": dict(importance_samples=8, importance_refit_steps=200),
    }.items():
        callback = EvaluationCallback(**options, max_batches=2, figures=False)
        trainer = _trainer(tmp_path / name, callback)
        logged = trainer.validate(LinearGaussianModule(model), datamodule=datamodule, verbose=False)[0]
        assert logged["val/nll"] == pytest.approx(exact_nll, abs=0.03), name


def test_image_data_writes_sample_and_reconstruction_grids(tmp_path, make_linear_gaussian) -> None:
    L.seed_everything(0, workers=True)
    model = make_linear_gaussian(data_dim=16, latent_dim=3, dtype=torch.float32)
    x = model.sample_data(32).float().sigmoid()
    datamodule = TinyDataModule(x, data_shape=(1, 4, 4), data_entropy=None)
    trainer = _trainer(tmp_path, EvaluationCallback(importance_samples=4, num_figure_samples=9))
    trainer.validate(LinearGaussianModule(model), datamodule=datamodule, verbose=False)
    figures = sorted(path.name for path in (Path(trainer.log_dir) / "figures").iterdir())
    assert figures == [f"{name}.{kind}" for name in ("val_prior_samples_step0000000", "val_reconstructions_step0000000")
                       for kind in ("pdf", "png")]  # every figure also as a PDF


def test_implicit_generators_get_a_sample_histogram_and_no_likelihood_metrics(tmp_path) -> None:
    L.seed_everything(0, workers=True)
    datamodule = TinyDataModule(torch.randn(40, 1), data_shape=(1,), data_entropy=1.4)
    trainer = _trainer(tmp_path, EvaluationCallback())
    with pytest.warns(UserWarning, match="lacks prior/encode/decode"):
        logged = trainer.validate(ImplicitGeneratorModule(), datamodule=datamodule, verbose=False)[0]
    assert set(logged) == {"val/loss", "val/mmd_x"}
    assert (Path(trainer.log_dir) / "figures" / "val_density_step0000000.png").is_file()


def test_figures_go_to_wandb_when_a_wandb_logger_is_attached(tmp_path, make_linear_gaussian) -> None:
    import wandb

    model = make_linear_gaussian(data_dim=1, latent_dim=1, dtype=torch.float32)
    wandb_logger = MagicMock(spec=WandbLogger)
    trainer = SimpleNamespace(datamodule=None, loggers=[wandb_logger], global_step=7)
    callback = EvaluationCallback(quadrature_grid_size=401)
    callback._figures("test", trainer, model, model.sample_data(50).float(), tmp_path / "figures")
    assert (tmp_path / "figures" / "test_density_step0000007.png").is_file()
    (logged,), kwargs = wandb_logger.log_metrics.call_args
    assert kwargs == {"step": 7} and isinstance(logged["test/density"], wandb.Image)


class DecoderMeanGenerator(LinearGaussianModule):
    """A linear-Gaussian module with ``sample_x`` = mean of p(x|z) and a switchable ``has_likelihood``."""

    def __init__(self, model: nn.Module, has_likelihood: bool) -> None:
        super().__init__(model)
        self.has_likelihood = has_likelihood

    def sample_x(self, z: Tensor) -> Tensor:
        return self.decode(z).mean


class RingCodeGenerator(L.LightningModule):
    """An InfoGAN-like generator of the ring of 8: z = (code logit, 2-D noise), one ring mode per code."""

    has_likelihood = False

    def __init__(self, num_modes_used: int = 8) -> None:
        super().__init__()
        ring = ring8()
        self.register_buffer("centres", ring.centres)
        self.std, self.num_modes_used = ring.std, num_modes_used

    def prior(self) -> Distribution:
        return Independent(Normal(torch.zeros(3), torch.ones(3)), 1)

    def sample_x(self, z: Tensor) -> Tensor:
        code = (torch.special.ndtr(z[:, 0]) * self.num_modes_used).long().clamp(max=self.num_modes_used - 1)
        return self.centres[code] + self.std * z[:, 1:]

    def latent_grid(self, samples_per_row: int) -> tuple[Tensor, list[str]]:
        codes = torch.special.ndtri((torch.arange(self.num_modes_used) + 0.5) / self.num_modes_used)
        noise = torch.randn(samples_per_row, 2)  # shared by every row
        latents = torch.cat(
            [codes.repeat_interleave(samples_per_row)[:, None], noise.repeat(len(codes), 1)], 1
        )
        return latents, [f"c = {code}" for code in range(self.num_modes_used)]

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.log("val/loss", batch[0].mean())


class ImageCodeGenerator(L.LightningModule):
    """An InfoGAN-like generator of 4×4 images whose code (3 values) sets the brightness."""

    has_likelihood = False

    def prior(self) -> Distribution:
        return Independent(Normal(torch.zeros(2), torch.ones(2)), 1)

    def sample_x(self, z: Tensor) -> Tensor:
        return torch.sigmoid(z[:, :1] + 0.1 * z[:, 1:]).expand(-1, 16)

    def latent_grid(self, samples_per_row: int) -> tuple[Tensor, list[str]]:
        codes = torch.tensor([-3.0, 0.0, 3.0]).repeat_interleave(samples_per_row)
        noise = torch.randn(samples_per_row).repeat(3)
        return torch.stack([codes, noise], 1), ["dark", "grey", "bright"]

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.log("val/loss", batch[0].mean())


class RingDataModule(TinyDataModule):
    """Ring-of-8 data with the ``mode_centres``/``mode_std`` attributes of ``InfoAEDataModule``."""

    def __init__(self, count: int) -> None:
        ring = ring8()
        x, _ = ring.sample(count, torch.Generator().manual_seed(0))
        super().__init__(x, data_shape=(2,), data_entropy=ring.entropy())
        self.mode_centres, self.mode_std = ring.centres, ring.std


@pytest.mark.parametrize("has_likelihood", [True, False])
def test_has_likelihood_false_skips_nll_elbo_and_mi_ba_with_one_note(
    tmp_path, make_linear_gaussian, caplog, has_likelihood
) -> None:
    L.seed_everything(0, workers=True)
    model = make_linear_gaussian(data_dim=2, latent_dim=1, scales=[1.3], noise_std=0.4, dtype=torch.float32)
    x = model.sample_data(48).float()
    datamodule = TinyDataModule(x, data_shape=(2,), data_entropy=model.marginal().entropy().item())
    callback = EvaluationCallback(importance_samples=8, max_batches=2)
    module = DecoderMeanGenerator(model, has_likelihood)
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO):
        warnings.simplefilter("always")
        for run in ("first", "second"):
            logged = _trainer(tmp_path / run, callback).validate(
                module, datamodule=datamodule, verbose=False
            )[0]
    assert not [warning for warning in caught if "lacks prior/encode/decode" in str(warning.message)]
    notes = [record for record in caplog.records if "has_likelihood=False" in record.getMessage()]
    assert len(notes) == (0 if has_likelihood else 1)
    common = {"val/loss", "val/mi_aggregate", "val/mmd_qz_pz", "val/mmd_x", "val/reconstruction_error"}
    assert set(logged) == common | ({"val/nll", "val/elbo", "val/mi_ba"} if has_likelihood else set())
    with torch.no_grad():
        reconstructions = model.decode(model.encode(x[:32]).mean).mean
    expected_error = (x[:32] - reconstructions).square().sum(-1).mean().item()
    assert logged["val/reconstruction_error"] == pytest.approx(expected_error, rel=1e-5)
    figures = sorted(path.name for path in (tmp_path / "second").rglob("*.png"))
    assert figures == ["val_samples_step0000000.png"]  # 2-D data: a scatter of sample_x


def test_ring_data_logs_mode_coverage_and_draws_sample_and_code_scatters(tmp_path) -> None:
    L.seed_everything(0, workers=True)
    callback = EvaluationCallback(mode_samples=1000)
    trainer = _trainer(tmp_path, callback)
    with pytest.warns(UserWarning, match="lacks prior/encode/decode"):  # no encoder: no latent metrics
        logged = trainer.validate(RingCodeGenerator(num_modes_used=5), datamodule=RingDataModule(64))[0]
    assert set(logged) == {
        "val/loss",
        "val/mmd_x",
        "val/modes_hit",
        "val/high_quality_fraction",
        "val/mode_kl",
    }
    assert logged["val/modes_hit"] == 5
    assert logged["val/high_quality_fraction"] > 0.95  # P(χ²₂ ≤ 9) ≈ 0.989
    assert logged["val/mode_kl"] == pytest.approx(math.log(8 / 5), abs=0.02)
    figures = sorted(path.name for path in (Path(trainer.log_dir) / "figures").iterdir())
    assert figures == [f"{name}.{kind}" for name in ("val_code_grid_step0000000", "val_samples_step0000000")
                       for kind in ("pdf", "png")]


def test_image_data_gets_a_code_grid_of_generator_outputs(tmp_path) -> None:
    L.seed_everything(0, workers=True)
    datamodule = TinyDataModule(torch.rand(32, 16), data_shape=(1, 4, 4), data_entropy=None)
    trainer = _trainer(tmp_path, EvaluationCallback(num_figure_samples=9))
    with pytest.warns(UserWarning, match="lacks prior/encode/decode"):
        logged = trainer.validate(ImageCodeGenerator(), datamodule=datamodule, verbose=False)[0]
    assert set(logged) == {"val/loss", "val/mmd_x"}
    figures = sorted(path.name for path in (Path(trainer.log_dir) / "figures").iterdir())
    assert figures == [f"{name}.{kind}" for name in ("val_code_grid_step0000000", "val_prior_samples_step0000000")
                       for kind in ("pdf", "png")]
