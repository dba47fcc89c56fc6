"""The objective algebra of the paper's appendix B: terms, Lagrangians, toolboxes, the compiler, presets.

Pure exact arithmetic (``fractions.Fraction``), no tensors::

    >>> from infoae_pl.objectives import compile, preset
    >>> compile(preset("beta_elbo", beta=0.5)).formula()
    '-E_q[log p(x|z)] + 0.5*E_q[log q(z|x)] - 0.5*E_q[log p(z)]'
"""

from infoae_pl.objectives.basis import ATOMS, BASIS, TRANSFORMATIONS, atom_vector, basis_vector
from infoae_pl.objectives.compiler import CompiledObjective, VerificationError, compile
from infoae_pl.objectives.lagrangian import CONSTRAINT_SETS, Lagrangian, Membership
from infoae_pl.objectives.presets import (
    PRESETS,
    PresetMatch,
    aae,
    ali_bigan,
    alice,
    beta_elbo,
    cyclegan,
    elbo,
    identify_preset,
    infobigan,
    infogan,
    infovae,
    mmd_infovae,
    preset,
    preset_parameters,
    vmi,
)
from infoae_pl.objectives.table import SubspaceRow, format_table, subspace_table
from infoae_pl.objectives.terms import (
    GENERIC_DIVERGENCES,
    LAGRANGIAN_TERMS,
    OPAQUE_TERMS,
    TERMS,
    Term,
    as_coefficient,
    format_formula,
    format_number,
    parse_term,
)
from infoae_pl.objectives.toolboxes import (
    BINARY_LIKELIHOOD_FREE,
    LIKELIHOOD_BASED,
    TOOLBOXES,
    TRACTABILITY_CLASSES,
    UNARY_LIKELIHOOD_FREE,
    Toolbox,
)

__all__ = [
    "ATOMS",
    "BASIS",
    "BINARY_LIKELIHOOD_FREE",
    "CONSTRAINT_SETS",
    "GENERIC_DIVERGENCES",
    "LAGRANGIAN_TERMS",
    "LIKELIHOOD_BASED",
    "OPAQUE_TERMS",
    "PRESETS",
    "TERMS",
    "TOOLBOXES",
    "TRACTABILITY_CLASSES",
    "TRANSFORMATIONS",
    "UNARY_LIKELIHOOD_FREE",
    "CompiledObjective",
    "Lagrangian",
    "Membership",
    "PresetMatch",
    "SubspaceRow",
    "Term",
    "Toolbox",
    "VerificationError",
    "aae",
    "ali_bigan",
    "alice",
    "as_coefficient",
    "atom_vector",
    "basis_vector",
    "beta_elbo",
    "compile",
    "cyclegan",
    "elbo",
    "format_formula",
    "format_number",
    "format_table",
    "identify_preset",
    "infobigan",
    "infogan",
    "infovae",
    "mmd_infovae",
    "parse_term",
    "preset",
    "preset_parameters",
    "subspace_table",
    "vmi",
]
