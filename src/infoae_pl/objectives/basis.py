"""The 20-dimensional basis of the paper's appendix B and the ten elementary transformations.

Every objective of the KL Information-Autoencoding family is a linear combination of expectations
of ten log-densities ("atoms") under the two joint distributions: ``E_p`` (x, z ~ p(z)p(x|z)) and
``E_q`` (x ~ data, z ~ q(z|x)).  The order follows the appendix,
``E = (E_p[p atoms], E_p[q atoms], E_q[p atoms], E_q[q atoms])``.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction

from infoae_pl.objectives._linalg import Vector

#: The ten log-densities, p's five then q's five.
ATOMS: tuple[str, ...] = tuple(f"log {d}({v})" for d in ("p", "q") for v in ("x,z", "x|z", "z|x", "x", "z"))
#: The two expectations: E_p over p(x,z) = p(z)p(x|z), E_q over q(x,z) = q(x)q(z|x).
EXPECTATIONS: tuple[str, ...] = ("p", "q")
#: The 20 basis vectors, named like ``E_q[log p(x|z)]``.
BASIS: tuple[str, ...] = tuple(f"E_{e}[{a}]" for e in EXPECTATIONS for a in ATOMS)
DIM = len(BASIS)
_INDEX = {name: i for i, name in enumerate(BASIS)}


def atom_vector(expectation: str, atoms: Mapping[str, int | Fraction]) -> Vector:
    """The vector of ``E_expectation[sum(c * atom)]``, e.g. ``atom_vector("q", {"log q(z)": 1})``."""
    v = [Fraction(0)] * DIM
    for atom, c in atoms.items():
        v[_INDEX[f"E_{expectation}[{atom}]"]] += Fraction(c)
    return tuple(v)


def basis_vector(name: str) -> Vector:
    """The unit vector of one basis element, e.g. ``basis_vector("E_q[log p(x|z)]")``."""
    if name not in _INDEX:
        raise ValueError(f"unknown basis element {name!r}; valid: {', '.join(BASIS)}")
    v = [Fraction(0)] * DIM
    v[_INDEX[name]] = Fraction(1)
    return tuple(v)


def _transformations() -> dict[str, Vector]:
    out: dict[str, Vector] = {}
    for e in EXPECTATIONS:
        for d in ("p", "q"):
            for first, second in (("x", "z|x"), ("z", "x|z")):
                name = f"E_{e}[log {d}(x,z)] = E_{e}[log {d}({first}) + log {d}({second})]"
                out[name] = atom_vector(
                    e, {f"log {d}(x,z)": 1, f"log {d}({first})": -1, f"log {d}({second})": -1}
                )
    out["E_q[log q(x)] = 0"] = atom_vector("q", {"log q(x)": 1})
    out["E_p[log p(z)] = 0"] = atom_vector("p", {"log p(z)": 1})
    return out


#: Definition 8: ten vectors that are equivalent to 0 (objectives differing by a combination of
#: them differ by a constant).  Chain rule both ways for p and for q under E_p and E_q (8), plus
#: ``E_q[log q(x)]`` (the data entropy) and ``E_p[log p(z)]`` (the fixed prior's entropy).
TRANSFORMATIONS: dict[str, Vector] = _transformations()
