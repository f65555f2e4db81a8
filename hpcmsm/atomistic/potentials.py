"""Interatomic potentials with analytic first and second derivatives, vectorised over bonds.

* :class:`LennardJones` and :class:`Morse` — central pair potentials with three cutoff treatments:
  ``plain`` (φ truncated at r_c: energy and force jump), ``shifted`` (φ − φ(r_c): continuous
  energy, force jumps) and ``smooth`` (φ·S(r) with the quintic switch S from r_on to r_c: C²,
  so the Cauchy–Born tangent is continuous).
* :class:`StillingerWeber` — the many-body potential for diamond-cubic silicon
  (Stillinger & Weber, PRB 31, 5262 (1985)); eV and Å.

Everything a solver needs is :func:`bond_energy`: the energy of a set of bond vectors, its
gradient with respect to each bond vector, and the Hessian in a compact form (a radial part per
bond plus dense 3×3 blocks between bonds that share a three-body term).  Cauchy–Born and the
explicit atomistic solver both build on it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError

CUTOFFS = ("plain", "shifted", "smooth")
EV_PER_A3_IN_GPA = 160.21766208


class PairPotential:
    """Central pair potential φ(r) with a cutoff treatment; subclasses implement :meth:`raw`."""

    three_body = False
    units = "reduced"

    def __init__(self, rc: float, cutoff: str = "shifted", r_on: float | None = None):
        if cutoff not in CUTOFFS:
            raise InputError(f"unknown cutoff treatment {cutoff!r} (choose from {', '.join(CUTOFFS)})")
        if not (rc > 0):
            raise InputError(f"cutoff radius must be > 0 (got {rc})")
        self.rc, self.cutoff = float(rc), cutoff
        self.r_on = float(r_on) if r_on is not None else 0.9 * self.rc
        if cutoff == "smooth" and not (0 < self.r_on < self.rc):
            raise InputError(f"smooth cutoff needs 0 < r_on < rc (got r_on={self.r_on}, rc={self.rc})")
        self._phic = float(self.raw(np.array([self.rc]))[0][0])

    def raw(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def pair(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """φ, φ', φ'' with the cutoff treatment applied (zero for r ≥ r_c)."""
        r = np.asarray(r, dtype=float)
        inside = r < self.rc
        rs = np.where(inside, r, self.rc)  # keep raw() away from r → ∞ / r = 0 of padded slots
        f, f1, f2 = self.raw(np.where(rs > 0, rs, self.rc))
        if self.cutoff == "shifted":
            f = f - self._phic
        elif self.cutoff == "smooth":
            t = np.clip((rs - self.r_on) / (self.rc - self.r_on), 0.0, 1.0)
            w = self.rc - self.r_on
            S = 1 - t**3 * (10 - 15 * t + 6 * t * t)
            S1 = -30 * t * t * (1 - t) ** 2 / w
            S2 = -60 * t * (1 - t) * (1 - 2 * t) / w**2
            f, f1, f2 = f * S, f1 * S + f * S1, f2 * S + 2 * f1 * S1 + f * S2
        z = np.zeros_like(r)
        return np.where(inside, f, z), np.where(inside, f1, z), np.where(inside, f2, z)

    def describe(self) -> dict:
        return {"potential": type(self).__name__, "rc": self.rc, "cutoff": self.cutoff, "r_on": self.r_on}


class LennardJones(PairPotential):
    """φ(r) = 4ε[(σ/r)¹² − (σ/r)⁶] (ε energy, σ length)."""

    def __init__(self, epsilon: float = 1.0, sigma: float = 1.0, rc: float = 2.5, cutoff: str = "shifted",
                 r_on: float | None = None):
        if not (epsilon > 0 and sigma > 0):
            raise InputError(f"Lennard-Jones needs epsilon > 0 and sigma > 0 (got {epsilon}, {sigma})")
        self.epsilon, self.sigma = float(epsilon), float(sigma)
        super().__init__(rc * 1.0, cutoff, r_on)

    def raw(self, r):
        s6 = (self.sigma / r) ** 6
        e = self.epsilon
        return (4 * e * (s6 * s6 - s6), 4 * e * (-12 * s6 * s6 + 6 * s6) / r,
                4 * e * (156 * s6 * s6 - 42 * s6) / (r * r))

    def describe(self):
        return {**super().describe(), "epsilon": self.epsilon, "sigma": self.sigma}


class Morse(PairPotential):
    """φ(r) = D[e^{−2α(r−r₀)} − 2e^{−α(r−r₀)}]."""

    def __init__(self, D: float = 1.0, alpha: float = 1.0, r0: float = 1.0, rc: float = 2.5,
                 cutoff: str = "shifted", r_on: float | None = None):
        if not (D > 0 and alpha > 0 and r0 > 0):
            raise InputError(f"Morse needs D, alpha, r0 > 0 (got {D}, {alpha}, {r0})")
        self.D, self.alpha, self.r0 = float(D), float(alpha), float(r0)
        super().__init__(rc, cutoff, r_on)

    def raw(self, r):
        x = np.exp(-self.alpha * (r - self.r0))
        D, a = self.D, self.alpha
        return D * (x * x - 2 * x), D * a * (-2 * x * x + 2 * x), D * a * a * (4 * x * x - 2 * x)

    def describe(self):
        return {**super().describe(), "D": self.D, "alpha": self.alpha, "r0": self.r0}


class StillingerWeber:
    """Stillinger–Weber silicon (eV, Å): two-body φ₂(r) and three-body
    h = λε (cos θ_jik + 1/3)² exp(γσ/(r_ij − aσ)) exp(γσ/(r_ik − aσ)) on every angle at atom i."""

    three_body = True
    units = "metal"
    cutoff = "smooth"  # SW vanishes with all derivatives at r = aσ

    def __init__(self, epsilon: float = 2.1683, sigma: float = 2.0951, a: float = 1.80, lam: float = 21.0,
                 gamma: float = 1.20, A: float = 7.049556277, B: float = 0.6022245584, p: float = 4.0,
                 q: float = 0.0):
        self.epsilon, self.sigma, self.a, self.lam, self.gamma = epsilon, sigma, a, lam, gamma
        self.A, self.B, self.p, self.q = A, B, p, q
        self.rc = a * sigma

    def describe(self) -> dict:
        return {"potential": "StillingerWeber", "epsilon": self.epsilon, "sigma": self.sigma, "a": self.a,
                "lambda": self.lam, "gamma": self.gamma, "A": self.A, "B": self.B, "rc": self.rc}

    def _exp(self, r, scale):
        """exp(c/(r − r_c)) with c = scale·σ and its first two derivatives (zero beyond r_c)."""
        inside = r < self.rc - 1e-12
        x = np.where(inside, r - self.rc, -1.0)
        c = scale * self.sigma
        e = np.where(inside, np.exp(c / x), 0.0)
        return e, e * (-c / x**2), e * (c * c / x**4 + 2 * c / x**3)

    def pair(self, r):
        r = np.asarray(r, dtype=float)
        rs = np.where(r > 0, r, self.rc)
        s = self.sigma
        v = self.B * (s / rs) ** self.p - (s / rs) ** self.q
        v1 = -self.p * self.B * (s / rs) ** self.p / rs + self.q * (s / rs) ** self.q / rs
        v2 = (self.p * (self.p + 1) * self.B * (s / rs) ** self.p - self.q * (self.q + 1) * (s / rs) ** self.q) / rs**2
        e, e1, e2 = self._exp(rs, 1.0)
        k = self.A * self.epsilon
        return k * v * e, k * (v1 * e + v * e1), k * (v2 * e + 2 * v1 * e1 + v * e2)

    def triplet(self, rj: np.ndarray, rk: np.ndarray, hessian: bool = True):
        """Three-body energy of the angle (rj, rk) at a common centre, its gradients with respect to
        rj and rk, and (optionally) the Hessian blocks H_jj, H_jk, H_kk (…, d, d)."""
        A = np.linalg.norm(rj, axis=-1)
        B = np.linalg.norm(rk, axis=-1)
        A_ = A[..., None]
        B_ = B[..., None]
        c = np.einsum("...i,...i->...", rj, rk) / (A * B)
        c_ = c[..., None]
        u = c + 1.0 / 3.0
        gj, gj1, gj2 = self._exp(A, self.gamma)
        gk, gk1, gk2 = self._exp(B, self.gamma)
        G = gj * gk
        k = self.lam * self.epsilon
        E = k * u * u * G
        dcj = rk / (A_ * B_) - c_ * rj / A_**2
        dck = rj / (A_ * B_) - c_ * rk / B_**2
        nj, nk = rj / A_, rk / B_
        dGj = (gj1 * gk)[..., None] * nj
        dGk = (gj * gk1)[..., None] * nk
        u_, G_ = u[..., None], G[..., None]
        Gj = k * (2 * u_ * G_ * dcj + u_ * u_ * dGj)
        Gk = k * (2 * u_ * G_ * dck + u_ * u_ * dGk)
        if not hessian:
            return E, Gj, Gk, None
        d = rj.shape[-1]
        I = np.eye(d)
        outer = lambda x, y: x[..., :, None] * y[..., None, :]  # noqa: E731
        A2, B2 = A_[..., None], B_[..., None]
        cc = c_[..., None]
        Hcjj = -(outer(rk, rj) + outer(rj, rk)) / (A2**3 * B2) + 3 * cc * outer(rj, rj) / A2**4 - cc * I / A2**2
        Hckk = -(outer(rj, rk) + outer(rk, rj)) / (B2**3 * A2) + 3 * cc * outer(rk, rk) / B2**4 - cc * I / B2**2
        Hcjk = (I / (A2 * B2) - outer(rk, rk) / (A2 * B2**3) - outer(rj, rj) / (A2**3 * B2)
                + cc * outer(rj, rk) / (A2**2 * B2**2))
        HGjj = gk[..., None, None] * (gj2[..., None, None] * outer(nj, nj)
                                      + (gj1 / A)[..., None, None] * (I - outer(nj, nj)))
        HGkk = gj[..., None, None] * (gk2[..., None, None] * outer(nk, nk)
                                      + (gk1 / B)[..., None, None] * (I - outer(nk, nk)))
        HGjk = (gj1 * gk1)[..., None, None] * outer(nj, nk)
        u2, G2 = u_[..., None], G_[..., None]
        Hjj = k * (2 * G2 * outer(dcj, dcj) + 2 * u2 * (outer(dcj, dGj) + outer(dGj, dcj)) + 2 * u2 * G2 * Hcjj
                   + u2 * u2 * HGjj)
        Hkk = k * (2 * G2 * outer(dck, dck) + 2 * u2 * (outer(dck, dGk) + outer(dGk, dck)) + 2 * u2 * G2 * Hckk
                   + u2 * u2 * HGkk)
        Hjk = k * (2 * G2 * outer(dcj, dck) + 2 * u2 * (outer(dcj, dGk) + outer(dGj, dck)) + 2 * u2 * G2 * Hcjk
                   + u2 * u2 * HGjk)
        return E, Gj, Gk, (Hjj, Hjk, Hkk)


def make_potential(spec: dict):
    """Build a potential from a table ``{"type": "lj"|"morse"|"sw", ...}``."""
    spec = dict(spec)
    kind = str(spec.pop("type", "")).lower()
    try:
        if kind in ("lj", "lennard-jones", "lennard_jones"):
            return LennardJones(**spec)
        if kind == "morse":
            return Morse(**spec)
        if kind in ("sw", "stillinger-weber", "stillinger_weber"):
            return StillingerWeber(**spec)
    except TypeError as e:
        raise InputError(f"potential {kind!r}: {e}") from None
    raise InputError(f"unknown potential {kind!r} (choose from lj, morse, sw)")


# ----------------------------------------------------------------------------------------------
# energy of a set of bond vectors
# ----------------------------------------------------------------------------------------------

@dataclass
class BondHessian:
    """Hessian of the energy with respect to bond vectors: H_kk += alpha_k r̂… (radial form
    ``alpha_k r_k r_kᵀ + beta_k I``) plus dense blocks ``blocks[b]`` between bonds ``rows[b]``
    and ``cols[b]`` (both orders stored)."""

    alpha: np.ndarray
    beta: np.ndarray
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    cols: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    blocks: np.ndarray | None = None


def _scatter_bonds(nbond: int, idx: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """Σ over entries with the same bond index (axis −2 of ``vals``) → (…, nbond, d)."""
    lead = vals.shape[:-2]
    d = vals.shape[-1]
    v = np.moveaxis(vals, -2, 0).reshape(len(idx), -1)
    out = np.zeros((nbond, v.shape[1]))
    np.add.at(out, idx, v)
    return np.moveaxis(out.reshape((nbond,) + lead + (d,)), 0, -2)


def bond_energy(pot, r: np.ndarray, pair_weight: np.ndarray, triplets: tuple[np.ndarray, np.ndarray] | None = None,
                order: int = 2):
    """Energy of bond vectors ``r`` (…, nbond, d).

    ``pair_weight`` (nbond,) weights φ(|r_k|) (½ when each bond is listed from both ends);
    ``triplets = (j, k)`` lists the angles (pairs of bonds from the same centre, each once) for
    three-body potentials.  Returns ``E`` (…), ``G = ∂E/∂r`` (…, nbond, d) if order ≥ 1 and a
    :class:`BondHessian` if order ≥ 2.
    """
    rn = np.linalg.norm(r, axis=-1)
    f, f1, f2 = pot.pair(rn)
    E = np.einsum("...k,k->...", f, pair_weight)
    if order == 0 and not pot.three_body:
        return E, None, None
    rs = np.where(rn > 0, rn, 1.0)
    G = (pair_weight * f1 / rs)[..., None] * r
    H = None
    if order >= 2:
        H = BondHessian(alpha=pair_weight * (f2 / rs**2 - f1 / rs**3), beta=pair_weight * f1 / rs)
    if pot.three_body and triplets is not None and len(triplets[0]):
        tj, tk = triplets
        E3, Gj, Gk, Hb = pot.triplet(r[..., tj, :], r[..., tk, :], hessian=order >= 2)
        E = E + E3.sum(axis=-1)
        nb = r.shape[-2]
        G = G + _scatter_bonds(nb, np.concatenate([tj, tk]), np.concatenate([Gj, Gk], axis=-2))
        if order >= 2:
            Hjj, Hjk, Hkk = Hb
            H.rows = np.concatenate([tj, tk, tj, tk])
            H.cols = np.concatenate([tj, tk, tk, tj])
            H.blocks = np.concatenate([Hjj, Hkk, Hjk, np.swapaxes(Hjk, -1, -2)], axis=-3)
    return E, G, H
