"""The material interface shared by the macro FE solver, RVE cell problems and FE².

Conventions (all arrays vectorised over ``nq`` quadrature points):

* **Small strain** uses Mandel notation, so tangents are symmetric matrices and double
  contractions are dot products.  2D (plane strain) ``m = 3``: ``[11, 22, √2·12]``;
  3D ``m = 6``: ``[11, 22, 33, √2·23, √2·13, √2·12]``.
  ``stress, tangent, new_state = material.update(strain, state)`` with ``strain`` (nq, m),
  ``stress`` (nq, m), ``tangent`` (nq, m, m) = dσ/dε (the consistent/algorithmic tangent).
* **Finite strain** (``material.kind == "finite"``): ``P, A, new_state = material.update(F, state)``
  with ``F`` (nq, d, d), first Piola–Kirchhoff ``P`` (nq, d, d) and ``A = ∂P/∂F`` (nq, d, d, d, d).
* ``state`` is a dict of arrays with leading dimension ``nq`` (``material.initial_state(nq)``);
  ``update`` is pure: it never changes ``state`` in place.  The caller commits ``new_state``
  only when the (macro) step has converged — FE² relies on this.
* ``material.energy(strain, state)`` (optional) returns the stored energy density per point, and
  ``material.dissipation_increment(strain, state, new_state)`` (optional, history laws) the
  dissipated energy density of the increment (≥ 0), for the energy audits.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import InputError

SQ2 = np.sqrt(2.0)

# Mandel index pairs
MANDEL_PAIRS = {2: [(0, 0), (1, 1), (0, 1)], 3: [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]}


def mandel_size(dim: int) -> int:
    return {2: 3, 3: 6}[dim]


def tensor_to_mandel(t: np.ndarray) -> np.ndarray:
    """Symmetric (…, d, d) tensors → Mandel vectors (…, m)."""
    d = t.shape[-1]
    out = [t[..., i, j] * (1.0 if i == j else SQ2) for i, j in MANDEL_PAIRS[d]]
    return np.stack(out, axis=-1)


def mandel_to_tensor(v: np.ndarray) -> np.ndarray:
    """Mandel vectors (…, m) → symmetric tensors (…, d, d)."""
    m = v.shape[-1]
    d = {3: 2, 6: 3}[m]
    t = np.zeros(v.shape[:-1] + (d, d), dtype=v.dtype)
    for k, (i, j) in enumerate(MANDEL_PAIRS[d]):
        if i == j:
            t[..., i, i] = v[..., k]
        else:
            t[..., i, j] = t[..., j, i] = v[..., k] / SQ2
    return t


def lame_from_young_poisson(E: float, nu: float) -> tuple[float, float]:
    if not (E > 0) or not (-1.0 < nu < 0.5):
        raise InputError(f"isotropic elasticity needs E > 0 and -1 < nu < 0.5 (got E={E}, nu={nu})")
    lam = E * nu / ((1 + nu) * (1 - 2 * nu))
    mu = E / (2 * (1 + nu))
    return lam, mu


def isotropic_stiffness(dim: int, E: float | None = None, nu: float | None = None, *,
                        lam: float | None = None, mu: float | None = None) -> np.ndarray:
    """Isotropic Mandel stiffness (m, m); 2D is plane strain."""
    if lam is None or mu is None:
        lam, mu = lame_from_young_poisson(E, nu)
    m = mandel_size(dim)
    C = np.zeros((m, m))
    C[:dim, :dim] = lam
    C += 2 * mu * np.eye(m)
    return C


def check_stiffness(C: np.ndarray, what: str = "stiffness") -> np.ndarray:
    """Symmetric positive definite check with a clear error."""
    C = np.asarray(C, dtype=float)
    if C.ndim != 2 or C.shape[0] != C.shape[1] or C.shape[0] not in (3, 6):
        raise InputError(f"{what}: expected a 3x3 (2D) or 6x6 (3D) Mandel matrix, got shape {C.shape}")
    if not np.allclose(C, C.T, rtol=1e-10, atol=1e-12 * np.abs(C).max()):
        raise InputError(f"{what}: matrix is not symmetric")
    w = np.linalg.eigvalsh(C)
    if w.min() <= 0:
        raise InputError(f"{what}: not positive definite (smallest eigenvalue {w.min():.3g})")
    return C


@runtime_checkable
class Material(Protocol):
    kind: str     # "small" or "finite"
    dim: int

    def initial_state(self, nq: int) -> dict: ...

    def update(self, strain: np.ndarray, state: dict) -> tuple[np.ndarray, np.ndarray, dict]: ...


class LinearElastic:
    """Small-strain linear elasticity with a Mandel stiffness: ``C`` (m, m) shared, or (nq, m, m)
    per quadrature point (anisotropic, rotated grains, ...)."""

    kind = "small"

    def __init__(self, C: np.ndarray):
        C = np.asarray(C, dtype=float)
        for Ck in (C.reshape(-1, C.shape[-2], C.shape[-1]) if C.ndim == 3 else [C]):
            check_stiffness(Ck)
        self.C = C
        self.dim = {3: 2, 6: 3}[C.shape[-1]]

    @classmethod
    def isotropic(cls, dim: int, E: float, nu: float) -> "LinearElastic":
        return cls(isotropic_stiffness(dim, E, nu))

    def initial_state(self, nq: int) -> dict:
        return {}

    def update(self, strain, state):
        strain = np.asarray(strain, dtype=float)
        C = np.broadcast_to(self.C, strain.shape[:1] + self.C.shape[-2:])
        stress = np.einsum("qij,qj->qi", C, strain)
        return stress, np.array(C), state

    def energy(self, strain, state=None):
        C = np.broadcast_to(self.C, strain.shape[:1] + self.C.shape[-2:])
        return 0.5 * np.einsum("qi,qij,qj->q", strain, C, strain)
