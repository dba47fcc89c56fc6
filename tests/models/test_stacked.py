import lightning as L
import pytest
import torch

import infoae_pl.nets.heads as heads
from infoae_pl.models import BetaELBO, LagrangianModule
from infoae_pl.models.stacked import StackedModules
from infoae_pl.objectives.config import ANALYTIC_KL

SHARED = dict(data_dim=1, latent_dim=1, likelihood="gaussian", hidden_dim=12, lr=3e-3, kl_warmup_steps=3)
COPIES = [{"beta": 0.1}, {"beta": 1.0, "mi_bound": 0.5}, {"beta": 4.0}]
SEEDS = [11, 12, 13]


def _loader(x):
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(len(x))), batch_size=32)


class LossRecorder(L.Callback):
    """Every step's loss per copy (``[K]`` for stacked modules, a scalar for a single module)."""

    def __init__(self, stop_at: dict[int, list[str]] | None = None):
        self.losses, self.stop_at = [], stop_at or {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        terms = pl_module.last_terms if isinstance(pl_module, StackedModules) else None
        self.losses.append(dict(zip(pl_module.names, terms["loss"].tolist())) if terms else outputs["loss"].item())
        if trainer.global_step in self.stop_at:
            pl_module.stop_copies(dict.fromkeys(self.stop_at[trainer.global_step], "pruned"))


def _trainer(steps, callbacks=()):
    return L.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, callbacks=list(callbacks), limit_val_batches=0)


def _separate_run(overrides, seed, x, steps):
    torch.manual_seed(seed)
    alone = BetaELBO(**SHARED, **overrides)
    recorder = LossRecorder()
    _trainer(steps, [recorder]).fit(alone, _loader(x))
    return alone, recorder.losses


@pytest.fixture
def no_noise(monkeypatch):
    """Reparameterisation noise set to zero, so runs are comparable draw for draw."""
    monkeypatch.setattr(heads.torch, "randn_like", torch.zeros_like)


@pytest.mark.parametrize("group_size", [None, 2, 1])
def test_stacked_copies_train_exactly_like_separate_runs(no_noise, group_size):
    """K stacked copies give the same loss at every step, and the same parameters, as K separate Adam
    runs, whether vmapped all together, in groups, or one by one."""
    x = torch.randn(128, 1) * 2
    stacked = StackedModules("infoae_pl.models.BetaELBO", SHARED, COPIES, names=["a", "b", "c"], seeds=SEEDS,
                             group_size=group_size)
    assert [len(g) for g in stacked.groups] == {None: [3], 2: [2, 1], 1: [1, 1, 1]}[group_size]
    recorder = LossRecorder()
    _trainer(8, [recorder]).fit(stacked, _loader(x))
    for name, seed, overrides, trained in zip("abc", SEEDS, COPIES, stacked.unstack()):
        alone, losses = _separate_run(overrides, seed, x, 8)
        torch.testing.assert_close(torch.tensor([step[name] for step in recorder.losses]), torch.tensor(losses),
                                   atol=1e-5, rtol=1e-5)
        for (key, a), b in zip(alone.state_dict().items(), trained.state_dict().values()):
            torch.testing.assert_close(a, b, msg=f"parameter {key} differs", atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("group_size", "stopped"), [(None, "b"), (2, "c"), (2, "a")])
def test_a_stopped_copy_is_cut_out_and_the_others_train_on_unchanged(no_noise, group_size, stopped):
    x = torch.randn(128, 1) * 2
    stacked = StackedModules("infoae_pl.models.BetaELBO", SHARED, COPIES, names=["a", "b", "c"], seeds=SEEDS,
                             group_size=group_size)
    recorder = LossRecorder(stop_at={4: [stopped]})
    trainer = _trainer(8, [recorder])
    trainer.fit(stacked, _loader(x))
    remaining = [n for n in "abc" if n != stopped]
    assert stacked.names == remaining and stacked.stopped == {stopped: "pruned"}
    assert sum(p.shape[0] for p in stacked.parameters()) == 2 * len(list(stacked.groups[0].parameters())), \
        "the stopped copy no longer costs compute"
    optimised = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
    assert optimised == {id(p) for p in stacked.parameters()}, "an emptied group left the optimiser too"
    assert [set(step) for step in recorder.losses] == [{"a", "b", "c"}] * 4 + [set(remaining)] * 4
    for name in remaining:
        index = "abc".index(name)
        alone, losses = _separate_run(COPIES[index], SEEDS[index], x, 8)
        torch.testing.assert_close(torch.tensor([step[name] for step in recorder.losses]), torch.tensor(losses),
                                   atol=1e-5, rtol=1e-5)
        (trained,) = stacked.unstack([name])
        for a, b in zip(alone.state_dict().values(), trained.state_dict().values()):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        # The copy's Adam state, exported in its own module's layout, is that of the separate run.
        alone_state = alone.trainer.optimizers[0].state_dict()["state"]
        (exported,) = stacked.copy_optimizer_state(name)
        for position, state in alone_state.items():
            torch.testing.assert_close(exported["state"][position]["exp_avg"], state["exp_avg"], atol=1e-6, rtol=1e-4)


def test_a_non_finite_copy_stops_alone_or_stops_the_run():
    x = torch.randn(64, 1)
    copies = [{"beta": 1.0}, {"beta": 1e300}]  # the second copy's KL weight is inf in float32 after the warm-up
    stacked = StackedModules("infoae_pl.models.BetaELBO", SHARED, copies, names=["ok", "bad"], on_non_finite="stop_copy")
    _trainer(6).fit(stacked, _loader(x))
    assert stacked.names == ["ok"] and "NonFiniteLossError" in stacked.stopped["bad"]
    assert stacked.trainer.global_step == 6
    raising = StackedModules("infoae_pl.models.BetaELBO", SHARED, copies, names=["ok", "bad"])
    with pytest.raises(Exception, match="non-finite at step 3 for copies"):
        _trainer(6).fit(raising, _loader(x))


def test_per_copy_terms_and_coefficients():
    stacked = StackedModules("infoae_pl.models.BetaELBO", SHARED, COPIES, names=["a", "b", "c"])
    assert stacked.coefficients(0)[ANALYTIC_KL].tolist() == pytest.approx([0.01] * 3)
    assert stacked.coefficients(3)[ANALYTIC_KL].tolist() == pytest.approx([0.1, 1.0, 4.0])
    terms = stacked.loss_terms(torch.randn(16, 1), step=5)
    assert terms["loss"].shape == (3,) and terms["recon_nll"].shape == (3,)


def test_copies_may_differ_only_in_coefficients():
    with pytest.raises(ValueError, match=r"differs from copy 'copy0' in \['lr'\].*may differ only in \['beta', "):
        StackedModules("infoae_pl.models.BetaELBO", SHARED, [{"beta": 1.0}, {"beta": 1.0, "lr": 0.1}])
    with pytest.raises(ValueError, match=r"in \['activation'\]"):
        StackedModules("infoae_pl.models.BetaELBO", SHARED, [{"beta": 1.0}, {"beta": 1.0, "activation": "relu"}])
    with pytest.raises(ValueError, match="import path"):
        StackedModules("BetaELBO", SHARED, COPIES)
    with pytest.raises(ValueError, match="on_non_finite='skip' is not supported; choose one of: raise, stop_copy"):
        StackedModules("infoae_pl.models.BetaELBO", SHARED, COPIES, on_non_finite="skip")


def test_copies_with_different_terms_train_on_the_union_with_the_same_losses(no_noise):
    """λ = 0 compiles away the MMD term: that copy gets coefficient 0 for it, and its loss is its own."""
    shared = dict(data_dim=2, latent_dim=2, likelihood="gaussian", hidden_dim=8, preset="beta_elbo", z_divergence="mmd")
    copies = [{"preset_params": {"beta": 0.5}, "lagrangian": {"MMD(q(z)||p(z))": lam}} for lam in (0.0, 50.0)]
    stacked = StackedModules("infoae_pl.models.LagrangianModule", shared, copies, seeds=[1, 2])
    assert "MMD(q(z)||p(z))" in stacked.coefficient_keys
    assert stacked.coefficients(0)["MMD(q(z)||p(z))"].tolist() == [0.0, 50.0]
    x = torch.randn(32, 2)
    losses = stacked.loss_terms(x, step=0)["loss"]
    for i, (seed, overrides) in enumerate(zip([1, 2], copies)):
        torch.manual_seed(seed)
        alone = LagrangianModule(**shared, **overrides)
        assert ("MMD(q(z)||p(z))" in alone.coefficients(0)) == (i == 1)
        torch.testing.assert_close(losses[i], alone.loss_terms(x)["loss"], atol=1e-5, rtol=1e-5)


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


def test_gradient_clipping_across_copies_is_refused():
    stacked = StackedModules("infoae_pl.models.BetaELBO", SHARED, COPIES)
    trainer = L.Trainer(max_steps=2, gradient_clip_val=1.0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(ValueError, match="gradient_clip_val"):
        trainer.fit(stacked, _loader(torch.randn(64, 1)))
