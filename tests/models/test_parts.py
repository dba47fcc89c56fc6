"""Networks are parts: a user's own encoder, decoder or critic, from Python or from a YAML config."""

import textwrap

import lightning as L
import pytest
import torch
import yaml

from infoae_pl.cli import main
from infoae_pl.models import BetaELBO, InfoVAE
from infoae_pl.nets import GaussianMLP

USER_MODULE = textwrap.dedent('''
    """A user's own networks, in a module of their own."""
    import torch
    from torch import nn
    from torch.distributions import Independent, Normal


    class LinearGaussianEncoder(nn.Module):
        """x -> N(Wx + b, diag(exp(s))^2): a linear amortised posterior."""

        def __init__(self, in_dim: int, out_dim: int, init_log_scale: float = 0.0):
            super().__init__()
            self.loc = nn.Linear(in_dim, out_dim)
            self.log_scale = nn.Parameter(torch.full((out_dim,), init_log_scale))

        def forward(self, x):
            return Independent(Normal(self.loc(x), self.log_scale.exp()), 1)
''')


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_networks.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_networks

    return my_networks


def test_a_python_module_given_as_encoder_is_used_and_trained(user_module):
    encoder = user_module.LinearGaussianEncoder(1, 1)
    model = BetaELBO(encoder=encoder, data_dim=1, latent_dim=1, likelihood="gaussian", hidden_dim=8)
    assert model.encoder is encoder and "encoder" not in model.hparams
    before = encoder.loc.weight.detach().clone()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(64, 1), torch.zeros(64)), batch_size=32)
    L.Trainer(max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False).fit(model, loader)
    assert not torch.equal(before, encoder.loc.weight)


def test_default_networks_are_todays_mlps():
    model = InfoVAE(data_dim=4, latent_dim=2, hidden_dim=8)
    assert isinstance(model.encoder, GaussianMLP) and model.encoder.net[0].in_features == 4
    assert model.hparams["encoder"] is None


def test_a_users_encoder_class_from_their_own_module_works_from_a_config(user_module, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = {
        "seed_everything": 0,
        "model": {"class_path": "infoae_pl.models.BetaELBO", "init_args": {
            "beta": 0.5, "latent_dim": 1, "likelihood": "gaussian", "hidden_dim": 16,
            "encoder": {"class_path": "my_networks.LinearGaussianEncoder",
                        "init_args": {"in_dim": 1, "out_dim": 1, "init_log_scale": -1.0}},
        }},
        "data": {"dataset": "mog1d", "batch_size": 100, "steps_per_epoch": 10, "val_size": 100, "test_size": 100},
        "trainer": {"max_steps": 10, "enable_progress_bar": False, "enable_model_summary": False,
                    "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                               "init_args": {"save_dir": str(tmp_path / "runs"), "name": "user"}}},
    }
    (tmp_path / "user.yaml").write_text(yaml.safe_dump(config))
    main(["fit", "--config", str(tmp_path / "user.yaml")])
    run = tmp_path / "runs" / "user" / "version_0"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["init_args"]["encoder"]["class_path"] == "my_networks.LinearGaussianEncoder"
    checkpoint = run / "checkpoints" / "last.ckpt"
    restored = BetaELBO.load_from_checkpoint(checkpoint)
    assert type(restored.encoder).__name__ == "LinearGaussianEncoder"
    state = torch.load(checkpoint, weights_only=False)["state_dict"]
    torch.testing.assert_close(restored.encoder.log_scale, state["encoder.log_scale"])
    assert restored.encoder.log_scale.item() != -1.0  # trained, not the initial value


def test_a_bad_part_names_the_option():
    with pytest.raises(ValueError, match=r"decoder: cannot import 'nowhere\.Decoder'"):
        BetaELBO(decoder={"class_path": "nowhere.Decoder"}, data_dim=2, latent_dim=1, hidden_dim=8)
    with pytest.raises(ValueError, match=r"encoder must be an nn\.Module"):
        BetaELBO(encoder=3, data_dim=2, latent_dim=1, hidden_dim=8)
