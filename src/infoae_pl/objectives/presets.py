"""Named members of the family (section 2.5, Theorems 1-3, section 3.4) and their recognition.

Every preset is affine in its parameters, which :func:`identify_preset` and the subspace table
rely on.  Where section 2.5 uses a Jensen-Shannon divergence (adversarial training) the preset
uses the ``JS(...)`` term, and the MMD-InfoVAE uses ``MMD(p(z)||q(z))``: non-KL divergences are
opaque terms estimated likelihood-free (see :mod:`.terms`).  Theorems 1-3 state their families
with KL divergences only, and so do ``vmi``, ``infogan``, ``infovae`` and ``infobigan``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from infoae_pl.objectives._linalg import combine, solve
from infoae_pl.objectives.lagrangian import Lagrangian
from infoae_pl.objectives.terms import EXTENDED_DIM, CoefficientLike, as_coefficient, format_number
from infoae_pl.objectives.toolboxes import transformation_span

_COND_X = "KL(q(x|z)||p(x|z))"
_COND_Z = "KL(p(z|x)||q(z|x))"


def elbo() -> Lagrangian:
    """ELBO, eq. (12): KL(q(x|z)||p(x|z)) + KL(q(z)||p(z)) (C3); likelihood-based."""
    return Lagrangian({_COND_X: 1, "KL(q(z)||p(z))": 1})


def beta_elbo(beta: CoefficientLike = 1) -> Lagrangian:
    """beta-ELBO, eq. (15): (beta-1) I_q + KL(q(x|z)||p(x|z)) + beta KL(q(z)||p(z)); likelihood-based,
    with tractable form eq. (14) -E_q[log p(x|z)] + beta E_q[log q(z|x)] - beta E_q[log p(z)]."""
    b = as_coefficient(beta)
    return Lagrangian({"I_q": b - 1, _COND_X: 1, "KL(q(z)||p(z))": b})


def vmi() -> Lagrangian:
    """Variational mutual information maximisation, Theorem 1: -I_p + KL(p(z|x)||q(z|x)).

    Its tractable form is -E_p[log q(z|x)]; the paper prints +E_p[log q(z|x)] (Theorem 1 and
    eq. 19), a sign slip: I_p - KL(p(z|x)||q(z|x)) = E_p[log q(z|x) - log p(z)].
    """
    return Lagrangian({"I_p": -1, _COND_Z: 1})


def infogan(lambda1: CoefficientLike = 1, lambda2: CoefficientLike = 0) -> Lagrangian:
    """KL InfoGAN, Theorem 2: -I_p + KL(p(z|x)||q(z|x)) + lambda1 KL(p(x)||q(x)) + lambda2 KL(q(x)||p(x)).

    Tractable form -E_p[log q(z|x)] + lambda1 KL(p(x)||q(x)) + lambda2 KL(q(x)||p(x)); unary
    likelihood-free unless both lambdas vanish (then it is VMI).
    """
    return Lagrangian(
        {
            "I_p": -1,
            _COND_Z: 1,
            "KL(p(x)||q(x))": as_coefficient(lambda1),
            "KL(q(x)||p(x))": as_coefficient(lambda2),
        }
    )


def infovae(
    alpha: CoefficientLike = -1, lambda1: CoefficientLike = 1, lambda2: CoefficientLike = 0
) -> Lagrangian:
    """KL InfoVAE, Theorem 2: alpha I_q + KL(q(x|z)||p(x|z)) + lambda1 KL(q(z)||p(z)) + lambda2 KL(p(z)||q(z)).

    Tractable form -E_q[log p(x|z)] + (alpha+1) E_q[log q(z|x)] - (alpha+1) E_q[log p(z)]
    + (lambda1-alpha-1) KL(q(z)||p(z)) + lambda2 KL(p(z)||q(z)); unary likelihood-free unless
    lambda1 = alpha+1 and lambda2 = 0 (then it is the beta-ELBO with beta = alpha+1).  The
    defaults give section 2.5's InfoVAE, -I_q + KL(q(x|z)||p(x|z)) + KL(q(z)||p(z)).
    """
    a = as_coefficient(alpha)
    return Lagrangian(
        {
            "I_q": a,
            _COND_X: 1,
            "KL(q(z)||p(z))": as_coefficient(lambda1),
            "KL(p(z)||q(z))": as_coefficient(lambda2),
        }
    )


def mmd_infovae(alpha: CoefficientLike = -1, lam: CoefficientLike = 1) -> Lagrangian:
    """MMD-InfoVAE, section 3.4: alpha I_q + KL(q(x|z)||p(x|z)) + lam MMD(p(z)||q(z)); unary likelihood-free.

    Tractable form -E_q[log p(x|z)] + (alpha+1) (E_q[log q(z|x)] - E_q[log p(z)] - KL(q(z)||p(z)))
    + lam MMD(p(z)||q(z)): the KL InfoVAE with lambda1 = lambda2 = 0 plus the MMD term, so the
    default alpha = -1 gives -E_q[log p(x|z)] + lam MMD(p(z)||q(z)).
    """
    return Lagrangian({"I_q": as_coefficient(alpha), _COND_X: 1, "MMD(p(z)||q(z))": as_coefficient(lam)})


def infobigan(
    alpha: CoefficientLike = 0, lambda1: CoefficientLike = 1, lambda2: CoefficientLike = 0
) -> Lagrangian:
    """KL InfoBiGAN, Theorem 3: alpha I_p + KL(p(z|x)||q(z|x)) + lambda1 KL(p(x)||q(x)) + lambda2 KL(q(x)||p(x)).

    Tractable form (alpha+1) KL(p(x,z)||q(x,z)) + (lambda1-alpha-1) KL(p(x)||q(x))
    + lambda2 KL(q(x)||p(x)) + alpha E_p[log q(z|x)]; the paper prints -alpha E_p[log q(z|x)],
    the same sign slip as for VMI.  Binary likelihood-free unless alpha = -1 (then InfoGAN).
    """
    return Lagrangian(
        {
            "I_p": as_coefficient(alpha),
            _COND_Z: 1,
            "KL(p(x)||q(x))": as_coefficient(lambda1),
            "KL(q(x)||p(x))": as_coefficient(lambda2),
        }
    )


def ali_bigan() -> Lagrangian:
    """ALI/BiGAN, section 2.5: JS(q(x,z)||p(x,z)) (C1), minimised adversarially; binary likelihood-free."""
    return Lagrangian({"JS(q(x,z)||p(x,z))": 1})


def alice() -> Lagrangian:
    """ALICE, section 2.5: -I_q + KL(q(x|z)||p(x|z)) + JS(q(x,z)||p(x,z)); binary likelihood-free."""
    return Lagrangian({"I_q": -1, _COND_X: 1, "JS(q(x,z)||p(x,z))": 1})


def cyclegan() -> Lagrangian:
    """CycleGAN/DiscoGAN, section 2.5: -I_q - I_p + KL(q(x|z)||p(x|z)) + KL(p(z|x)||q(z|x))
    + JS(q(x)||p(x)) + JS(q(z)||p(z)); unary likelihood-free (two cycle reconstructions and two
    adversarial marginal matchings, no joint term)."""
    return Lagrangian(
        {"I_q": -1, "I_p": -1, _COND_X: 1, _COND_Z: 1, "JS(q(x)||p(x))": 1, "JS(q(z)||p(z))": 1}
    )


def aae() -> Lagrangian:
    """Adversarial autoencoder, section 2.5 (InfoVAE/AAE with an adversarial D):
    -I_q + KL(q(x|z)||p(x|z)) + JS(q(z)||p(z)); unary likelihood-free."""
    return Lagrangian({"I_q": -1, _COND_X: 1, "JS(q(z)||p(z))": 1})


#: Preset name -> constructor; the order is the order in which :func:`identify_preset` tries them
#: (more specific families first, so the ELBO is reported as ``elbo`` rather than ``beta_elbo``).
PRESETS: dict[str, Callable[..., Lagrangian]] = {
    "elbo": elbo,
    "beta_elbo": beta_elbo,
    "vmi": vmi,
    "infogan": infogan,
    "infovae": infovae,
    "mmd_infovae": mmd_infovae,
    "infobigan": infobigan,
    "ali_bigan": ali_bigan,
    "alice": alice,
    "cyclegan": cyclegan,
    "aae": aae,
}


def preset_parameters(name: str) -> dict[str, Fraction]:
    """A preset's parameter names with their default values; ValueError listing presets if unknown."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return {p.name: as_coefficient(p.default) for p in inspect.signature(PRESETS[name]).parameters.values()}


def preset(name: str, **params: CoefficientLike) -> Lagrangian:
    """Build a named preset, e.g. ``preset("beta_elbo", beta=0.5)``; unknown names or parameters raise ValueError."""
    valid = preset_parameters(name)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        allowed = ", ".join(valid) or "none"
        raise ValueError(f"preset {name!r} has no parameter {', '.join(unknown)}; its parameters: {allowed}")
    return PRESETS[name](**params)


@dataclass(frozen=True)
class PresetMatch:
    """A preset and the parameter values at which it equals a given Lagrangian up to elementary transformations."""

    name: str
    params: dict[str, Fraction]

    def __str__(self) -> str:
        args = ", ".join(f"{k}={format_number(v)}" for k, v in self.params.items())
        return f"{self.name}({args})"


def _match(name: str, lagrangian: Lagrangian) -> PresetMatch | None:
    span = transformation_span()
    defaults = preset_parameters(name)
    base = span.reduce(PRESETS[name]().extended_vector())
    directions = [
        [d - b for d, b in zip(span.reduce(preset(name, **{p: v + 1}).extended_vector()), base)]
        for p, v in defaults.items()
    ]
    target = span.reduce(lagrangian.extended_vector())
    offsets = solve(directions, [t - b for t, b in zip(target, base)])
    if offsets is None:
        return None
    params = {p: v + o for (p, v), o in zip(defaults.items(), offsets)}
    candidate = preset(name, **params).extended_vector()
    difference = combine(
        EXTENDED_DIM, [(Fraction(1), candidate), (Fraction(-1), lagrangian.extended_vector())]
    )
    return PresetMatch(name, params) if span.contains(difference) else None


def identify_preset(lagrangian: Lagrangian) -> PresetMatch | None:
    """The first preset (in :data:`PRESETS` order) equal to ``lagrangian`` up to elementary
    transformations, with its parameters; None when no preset matches.

    Equality is exact and without rescaling: 2 x ELBO is not the ELBO.
    """
    return next((m for m in (_match(n, lagrangian) for n in PRESETS) if m is not None), None)
