"""Bounds and estimates of effective tensors, and exact laminate formulas.  Pure numpy.

* Voigt (arithmetic) and Reuss (harmonic) bounds for arbitrary anisotropic phases, in the matrix
  (Loewner) order: ``C_R ≤ C_eff ≤ C_V``.
* Hashin–Shtrikman bounds for N isotropic phases in 2D (plane strain, area bulk modulus
  κ = λ + μ) and 3D, conductivity and elasticity; for phases that are not well ordered the
  Walpole form (extreme bulk and shear moduli taken separately) is used.
* Mori–Tanaka (matrix phase as reference, circular/spherical inclusions) and self-consistent
  (reference = effective medium) estimates, with the same Hashin-type formula and a different
  reference medium.
* Exact effective tensor of a laminate (any anisotropic phases): strains tangential to the layers
  and stresses/fluxes normal to them are continuous (partial inversion).
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError


def _fr(fractions) -> np.ndarray:
    f = np.asarray(fractions, dtype=float)
    if np.any(f < 0) or abs(f.sum() - 1) > 1e-9:
        raise InputError(f"volume fractions must be non-negative and sum to 1, got {f.tolist()}")
    return f


def voigt(tensors, fractions) -> np.ndarray:
    """Arithmetic mean Σ f_i C_i (upper bound)."""
    return np.einsum("i,ijk->jk", _fr(fractions), np.asarray(tensors, float))


def reuss(tensors, fractions) -> np.ndarray:
    """Harmonic mean (Σ f_i C_i⁻¹)⁻¹ (lower bound)."""
    T = np.asarray(tensors, float)
    return np.linalg.inv(np.einsum("i,ijk->jk", _fr(fractions), np.linalg.inv(T)))


# ----------------------------------------------------------------------------------------------
# isotropic moduli and their Mandel tensors
# ----------------------------------------------------------------------------------------------

def _ones(dim: int) -> np.ndarray:
    m = 3 if dim == 2 else 6
    one = np.zeros(m)
    one[:dim] = 1.0
    return one


def isotropic_projection(C: np.ndarray, kind: str, dim: int) -> dict:
    """Isotropic part of a tensor: ``{"k": ...}`` (conductivity) or ``{"K": bulk, "mu": shear}``.

    2D elasticity (plane strain) uses the area bulk modulus κ = λ + μ.
    """
    C = np.asarray(C, float)
    if kind == "conductivity":
        return {"k": float(np.trace(C) / dim)}
    one = _ones(dim)
    s = one @ C @ one
    m = len(one)
    if dim == 2:
        return {"K": float(s / 4), "mu": float((np.trace(C) - s / 2) / 4)}
    return {"K": float(s / 9), "mu": float((np.trace(C) - s / 3) / 10)}


def isotropic_tensor(kind: str, dim: int, k: float | None = None, K: float | None = None,
                     mu: float | None = None) -> np.ndarray:
    """Mandel (or conductivity) tensor from isotropic moduli (K is κ = λ+μ in 2D)."""
    if kind == "conductivity":
        return k * np.eye(dim)
    one = _ones(dim)
    J = np.outer(one, one) / dim
    I = np.eye(len(one))
    return dim * K * J + 2 * mu * (I - J)


def _hs_form(vals, f, ref_term) -> float:
    """[Σ f_i/(v_i + t)]⁻¹ − t, the common Hashin-type average with reference term t."""
    return float(1.0 / np.sum(f / (np.asarray(vals) + ref_term)) - ref_term)


def _bulk_term(dim: int, mu0: float) -> float:
    return mu0 if dim == 2 else 4.0 * mu0 / 3.0


def _shear_term(dim: int, K0: float, mu0: float) -> float:
    if dim == 2:
        return K0 * mu0 / (K0 + 2 * mu0)
    return mu0 / 6.0 * (9 * K0 + 8 * mu0) / (K0 + 2 * mu0)


def hashin_shtrikman(kind: str, dim: int, moduli: list[dict], fractions) -> dict:
    """HS lower/upper bounds: ``{"lower": {...}, "upper": {...}}`` with keys k or K, mu."""
    f = _fr(fractions)
    if kind == "conductivity":
        k = np.array([p["k"] for p in moduli])
        return {"lower": {"k": _hs_form(k, f, (dim - 1) * k.min())},
                "upper": {"k": _hs_form(k, f, (dim - 1) * k.max())}}
    K = np.array([p["K"] for p in moduli])
    mu = np.array([p["mu"] for p in moduli])
    out = {}
    for name, Kr, mur in (("lower", K.min(), mu.min()), ("upper", K.max(), mu.max())):
        out[name] = {"K": _hs_form(K, f, _bulk_term(dim, mur)),
                     "mu": _hs_form(mu, f, _shear_term(dim, Kr, mur))}
    return out


def mori_tanaka(kind: str, dim: int, moduli: list[dict], fractions, matrix: int = 0) -> dict:
    """Mori–Tanaka estimate (circular/spherical inclusions in phase ``matrix``)."""
    f = _fr(fractions)
    ref = moduli[matrix]
    if kind == "conductivity":
        k = np.array([p["k"] for p in moduli])
        return {"k": _hs_form(k, f, (dim - 1) * ref["k"])}
    K = np.array([p["K"] for p in moduli])
    mu = np.array([p["mu"] for p in moduli])
    return {"K": _hs_form(K, f, _bulk_term(dim, ref["mu"])),
            "mu": _hs_form(mu, f, _shear_term(dim, ref["K"], ref["mu"]))}


def self_consistent(kind: str, dim: int, moduli: list[dict], fractions, tol: float = 1e-13,
                    max_it: int = 10000) -> dict:
    """Self-consistent estimate (reference medium = effective medium), by fixed-point iteration."""
    f = _fr(fractions)
    if kind == "conductivity":
        k = np.array([p["k"] for p in moduli])
        x = float(f @ k)
        for _ in range(max_it):
            xn = _hs_form(k, f, (dim - 1) * x)
            if abs(xn - x) <= tol * abs(x):
                return {"k": xn}
            x = xn
        return {"k": x}
    K = np.array([p["K"] for p in moduli])
    mu = np.array([p["mu"] for p in moduli])
    Ks, ms = float(f @ K), float(f @ mu)
    for _ in range(max_it):
        Kn = _hs_form(K, f, _bulk_term(dim, ms))
        mn = _hs_form(mu, f, _shear_term(dim, Ks, ms))
        done = abs(Kn - Ks) <= tol * Ks and abs(mn - ms) <= tol * ms
        Ks, ms = 0.5 * (Ks + Kn), 0.5 * (ms + mn)     # damped: SC iteration can oscillate at high contrast
        if done:
            break
    return {"K": Ks, "mu": ms}


# ----------------------------------------------------------------------------------------------
# laminates
# ----------------------------------------------------------------------------------------------

def normal_components(kind: str, dim: int, axis: int) -> np.ndarray:
    """Indices of components continuous in *stress* across layers normal to ``axis``."""
    if kind == "conductivity":
        return np.array([axis])
    pairs = [(0, 0), (1, 1), (0, 1)] if dim == 2 else [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
    return np.array([k for k, (i, j) in enumerate(pairs) if axis in (i, j)])


def laminate_exact(tensors, fractions, axis: int, kind: str, dim: int) -> np.ndarray:
    """Exact effective tensor of layers normal to ``axis`` (phases may be anisotropic)."""
    T = np.asarray(tensors, float)
    f = _fr(fractions)
    m = T.shape[-1]
    n = normal_components(kind, dim, axis)
    t = np.setdiff1d(np.arange(m), n)
    Cnn = T[:, n][:, :, n]
    Cnt = T[:, n][:, :, t]
    Ctn = T[:, t][:, :, n]
    Ctt = T[:, t][:, :, t]
    Cnn_inv = np.linalg.inv(Cnn)
    A = np.einsum("i,ijk->jk", f, Cnn_inv)                                 # <Cnn⁻¹>
    Bm = np.einsum("i,ijk,ikl->jl", f, Cnn_inv, Cnt)                       # <Cnn⁻¹ Cnt>
    Cm = np.einsum("i,ijk,ikl->jl", f, Ctn, Cnn_inv)                       # <Ctn Cnn⁻¹>
    Dm = np.einsum("i,ijk->jk", f, Ctt - np.einsum("ijk,ikl,ilm->ijm", Ctn, Cnn_inv, Cnt))
    Ainv = np.linalg.inv(A)
    # σ_n = A⁻¹ <ε_n> + A⁻¹ B ε_t ;  <σ_t> = C σ_n + D ε_t
    out = np.zeros((m, m))
    out[np.ix_(n, n)] = Ainv
    out[np.ix_(n, t)] = Ainv @ Bm
    out[np.ix_(t, n)] = Cm @ Ainv
    out[np.ix_(t, t)] = Cm @ Ainv @ Bm + Dm
    return out


# ----------------------------------------------------------------------------------------------
# order and placement
# ----------------------------------------------------------------------------------------------

def loewner_gap(lower: np.ndarray, upper: np.ndarray) -> float:
    """Smallest eigenvalue of (upper − lower)_sym relative to ‖upper‖: ≥ 0 (up to round-off)
    iff ``lower ≤ upper`` as symmetric matrices."""
    D = 0.5 * ((upper - lower) + (upper - lower).T)
    return float(np.linalg.eigvalsh(D).min() / max(np.linalg.norm(upper, 2), 1e-300))


def placement(C: np.ndarray, kind: str, dim: int, phase_tensors, fractions, matrix: int = 0) -> dict:
    """Where a numerical tensor lies among the bounds and estimates.

    Returns the Voigt/Reuss matrix-order gaps, and for the isotropic projection of ``C`` the HS
    bounds, MT and SC estimates of every modulus together with the position of the numerical
    value in [HS lower, HS upper] (0 = lower, 1 = upper).  HS/MT/SC need isotropic phases:
    they are reported only if every phase tensor is isotropic.
    """
    T = np.asarray(phase_tensors, float)
    f = _fr(fractions)
    CV, CR = voigt(T, f), reuss(T, f)
    out = {"voigt": CV.tolist(), "reuss": CR.tolist(),
           "reuss_le_C": loewner_gap(CR, C), "C_le_voigt": loewner_gap(C, CV)}
    mods = [isotropic_projection(Ti, kind, dim) for Ti in T]
    iso = all(np.allclose(isotropic_tensor(kind, dim, **mo), Ti, rtol=1e-9, atol=1e-12 * np.abs(Ti).max())
              for mo, Ti in zip(mods, T))
    num = isotropic_projection(C, kind, dim)
    out["numerical_isotropic"] = num
    anis = np.linalg.norm(C - isotropic_tensor(kind, dim, **num)) / np.linalg.norm(C)
    out["anisotropy"] = float(anis)
    if iso:
        hs = hashin_shtrikman(kind, dim, mods, f)
        mt = mori_tanaka(kind, dim, mods, f, matrix=matrix)
        sc = self_consistent(kind, dim, mods, f)
        out["hashin_shtrikman"] = hs
        out["mori_tanaka"] = mt
        out["self_consistent"] = sc
        pos = {}
        for key, v in num.items():
            lo, hi = hs["lower"][key], hs["upper"][key]
            pos[key] = {"value": v, "hs_lower": lo, "hs_upper": hi, "mori_tanaka": mt[key],
                        "self_consistent": sc[key], "voigt": isotropic_projection(CV, kind, dim)[key],
                        "reuss": isotropic_projection(CR, kind, dim)[key],
                        "position_in_hs": (v - lo) / (hi - lo) if hi > lo else 0.0,
                        "within_hs": bool(lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9))}
        out["moduli"] = pos
    return out


def placement_text(pl: dict) -> str:
    """Human-readable table of :func:`placement`."""
    rows = [f"  Reuss ≤ C: min eig gap {pl['reuss_le_C']:+.3e}   C ≤ Voigt: {pl['C_le_voigt']:+.3e}",
            f"  anisotropy of C (distance from its isotropic part): {pl['anisotropy']:.3e}"]
    for key, p in pl.get("moduli", {}).items():
        rows.append(f"  {key:>3}: Reuss {p['reuss']:.5g} ≤ HS- {p['hs_lower']:.5g} ≤ [C {p['value']:.5g}] ≤ "
                    f"HS+ {p['hs_upper']:.5g} ≤ Voigt {p['voigt']:.5g};  MT {p['mori_tanaka']:.5g}, "
                    f"SC {p['self_consistent']:.5g};  position in HS {p['position_in_hs']:.3f}"
                    + ("" if p["within_hs"] else "  (outside HS: microstructure not isotropic?)"))
    return "\n".join(rows)
