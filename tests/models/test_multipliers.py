"""The learned-multipliers component on its own: projected ascent, the running mean, its state."""

import math

import pytest
import torch

from infoae_pl.models.multipliers import LearnedMultipliers


def test_projected_ascent_every_n_steps_and_the_running_mean():
    multipliers = LearnedMultipliers({"a": 1.0, "b": 0.0}, {"a": 0.5, "b": 2.0}, lr=0.5, maximum=3.0, update_every=2)
    assert math.isnan(multipliers.average[0])
    terms = {"constraint/a": torch.tensor(3.0), "constraint/b": torch.tensor(-10.0)}
    multipliers.update(terms, step=0)  # (0 + 1) % 2: no ascent step yet
    assert multipliers.values() == [0.5, 2.0]
    assert multipliers.average.tolist() == [3.0, -10.0]
    multipliers.update(terms, step=1)
    assert multipliers.values() == [pytest.approx(1.5), 0.0]  # a: 0.5 + 0.5·2; b: 2 − 0.5·10, projected to 0
    multipliers.update({"constraint/a": torch.tensor(100.0), "constraint/b": torch.tensor(0.0)}, step=3)
    assert multipliers.values()[0] == 3.0  # capped at the maximum
    rows = {row["constraint"]: row for row in multipliers.table()}
    assert rows["a"]["status"] == "violated" and rows["b"]["status"] == "slack"
    assert "constraint" in multipliers.format_table()


def test_the_optimiser_state_travels_in_the_state_dict():
    multipliers = LearnedMultipliers({"a": 1.0}, {"a": 1.0}, optimizer="adam", lr=0.1)
    assert multipliers.state_dict()["_extra_state"] == {}
    for step in range(3):
        multipliers.update({"constraint/a": torch.tensor(2.0)}, step)
    restored = LearnedMultipliers({"a": 1.0}, {"a": 1.0}, optimizer="adam", lr=0.1)
    restored.load_state_dict(multipliers.state_dict())
    assert restored.values() == multipliers.values()
    assert restored.optimizer().state_dict()["state"][0]["step"] == 3
    restored.update({"constraint/a": torch.tensor(2.0)}, 3)
    multipliers.update({"constraint/a": torch.tensor(2.0)}, 3)
    assert restored.values() == multipliers.values()


def test_bad_settings_name_the_option():
    with pytest.raises(ValueError, match=r"multiplier_optimizer='lbfgs'.*sgd, adam"):
        LearnedMultipliers({"a": 1.0}, {"a": 1.0}, optimizer="lbfgs")
    with pytest.raises(ValueError, match="multiplier_update_every must be an integer >= 1"):
        LearnedMultipliers({"a": 1.0}, {"a": 1.0}, update_every=0)
