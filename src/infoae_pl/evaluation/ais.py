"""Annealed importance sampling (AIS) of log p(x), forward and reverse, for any model of the
probabilistic interface (``prior``/``encode``/``decode``, see docs/ARCHITECTURE.md).

The path is geometric, f_β(z) = q₀(z)^(1−β) · p(x, z)^β, from an initial distribution q₀ (the prior
p(z), or the model's q(z|x)) to the unnormalised posterior p(x, z), over a sigmoid schedule of β
(Neal 2001; Wu et al. 2017, "On the quantitative analysis of decoder-based generative models").
Each intermediate distribution is targeted by one Hamiltonian Monte Carlo transition (unit mass,
``leapfrog_steps`` leapfrog steps, a Metropolis correction); the step size of each x is shared by
its chains and adapted after every transition toward ``target_acceptance`` (the chains' mean
acceptance probability), so the same settings work for a broad prior and a narrow posterior.
Chains and examples run as one batch ``[chains, B, latent]`` and log p(x) is the log-mean-exp of
the chains' log-weights. For a fixed number of gradient evaluations, many intermediate distributions
with short trajectories did better than few with long ones (on the linear-Gaussian test model, 1,000
distributions with 1 leapfrog step had a per-x error sd of 0.065 nats, 200 with 5 steps 0.245), hence
the defaults: 1,000 distributions, 2 leapfrog steps, 8 chains.

Forward AIS is a stochastic lower bound of log p(x) (its weights are unbiased for p(x)); reverse AIS
started from an exact posterior sample z (the z that generated simulated x) is a stochastic upper
bound: together they are bidirectional Monte Carlo (Grosse et al. 2015), whose gap bounds the error
of both. Adapting the step size from the chains' own history makes the weights very slightly
biased (the transitions are no longer fixed in advance); the bias vanishes as the adaptation
settles, and the tests bound it against closed-form and quadrature truths.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution, Independent, Normal

from infoae_pl.evaluation.estimators import DEFAULT_CHUNK_SIZE, log_likelihood
from infoae_pl.validation import check_choice, check_finite_number, check_int_at_least

INITIAL_DISTRIBUTIONS = ("prior", "posterior")
#: Step sizes stay within these bounds, whatever the acceptance rate says.
MIN_STEP_SIZE, MAX_STEP_SIZE = 1e-4, 1.0


@dataclass(frozen=True)
class AISResult:
    """Per-chain log-weights ``[chains, B]`` (float64) and per-x diagnostics of one AIS run."""

    log_weights: Tensor
    acceptance: Tensor  # mean acceptance probability over transitions and chains, [B]
    step_size: Tensor  # the final adapted step size, [B]
    reverse: bool = False  # annealed from the posterior to q₀: the weights estimate 1 / p(x)

    def log_likelihood(self) -> Tensor:
        """log p(x) from the log-mean-exp of the weights over chains, float64 ``[B]``: forward, a
        stochastic lower bound; reverse, minus it, a stochastic upper bound."""
        log_mean = self.log_weights.logsumexp(dim=0) - math.log(self.log_weights.shape[0])
        return -log_mean if self.reverse else log_mean


def sigmoid_schedule(num_steps: int, sharpness: float = 4.0) -> Tensor:
    """β_0 = 0 < β_1 < … < β_T = 1 (T = ``num_steps``), denser at both ends (Grosse et al.'s sigmoid
    schedule), float64."""
    check_int_at_least("num_steps", num_steps, 1)
    if num_steps == 1:
        return torch.tensor([0.0, 1.0], dtype=torch.float64)
    s = torch.sigmoid(sharpness * torch.linspace(-1.0, 1.0, num_steps + 1, dtype=torch.float64))
    return (s - s[0]) / (s[-1] - s[0])


@dataclass
class _State:
    """The chains' z with log q₀(z), log p(x, z) and their gradients in z (cached between steps)."""

    z: Tensor
    log_initial: Tensor
    log_joint: Tensor
    grad_initial: Tensor
    grad_joint: Tensor

    def log_density(self, beta: Tensor | float) -> Tensor:
        """log f_β(z) = (1 − β) log q₀(z) + β log p(x, z) (unnormalised)."""
        return self.log_initial + beta * (self.log_joint - self.log_initial)

    def grad(self, beta: Tensor | float) -> Tensor:
        return self.grad_initial + beta * (self.grad_joint - self.grad_initial)

    def where(self, keep_new: Tensor, new: _State) -> _State:
        """Per chain and x, ``new`` where ``keep_new`` else this state."""
        per_z = keep_new.unsqueeze(-1)
        return _State(
            torch.where(per_z, new.z, self.z),
            torch.where(keep_new, new.log_initial, self.log_initial),
            torch.where(keep_new, new.log_joint, self.log_joint),
            torch.where(per_z, new.grad_initial, self.grad_initial),
            torch.where(per_z, new.grad_joint, self.grad_joint),
        )


def _log_density_and_grad(distribution: Distribution, z: Tensor) -> tuple[Tensor, Tensor]:
    """log q₀(z) and its gradient in z: in closed form for a diagonal Gaussian, else by autograd."""
    base = distribution.base_dist if isinstance(distribution, Independent) else None
    if isinstance(base, Normal) and distribution.reinterpreted_batch_ndims == 1:
        return distribution.log_prob(z), (base.loc - z) / base.scale.square()
    z = z.detach().requires_grad_(True)
    log_density = distribution.log_prob(z)
    (grad,) = torch.autograd.grad(log_density.sum(), z)
    return log_density.detach(), grad


class _Target:
    """log q₀(z) and log p(x, z) = log p(z) + log p(x|z) with their gradients in z, for one batch of x."""

    def __init__(self, model: Any, x: Tensor, initial: Distribution) -> None:
        self.model, self.x, self.initial, self.prior = model, x, initial, model.prior()

    def __call__(self, z: Tensor) -> _State:
        z = z.detach().requires_grad_(True)
        log_joint = self.prior.log_prob(z) + log_likelihood(self.model.decode(z), self.x)
        (grad_joint,) = torch.autograd.grad(log_joint.sum(), z)  # only z's gradient: the weights get none
        z = z.detach()
        log_initial, grad_initial = _log_density_and_grad(self.initial, z)
        return _State(z, log_initial, log_joint.detach(), grad_initial, grad_joint)


def _hmc(target: _Target, state: _State, beta: float, step_size: Tensor, leapfrog_steps: int) -> tuple[_State, Tensor]:
    """One HMC transition leaving f_β invariant; returns the new state and the acceptance probabilities."""
    momentum = torch.randn_like(state.z)
    start_energy = -state.log_density(beta) + 0.5 * momentum.square().sum(-1)
    proposal = state
    momentum = momentum + 0.5 * step_size * proposal.grad(beta)
    for step in range(leapfrog_steps):
        proposal = target(proposal.z + step_size * momentum)
        momentum = momentum + (0.5 if step == leapfrog_steps - 1 else 1.0) * step_size * proposal.grad(beta)
    end_energy = -proposal.log_density(beta) + 0.5 * momentum.square().sum(-1)
    log_ratio = torch.nan_to_num((start_energy - end_energy).double(), nan=-math.inf).clamp(max=0.0)
    acceptance = log_ratio.exp()
    accepted = torch.rand_like(acceptance) < acceptance
    return state.where(accepted, proposal), acceptance


@dataclass(frozen=True)
class AISSettings:
    """Every AIS setting and its default, in one place: :func:`annealed_importance_sampling`, ``AISNLL`` and
    the evaluation callback's ``ais_*`` options all take their defaults and their checks from here."""

    num_steps: int = 1000
    num_chains: int = 8
    leapfrog_steps: int = 2
    initial: str = "prior"
    target_acceptance: float = 0.65
    step_size: float = 0.05
    adaptation_rate: float = 0.5
    chunk_size: int = DEFAULT_CHUNK_SIZE

    def checked(self, prefix: str = "") -> AISSettings:
        """These settings, after refusing any that cannot run, naming the option (``prefix`` + its name,
        e.g. the callback's ``ais_num_steps``) and what it allows."""
        check_choice(f"{prefix}initial", self.initial, INITIAL_DISTRIBUTIONS)
        for name in ("num_steps", "num_chains", "leapfrog_steps", "chunk_size"):
            check_int_at_least(f"{prefix}{name}", getattr(self, name), 1)
        target = self.target_acceptance
        if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0.0 < target < 1.0:
            raise ValueError(f"{prefix}target_acceptance must be a number in (0, 1), got {target!r}")
        check_finite_number(f"{prefix}step_size", self.step_size, minimum=MIN_STEP_SIZE)
        if self.step_size > MAX_STEP_SIZE:
            raise ValueError(f"{prefix}step_size must be <= {MAX_STEP_SIZE}, got {self.step_size!r}")
        check_finite_number(f"{prefix}adaptation_rate", self.adaptation_rate, minimum=0.0)
        return self

    def as_kwargs(self) -> dict[str, Any]:
        """The settings as keyword arguments of :func:`annealed_importance_sampling`."""
        return asdict(self)


#: The defaults, for signatures that spell the settings out (the callback's ``ais_*`` options).
AIS_DEFAULTS = AISSettings()


def _ais_batch(
    model: Any,
    x: Tensor,
    initial: Distribution,
    z: Tensor,
    betas: Tensor,
    leapfrog_steps: int,
    step_size: float,
    target_acceptance: float,
    adaptation_rate: float,
) -> AISResult:
    """AIS along ``betas`` (increasing: forward; decreasing: reverse) from chains ``z`` ``[C, B, latent]``."""
    target = _Target(model, x, initial)
    state = target(z)
    log_weights = torch.zeros(z.shape[:2], dtype=torch.float64, device=x.device)
    steps = torch.full((1, z.shape[1], 1), step_size, dtype=z.dtype, device=z.device)
    acceptance_sum = torch.zeros(z.shape[1], dtype=torch.float64, device=x.device)
    transitions = len(betas) - 2
    for t in range(1, len(betas)):
        log_weights += (betas[t] - betas[t - 1]) * (state.log_joint - state.log_initial).double()
        if t == len(betas) - 1:
            break  # the last distribution needs no transition: the weights are complete
        beta = float(betas[t])
        state, acceptance = _hmc(target, state, beta, steps, leapfrog_steps)
        per_x = acceptance.mean(dim=0)
        acceptance_sum += per_x
        factor = torch.exp(adaptation_rate * (per_x - target_acceptance)).to(steps.dtype)
        steps = (steps * factor.view(1, -1, 1)).clamp(MIN_STEP_SIZE, MAX_STEP_SIZE)
    acceptance = acceptance_sum / transitions if transitions else torch.full_like(acceptance_sum, math.nan)
    return AISResult(log_weights, acceptance, steps.view(-1).double())


def annealed_importance_sampling(model: Any, x: Tensor, z: Tensor | None = None, **settings: Any) -> AISResult:
    """Forward AIS (``z`` None: the chains start from q₀) or reverse AIS (every chain starts from the
    exact posterior sample ``z`` ``[B, latent]``) of log p(x) for a batch ``x``.

    ``settings`` are fields of :class:`AISSettings`: ``num_steps`` intermediate distributions (T, one HMC
    transition each, T − 1 in all), ``num_chains`` chains per x, ``initial`` q₀ ("prior" or "posterior" =
    q(z|x)); x is processed in chunks of about ``chunk_size`` (chain, x) pairs. The cost is about
    ``num_chains · (T − 1) · leapfrog_steps`` gradient evaluations of log p(x, z) per x.
    """
    s = AISSettings(**settings).checked()
    num_chains, initial = s.num_chains, s.initial
    if z is not None and z.shape[0] != x.shape[0]:
        raise ValueError(f"z must have one latent per x: got {z.shape[0]} for {x.shape[0]} x")
    betas = sigmoid_schedule(s.num_steps)
    if z is not None:
        betas = betas.flip(0)
    per_chunk = max(1, s.chunk_size // num_chains)
    results = []
    # Lightning evaluates under inference mode, where no gradient can be taken: leave it for this
    # block, and clone x so that autograd may save it.
    with torch.inference_mode(False), torch.enable_grad():
        for start in range(0, x.shape[0], per_chunk):
            xs = x[start : start + per_chunk].clone()
            with torch.no_grad():  # q₀'s parameters carry no graph: gradients in z stop at z
                q0 = model.prior() if initial == "prior" else model.encode(xs)
                if z is None:
                    shape = [num_chains] if q0.batch_shape else [num_chains, xs.shape[0]]
                    chains = q0.sample(torch.Size(shape))
                else:
                    chains = z[start : start + per_chunk].clone().expand(num_chains, -1, -1).contiguous()
            results.append(_ais_batch(model, xs, q0, chains, betas, s.leapfrog_steps, s.step_size,
                                      s.target_acceptance, s.adaptation_rate))
    return AISResult(
        torch.cat([r.log_weights for r in results], dim=1),
        torch.cat([r.acceptance for r in results]),
        torch.cat([r.step_size for r in results]),
        reverse=z is not None,
    )


def ais_log_likelihood(model: Any, x: Tensor, **settings: Any) -> Tensor:
    """Forward AIS estimate of log p(x) per example (float64 ``[B]``): a stochastic lower bound.
    ``settings`` are those of :func:`annealed_importance_sampling`."""
    return annealed_importance_sampling(model, x, None, **settings).log_likelihood()


def reverse_ais_log_likelihood(model: Any, x: Tensor, z: Tensor, **settings: Any) -> Tensor:
    """Reverse AIS from exact posterior samples ``z`` (the latents that generated ``x``): a stochastic
    upper bound of log p(x) per example (float64 ``[B]``), the other half of bidirectional Monte Carlo."""
    return annealed_importance_sampling(model, x, z, **settings).log_likelihood()
