"""The study schema: every bad study fails before any trial, naming the key and the accepted values."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from infoae_pl.tuning.spec import StudySpecError, load_study, set_dotted
from infoae_pl.tuning.trial import check_run_config

SWEEPS = Path(__file__).resolve().parents[2] / "sweeps"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sampler_typo": "tpe"}, r"study: unknown key\(s\) 'sampler_typo'; allowed: study_name, base_config"),
        ({"study_name": ""}, "study_name must be a non-empty string"),
        ({"base_config": "missing.yaml"}, "base_config 'missing.yaml' not found"),
        ({"search_space": {}}, "search_space must map dotted config keys"),
        ({"search_space": {"model.init_args.beta": {"type": "uniform", "low": 0, "high": 1}}},
         r"search_space.model.init_args.beta.type='uniform' is not supported; choose one of: float, int, categorical, grid"),
        ({"search_space": {"model.init_args.beta": {"type": "float", "low": 2.0, "high": 1.0}}},
         r"search_space.model.init_args.beta: low \(2.0\) must be below high \(1.0\)"),
        ({"search_space": {"model.init_args.beta": {"type": "float", "low": 0.0, "high": 1.0, "log": True}}},
         "a log scale needs low > 0"),
        ({"search_space": {"model.init_args.beta": {"type": "float", "low": 0.1, "high": 1.0, "lg": True}}},
         r"search_space.model.init_args.beta: unknown key\(s\) 'lg'; allowed: type, low, high, log, step"),
        ({"search_space": {"model.init_args.beta": {"type": "int", "low": 0.5, "high": 3}}},
         "low must be a finite integer"),
        ({"search_space": {"model.init_args.beta": {"type": "categorical", "choices": []}}},
         "choices must be a non-empty list"),
        ({"search_space": {"model.init_args.beta": {"type": "grid", "values": [1.0, 2.0]}}},
         "entries of type grid need sampler: grid, not 'random'"),
        ({"objectives": [{"metric": "val/nll", "direction": "min"}]},
         r"objectives\[0\].direction='min' is not supported; choose one of: minimize, maximize"),
        ({"objectives": [{"metric": "nll", "direction": "minimize"}]}, "must be a logged metric such as val/nll"),
        ({"objectives": [{"metric": "val/nll", "direction": "minimize"},
                         {"metric": "val/mi_ba", "direction": "maximize"}], "pruner": "median"},
         "pruner='median' needs a single objective"),
        ({"objectives": [{"metric": "val/nll", "direction": "minimize"},
                         {"metric": "val/mi_ba", "direction": "maximize"}], "sampler": "cmaes"},
         "sampler='cmaes' supports one objective only"),
        ({"sampler": "bayes"}, r"sampler.name='bayes' is not supported; choose one of: tpe, gp, nsga2, cmaes, random, grid"),
        ({"sampler": {"name": "tpe", "n_startup": 3}}, r"sampler tpe: unknown option\(s\) n_startup; accepted: .*n_startup_trials"),
        ({"pruner": "asha"}, "pruner.name='asha' is not supported; choose one of: median, hyperband, none"),
        ({"n_trials": 0}, "n_trials must be an integer >= 1"),
        ({"heartbeat": {"interval": 10, "grace_period": 5}}, r"heartbeat.grace_period \(5\) must exceed heartbeat.interval"),
        ({"heartbeat": {"max_retry": -1}}, "heartbeat.max_retry must be an integer >= 0, got -1"),
        ({"config": {"trainer.devices": 2}}, "trainer.devices=2: a sweep trial runs on one device; use --workers"),
    ],
)
def test_bad_studies_are_refused_with_the_offending_key(write_study, change, message):
    path = write_study(**change)
    with pytest.raises(StudySpecError, match=message):
        load_study(path)


def test_unknown_storage_scheme_names_the_accepted_ones(write_study):
    from infoae_pl.tuning.storage import make_storage

    spec = load_study(write_study(storage="redis://user:secret@localhost/0"))
    with pytest.raises(StudySpecError, match="scheme 'redis' is not supported") as error:
        make_storage(spec)
    assert "secret" not in str(error.value)


def test_a_search_key_the_run_config_does_not_accept_fails_before_any_trial(write_study):
    spec = load_study(write_study(search_space={"model.init_args.bta": {"type": "float", "low": 0.1, "high": 1}}))
    with pytest.raises(StudySpecError, match=r"(?s)does not parse: .*Option .bta. is not accepted"):
        check_run_config(spec)


def test_trial_config_sets_each_dotted_key_and_keeps_the_template(write_study):
    spec = load_study(write_study(config={"trainer.max_steps": 7}))
    config = spec.trial_config({"model.init_args.beta": 0.3})
    assert config["model"]["init_args"]["beta"] == 0.3
    assert config["trainer"]["max_steps"] == 7
    assert config["trainer"]["enable_progress_bar"] is False  # trials are quiet: one line each from the sweep
    assert spec.run_config["model"]["init_args"]["beta"] == 1.0
    with pytest.raises(StudySpecError, match=r"'trainer\.max_steps' is 7, not a mapping"):
        set_dotted(config, "trainer.max_steps.x", 1)


def test_grid_study_expands_to_every_point_and_defaults_its_budget(write_study):
    spec = load_study(write_study(
        search_space={"model.init_args.beta": {"type": "grid", "values": [0.5, 1.0, 2.0]},
                      "model.init_args.lr": {"type": "grid", "values": [0.001, 0.003]}},
        sampler="grid", n_trials=None,
    ))
    assert spec.n_trials == 6 and len(spec.grid) == 6
    assert {tuple(p.values()) for p in spec.grid} == {(b, lr) for b in (0.5, 1.0, 2.0) for lr in (0.001, 0.003)}
    assert isinstance(spec.make_sampler(), optuna.samplers.GridSampler)


def test_distributions_follow_the_yaml(write_study):
    spec = load_study(write_study(search_space={
        "model.init_args.beta": {"type": "float", "low": 0.05, "high": 20.0, "log": True},
        "model.init_args.hidden_dim": {"type": "int", "low": 8, "high": 32, "step": 8},
        "model.init_args.mi_bound": {"type": "categorical", "choices": [None, 1.0]},
    }))
    beta, width, bound = spec.search_space.values()
    assert beta == optuna.distributions.FloatDistribution(0.05, 20.0, log=True)
    assert width == optuna.distributions.IntDistribution(8, 32, step=8)
    assert bound.choices == (None, 1.0)


@pytest.mark.parametrize("name", ["beta_elbo_beta", "infovae_lambda_beta", "pareto_nll_mi"])
def test_shipped_studies_parse_and_their_trials_build(name):
    spec = load_study(SWEEPS / f"{name}.yaml")
    check_run_config(spec)
    assert spec.study_name == name
    if name == "infovae_lambda_beta":
        assert spec.n_trials == 5 * 3 * 3 and spec.sampler == "grid"  # β × λ × seeds
        last = spec.trial_config(spec.grid[-1])
        model = last["model"]["init_args"]
        assert model["preset_params"]["beta"] == 5.0 and model["lagrangian"] == {"MMD(q(z)||p(z))": 5000.0}
        assert last["seed_everything"] == 2
    if name == "pareto_nll_mi":
        assert spec.directions == ["minimize", "maximize"] and spec.pruner == "none"


@pytest.mark.parametrize(
    ("sampler", "cls"),
    [("tpe", optuna.samplers.TPESampler), ("gp", optuna.samplers.GPSampler), ("nsga2", optuna.samplers.NSGAIISampler),
     ("cmaes", optuna.samplers.CmaEsSampler), ("random", optuna.samplers.RandomSampler)],
)
def test_every_sampler_builds_and_samples_the_space(write_study, sampler, cls):
    spec = load_study(write_study(sampler={"name": sampler, "seed": 3}, search_space={
        "model.init_args.beta": {"type": "float", "low": 0.05, "high": 20.0, "log": True},
        "model.init_args.hidden_dim": {"type": "int", "low": 8, "high": 32},
    }))
    study = optuna.create_study(sampler=spec.make_sampler(), direction="minimize")
    assert isinstance(study.sampler, cls)
    for _ in range(4):
        trial = study.ask(spec.search_space)
        assert 0.05 <= trial.params["model.init_args.beta"] <= 20.0
        study.tell(trial, trial.params["model.init_args.beta"])


def test_worker_keys_give_each_worker_its_own_seed(write_study):
    spec = load_study(write_study(sampler={"name": "random", "seed": 0}))

    def draws(sampler):
        study = optuna.create_study(sampler=sampler)
        return [study.ask(spec.search_space).params["model.init_args.beta"] for _ in range(3)]

    assert draws(spec.make_sampler()) == draws(spec.make_sampler())  # one worker: the seed as written
    assert draws(spec.make_sampler("host/1")) == draws(spec.make_sampler("host/1"))
    assert draws(spec.make_sampler("host/1")) != draws(spec.make_sampler("host/2"))


@pytest.mark.parametrize(("pruner", "cls"), [("median", optuna.pruners.MedianPruner),
                                             ("hyperband", optuna.pruners.HyperbandPruner),
                                             ("none", optuna.pruners.NopPruner)])
def test_pruners_build(write_study, pruner, cls):
    assert isinstance(load_study(write_study(pruner=pruner)).make_pruner(), cls)


def test_workers_take_one_gpu_each_or_split_the_cpu_threads(monkeypatch):
    from infoae_pl.tuning.sweep import worker_placement

    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with pytest.warns(UserWarning, match="3 workers share 2 GPUs"):
        assert [p["cuda_device"] for p in worker_placement(3)] == ["0", "1", "0"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")  # an allocation's GPUs: workers stay inside it
    assert [p["cuda_device"] for p in worker_placement(2)] == ["2", "3"]
    monkeypatch.setattr("torch.cuda.device_count", lambda: 0)
    monkeypatch.setattr("os.sched_getaffinity", lambda _: set(range(8)))
    assert worker_placement(2) == [{"cuda_device": None, "threads": 4}] * 2
    assert worker_placement(16) == [{"cuda_device": None, "threads": 1}] * 16


def test_the_slurm_script_is_valid_bash():
    import subprocess

    subprocess.run(["bash", "-n", str(SWEEPS / "slurm_sweep.sh")], check=True)
    text = (SWEEPS / "slurm_sweep.sh").read_text()
    assert "--create-only" in text and "srun" in text and "infoae sweep report" in text


def test_urls_are_redacted_and_plain_postgresql_urls_get_an_installed_driver():
    from infoae_pl.tuning.storage import _driver_url, redact

    assert redact("postgresql+psycopg2://user:s3cret@db.example:5432/studies") == (
        "postgresql+psycopg2://user:***@db.example:5432/studies")
    assert redact("runs/sweeps/x/study.journal") == "runs/sweeps/x/study.journal"
    import importlib.util

    expected = "postgresql://" if importlib.util.find_spec("psycopg") else "postgresql+psycopg2://"
    assert _driver_url("postgresql://u:p@h/d") == expected + "u:p@h/d"
    assert _driver_url("postgresql+psycopg2://u:p@h/d") == "postgresql+psycopg2://u:p@h/d"
