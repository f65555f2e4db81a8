"""The micro-model protocol the RVE pool farms out, and a one-point micro model.

A micro model (cf. the preCICE micro-manager's ``solve(macro_data)`` with ``get_state/set_state``)
describes *one kind* of RVE; the pool keeps one flat float64 state vector per macro quadrature
point, so states can be moved between groups, checkpointed and restored without knowing their
meaning.  All RVEs of a pool share one micro-model object per group (same microstructure, only
the state differs), which lets it set up matrices, correctors and factorizations once.

Required members::

    dim, m                  macro dimension and Mandel size
    state_size              length of the flat state vector
    initial_state() -> (state_size,)
    solve(E, state) -> (stress (m,), tangent (m, m), new_state, info)   collective on the group
    elastic_tangent() -> (m, m)      homogenized elastic tangent (used for the first predictor)

Optional: ``try_elastic(E, state)`` returns the exact result without a Newton solve when the
strain keeps every micro point elastic, else ``None`` (see :class:`hpcmsm.fe2.rve.VoxelRVE`);
``micro_fields(state)`` micro fields for output.  ``info`` holds ``converged`` (bool),
``iterations``, ``plastic`` (fraction of yielding micro points), ``psi`` (stored energy density),
``dissipation`` (increment, trapezoidal: ½(σₙ+σₙ₊₁):Δε_p − Δψ_hardening, see
:meth:`hpcmsm.materials.j2.J2Plasticity.dissipation_increment`),
``hill_mandel`` (relative residual), ``peeq`` (mean equivalent plastic strain).

``kinematics`` (attribute): ``"small"`` (the above; a model without the attribute is small-strain)
or ``"finite"``.  Finite-strain protocol (:class:`hpcmsm.fe2.rve.VoxelRVE` with ``kind ==
"finite"`` phases, e.g. :class:`hpcmsm.materials.hyperelastic.NeoHookean`)::

    m = d*d
    E (m,)        F̄ flattened row-major, index i*d + J (F̄ = I is the undeformed state)
    stress (m,)   P̄ = ⟨P⟩, first Piola–Kirchhoff, flattened the same way
    tangent (m,m) Ā[iJ, kL] = ∂P̄_iJ/∂F̄_kL, consistent, by condensation ⟨A⟩ − Gᵀ K⁻¹ G
    state         [F̄_n (m), fluctuation w (ndof), material states]; initial F̄_n = I
    elastic_tangent()   Ā at F̄ = I from the initial state
    try_elastic(...)    always None (no exact elastic reuse at finite strain)
    solve(F̄, state, guess=None) -> (P̄, Ā, new_state, info)   same info keys; hill_mandel is
                  |⟨P:F⟩ − P̄:F̄| / (|P̄||F̄|); det F ≤ 0 at a micro point that step halving cannot
                  cure → converged = False (P̄, energies NaN; the macro step is cut back)
    micro_fields(state)  also "F", "P" (ne, d, d) per voxel, "F_bar" (d, d); "strain"/"stress"
                  are F, P flattened (ne, m); micro position x = F̄X + w (w periodic by default)
"""
from __future__ import annotations

import numpy as np


def pack_state(state: dict, fields: dict[str, int], nq: int) -> np.ndarray:
    """Material state dict → one flat vector (fields in sorted order, point-major)."""
    parts = [np.asarray(state[k], dtype=float).reshape(nq, -1) for k in sorted(fields)]
    return np.concatenate(parts, axis=1).ravel() if parts else np.zeros(0)


def unpack_state(vec: np.ndarray, fields: dict[str, int], nq: int) -> dict:
    out, c = {}, 0
    width = sum(fields.values())
    a = vec.reshape(nq, width) if width else np.zeros((nq, 0))
    for k in sorted(fields):
        n = fields[k]
        out[k] = a[:, c:c + n].copy() if n > 1 else a[:, c].copy()
        c += n
    return out


def energy(mat, strain: np.ndarray, state: dict) -> np.ndarray:
    if hasattr(mat, "energy"):
        return mat.energy(strain, state)
    return np.zeros(len(strain))


def dissipation(mat, strain, old, new) -> np.ndarray:
    if hasattr(mat, "dissipation_increment"):
        return mat.dissipation_increment(strain, old, new)
    return np.zeros(len(strain))


def state_fields(material) -> dict[str, int]:
    """Width of each state array of a material (from ``initial_state(1)``)."""
    st = material.initial_state(1)
    return {k: int(np.prod(np.shape(v)[1:])) if np.ndim(v) > 1 else 1 for k, v in st.items()}


class PointMicro:
    """A "RVE" that is one material point: the homogenized response is the material's own.

    Used to verify the pool (FE² with a homogeneous one-point micro model must reproduce the
    direct macro solve with that material exactly) and as the cheapest cost model.

    Small-strain materials: Mandel vectors (m = 3 / 6).  Finite-strain materials
    (``material.kind == "finite"``, e.g. :class:`hpcmsm.materials.hyperelastic.NeoHookean`):
    ``kinematics = "finite"``, m = d², the macro "strain" is F̄ flattened row-major
    (index i*d + J), the stress P̄ likewise and the tangent Ā = ∂P̄/∂F̄ a (d², d²) matrix.
    A material that cannot be evaluated (det F ≤ 0, overflow) reports ``converged = False``
    (the pool then rejects the macro iterate on every rank and the step is cut back).
    """

    def __init__(self, material, comm=None):
        self.mat = material
        self.dim = material.dim
        self.kinematics = "finite" if getattr(material, "kind", "small") == "finite" else "small"
        d = self.dim
        self.m = d * d if self.kinematics == "finite" else (3 if d == 2 else 6)
        self.fields = state_fields(material)
        self.state_size = self.m + sum(self.fields.values())   # [E_n (or F_n), material state]

    def _strain0(self) -> np.ndarray:
        return np.eye(self.dim).ravel() if self.kinematics == "finite" else np.zeros(self.m)

    def _arg(self, e: np.ndarray) -> np.ndarray:
        """(1, m) flat macro strain → the material's argument (F (1, d, d) or Mandel (1, m))."""
        return e.reshape(-1, self.dim, self.dim) if self.kinematics == "finite" else e

    def initial_state(self) -> np.ndarray:
        return np.concatenate([self._strain0(), pack_state(self.mat.initial_state(1), self.fields, 1)])

    def elastic_tangent(self) -> np.ndarray:
        s, C, _ = self.mat.update(self._arg(self._strain0()[None]), self.mat.initial_state(1))
        return np.reshape(C[0], (self.m, self.m))

    def solve(self, E, state):
        m = self.m
        st = unpack_state(state[m:], self.fields, 1)
        e = np.asarray(E, float)[None]
        x = self._arg(e)
        try:
            with np.errstate(invalid="raise", divide="raise", over="raise"):
                s, C, new = self.mat.update(x, st)
                psi = float(energy(self.mat, x, new)[0])
                dis = float(dissipation(self.mat, x, st, new)[0])
        except (FloatingPointError, ArithmeticError):
            info = dict(converged=False, iterations=0, plastic=0.0, psi=0.0, dissipation=0.0,
                        hill_mandel=0.0, peeq=0.0)
            return np.zeros(m), np.zeros((m, m)), state.copy(), info
        peeq = float(self.mat.plastic_strain_eq(new)[0]) if hasattr(self.mat, "plastic_strain_eq") else 0.0
        plastic = float(dis > 0.0)
        info = dict(converged=True, iterations=0, plastic=plastic, psi=psi, dissipation=dis,
                    hill_mandel=0.0, peeq=peeq)
        return (np.reshape(s[0], m), np.reshape(C[0], (m, m)),
                np.concatenate([e[0], pack_state(new, self.fields, 1)]), info)
