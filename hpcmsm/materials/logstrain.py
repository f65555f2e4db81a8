"""Finite-strain history laws in logarithmic (Hencky) strain space, vectorised over points.

:class:`LogStrain` turns any *3D* small-strain Mandel material (``kind == "small"``, e.g.
:class:`hpcmsm.materials.j2.J2Plasticity`) into a finite-strain one (``kind == "finite"``)
following Miehe, Apel & Lambrecht (CMAME 191, 2002):

* Lagrangian log strain ``E = ½ ln C`` with ``C = FᵀF``; the small-strain law is evaluated on
  ``E`` (so J2 works with the additive split ``E = Eᵉ + Eᵖ``, state ``Eᵖ``, ``α``, back stress);
  its stress is the log-strain conjugate ``T = ∂ψ/∂E`` and its tangent ``𝔻 = dT/dE``.
* ``S = T : 𝒫`` with ``𝒫 = 2 ∂E/∂C``; ``P = F S``.
* ``ℂ = 2 dS/dC = 𝒫ᵀ : 𝔻 : 𝒫 + 𝓛`` with ``𝓛 = 4 T : ∂²E/∂C∂C``, and
  ``A_iJkL = ∂P_iJ/∂F_kL = δ_ik S_JL + F_iI F_kK ℂ_IJKL``.

For isotropic elasticity the J2 law in Hencky strain is the exponential-map multiplicative
plasticity of Simo (1992) (plastic incompressibility exact, τ = T for coaxial states).

``∂E/∂C`` and ``∂²E/∂C∂C`` use the Daleckii–Krein formulas in the eigenbasis of C: first and
second divided differences of f(λ) = ½ ln λ, evaluated robustly — first differences through
``(x−y)/(eˣ−eʸ)`` with a ``t/sinh t`` series, second differences by dividing the two first
differences of the farthest eigenvalue pair, or (all three within a relative 1e-3) by the
Taylor series about their mean — so equal and nearly equal principal stretches (F = λI, plane
strain, F = I) are exact to round-off.

2D is plane strain: F is embedded with F33 = 1 (then E33 = E13 = E23 = 0 exactly), the 3D law
runs with its out-of-plane components, and P, A are returned in the in-plane components.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from .base import SQ2, MANDEL_PAIRS, mandel_to_tensor, tensor_to_mandel
from .j2 import J2Plasticity

_PAIRS = MANDEL_PAIRS[3]
_I = np.array([p[0] for p in _PAIRS])
_J = np.array([p[1] for p in _PAIRS])
_W = np.array([1.0 if i == j else SQ2 for i, j in _PAIRS])
_TAYLOR_TOL = 1e-3          # relative spread of three eigenvalues below which f[a,b,c] uses Taylor


# full index (i, j, k, l) → flat Mandel (α(i,j), β(k,l)) position, for one-gather conversions
_PAIR_OF = np.zeros((3, 3), int)
for _a, (_i, _j) in enumerate(_PAIRS):
    _PAIR_OF[_i, _j] = _PAIR_OF[_j, _i] = _a
_FULL_TO_FLAT = (_PAIR_OF[:, :, None, None] * 6 + _PAIR_OF[None, None, :, :]).ravel()
_WW = np.outer(_W, _W)


def _t4_to_mandel(T: np.ndarray) -> np.ndarray:
    """(n, 3, 3, 3, 3) → (n, 6, 6) Mandel matrix of its minor-symmetric part."""
    ii, jj, kk, ll = _I[:, None], _J[:, None], _I[None, :], _J[None, :]
    return 0.25 * (T[:, ii, jj, kk, ll] + T[:, jj, ii, kk, ll] + T[:, ii, jj, ll, kk] + T[:, jj, ii, ll, kk]) * _WW


def _mandel_to_t4(M: np.ndarray) -> np.ndarray:
    """(n, 6, 6) Mandel matrix → (n, 3, 3, 3, 3) with minor symmetries."""
    return (M / _WW).reshape(len(M), 36)[:, _FULL_TO_FLAT].reshape(len(M), 3, 3, 3, 3)


def _mandel_rotation(Q: np.ndarray) -> np.ndarray:
    """(n, 6, 6) orthogonal R with Mandel(Qᵀ t Q) = R · Mandel(t) for symmetric t."""
    a, b = _I[:, None], _J[:, None]                      # rotated pair α = (a, b)
    k, l = _I[None, :], _J[None, :]                      # lab pair β = (k, l)
    return 0.5 * (Q[:, k, a] * Q[:, l, b] + Q[:, l, a] * Q[:, k, b]) * _WW


def _t_over_sinh(t: np.ndarray) -> np.ndarray:
    """t / sinh t, with its series near 0 (error < 1e-17 for |t| < 1e-2)."""
    small = np.abs(t) < 1e-2
    ts = np.where(small, 1.0, t)
    t2 = t * t
    return np.where(small, 1.0 - t2 / 6.0 + 7.0 * t2 * t2 / 360.0, ts / np.sinh(ts))


def _dd1(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """First divided difference of f(λ) = ½ ln λ at λ = eˣ, eʸ: ½(x−y)/(eˣ−eʸ) (→ 1/(2λ))."""
    h = 0.5 * (x - y)
    return 0.5 * np.exp(-0.5 * (x + y)) * _t_over_sinh(h)


# the 10 index triples i ≤ j ≤ k, and for each of the 27 ordered triples its sorted one
_TRIPLES = [(i, j, k) for i in range(3) for j in range(i, 3) for k in range(j, 3)]
_TRIPLE_OF = np.array([_TRIPLES.index(tuple(sorted(t))) for t in np.ndindex(3, 3, 3)])


def _dd2(lam: np.ndarray, f1: np.ndarray) -> np.ndarray:
    """Second divided differences f[λa, λb, λc] of f = ½ ln λ for all index triples (n, 3, 3, 3).

    ``lam`` (n, 3) in ascending order (as numpy.linalg.eigh returns them), ``f1`` (n, 3, 3) the
    first divided differences (:func:`_dd1`)."""
    i, j, k = (np.array(t) for t in zip(*_TRIPLES))
    lo, mid, hi = lam[:, i], lam[:, j], lam[:, k]                        # (n, 10), lo ≤ mid ≤ hi
    m = (lo + mid + hi) / 3.0
    taylor_ok = hi - lo < _TAYLOR_TOL * m
    # exact branch: f[lo, mid, hi] = (f[mid, hi] − f[lo, mid]) / (hi − lo)
    exact = (f1[:, j, k] - f1[:, i, j]) / np.where(taylor_ok, 1.0, hi - lo)
    # Taylor about the mean: f[a,b,c] = Σ_k c_k h_{k-2}(δ), c_k = f⁽ᵏ⁾(m)/k! = (−1)^(k−1)/(2k mᵏ)
    d0, d1, d2 = (lo - m) / m, (mid - m) / m, (hi - m) / m
    h2 = d0 * d0 + d1 * d1 + d2 * d2 + d0 * d1 + d0 * d2 + d1 * d2
    h3 = (d0 ** 3 + d1 ** 3 + d2 ** 3 + d0 * d0 * (d1 + d2) + d1 * d1 * (d0 + d2) + d2 * d2 * (d0 + d1)
          + d0 * d1 * d2)
    taylor = (-1.0 / 4.0 - h2 / 8.0 + h3 / 10.0) / m ** 2      # h1 = 0 about the mean
    return np.where(taylor_ok, taylor, exact)[:, _TRIPLE_OF].reshape(len(lam), 3, 3, 3)


class LogStrain:
    """Finite-strain law from a 3D small-strain Mandel law applied to the Hencky strain E = ½ ln C.

    ``LogStrain(material3d, dim=3)``; ``dim = 2`` is plane strain (F33 = 1).  The state is the
    small-strain law's state (its ``eps`` entry, if any, is the last converged E in Mandel form).
    """

    kind = "finite"

    def __init__(self, small, dim: int = 3):
        if getattr(small, "kind", None) != "small" or getattr(small, "dim", None) != 3:
            raise InputError("LogStrain wraps a 3D small-strain (Mandel) material")
        if dim not in (2, 3):
            raise InputError("LogStrain: dim must be 2 or 3")
        self.small, self.dim = small, dim

    def initial_state(self, nq: int) -> dict:
        return self.small.initial_state(nq)

    # ------------------------------------------------------------------ kinematics
    def _F3(self, F) -> np.ndarray:
        F = np.asarray(F, float)
        if self.dim == 3:
            return F
        F3 = np.zeros(F.shape[:1] + (3, 3))
        F3[:, :2, :2] = F
        F3[:, 2, 2] = 1.0
        return F3

    def _spectral(self, F3):
        """Eigenvalues λ (n, 3) and vectors Q (n, 3, 3) of C, ln λ, and E in Mandel form (n, 6)."""
        if np.any(np.linalg.det(F3) <= 0):
            raise FloatingPointError("det F <= 0")
        C = np.swapaxes(F3, 1, 2) @ F3
        lam, Q = np.linalg.eigh(C)
        if np.any(lam <= 0):
            raise FloatingPointError("C is not positive definite")
        lnl = np.log(lam)
        E = (Q * (0.5 * lnl)[:, None, :]) @ np.swapaxes(Q, 1, 2)
        return lam, Q, lnl, tensor_to_mandel(E)

    def log_strain(self, F) -> np.ndarray:
        """Hencky strain E = ½ ln C (n, 3, 3) (3D even in plane strain)."""
        return mandel_to_tensor(self._spectral(self._F3(F))[3])

    # ------------------------------------------------------------------ update
    def update(self, F, state):
        """P (n, d, d), A = ∂P/∂F (n, d, d, d, d) and the new state (pure)."""
        F3 = self._F3(F)
        n = F3.shape[0]
        lam, Q, lnl, Em = self._spectral(F3)
        Tm, D, new = self.small.update(Em, state)
        Qt = np.swapaxes(Q, 1, 2)
        Th = Qt @ mandel_to_tensor(Tm) @ Q                                     # T in the eigenbasis
        f1 = _dd1(lnl[:, :, None], lnl[:, None, :])                             # (n, 3, 3)
        S = Q @ (2.0 * f1 * Th) @ Qt
        P = F3 @ S
        # 𝒫 = 2 ∂E/∂C in the eigenbasis: 𝒫_abcd = f1_ab (δac δbd + δad δbc), diagonal in Mandel form
        p = 2.0 * f1[:, _I, _J]                                                 # (n, 6)
        # 𝓛 = 4 T:∂²E/∂C∂C; with T:d²E[H,K] = Σ_ijk T_ij f[λi,λk,λj](H_ik K_kj + K_ik H_kj) the
        # bilinear form is G1 + its major transpose, G1_pqrs = δ_qr T_ps f[p,q,s]
        f2 = _dd2(lam, f1)
        G1 = np.zeros((n, 3, 3, 3, 3))
        for q in range(3):
            G1[:, :, q, q, :] = Th * f2[:, :, q, :]
        M1 = _t4_to_mandel(G1)
        R = _mandel_rotation(Q)                                                 # Mandel(Qᵀ t Q) = R t
        Ch = p[:, :, None] * (R @ D @ np.swapaxes(R, 1, 2)) * p[:, None, :] + 4.0 * (M1 + np.swapaxes(M1, 1, 2))
        C4 = _mandel_to_t4(np.swapaxes(R, 1, 2) @ Ch @ R)                      # back to the lab frame
        # A_iJkL = F_iI F_kK ℂ_IJKL + δ_ik S_JL, as two batched matrix products
        FC = (F3 @ C4.reshape(n, 3, 27)).reshape(n, 3, 3, 3, 3)               # [i, J, K, L]
        A = FC.transpose(0, 1, 2, 4, 3).reshape(n, 27, 3) @ np.swapaxes(F3, 1, 2)   # [i, J, L, k]
        A = A.reshape(n, 3, 3, 3, 3).transpose(0, 1, 2, 4, 3)                  # [i, J, k, L]
        A = np.ascontiguousarray(A)
        for i in range(3):
            A[:, i, :, i, :] += S
        if self.dim == 2:
            return P[:, :2, :2], np.ascontiguousarray(A[:, :2, :2, :2, :2]), new
        return P, A, new

    # ------------------------------------------------------------------ energy audit
    def energy(self, F, state) -> np.ndarray:
        """Stored energy density ψ(E(F), state) per point (reference volume)."""
        return self.small.energy(self._spectral(self._F3(F))[3], state)

    def dissipation_increment(self, F, state, new_state) -> np.ndarray:
        """Dissipation of the increment state → new_state ending at F, the small-strain law's
        definition in (T, E): trapezoidal ½(Tₙ+Tₙ₊₁):ΔEᵖ − Δ(hardening energy) (≥ 0)."""
        return self.small.dissipation_increment(self._spectral(self._F3(F))[3], state, new_state)

    def elastic_ok(self, F, state) -> np.ndarray:
        """(n,) bool: True where ``update(F, state)`` is purely elastic."""
        return self.small.elastic_ok(self._spectral(self._F3(F))[3], state)

    def plastic_strain_eq(self, state) -> np.ndarray:
        return self.small.plastic_strain_eq(state)

    def kirchhoff(self, F, state) -> np.ndarray:
        """Kirchhoff stress τ = F S Fᵀ (n, 3, 3) (3D, τ33 included in plane strain) at F with the
        plastic state ``state`` held fixed (``stress3`` of the small-strain law; the return map
        if it has none)."""
        F3 = self._F3(F)
        lam, Q, lnl, Em = self._spectral(F3)
        Tm = self.small.stress3(Em, state) if hasattr(self.small, "stress3") else self.small.update(Em, state)[0]
        Qt = np.swapaxes(Q, 1, 2)
        S = Q @ (2.0 * _dd1(lnl[:, :, None], lnl[:, None, :]) * (Qt @ mandel_to_tensor(Tm) @ Q)) @ Qt
        return F3 @ S @ np.swapaxes(F3, 1, 2)


class LogStrainJ2(LogStrain):
    """J2 plasticity (isotropic + linear kinematic hardening) in Hencky strain:
    ``LogStrainJ2(dim, E, nu, sigma_y, H_iso=0, H_kin=0)`` (Pa); 2D is plane strain."""

    def __init__(self, dim: int, E: float, nu: float, sigma_y: float, H_iso: float = 0.0, H_kin: float = 0.0):
        super().__init__(J2Plasticity(3, E, nu, sigma_y, H_iso, H_kin), dim)
        self.E, self.nu, self.sigma_y, self.H_iso, self.H_kin = E, nu, sigma_y, H_iso, H_kin
        self.mu, self.lam = self.small.mu, self.small.lam
