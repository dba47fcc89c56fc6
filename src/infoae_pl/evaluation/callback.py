"""The evaluation callback: likelihood, bound, MI, MMD and sample-quality metrics plus figures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from matplotlib.figure import Figure
from torch import Tensor
from torchmetrics import Metric

from infoae_pl.evaluation.ais import AIS_DEFAULTS, AISSettings
from infoae_pl.evaluation.classifier import (
    CLASSIFIER_DATASETS,
    NUM_CLASSES,
    TrainedClassifier,
    load_or_train_classifier,
    settings_for,
)
from infoae_pl.evaluation.estimators import (
    DEFAULT_CHUNK_SIZE,
    prior_sampled_log_likelihood,
    quadrature_log_likelihood,
)
from infoae_pl.evaluation.figures import density_figure, image_grid_figure, save_figure, scatter_figure
from infoae_pl.evaluation.metrics import (
    AISNLL,
    AggregatePosteriorMI,
    BarberAgakovMI,
    GeneratedDataMMD,
    ImportanceSampledNLL,
    LatentMMD,
    ModeCoverage,
    NegativeELBO,
    PriorSampledNLL,
    QuadratureNLL,
    ReconstructionError,
)
from infoae_pl.evaluation.quality import (
    MatchedCodeAccuracy,
    NearestNeighbourAccuracy,
    SampleQuality,
    categorical_codes,
)
from infoae_pl.evaluation.sampling import (
    can_decode,
    decoded_x,
    generate,
    has_likelihood,
    has_method,
    reconstruct,
    uses_decoder_mean,
)
from infoae_pl.validation import check_choice, check_int_at_least

NLL_ESTIMATORS = ("importance", "prior", "quadrature", "ais")
CLASSIFIER_MODES = ("auto", "none")
_MAX_KEPT_LOW_DIM = 10_000
_DENSITY_GRID_POINTS = 400
_CODE_POINTS_PER_ROW = 256


def _inputs(batch: Any) -> Tensor:
    """x from a ``(x, y)`` batch (or a bare tensor)."""
    return batch[0] if isinstance(batch, (list, tuple)) else batch


def _labels(batch: Any) -> Tensor | None:
    """y from a ``(x, y)`` batch, None for a bare tensor."""
    return batch[1] if isinstance(batch, (list, tuple)) and len(batch) > 1 else None


class EvaluationCallback(L.Callback):
    """Evaluates the module on the validation/test batches it sees and logs ``{val,test}/…`` metrics.

    Metrics are updated in ``on_{validation,test}_batch_end`` on the batches the loop already loaded
    (no second pass over the data, DDP sharding and device placement come for free), so they follow
    the trainer's validation cadence (``val_check_interval``/``check_val_every_n_epoch``,
    ``limit_val_batches``); ``every_n_validations`` thins that further, and ``max_batches`` /
    ``max_examples`` cap the work per evaluation (per process). Values are logged with
    ``pl_module.log`` so checkpoints, early stopping and pruning can monitor them (on skipped
    validations they keep their previous value). Keys: ``nll`` (by ``nll_estimator``: "importance" with
    q(z|x) as proposal, re-fitted per image first when ``importance_refit_steps`` > 0; "prior";
    "quadrature"; "ais", annealed importance sampling with the ``ais_*`` settings), ``elbo``,
    ``mi_ba`` (only when the data entropy is known), ``mi_aggregate``, ``mmd_qz_pz``, ``mmd_x`` (MMD
    between generated and real x), ``reconstruction_error``, and for mixture data whose datamodule has
    ``mode_centres``/``mode_std``: ``modes_hit``, ``high_quality_fraction``, ``mode_kl``. On labelled
    images (an ``InfoAEDataModule`` of mnist, mnist5k or fashion_mnist): ``fid``, ``kid``,
    ``class_coverage`` and ``class_kl`` of generated images in the feature space of the package's
    classifier (``classifier="auto"`` loads it from ``classifier_dir`` or trains and caches it on first
    use, with ``classifier_settings``; ``"none"``, the default, skips them; see
    :mod:`infoae_pl.evaluation.quality`), ``code_purity`` and ``code_accuracy_real`` (InfoGAN's categorical
    code: how well G's codes pick classes, and Q's code of real images against their labels) and
    ``feature_accuracy``/``pixel_accuracy`` (1-NN on the posterior mean and on pixels), fitted on the first
    ``fit_examples`` training images (0: skipped). The module
    provides ``prior`` and optionally ``encode``/``decode``/``sample_x``/``latent_grid``; what needs a
    missing method is skipped, and so are ``nll``/``elbo``/``mi_ba`` when ``has_likelihood`` is False
    (an implicit decoder). Figures (image sample, reconstruction and code grids; 1-D densities; 2-D
    sample and code scatters) are written to ``<log_dir>/figures`` on rank 0 and sent to W&B when a
    ``WandbLogger`` is attached. Only dataloader 0 is evaluated.
    """

    def __init__(
        self,
        nll_estimator: str = "importance",
        importance_samples: int = 5000,
        importance_refit_steps: int = 0,
        prior_samples: int = 25_000,
        quadrature_grid_size: int = 10_001,
        quadrature_z_range: tuple[float, float] = (-10.0, 10.0),
        ais_num_steps: int = AIS_DEFAULTS.num_steps,
        ais_num_chains: int = AIS_DEFAULTS.num_chains,
        ais_leapfrog_steps: int = AIS_DEFAULTS.leapfrog_steps,
        ais_initial: str = AIS_DEFAULTS.initial,
        ais_target_acceptance: float = AIS_DEFAULTS.target_acceptance,
        elbo_samples: int = 1,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        max_batches: int | None = None,
        max_examples: int | None = None,
        every_n_validations: int = 1,
        mi_max_examples: int = 2000,
        mmd_max_examples: int = 2000,
        data_entropy: float | None = None,
        mode_samples: int = 2500,
        mode_quality_stds: float = 3.0,
        figures: bool = True,
        num_figure_samples: int = 64,
        classifier: str = "none",
        classifier_dir: str | None = None,
        classifier_settings: dict[str, Any] | None = None,
        quality_max_examples: int = 2000,
        fit_examples: int = 4000,
    ) -> None:
        super().__init__()
        if nll_estimator not in NLL_ESTIMATORS:
            raise ValueError(f"nll_estimator must be one of {NLL_ESTIMATORS}, got {nll_estimator!r}")
        check_choice("classifier", classifier, CLASSIFIER_MODES)
        check_int_at_least("quality_max_examples", quality_max_examples, 2)
        check_int_at_least("fit_examples", fit_examples, 0)
        settings_for(None, **(classifier_settings or {}))  # a bad field fails now, before any training
        #: Overrides of the data set's classifier settings (see ``classifier.settings_for``).
        self.classifier_settings = dict(classifier_settings or {})
        self.classifier, self.classifier_dir = classifier, classifier_dir
        self.quality_max_examples, self.fit_examples = quality_max_examples, fit_examples
        self._trained_classifier: TrainedClassifier | None = None
        self._fit_data: tuple[str, Tensor, Tensor] | None = None
        check_int_at_least("importance_refit_steps", importance_refit_steps, 0)
        check_int_at_least("chunk_size", chunk_size, 1)
        self.ais_settings = AISSettings(num_steps=ais_num_steps, num_chains=ais_num_chains,
                                        leapfrog_steps=ais_leapfrog_steps, initial=ais_initial,
                                        target_acceptance=ais_target_acceptance,
                                        chunk_size=chunk_size).checked(prefix="ais_")
        if every_n_validations < 1:
            raise ValueError(f"every_n_validations must be >= 1, got {every_n_validations}")
        for name, cap in (("max_batches", max_batches), ("max_examples", max_examples)):
            if cap is not None and cap < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {cap}")
        self.nll_estimator = nll_estimator
        self.importance_samples = importance_samples
        self.importance_refit_steps = importance_refit_steps
        self.prior_samples = prior_samples
        self.quadrature_grid_size = quadrature_grid_size
        self.quadrature_z_range = tuple(quadrature_z_range)
        self.elbo_samples = elbo_samples
        self.chunk_size = chunk_size
        self.max_batches = max_batches
        self.max_examples = max_examples
        self.every_n_validations = every_n_validations
        self.mi_max_examples = mi_max_examples
        self.mmd_max_examples = mmd_max_examples
        self.data_entropy = data_entropy
        self.mode_samples = mode_samples
        self.mode_quality_stds = mode_quality_stds
        self.figures = figures
        self.num_figure_samples = num_figure_samples
        self._num_validations = 0
        self._noted_no_likelihood = False
        self._active = False
        self._metrics: dict[str, Metric] = {}
        self._signs: dict[str, float] = {}
        self._kept: list[Tensor] = []
        self._num_batches = 0
        self._num_examples = 0

    # ----------------------------------------------------------------------------------- hooks
    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._active = False
        if trainer.sanity_checking:
            return
        self._num_validations += 1
        if self._num_validations % self.every_n_validations == 0:
            self._start(trainer, pl_module)

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self._active and dataloader_idx == 0:
            self._update(pl_module, _inputs(batch), _labels(batch))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._active:
            self._finish("val", trainer, pl_module)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(trainer, pl_module)

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self._active and dataloader_idx == 0:
            self._update(pl_module, _inputs(batch), _labels(batch))

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._active:
            self._finish("test", trainer, pl_module)

    # ------------------------------------------------------------------------------- internals
    def _resolved_data_entropy(self, trainer: L.Trainer) -> float | None:
        if self.data_entropy is not None:
            return self.data_entropy
        return getattr(trainer.datamodule, "data_entropy", None)

    def _build_metrics(self, trainer: L.Trainer, model: Any) -> dict[str, tuple[Metric, float]]:
        """The metrics this model supports, as key -> (metric, sign applied to the computed value)."""
        explicit = has_method(model, "prior") and uses_decoder_mean(model)
        amortised = explicit and has_method(model, "encode")
        metrics: dict[str, tuple[Metric, float]] = {}
        if self.nll_estimator == "importance" and amortised:
            metrics["nll"] = (
                ImportanceSampledNLL(self.importance_samples, self.chunk_size, self.importance_refit_steps),
                1.0,
            )
        elif self.nll_estimator == "ais" and (amortised or (explicit and self.ais_settings.initial == "prior")):
            metrics["nll"] = (AISNLL(self.ais_settings), 1.0)
        elif self.nll_estimator == "prior" and explicit:
            metrics["nll"] = (PriorSampledNLL(self.prior_samples, self.chunk_size), 1.0)
        elif self.nll_estimator == "quadrature" and explicit:
            metrics["nll"] = (
                QuadratureNLL(self.quadrature_grid_size, self.quadrature_z_range, self.chunk_size),
                1.0,
            )
        if amortised:
            metrics["elbo"] = (NegativeELBO(self.elbo_samples, self.chunk_size), -1.0)
            entropy = self._resolved_data_entropy(trainer)
            if entropy is not None:
                metrics["mi_ba"] = (BarberAgakovMI(entropy, self.elbo_samples, self.chunk_size), 1.0)
        if has_method(model, "encode"):
            metrics["mi_aggregate"] = (
                AggregatePosteriorMI(self.mi_max_examples, chunk_size=self.chunk_size),
                1.0,
            )
            if has_method(model, "prior"):
                metrics["mmd_qz_pz"] = (LatentMMD(self.mmd_max_examples), 1.0)
            if can_decode(model):
                metrics["reconstruction_error"] = (ReconstructionError(), 1.0)
        if has_method(model, "prior") and has_method(model, "sample_x"):
            metrics["mmd_x"] = (GeneratedDataMMD(self.mmd_max_examples), 1.0)
            centres = getattr(trainer.datamodule, "mode_centres", None)
            std = getattr(trainer.datamodule, "mode_std", None)
            if centres is not None and std is not None:
                coverage = ModeCoverage(centres, std, self.mode_samples, self.mode_quality_stds)
                metrics["mode_coverage"] = (coverage, 1.0)  # logs modes_hit, high_quality_fraction, mode_kl
        metrics.update(self._labelled_image_metrics(trainer, model))
        return metrics

    def _labelled_image_metrics(self, trainer: L.Trainer, model: Any) -> dict[str, tuple[Metric, float]]:
        """Sample quality, InfoGAN's code accuracy and 1-NN feature accuracy on labelled image data."""
        datamodule = getattr(trainer, "datamodule", None)
        if getattr(datamodule, "dataset", None) not in CLASSIFIER_DATASETS:
            return {}
        metrics: dict[str, tuple[Metric, float]] = {}
        if self.classifier == "auto" and has_method(model, "prior") and has_method(model, "sample_x"):
            if self._trained_classifier is None or self._trained_classifier.dataset != datamodule.dataset:
                self._trained_classifier = load_or_train_classifier(
                    datamodule.dataset, settings_for(datamodule.dataset, **self.classifier_settings),
                    self.classifier_dir, datamodule.data_dir)
            quality = SampleQuality(self._trained_classifier.model, self.quality_max_examples)
            metrics["sample_quality"] = (quality, 1.0)  # logs fid, kid, class_coverage, class_kl
        if has_method(model, "encode") and self.fit_examples > 0:
            if self._fit_data is None or self._fit_data[0] != datamodule.dataset:
                self._fit_data = (datamodule.dataset, *self._training_examples(datamodule))
            fit_x, fit_y = self._fit_data[1:]
            if categorical_codes(model) >= 2:  # logs code_accuracy_real
                metrics["code_accuracy_real"] = (MatchedCodeAccuracy(fit_x, fit_y, NUM_CLASSES), 1.0)
            metrics["nearest_neighbour"] = (NearestNeighbourAccuracy(fit_x, fit_y), 1.0)  # feature/pixel_accuracy
        return metrics

    def _training_examples(self, datamodule: Any) -> tuple[Tensor, Tensor]:
        """The first ``fit_examples`` (x, y) of the training loader, as the model sees them in training."""
        xs, ys, count = [], [], 0
        for batch in datamodule.train_dataloader():
            xs.append(_inputs(batch)[: self.fit_examples - count])
            ys.append(_labels(batch)[: self.fit_examples - count])
            count += len(xs[-1])
            if count >= self.fit_examples:
                break
        return torch.cat(xs), torch.cat(ys)

    def _start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        built = self._build_metrics(trainer, pl_module)
        likelihood = has_likelihood(pl_module)
        expected = {"mi_aggregate", "mmd_qz_pz"} | ({"nll", "elbo"} if likelihood else set())
        missing = expected - set(built)
        if not likelihood and not self._noted_no_likelihood:
            rank_zero_info(
                f"EvaluationCallback: {type(pl_module).__name__} has no likelihood (has_likelihood=False);"
                " skipping nll, elbo and mi_ba."
            )
            self._noted_no_likelihood = True
        if missing:
            rank_zero_warn(
                f"EvaluationCallback: {type(pl_module).__name__} lacks prior/encode/decode needed for"
                f" {sorted(missing)}; skipping them."
            )
        self._metrics = {key: metric.to(pl_module.device) for key, (metric, _) in built.items()}
        self._signs = {key: sign for key, (_, sign) in built.items()}
        self._kept, self._num_batches, self._num_examples = [], 0, 0
        self._active = True

    def _update(self, model: Any, x: Tensor, y: Tensor | None = None) -> None:
        if self.max_batches is not None and self._num_batches >= self.max_batches:
            return
        if self.max_examples is not None:
            x = x[: self.max_examples - self._num_examples]
        if x.shape[0] == 0:
            return
        self._num_batches += 1
        self._num_examples += x.shape[0]
        for metric in self._metrics.values():
            if getattr(metric, "needs_labels", False):
                if y is not None:
                    metric.update(model, x, y[: x.shape[0]])
            else:
                metric.update(model, x)
        if self.figures:
            limit = _MAX_KEPT_LOW_DIM if x[0].numel() <= 2 else self.num_figure_samples
            room = limit - sum(len(kept) for kept in self._kept)
            if room > 0:
                self._kept.append(x[:room].detach())

    def _finish(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._active = False
        for key, metric in self._metrics.items():
            if metric.update_count > 0:
                value = metric.compute()
                values = value if isinstance(value, dict) else {key: self._signs[key] * value}
                for name, number in values.items():
                    pl_module.log(f"{stage}/{name}", float(number), sync_dist=True)
        self._metrics = {}
        if self.figures and self._kept:
            log_dir = trainer.log_dir or trainer.default_root_dir  # a collective: call on every rank
            if trainer.is_global_zero:
                self._figures(stage, trainer, pl_module, torch.cat(self._kept), Path(log_dir) / "figures")
        self._kept = []

    @torch.no_grad()
    def _figures(self, stage: str, trainer: L.Trainer, model: Any, data: Tensor, folder: Path) -> None:
        data_shape = tuple(getattr(trainer.datamodule, "data_shape", None) or data.shape[1:])
        figures: dict[str, Figure] = {}
        if len(data_shape) == 3:
            figures.update(self._image_figures(model, data, data_shape))
        elif math.prod(data_shape) == 1:
            figure = self._density_figure(model, data.reshape(-1))
            if figure is not None:
                figures["density"] = figure
        elif data_shape == (2,):
            figures.update(self._scatter_figures(model, data))
        if not figures:
            return
        wandb_loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
        for name, figure in figures.items():
            path = save_figure(figure, folder / f"{stage}_{name}_step{trainer.global_step:07d}.png")
            if wandb_loggers:
                import wandb

                for logger in wandb_loggers:
                    logger.log_metrics({f"{stage}/{name}": wandb.Image(str(path))}, step=trainer.global_step)

    def _image_figures(self, model: Any, data: Tensor, data_shape: tuple[int, ...]) -> dict[str, Figure]:
        """Prior samples, input/reconstruction pairs and the code grid, all through ``decoded_x``."""
        count = self.num_figure_samples
        columns = max(1, math.isqrt(count))
        shown = "mean of p(x|z)" if uses_decoder_mean(model) else "G(z)"
        figures: dict[str, Figure] = {}
        if has_method(model, "prior") and can_decode(model):
            z = model.prior().sample(torch.Size([count]))
            images = decoded_x(model, z).reshape(count, *data_shape).float().cpu().numpy()
            figures["prior_samples"] = image_grid_figure(images, columns, f"{shown}, z ~ p(z)")
        if has_method(model, "encode") and can_decode(model):
            inputs = data[:count]
            pairs = torch.stack([inputs, reconstruct(model, inputs).reshape(inputs.shape)], dim=1)
            images = pairs.reshape(-1, *data_shape).float().cpu().numpy()
            figures["reconstructions"] = image_grid_figure(
                images, 2 * columns, f"input | {shown} at the posterior mean"
            )
        if has_method(model, "latent_grid") and can_decode(model):
            latents, labels = model.latent_grid(columns)
            images = decoded_x(model, latents).reshape(-1, *data_shape).float().cpu().numpy()
            figures["code_grid"] = image_grid_figure(images, columns, f"{shown}, one row per code", labels)
        return figures

    def _scatter_figures(self, model: Any, data: Tensor) -> dict[str, Figure]:
        """2-D data: model samples ``sample_x(z)``, z ~ p(z), over the data, and one colour per code row."""
        if not has_method(model, "sample_x"):
            return {}
        points = data.reshape(-1, 2).float().cpu().numpy()
        figures: dict[str, Figure] = {}
        if has_method(model, "prior"):
            samples = generate(model, len(points)).reshape(-1, 2).float().cpu().numpy()
            figures["samples"] = scatter_figure(
                [("model samples", samples)], "sample_x(z), z ~ p(z), vs data", background=points
            )
        if has_method(model, "latent_grid"):
            latents, labels = model.latent_grid(_CODE_POINTS_PER_ROW)
            rows = model.sample_x(latents).reshape(len(labels), -1, 2).float().cpu().numpy()
            figures["code_grid"] = scatter_figure(
                list(zip(labels, rows)), "sample_x per code value", background=points
            )
        return figures

    def _density_figure(self, model: Any, data: Tensor) -> Figure | None:
        """Histogram of 1-D data against p(x) (quadrature for a 1-D z, else prior sampling) or sample_x(z)."""
        values = data.double().cpu().numpy()
        low, high = float(values.min()), float(values.max())
        margin = 0.25 * (high - low) + 1e-3
        grid = torch.linspace(
            low - margin, high + margin, _DENSITY_GRID_POINTS, dtype=data.dtype, device=data.device
        )
        if has_method(model, "prior") and uses_decoder_mean(model):
            x_grid = grid.unsqueeze(-1)
            if model.prior().event_shape == torch.Size([1]):
                log_px = quadrature_log_likelihood(
                    model, x_grid, self.quadrature_grid_size, self.quadrature_z_range, self.chunk_size
                )
                method = "quadrature"
            else:
                log_px = prior_sampled_log_likelihood(model, x_grid, self.prior_samples, self.chunk_size)
                method = "prior sampling"
            return density_figure(
                values, f"model p(x) by {method} vs data", grid.cpu().numpy(), log_px.exp().cpu().numpy()
            )
        if has_method(model, "prior") and has_method(model, "sample_x"):
            samples = generate(model, len(values)).reshape(-1).double().cpu().numpy()
            return density_figure(values, "model samples vs data", model_samples=samples)
        return None
