"""Small-strain J2 (von Mises) plasticity with linear isotropic and linear kinematic (Prager)
hardening: radial return and its consistent tangent, vectorised over quadrature points.

Works in 3D Mandel notation internally; a 2D material is plane strain (ε33 = 0, while the plastic
strain and σ33 are 3D).  State: ``eps_p`` (nq, 6) plastic strain, ``alpha`` (nq,) equivalent
plastic strain, ``eps`` (nq, m) last converged total strain (for the energy audit).
Back stress β = (2/3) H_kin ε_p (linear Prager rule).

This is the one J2 law of hpcmsm: the macro FE solver, the FE² voxel RVEs and the FE² direct-macro
reference all use it.  For FE²'s exact elastic reuse it offers :meth:`J2Plasticity.elastic_ok`
(would this strain leave every point elastic?), vectorised like ``update``.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from .base import isotropic_stiffness, lame_from_young_poisson

_M = np.array([1.0, 1, 1, 0, 0, 0])
_IDEV = np.eye(6) - np.outer(_M, _M) / 3.0
_IDX2 = [0, 1, 5]          # 2D Mandel components inside the 3D vector


class J2Plasticity:
    """``J2Plasticity(dim, E, nu, sigma_y, H_iso=0, H_kin=0)``; units: Pa (any consistent set)."""

    kind = "small"

    def __init__(self, dim: int, E: float, nu: float, sigma_y: float, H_iso: float = 0.0, H_kin: float = 0.0):
        lam, mu = lame_from_young_poisson(E, nu)
        if not sigma_y > 0:
            raise InputError(f"J2 plasticity: yield stress must be positive (got {sigma_y})")
        if H_iso < 0 or H_kin < 0:
            raise InputError("J2 plasticity: hardening moduli must be >= 0")
        if dim not in (2, 3):
            raise InputError("J2 plasticity: dim must be 2 or 3")
        self.dim, self.E, self.nu, self.sigma_y, self.H_iso, self.H_kin = dim, E, nu, sigma_y, H_iso, H_kin
        self.mu, self.lam = mu, lam
        self.C3 = isotropic_stiffness(3, lam=lam, mu=mu)
        self.m = 3 if dim == 2 else 6

    def initial_state(self, nq: int) -> dict:
        return {"eps_p": np.zeros((nq, 6)), "alpha": np.zeros(nq), "eps": np.zeros((nq, self.m))}

    def _to3(self, e):
        if self.dim == 3:
            return e
        out = np.zeros(e.shape[:-1] + (6,))
        out[..., _IDX2] = e
        return out

    @property
    def C(self) -> np.ndarray:
        """Elastic Mandel stiffness (m, m) (plane strain in 2D)."""
        return self.C3[np.ix_(_IDX2, _IDX2)] if self.dim == 2 else self.C3.copy()

    def _trial(self, strain, state):
        """Trial stress (3D Mandel), relative deviatoric stress ξ, |ξ| and yield function f."""
        ep = state["eps_p"]
        sig_tr = (self._to3(np.asarray(strain, float)) - ep) @ self.C3
        xi = sig_tr @ _IDEV
        if self.H_kin:
            xi -= (2.0 / 3.0) * self.H_kin * ep                  # back stress
        nxi = np.sqrt(np.einsum("qi,qi->q", xi, xi))
        f = nxi - np.sqrt(2.0 / 3.0) * (self.sigma_y + self.H_iso * state["alpha"])
        return sig_tr, xi, nxi, f

    def elastic_ok(self, strain: np.ndarray, state: dict) -> np.ndarray:
        """(nq,) bool: True where ``update(strain, state)`` is purely elastic (trial f <= 0)."""
        return self._trial(strain, state)[3] <= 0.0

    def plastic_strain_eq(self, state: dict) -> np.ndarray:
        """Equivalent plastic strain α (nq,)."""
        return state["alpha"]

    def update(self, strain, state):
        strain = np.asarray(strain, float)
        ep, alpha = state["eps_p"], state["alpha"]
        mu, Hi, Hk = self.mu, self.H_iso, self.H_kin
        sig_tr, xi, nxi, f = self._trial(strain, state)
        yld = f > 0
        denom = 2 * mu + (2.0 / 3.0) * (Hi + Hk)
        dgam = np.where(yld, f / denom, 0.0)
        n = np.divide(xi, nxi[:, None], out=np.zeros_like(xi), where=nxi[:, None] > 0)
        sig = sig_tr - 2 * mu * dgam[:, None] * n
        new = {"eps_p": ep + dgam[:, None] * n, "alpha": alpha + np.sqrt(2.0 / 3.0) * dgam,
               "eps": strain.copy()}
        # tangent only in the m components the caller sees (3 of 6 in plane strain: 4x less work)
        idx = _IDX2 if self.dim == 2 else slice(None)
        Cel = self.C3[np.ix_(_IDX2, _IDX2)] if self.dim == 2 else self.C3
        C = np.broadcast_to(Cel, (len(strain),) + Cel.shape).copy()
        if yld.any():
            ny = n[yld][:, idx]
            theta = 1.0 - 2 * mu * dgam[yld] / nxi[yld]
            thbar = 1.0 / (1.0 + (Hi + Hk) / (3 * mu)) - (1.0 - theta)
            Idev = _IDEV[np.ix_(_IDX2, _IDX2)] if self.dim == 2 else _IDEV
            C[yld] -= (2 * mu * (1 - theta))[:, None, None] * Idev + (2 * mu * thbar)[:, None, None] * \
                (ny[:, :, None] * ny[:, None, :])
        if self.dim == 2:
            return sig[:, _IDX2], C, new
        return sig, C, new

    # ------------------------------------------------------------------ energy audit
    def _stress(self, strain, eps_p):
        return (self._to3(strain) - eps_p) @ self.C3

    def energy(self, strain, state):
        """Stored energy density: elastic + isotropic + kinematic hardening."""
        ee = self._to3(np.asarray(strain, float)) - state["eps_p"]
        return (0.5 * np.einsum("qi,ij,qj->q", ee, self.C3, ee) + 0.5 * self.H_iso * state["alpha"] ** 2
                + self.H_kin / 3.0 * np.einsum("qi,qi->q", state["eps_p"], state["eps_p"]))

    def dissipation_increment(self, strain, state, new_state):
        """Trapezoidal dissipation of an increment: ½(σₙ+σₙ₊₁):Δε_p − Δ(hardening energy).

        With this definition the discrete balance  Σ ½(Fₙ+Fₙ₊₁)·Δu = Δ(stored) + dissipation
        holds exactly, so the energy audit tests the assembly, not the time integration."""
        s0 = self._stress(state["eps"], state["eps_p"])
        s1 = self._stress(strain, new_state["eps_p"])
        dep = new_state["eps_p"] - state["eps_p"]
        dh = (0.5 * self.H_iso * (new_state["alpha"] ** 2 - state["alpha"] ** 2)
              + self.H_kin / 3.0 * (np.einsum("qi,qi->q", new_state["eps_p"], new_state["eps_p"])
                                    - np.einsum("qi,qi->q", state["eps_p"], state["eps_p"])))
        return 0.5 * np.einsum("qi,qi->q", s0 + s1, dep) - dh

    def von_mises(self, stress):
        s = stress if stress.shape[-1] == 6 else None
        if s is None:
            raise ValueError("use von_mises_from_state for plane strain")
        sd = s @ _IDEV
        return np.sqrt(1.5) * np.linalg.norm(sd, axis=-1)

    def stress3(self, strain, state):
        """Full 3D Mandel stress (σ33 included in plane strain)."""
        return self._stress(strain, state["eps_p"])


def uniaxial_closed_form(eps11, E, sigma_y, H_iso=0.0, H_kin=0.0):
    """σ11 for monotonic uniaxial stress loading: elastic, then slope E·H/(E+H), H = H_iso + H_kin."""
    eps11 = np.asarray(eps11, float)
    H = H_iso + H_kin
    ey = sigma_y / E
    Et = E * H / (E + H)
    return np.where(eps11 <= ey, E * eps11, sigma_y + Et * (eps11 - ey))
