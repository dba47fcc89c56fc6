"""Every family with the convolutional parts: each shipped ``*_conv_*`` config trains a few steps through
``infoae fit`` and logs the image metrics; stacked copies with batch norm keep running statistics per copy;
InfoGAN's code augmentation adds exactly Q's log-likelihood of the code from the transformed image."""

import csv
import math
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

import infoae_pl.nets.heads as heads
from infoae_pl.cli import main
from infoae_pl.models import BetaELBO, InfoGAN
from infoae_pl.models.stacked import StackedModules
from infoae_pl.nets import ConvCritic, ConvDecoder, ConvEncoder, RandomAffine

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
FAMILIES = ("infovae", "aae", "infogan", "ali_bigan", "alice", "cyclegan")
DATASETS = ("mnist5k", "fashion_mnist")
CONV_CONFIGS = sorted(p.name for p in CONFIGS.glob("*_conv_*.yaml"))
PARTS = ("encoder", "decoder", "x_critic", "joint_critic")
#: Narrow networks and a classifier of a few steps: the test checks the wiring, not the numbers.
NARROW = {"channels": 4, "hidden_dim": 16}
TINY_CLASSIFIER = {"steps": 10, "channels": 4, "hidden_dim": 16, "batch_size": 32}


def test_every_family_has_a_conv_config_on_both_image_datasets():
    assert set(CONV_CONFIGS) == {f"{f}_conv_{d}.yaml" for f in FAMILIES for d in DATASETS}


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    """One classifier cache for the module: each data set's tiny classifier is trained once."""
    return tmp_path_factory.mktemp("classifiers")


def _last_row_with(rows, key):
    return next(row for row in reversed(rows) if row.get(key))


@pytest.mark.parametrize("config", CONV_CONFIGS)
def test_every_conv_config_trains_through_infoae_fit_and_logs_the_image_metrics(config, tmp_path, classifier_dir):
    settings = yaml.safe_load((CONFIGS / config).read_text())
    init_args = settings["model"]["init_args"]
    for part in PARTS:
        if part in init_args:
            assert init_args[part]["class_path"].startswith("infoae_pl.nets.Conv")
            init_args[part]["init_args"].update(NARROW)
    (callback,) = settings["trainer"]["callbacks"]
    assert callback["init_args"]["classifier"] == "auto"
    callback["init_args"].update(classifier_dir=str(classifier_dir), classifier_settings=TINY_CLASSIFIER, fit_examples=64)
    (tmp_path / config).write_text(yaml.safe_dump(settings))
    main(["fit", "--config", str(tmp_path / config), "--trainer.max_steps", "2", "--trainer.val_check_interval", "2",
          "--trainer.limit_val_batches", "1", "--data.batch_size", "16", "--trainer.default_root_dir", str(tmp_path)])
    with next(tmp_path.rglob("metrics.csv")).open() as handle:
        rows = list(csv.DictReader(handle))
    expected = ["val/fid", "val/kid", "val/class_coverage", "val/class_kl", "val/feature_accuracy", "val/pixel_accuracy"]
    if config.startswith("infogan"):
        expected += ["val/code_accuracy_real", "val/code_purity"]
    values = {key: float(_last_row_with(rows, key)[key]) for key in expected}
    assert all(math.isfinite(v) for v in values.values()), values
    assert values["val/fid"] >= 0 and 0 <= values["val/class_kl"] <= math.log(10) + 1e-6  # logged as float32
    assert 1 <= values["val/class_coverage"] <= 10
    assert all(0 <= values[k] <= 1 for k in expected if "accuracy" in k or "purity" in k)
    assert len(list(classifier_dir.glob(f"{settings['data']['dataset']}-classifier-*.pt"))) == 1


# Stacked copies ------------------------------------------------------------------------------------------------
SHARED = dict(
    data_dim=784, latent_dim=3, likelihood="bernoulli", lr=1e-3,
    encoder={"class_path": "infoae_pl.nets.ConvEncoder", "init_args": {"out_dim": 3, **NARROW}},
    decoder={"class_path": "infoae_pl.nets.ConvDecoder", "init_args": {"in_dim": 3, **NARROW}},
)
COPIES, SEEDS = [{"beta": 0.5}, {"beta": 2.0}], [11, 12]


@pytest.fixture
def no_noise(monkeypatch):
    """Reparameterisation noise set to zero, so runs are comparable draw for draw."""
    monkeypatch.setattr(heads.torch, "randn_like", torch.zeros_like)


def _fit(module, x, steps=3):
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(len(x))), batch_size=16)
    L.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, limit_val_batches=0).fit(module, loader)


def _buffers(module):
    return {k: v.clone() for k, v in module.named_buffers() if "running" in k}


@pytest.mark.parametrize("group_size", [None, 1])
def test_stacked_copies_with_batch_norm_train_like_separate_runs_with_their_own_running_statistics(no_noise, group_size):
    """Vmapped (all copies in one group) or one by one: each copy's parameters and batch-norm running
    statistics after training equal those of a separate run, and evaluation mode reads them without
    changing them."""
    torch.manual_seed(0)
    x = torch.rand(48, 784)
    stacked = StackedModules("infoae_pl.models.BetaELBO", SHARED, COPIES, names=["a", "b"], seeds=SEEDS,
                             group_size=group_size)
    assert [len(g) for g in stacked.groups] == ([2] if group_size is None else [1, 1])
    _fit(stacked, x)
    trained = stacked.unstack()
    separate = []
    for seed, overrides, copy in zip(SEEDS, COPIES, trained):
        torch.manual_seed(seed)
        alone = BetaELBO(**SHARED, **overrides)
        _fit(alone, x)
        separate.append(alone)
        assert any(v.abs().sum() > 0 for k, v in alone.named_buffers() if "running_mean" in k)
        for (key, a), b in zip(alone.state_dict().items(), copy.state_dict().values()):
            torch.testing.assert_close(b, a, msg=f"{key} differs", atol=1e-4, rtol=1e-4)
    assert not torch.allclose(*(dict(c.named_buffers())["encoder.trunk.net.4.running_mean"] for c in trained))

    stacked.eval()
    before = _buffers(stacked)
    terms = stacked.loss_terms(x[:16])
    for key, value in _buffers(stacked).items():
        torch.testing.assert_close(value, before[key], msg=f"evaluation changed {key}")
    for i, alone in enumerate(separate):
        alone.eval()
        expected = alone.loss_terms(x[:16])["loss"]
        torch.testing.assert_close(terms["loss"][i], expected, atol=1e-4, rtol=1e-5)


def test_batch_norm_with_a_cumulative_average_is_refused_before_training():
    encoder = ConvEncoder(out_dim=3, **NARROW)
    encoder.trunk.net[4].momentum = None
    with pytest.raises(ValueError, match=r"momentum=None .* in \['a: encoder\.trunk\.net\.4', 'b: encoder\.trunk\.net\.4'\]"):
        StackedModules("infoae_pl.models.BetaELBO", {**SHARED, "encoder": encoder}, COPIES, names=["a", "b"], seeds=SEEDS)


class _Mirror(torch.nn.Module):
    """A deterministic stand-in for RandomAffine: left-right mirror."""

    def forward(self, x):
        return x.reshape(*x.shape[:-1], 28, 28).flip(-1).reshape(x.shape)


def _conv_infogan(**kwargs):
    torch.manual_seed(0)
    return InfoGAN(noise_dim=4, num_categories=3, num_continuous=1, q_hidden_dim=8, continuous_std=1.0,
                   q_trains_trunk=True, q_optimizer="critic", mi_weight=0.5, likelihood="bernoulli",
                   decoder=ConvDecoder(in_dim=8, likelihood="bernoulli", **NARROW), x_critic=ConvCritic(**NARROW),
                   **kwargs).eval()


def test_code_augmentation_adds_q_s_log_likelihood_of_the_code_from_the_transformed_image_in_both_steps():
    """The MI term's estimate (generator step) and the critic step's MI part each gain exactly
    mean log q(c | T(G(z))) on the same draws, computed here from Q's logits by hand."""
    model, plain = _conv_infogan(code_augmentation=_Mirror()), _conv_infogan()
    plain.load_state_dict(model.state_dict())
    x = torch.rand(16, 784)

    def code_log_q(image, z):
        logits = model.encoder(_Mirror()(image)).logits
        return logits.log_softmax(-1)[torch.arange(len(z)), model.prior().split(z)[1].argmax(-1)].mean()

    drawn = []
    generated = type(model).log_q_generated
    model.log_q_generated = lambda image, z: drawn.append((image, z)) or generated(model, image, z)
    for step in ("generator", "critic"):
        values = []
        for module in (model, plain):
            torch.manual_seed(1)
            with torch.no_grad():
                values.append(module.loss_terms(x)["E_p[log q(z|x)]"] if step == "generator" else module.critic_loss(x))
        coefficient = 1.0 if step == "generator" else -0.5  # the critic step adds −mi_weight·E_p[log q]
        with torch.no_grad():
            expected = coefficient * code_log_q(*drawn.pop())
        torch.testing.assert_close(values[0] - values[1], expected, atol=1e-5, rtol=1e-5)


def test_code_augmentation_without_a_categorical_code_or_on_other_than_28x28_images_is_refused():
    with pytest.raises(ValueError, match=r"code_augmentation .* needs num_categories >= 2"):
        InfoGAN(num_categories=0, num_continuous=1, code_augmentation=RandomAffine(), data_dim=784)
    with pytest.raises(ValueError, match=r"code_augmentation RandomAffine transforms 1×28×28 images .* got data_dim=2"):
        InfoGAN(num_categories=3, code_augmentation=RandomAffine(), data_dim=2)
