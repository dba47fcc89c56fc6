import lightning as L
import pytest
import torch

import infoae_pl.nets.heads as heads
from infoae_pl.models import BetaELBO
from infoae_pl.models.stacked import StackedModules

SHARED = dict(data_dim=1, latent_dim=1, likelihood="gaussian", hidden_dim=12, lr=3e-3, kl_warmup_steps=3)
COPIES = [{"beta": 0.1}, {"beta": 1.0, "mi_bound": 0.5}, {"beta": 4.0}]


def _loader(x):
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(len(x))), batch_size=32)


def _trainer(steps):
    return L.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False)


def test_stacked_copies_train_exactly_like_separate_runs(monkeypatch):
    """With the reparameterisation noise set to zero, K stacked copies follow K separate Adam runs."""
    monkeypatch.setattr(heads.torch, "randn_like", torch.zeros_like)
    x = torch.randn(128, 1) * 2
    stacked = StackedModules("infoae_pl.models.BetaELBO", SHARED, COPIES, seeds=[11, 12, 13])
    _trainer(8).fit(stacked, _loader(x))
    for seed, overrides, trained in zip([11, 12, 13], COPIES, stacked.unstack()):
        torch.manual_seed(seed)
        alone = BetaELBO(**SHARED, **overrides)
        _trainer(8).fit(alone, _loader(x))
        for (name, a), b in zip(alone.state_dict().items(), trained.state_dict().values()):
            torch.testing.assert_close(a, b, msg=f"parameter {name} differs", atol=1e-5, rtol=1e-5)


def test_per_copy_terms_and_coefficients():
    stacked = StackedModules("infoae_pl.models.BetaELBO", SHARED, COPIES, names=["a", "b", "c"])
    assert stacked.coefficients(0)["kl_weight"].tolist() == pytest.approx([0.01] * 3)
    assert stacked.coefficients(3)["kl_weight"].tolist() == pytest.approx([0.1, 1.0, 4.0])
    terms = stacked.loss_terms(torch.randn(16, 1), step=5)
    assert terms["loss"].shape == (3,) and terms["recon_nll"].shape == (3,)


def test_copies_must_share_the_optimiser():
    with pytest.raises(ValueError, match=r"differs in optimiser settings \['lr'\]"):
        StackedModules("infoae_pl.models.BetaELBO", SHARED, [{"beta": 1.0}, {"beta": 1.0, "lr": 0.1}])
    with pytest.raises(ValueError, match="import path"):
        StackedModules("BetaELBO", SHARED, COPIES)


def test_copies_must_compile_to_the_same_terms():
    shared = {k: v for k, v in SHARED.items() if k != "kl_warmup_steps"}
    with pytest.raises(ValueError, match="compiles to other coefficients"):
        StackedModules("infoae_pl.models.LagrangianModule", shared,
                       [{"preset": "beta_elbo", "preset_params": {"beta": 0.5}}, {"preset": "mmd_infovae"}])


def test_beta_elbo_rebuilds_from_its_hparams():
    model = BetaELBO(**SHARED, beta=0.3)
    assert BetaELBO(**model.hparams).hparams == model.hparams


def test_every_copy_logs_its_terms_at_the_logger_cadence(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    stacked = StackedModules("infoae_pl.models.BetaELBO", SHARED, COPIES, names=["a", "b", "c"])
    trainer = L.Trainer(max_steps=6, log_every_n_steps=2, logger=CSVLogger(tmp_path, name="s"),
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(stacked, _loader(torch.randn(256, 1)))
    header = (tmp_path / "s" / "version_0" / "metrics.csv").read_text().splitlines()[0].split(",")
    for name in ("a", "b", "c"):
        assert {f"train/{name}/loss", f"train/{name}/recon_nll", f"train/{name}/kl"} <= set(header)
    rows = (tmp_path / "s" / "version_0" / "metrics.csv").read_text().splitlines()[1:]
    assert len(rows) == 3, "one row per written step (2, 4, 6)"
