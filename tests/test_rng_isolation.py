"""Validation inside fit leaves the training's random streams alone: the validation cadence does not
change the model a run trains."""

from __future__ import annotations

import random

import numpy as np
import torch

from infoae_pl.cli import main
from infoae_pl.rng_isolation import rng_states, set_rng_states


def _final_weights(version: int) -> dict[str, torch.Tensor]:
    checkpoint = torch.load(f"runs/infoae/version_{version}/checkpoints/last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 12
    return checkpoint["state_dict"]


def test_rng_states_restore_every_generator():
    states = rng_states()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_states(states)
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1]) and expected[2] == again[2]


def test_how_often_a_run_validates_does_not_change_what_it_trains(tiny_mog_fit):
    """beta-ELBO samples z in every training and validation step, so any draw validation took from the
    training's stream would change the weights after it."""
    steps = [*tiny_mog_fit, "--trainer.max_steps", "12"]
    main([*steps, "--trainer.val_check_interval", "12"])  # validated at its end only
    main([*steps, "--trainer.val_check_interval", "3"])
    main([*steps, "--trainer.val_check_interval", "3", "--seed_everything", "1"])
    once, often, other_seed = _final_weights(0), _final_weights(1), _final_weights(2)
    assert once.keys() == often.keys()
    assert all(torch.equal(once[name], often[name]) for name in once)
    assert not all(torch.equal(once[name], other_seed[name]) for name in once)  # the weights do depend on the RNG
