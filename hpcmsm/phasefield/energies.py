"""Bulk free-energy densities ψ(φ) for phase-field models (pure, vectorised numpy).

Every density gives ψ, ψ′, ψ″ on arrays and an Eyre convex–concave split ψ = ψ_c + ψ_e
(ψ_c convex, ψ_e concave).  The time stepper treats ψ_c implicitly and ψ_e explicitly, which makes
the scheme unconditionally energy stable; a density without a known split returns ψ_e = 0 (fully
implicit).  Units: energy per volume (any consistent unit system; PFHub is dimensionless).

Extensibility: the solvers only call :meth:`FreeEnergy.implicit` / :meth:`FreeEnergy.explicit`
and :meth:`FreeEnergy.psi`, plus the optional list of :class:`EnergyTerm` contributions (for
instance an elastic energy with a composition-dependent eigenstrain, whose chemical potential is
non-local): adding a term does not change the solvers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from ..errors import InputError

Array = np.ndarray


class FreeEnergy:
    """Base class: subclasses implement ``psi``, ``dpsi``, ``d2psi`` and ``split``."""

    name = "free energy"
    #: open interval of admissible values (log forms); None = the whole real line
    domain: tuple[float, float] | None = None

    def psi(self, c: Array) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def dpsi(self, c: Array) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def d2psi(self, c: Array) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    # convex (implicit) / concave (explicit) split; default: everything implicit
    def dpsi_convex(self, c: Array) -> Array:
        return self.dpsi(c)

    def d2psi_convex(self, c: Array) -> Array:
        return self.d2psi(c)

    def dpsi_concave(self, c: Array) -> Array:
        return np.zeros_like(c)

    def implicit(self, c: Array, split: bool) -> tuple[Array, Array]:
        """(ψ′ part evaluated at the new time, its derivative) for the chosen scheme."""
        if split:
            return self.dpsi_convex(c), self.d2psi_convex(c)
        return self.dpsi(c), self.d2psi(c)

    def explicit(self, c_old: Array, split: bool) -> Array:
        """ψ′ part evaluated at the old time (zero for the fully implicit scheme)."""
        return self.dpsi_concave(c_old) if split else np.zeros_like(c_old)

    def check_domain(self, values_min: float, values_max: float) -> None:
        """Raise :class:`InputError` if values lie outside the open domain of ψ."""
        if self.domain is None:
            return
        lo, hi = self.domain
        if not (values_min > lo and values_max < hi):
            raise InputError(f"{self.name}: initial values [{values_min:.6g}, {values_max:.6g}] lie outside "
                             f"the domain ({lo:g}, {hi:g}) of the free energy")


@dataclass
class DoubleWell(FreeEnergy):
    """PFHub benchmark 1: ψ = ρ (c − c_α)² (c_β − c)².  Minima at c_α, c_β (ψ = 0).

    Split with u = c − (c_α+c_β)/2, d = (c_β−c_α)/2: ψ = ρu⁴ + ρd⁴ (convex) − 2ρd²u² (concave).
    """

    rho: float = 5.0
    c_alpha: float = 0.3
    c_beta: float = 0.7
    name = "double well"

    def __post_init__(self):
        if self.rho <= 0 or not self.c_beta > self.c_alpha:
            raise InputError("double well: need rho > 0 and c_beta > c_alpha")
        self._m = 0.5 * (self.c_alpha + self.c_beta)
        self._d = 0.5 * (self.c_beta - self.c_alpha)

    def psi(self, c):
        return self.rho * (c - self.c_alpha) ** 2 * (self.c_beta - c) ** 2

    def dpsi(self, c):
        u = c - self._m
        return 4 * self.rho * u * (u * u - self._d ** 2)

    def d2psi(self, c):
        u = c - self._m
        return self.rho * (12 * u * u - 4 * self._d ** 2)

    def dpsi_convex(self, c):
        u = c - self._m
        return 4 * self.rho * u ** 3

    def d2psi_convex(self, c):
        u = c - self._m
        return 12 * self.rho * u * u

    def dpsi_concave(self, c):
        return -4 * self.rho * self._d ** 2 * (c - self._m)

    def interface_width(self, kappa: float) -> float:
        """δ in the exact 1D equilibrium c = m + d·tanh(x/δ): δ = √(κ/(2ρ))/d (length)."""
        return float(np.sqrt(kappa / (2 * self.rho)) / self._d)

    def surface_tension(self, kappa: float) -> float:
        """σ = ∫κ (dc/dx)² dx = (Δc)³ √(2κρ)/6 for the quartic double well."""
        return float((self.c_beta - self.c_alpha) ** 3 * np.sqrt(2 * kappa * self.rho) / 6)


@dataclass
class Landau(FreeEnergy):
    """ψ = (A/2) φ² + (B/4) φ⁴ (A < 0: double well at φ = ±√(−A/B))."""

    A: float = -1.0
    B: float = 1.0
    name = "Landau"

    def __post_init__(self):
        if self.B <= 0:
            raise InputError("Landau: need B > 0")

    def psi(self, c):
        return 0.5 * self.A * c * c + 0.25 * self.B * c ** 4

    def dpsi(self, c):
        return self.A * c + self.B * c ** 3

    def d2psi(self, c):
        return self.A + 3 * self.B * c * c

    def dpsi_convex(self, c):
        return self.B * c ** 3 + (self.A * c if self.A > 0 else 0 * c)

    def d2psi_convex(self, c):
        return 3 * self.B * c * c + (self.A if self.A > 0 else 0.0)

    def dpsi_concave(self, c):
        return self.A * c if self.A < 0 else np.zeros_like(c)


@dataclass
class RegularSolution(FreeEnergy):
    """ψ = θ [c ln c + (1−c) ln(1−c)] + χ c (1−c)  (θ = RT/V_m, χ = Ω/V_m; spinodal for χ > 2θ).

    Defined on 0 < c < 1; the entropic part is convex (implicit), the enthalpic part concave.
    """

    theta: float = 1.0
    chi: float = 2.5
    name = "regular solution"
    domain = (0.0, 1.0)

    def __post_init__(self):
        if self.theta <= 0 or self.chi < 0:
            raise InputError("regular solution: need theta > 0 and chi >= 0")

    @staticmethod
    def _safe(c):
        # outside (0,1) return NaN so Newton's line search backs off and the step is rejected
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where((c > 0) & (c < 1), c, np.nan)

    def psi(self, c):
        c = self._safe(c)
        return self.theta * (c * np.log(c) + (1 - c) * np.log1p(-c)) + self.chi * c * (1 - c)

    def dpsi(self, c):
        return self.dpsi_convex(c) + self.dpsi_concave(c)

    def d2psi(self, c):
        return self.d2psi_convex(c) - 2 * self.chi

    def dpsi_convex(self, c):
        c = self._safe(c)
        return self.theta * (np.log(c) - np.log1p(-c))

    def d2psi_convex(self, c):
        c = self._safe(c)
        return self.theta / (c * (1 - c))

    def dpsi_concave(self, c):
        return self.chi * (1 - 2 * c)


class UserDefined(FreeEnergy):
    """ψ from a Python/sympy expression in the variable ``c``, e.g. ``"c**2*(1-c)**2"``.

    ψ′ and ψ″ are derived symbolically and lambdified to vectorised numpy.  An optional
    ``concave`` expression is the part treated explicitly (it must be concave; ψ − concave
    convex), otherwise the scheme is fully implicit.
    """

    def __init__(self, expression: str, concave: str | None = None, domain: tuple[float, float] | None = None):
        import sympy as sp

        c = sp.Symbol("c", real=True)
        try:
            f = sp.sympify(expression, locals={"c": c})
            g = sp.sympify(concave, locals={"c": c}) if concave else sp.Integer(0)
        except (sp.SympifyError, TypeError, SyntaxError) as e:
            raise InputError(f"user free energy: cannot parse {expression!r}: {e}") from None
        if f.free_symbols - {c} or g.free_symbols - {c}:
            raise InputError(f"user free energy: only the variable 'c' is allowed in {expression!r}")
        self.expression, self.concave = expression, concave
        self.name = f"user ψ = {expression}"
        self.domain = domain
        lam = lambda e: sp.lambdify(c, e, "numpy")  # noqa: E731
        self._f, self._df, self._d2f = lam(f), lam(sp.diff(f, c)), lam(sp.diff(f, c, 2))
        self._dg, self._d2g = lam(sp.diff(g, c)), lam(sp.diff(g, c, 2))

    @staticmethod
    def _arr(v, c):
        return np.broadcast_to(np.asarray(v, dtype=float), np.shape(c)).copy()

    def psi(self, c):
        return self._arr(self._f(c), c)

    def dpsi(self, c):
        return self._arr(self._df(c), c)

    def d2psi(self, c):
        return self._arr(self._d2f(c), c)

    def dpsi_convex(self, c):
        return self.dpsi(c) - self._arr(self._dg(c), c)

    def d2psi_convex(self, c):
        return self.d2psi(c) - self._arr(self._d2g(c), c)

    def dpsi_concave(self, c):
        return self._arr(self._dg(c), c)


class Callables(FreeEnergy):
    """ψ from three vectorised Python callables (fully implicit unless ``dpsi_e`` is given)."""

    def __init__(self, psi: Callable, dpsi: Callable, d2psi: Callable, dpsi_e: Callable | None = None,
                 d2psi_e: Callable | None = None, name: str = "user"):
        self._p, self._dp, self._d2p = psi, dpsi, d2psi
        self._dpe, self._d2pe = dpsi_e, d2psi_e
        self.name = name

    def psi(self, c):
        return self._p(c)

    def dpsi(self, c):
        return self._dp(c)

    def d2psi(self, c):
        return self._d2p(c)

    def dpsi_convex(self, c):
        return self._dp(c) - (self._dpe(c) if self._dpe else 0)

    def d2psi_convex(self, c):
        return self._d2p(c) - (self._d2pe(c) if self._d2pe else 0)

    def dpsi_concave(self, c):
        return self._dpe(c) if self._dpe else np.zeros_like(c)


class EnergyTerm(Protocol):
    """An extra contribution to F (e.g. elastic energy with eigenstrain ε*(c)).

    ``energy(c)`` returns this rank's part of the integral (already multiplied by the cell
    volume); ``potential(c)`` its variational derivative δF/δc on the owned cells and
    ``potential_derivative(c)`` an approximation of its diagonal (used in the Jacobian).  ``c`` is
    the owned block of the field, natural (z, y, x) layout; terms needing neighbours or global
    solves (FFT elasticity) do their own communication on the solver's ``comm``.
    """

    def energy(self, c: Array) -> float: ...

    def potential(self, c: Array) -> Array: ...

    def potential_derivative(self, c: Array) -> Array: ...


def make_energy(kind: str, **params) -> FreeEnergy:
    """Factory used by the TOML input: ``kind`` ∈ double_well, landau, regular_solution, user."""
    if kind == "double_well":
        return DoubleWell(**params)
    if kind == "landau":
        return Landau(**params)
    if kind == "regular_solution":
        return RegularSolution(**params)
    if kind == "user":
        return UserDefined(**params)
    raise InputError(f"unknown free energy {kind!r} (double_well, landau, regular_solution, user)")
