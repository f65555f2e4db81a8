"""Manufactured solutions (MMS) for every PDE hpcmsm solves, derived symbolically with sympy.

Choose an exact solution as a sympy expression of the coordinates ``x, y[, z]`` (and time ``t``);
the functions below substitute it into the governing equation and return the source terms,
fluxes/stresses and boundary data as **vectorised numpy callables**::

    from hpcmsm.vv import mms
    x, y, t = mms.coords(2, time=True)
    ms = mms.diffusion(sympy.sin(sympy.pi * x) * sympy.sin(sympy.pi * y), conductivity=1 + x**2)
    f = ms.fn("source")            # f(X) with X (n, 2) -> (n,)
    u = ms.fn("u")                 # exact solution for Dirichlet data and errors

Sign conventions (the solver must use the same ones):

* diffusion          ``∂u/∂t − ∇·(k ∇u) = f``              (``transient=False``: ``−∇·(k∇u) = f``)
* small strain       ``−∇·σ = b``,  ``σ = λ tr(ε) I + 2 μ ε``, traction ``t = σ n``
* finite strain      ``−Div P = b`` (reference configuration), ``P = ∂W/∂F``, traction ``T = P N``;
  default ``W`` is compressible neo-Hooke ``μ/2 (tr C − d) − μ ln J + λ/2 (ln J)²``
* Cahn–Hilliard      ``∂c/∂t = ∇·(M ∇μ) + S``,  ``μ = ψ'(c) − κ Δc``
* Allen–Cahn         ``∂φ/∂t = −L (ψ'(φ) − κ Δφ) + S``

Coefficients may be numbers or sympy expressions of the coordinates (heterogeneous media);
mobility and the free energy density may depend on the field (pass a function of a sympy expr).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence, Union

import numpy as np
import sympy as sp

Expr = Union[sp.Expr, float, int]

X, Y, Z, T = sp.symbols("x y z t", real=True)
_COORDS = (X, Y, Z)


def coords(dim: int, time: bool = False) -> tuple:
    """The coordinate symbols used by every manufactured solution: ``x, y[, z][, t]``."""
    if dim not in (1, 2, 3):
        raise ValueError(f"dim must be 1, 2 or 3, got {dim}")
    return _COORDS[:dim] + ((T,) if time else ())


def _grad(u: sp.Expr, dim: int) -> sp.Matrix:
    return sp.Matrix([sp.diff(u, c) for c in _COORDS[:dim]])


def _div(v: sp.Matrix, dim: int) -> sp.Expr:
    return sum(sp.diff(v[i], _COORDS[i]) for i in range(dim))


def _lap(u: sp.Expr, dim: int) -> sp.Expr:
    return sum(sp.diff(u, c, 2) for c in _COORDS[:dim])


def _div_tensor(P: sp.Matrix, dim: int) -> sp.Matrix:
    """Row-wise divergence: (Div P)_i = Σ_J ∂P_iJ/∂X_J."""
    return sp.Matrix([sum(sp.diff(P[i, j], _COORDS[j]) for j in range(dim)) for i in range(dim)])


@dataclass
class ManufacturedSolution:
    """A named set of symbolic fields (exact solution, sources, fluxes) of one PDE.

    ``exprs`` maps a name to a sympy scalar, vector (column Matrix) or tensor (square Matrix).
    ``fn(name)`` lambdifies it into a numpy function of points ``X`` (n, dim) and time ``t``.
    """

    pde: str
    dim: int
    exprs: dict[str, sp.Basic]
    params: dict = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, repr=False)

    def expr(self, name: str) -> sp.Basic:
        try:
            return self.exprs[name]
        except KeyError:
            raise KeyError(f"{self.pde}: no field '{name}' (have {', '.join(self.exprs)})") from None

    def fn(self, name: str) -> Callable[..., np.ndarray]:
        """Vectorised callable ``f(X, t=0.0)``: ``X`` (n, dim) → (n,), (n, d) or (n, d, d)."""
        if name in self._cache:
            return self._cache[name]
        e = self.expr(name)
        args = list(_COORDS[: self.dim]) + [T]
        if isinstance(e, sp.MatrixBase):
            shape = e.shape
            comps = [sp.lambdify(args, e[i, j], "numpy") for i in range(shape[0]) for j in range(shape[1])]
            vector = shape[1] == 1

            def f(Xp, t=0.0, _c=comps, _s=shape, _v=vector):
                Xp = np.atleast_2d(np.asarray(Xp, dtype=float))
                n = Xp.shape[0]
                cols = [np.broadcast_to(np.asarray(c(*Xp.T[: self.dim], t), dtype=float), (n,)) for c in _c]
                out = np.stack(cols, axis=-1)
                return out if _v else out.reshape(n, *_s)
        else:
            c = sp.lambdify(args, e, "numpy")

            def f(Xp, t=0.0, _c=c):
                Xp = np.atleast_2d(np.asarray(Xp, dtype=float))
                return np.broadcast_to(np.asarray(_c(*Xp.T[: self.dim], t), dtype=float), (Xp.shape[0],)).copy()
        self._cache[name] = f
        return f

    def __contains__(self, name: str) -> bool:
        return name in self.exprs

    @property
    def names(self) -> list[str]:
        return list(self.exprs)


def _sym(e: Expr) -> sp.Expr:
    return sp.sympify(e)


def _as_vector(u: Sequence[Expr] | sp.Matrix, dim: int) -> sp.Matrix:
    v = sp.Matrix(list(u)) if not isinstance(u, sp.MatrixBase) else sp.Matrix(u)
    if v.shape != (dim, 1):
        raise ValueError(f"expected a {dim}-component displacement, got shape {v.shape}")
    return v


# ---------------------------------------------------------------------------------------------
# diffusion
# ---------------------------------------------------------------------------------------------

def diffusion(u: Expr, conductivity: Expr = 1, dim: int = 2, transient: bool = False,
              capacity: Expr = 1) -> ManufacturedSolution:
    """``capacity ∂u/∂t − ∇·(k ∇u) = f``. Fields: ``u``, ``grad_u``, ``flux`` (= −k∇u), ``source``."""
    u, k, c = _sym(u), _sym(conductivity), _sym(capacity)
    g = _grad(u, dim)
    flux = -k * g
    f = _div(flux, dim)
    if transient:
        f = f + c * sp.diff(u, T)
    return ManufacturedSolution("diffusion", dim, {"u": u, "grad_u": g, "flux": flux, "source": f,
                                                   "conductivity": k},
                                {"transient": transient})


# ---------------------------------------------------------------------------------------------
# elasticity
# ---------------------------------------------------------------------------------------------

def small_strain_elasticity(u: Sequence[Expr], lam: Expr, mu: Expr, dim: int = 2) -> ManufacturedSolution:
    """Isotropic linear elasticity (plane strain in 2D): ``−∇·σ = b``.

    Fields: ``u`` (d), ``strain`` (d, d), ``stress`` (d, d), ``body_force`` (d).
    """
    uv = _as_vector(u, dim)
    lam, mu = _sym(lam), _sym(mu)
    G = uv.jacobian(sp.Matrix(_COORDS[:dim]))
    eps = (G + G.T) / 2
    sig = lam * eps.trace() * sp.eye(dim) + 2 * mu * eps
    b = -_div_tensor(sig, dim)
    return ManufacturedSolution("small-strain elasticity", dim,
                                {"u": uv, "grad_u": G, "strain": eps, "stress": sig, "body_force": b},
                                {"lam": lam, "mu": mu})


def small_strain_anisotropic(u: Sequence[Expr], C: np.ndarray | sp.Matrix, dim: int = 2) -> ManufacturedSolution:
    """Linear elasticity with a Mandel stiffness ``C`` (3×3 in 2D, 6×6 in 3D), ``−∇·σ = b``."""
    from ..materials.base import MANDEL_PAIRS

    uv = _as_vector(u, dim)
    G = uv.jacobian(sp.Matrix(_COORDS[:dim]))
    eps = (G + G.T) / 2
    s2 = sp.sqrt(2)
    pairs = MANDEL_PAIRS[dim]
    ev = sp.Matrix([eps[i, j] * (1 if i == j else s2) for i, j in pairs])
    sv = sp.Matrix(C) * ev
    sig = sp.zeros(dim, dim)
    for k, (i, j) in enumerate(pairs):
        sig[i, j] = sig[j, i] = sv[k] / (1 if i == j else s2)
    b = -_div_tensor(sig, dim)
    return ManufacturedSolution("small-strain elasticity (anisotropic)", dim,
                                {"u": uv, "grad_u": G, "strain": eps, "stress": sig, "body_force": b})


def neo_hookean_energy(F: sp.Matrix, mu: Expr, lam: Expr) -> sp.Expr:
    """Compressible neo-Hooke ``W = μ/2 (tr FᵀF − d) − μ ln J + λ/2 (ln J)²`` [energy/volume]."""
    d = F.shape[0]
    J = F.det()
    return mu / 2 * ((F.T * F).trace() - d) - mu * sp.log(J) + lam / 2 * sp.log(J) ** 2


def finite_strain_elasticity(u: Sequence[Expr], mu: Expr = 1, lam: Expr = 1, dim: int = 2,
                             energy: Callable[[sp.Matrix], sp.Expr] | None = None) -> ManufacturedSolution:
    """Hyperelasticity in the reference configuration: ``−Div P = b``, ``P = ∂W/∂F``.

    ``energy(F)`` gives ``W`` (default: :func:`neo_hookean_energy` with ``mu``, ``lam``).
    Fields: ``u``, ``F``, ``P`` (first Piola–Kirchhoff), ``body_force``, ``J``.
    """
    uv = _as_vector(u, dim)
    G = uv.jacobian(sp.Matrix(_COORDS[:dim]))
    F = sp.eye(dim) + G
    Fs = sp.Matrix(dim, dim, lambda i, j: sp.Symbol(f"F{i}{j}", real=True))
    W = energy(Fs) if energy is not None else neo_hookean_energy(Fs, _sym(mu), _sym(lam))
    Psym = sp.Matrix(dim, dim, lambda i, j: sp.diff(W, Fs[i, j]))
    subs = {Fs[i, j]: F[i, j] for i in range(dim) for j in range(dim)}
    P = Psym.subs(subs)
    b = -_div_tensor(P, dim)
    return ManufacturedSolution("finite-strain elasticity", dim,
                                {"u": uv, "grad_u": G, "F": F, "P": P, "body_force": b, "J": F.det()},
                                {"mu": _sym(mu), "lam": _sym(lam)})


# ---------------------------------------------------------------------------------------------
# phase field
# ---------------------------------------------------------------------------------------------

def double_well(c: sp.Expr) -> sp.Expr:
    """``ψ(c) = (c² − 1)²/4`` (minima at ±1)."""
    return (c ** 2 - 1) ** 2 / 4


def _dpsi(psi: Callable[[sp.Expr], sp.Expr], c: sp.Expr) -> sp.Expr:
    s = sp.Symbol("_c", real=True)
    return sp.diff(psi(s), s).subs(s, c)


def cahn_hilliard(c: Expr, mobility: Expr | Callable[[sp.Expr], sp.Expr] = 1, kappa: Expr = 1, dim: int = 2,
                  free_energy: Callable[[sp.Expr], sp.Expr] = double_well) -> ManufacturedSolution:
    """``∂c/∂t = ∇·(M ∇μ) + S``, ``μ = ψ'(c) − κ Δc``. Fields: ``c``, ``mu``, ``source``."""
    c, kap = _sym(c), _sym(kappa)
    M = mobility(c) if callable(mobility) else _sym(mobility)
    mu = _dpsi(free_energy, c) - kap * _lap(c, dim)
    S = sp.diff(c, T) - _div(M * _grad(mu, dim), dim)
    return ManufacturedSolution("Cahn-Hilliard", dim, {"c": c, "mu": mu, "source": S, "mobility": M},
                                {"kappa": kap})


def allen_cahn(phi: Expr, mobility: Expr = 1, kappa: Expr = 1, dim: int = 2,
               free_energy: Callable[[sp.Expr], sp.Expr] = double_well) -> ManufacturedSolution:
    """``∂φ/∂t = −L (ψ'(φ) − κ Δφ) + S``. Fields: ``phi``, ``mu``, ``source``."""
    phi, L, kap = _sym(phi), _sym(mobility), _sym(kappa)
    mu = _dpsi(free_energy, phi) - kap * _lap(phi, dim)
    S = sp.diff(phi, T) + L * mu
    return ManufacturedSolution("Allen-Cahn", dim, {"phi": phi, "mu": mu, "source": S}, {"L": L, "kappa": kap})


# ---------------------------------------------------------------------------------------------
# ready-made smooth solutions (non-polynomial, so no element reproduces them exactly)
# ---------------------------------------------------------------------------------------------

def default_scalar(dim: int, time: bool = False, periodic_length: float | None = None) -> sp.Expr:
    """A smooth, non-polynomial scalar field; zero on the boundary of [0,1]^d unless periodic."""
    cs = _COORDS[:dim]
    if periodic_length is not None:
        k = 2 * sp.pi / sp.nsimplify(periodic_length)
        e = sp.Mul(*[sp.cos(k * c) for c in cs]) / 2 + sp.sin(k * cs[0]) / 4
    else:
        e = sp.Mul(*[sp.sin(sp.pi * c) for c in cs]) * sp.exp(cs[0] / 2)
    if time:
        e = e * sp.exp(-T / 2) if periodic_length is None else e * (1 + T) / (1 + 2 * T)
    return e


def default_displacement(dim: int, amplitude: float = 0.05) -> sp.Matrix:
    """A smooth displacement field on [0,1]^d (moderate amplitude keeps J > 0 for finite strain)."""
    a = sp.nsimplify(amplitude)
    cs = _COORDS[:dim]
    comps = []
    for i in range(dim):
        e = a * sp.sin(sp.pi * (i + 1) * cs[0] / 2) * sp.cos(sp.pi * cs[-1] / (i + 2))
        e += a / 2 * sp.Mul(*[sp.sin(sp.pi * c) for c in cs]) * (-1) ** i
        comps.append(e)
    return sp.Matrix(comps)
