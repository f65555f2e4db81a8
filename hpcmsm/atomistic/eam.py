"""Embedded-atom method (EAM): E = Σ_i F(ρ_i) + ½ Σ_{i≠j} φ(r_ij),  ρ_i = Σ_{j≠i} f(r_ij).

* :func:`read_setfl` / :func:`write_setfl` — the DYNAMO/LAMMPS ``eam/alloy`` (setfl) file: three
  comment lines; ``N el_1 … el_N``; ``Nrho drho Nr dr rcut``; per element a line ``Z mass a
  lattice`` followed by Nrho values of F(ρ) on ρ = k·drho and Nr values of f(r) on r = k·dr; then,
  for i = 1…N, j = 1…i, Nr values of r·φ_ij(r).  Values may wrap over lines freely; the reader
  counts them strictly and names the file in every error.
* :class:`SetflEAM` — one element of a setfl file with natural cubic-spline interpolation of F(ρ),
  f(r) and r·φ(r) (φ = (rφ)/r and its derivatives by the quotient rule); analytic first and second
  derivatives of the splines.
* :class:`AnalyticEAM` — a smooth analytic single-element EAM (exponential density and pair
  repulsion, quadratic embedding, quintic switch to zero at r_c), used to generate setfl files and
  as the exact reference in the tests.  It is *not* a fitted published potential: its parameters
  (eV, Å; FCC Cu-like spacing) are chosen, and everything is verified against the analytic form.
* :func:`eam_energy` — vectorised energy, forces and the strain derivative (virial) of an explicit
  atom set (free or periodic box).
* :class:`EAMCauchyBorn` — Cauchy–Born W, P = ∂W/∂F and A = ∂²W/∂F∂F of a Bravais lattice; the
  many-body term F''(ρ) (∂ρ/∂F ⊗ ∂ρ/∂F) is what breaks the Cauchy relation C12 = C44.
"""
from __future__ import annotations

import os

import numpy as np

from ..errors import InputError

# -----------------------------------------------------------------------------------------------
# setfl I/O
# -----------------------------------------------------------------------------------------------


class Setfl:
    """Contents of a setfl file (tables on the uniform grids ρ_k = k·drho, r_k = k·dr)."""

    def __init__(self, elements, header, nrho, drho, nr, dr, rcut, embed, density, rphi, comments=("", "", "")):
        self.elements = list(elements)
        self.header = list(header)          # per element (Z, mass, a, lattice)
        self.nrho, self.drho, self.nr, self.dr, self.rcut = int(nrho), float(drho), int(nr), float(dr), float(rcut)
        self.embed = np.asarray(embed, float)      # (N, nrho)
        self.density = np.asarray(density, float)  # (N, nr)
        self.rphi = dict(rphi)                     # (i, j) with i >= j -> (nr,)
        self.comments = list(comments)


def read_setfl(path: str) -> Setfl:
    """Read an ``eam/alloy`` setfl file with strict validation (:class:`InputError` naming the file)."""
    name = os.fspath(path)
    try:
        with open(name) as fh:
            lines = fh.read().splitlines()
    except OSError as e:
        raise InputError(f"{name}: cannot read EAM setfl file ({e.strerror})") from None
    if len(lines) < 5:
        raise InputError(f"{name}: a setfl file needs 3 comment lines, an element line and a grid line")
    head = lines[3].split()
    try:
        n = int(head[0])
    except (ValueError, IndexError):
        raise InputError(f"{name}: line 4 must be 'N element_1 ... element_N'") from None
    if n < 1 or len(head) != n + 1:
        raise InputError(f"{name}: line 4 announces {head[0] if head else '?'} elements but lists {len(head) - 1}")
    elements = head[1:]
    grid = lines[4].split()
    try:
        if len(grid) != 5:
            raise ValueError
        nrho, drho, nr, dr, rcut = int(grid[0]), float(grid[1]), int(grid[2]), float(grid[3]), float(grid[4])
    except ValueError:
        raise InputError(f"{name}: line 5 must be 'Nrho drho Nr dr cutoff' (got {lines[4].strip()!r})") from None
    if nrho < 5 or nr < 5 or not (drho > 0 and dr > 0 and rcut > 0):
        raise InputError(f"{name}: grid needs Nrho, Nr >= 5 and drho, dr, cutoff > 0 (line 5)")
    if rcut > (nr - 1) * dr * (1 + 1e-12):
        raise InputError(f"{name}: cutoff {rcut} lies beyond the r table ((Nr-1)·dr = {(nr - 1) * dr:.6g})")
    # the rest is a token stream: per element 4 header tokens + Nrho + Nr numbers, then the pairs
    tokens = " ".join(lines[5:]).split()
    npairs = n * (n + 1) // 2
    expected = n * (4 + nrho + nr) + npairs * nr
    if len(tokens) != expected:
        raise InputError(f"{name}: expected {expected} values after line 5 for {n} element(s) with Nrho = {nrho}, "
                         f"Nr = {nr} ({n} x (4 + Nrho + Nr) + {npairs} x Nr), found {len(tokens)}")
    pos = 0

    def numbers(k, what):
        nonlocal pos
        try:
            out = np.array([float(t) for t in tokens[pos:pos + k]])
        except ValueError:
            bad = next(t for t in tokens[pos:pos + k] if not _isfloat(t))
            raise InputError(f"{name}: non-numeric value {bad!r} in {what}") from None
        if not np.all(np.isfinite(out)):
            raise InputError(f"{name}: non-finite value in {what}")
        pos += k
        return out

    header, embed, density = [], [], []
    for e in elements:
        h = tokens[pos:pos + 4]
        try:
            header.append((int(h[0]), float(h[1]), float(h[2]), h[3]))
        except ValueError:
            raise InputError(f"{name}: element {e}: header must be 'Z mass a lattice' (got {' '.join(h)!r})") from None
        pos += 4
        embed.append(numbers(nrho, f"F(rho) of {e}"))
        density.append(numbers(nr, f"rho(r) of {e}"))
    rphi = {}
    for i in range(n):
        for j in range(i + 1):
            rphi[(i, j)] = numbers(nr, f"r*phi(r) of {elements[i]}-{elements[j]}")
    return Setfl(elements, header, nrho, drho, nr, dr, rcut, embed, density, rphi, lines[:3])


def _isfloat(t: str) -> bool:
    try:
        float(t)
        return True
    except ValueError:
        return False


def write_setfl(path: str, s: Setfl, per_line: int = 5) -> None:
    """Write ``s`` in the setfl layout (``per_line`` values per line, %.16e)."""
    def block(v):
        v = np.asarray(v, float)
        return "\n".join(" ".join(f"{x:.16e}" for x in v[k:k + per_line]) for k in range(0, len(v), per_line))

    out = [*(list(s.comments) + ["", "", ""])[:3],
           f"{len(s.elements)} " + " ".join(s.elements),
           f"{s.nrho} {s.drho:.16e} {s.nr} {s.dr:.16e} {s.rcut:.16e}"]
    for e, (Z, m, a, lat) in enumerate(s.header):
        out.append(f"{Z} {m:.10g} {a:.10g} {lat}")
        out.append(block(s.embed[e]))
        out.append(block(s.density[e]))
    n = len(s.elements)
    for i in range(n):
        for j in range(i + 1):
            out.append(block(s.rphi[(i, j)]))
    with open(path, "w") as fh:
        fh.write("\n".join(out) + "\n")


# -----------------------------------------------------------------------------------------------
# potentials
# -----------------------------------------------------------------------------------------------


class EAMBase:
    """Common interface: ``embed(ρ)``, ``density(r)``, ``pair(r)`` each return (value, ′, ″);
    ``rc`` the cutoff.  ``eam = True`` tells the Cauchy–Born factory to use :class:`EAMCauchyBorn`."""

    eam = True
    three_body = False
    units = "metal"
    cutoff = "smooth"
    rc: float

    def describe(self) -> dict:  # pragma: no cover - overridden
        return {"potential": type(self).__name__, "rc": self.rc}


def _switch(r, r_on, rc):
    """Quintic switch S(r) = 1 below r_on, 0 above rc, C² (and its first two derivatives)."""
    w = rc - r_on
    t = np.clip((r - r_on) / w, 0.0, 1.0)
    S = 1 - t**3 * (10 - 15 * t + 6 * t * t)
    S1 = -30 * t * t * (1 - t) ** 2 / w
    S2 = -60 * t * (1 - t) * (1 - 2 * t) / w**2
    return S, S1, S2


class AnalyticEAM(EAMBase):
    """f(r) = f_e e^{−β(r/r_e − 1)} S(r),  φ(r) = φ_e e^{−γ(r/r_e − 1)} S(r),
    F(ρ) = E_F [c (ρ/ρ_e)² − 2 ρ/ρ_e] (convex; c < 1 puts the crystal on the falling branch, F′ < 0,
    which balances the pair repulsion);  S the quintic switch from r_on to r_c.  Defaults (eV, Å) are
    chosen so that FCC has roughly copper's spacing and cohesive energy (a ≈ 3.6 Å, E_coh ≈ −3.5 eV);
    they are not a published fit."""

    def __init__(self, r_e: float = 2.556, f_e: float = 1.0, beta: float = 5.85, phi_e: float = 0.556,
                 gamma: float = 8.0, E_F: float = 4.56, c: float = 0.5, rho_e: float | None = None,
                 r_on: float = 4.6, rc: float = 5.0):
        if not (0 < r_on < rc and r_e > 0 and beta > 0 and gamma > 0 and E_F > 0):
            raise InputError("AnalyticEAM needs 0 < r_on < rc and positive r_e, beta, gamma, E_F")
        self.r_e, self.f_e, self.beta, self.phi_e, self.gamma, self.E_F = r_e, f_e, beta, phi_e, gamma, E_F
        self.c = float(c)
        self.rho_e = 12 * f_e if rho_e is None else float(rho_e)
        self.r_on, self.rc = float(r_on), float(rc)

    def describe(self) -> dict:
        return {"potential": "AnalyticEAM", "r_e": self.r_e, "f_e": self.f_e, "beta": self.beta,
                "phi_e": self.phi_e, "gamma": self.gamma, "E_F": self.E_F, "c": self.c, "rho_e": self.rho_e,
                "r_on": self.r_on, "rc": self.rc}

    def _exp(self, r, A, k):
        r = np.asarray(r, float)
        e = A * np.exp(-k * (r / self.r_e - 1))
        S, S1, S2 = _switch(r, self.r_on, self.rc)
        c = k / self.r_e
        e1, e2 = -c * e, c * c * e
        inside = r < self.rc
        z = np.zeros_like(r)
        return (np.where(inside, e * S, z), np.where(inside, e1 * S + e * S1, z),
                np.where(inside, e2 * S + 2 * e1 * S1 + e * S2, z))

    def density(self, r):
        return self._exp(r, self.f_e, self.beta)

    def pair(self, r):
        return self._exp(r, self.phi_e, self.gamma)

    def embed(self, rho):
        s = np.asarray(rho, float) / self.rho_e
        E = self.E_F
        c = self.c
        return E * (c * s * s - 2 * s), E * (2 * c * s - 2) / self.rho_e, np.full_like(s, 2 * c * E / self.rho_e**2)

    def to_setfl(self, element: str = "X", Z: int = 29, mass: float = 63.546, a: float = 3.615,
                 lattice: str = "fcc", nrho: int = 2000, rho_max: float | None = None, nr: int = 2000) -> Setfl:
        """Tabulate on setfl grids (r up to r_c, ρ up to ``rho_max``, default 3 ρ_e)."""
        rho_max = 3 * self.rho_e if rho_max is None else rho_max
        drho = rho_max / (nrho - 1)
        dr = self.rc / (nr - 1)
        rho = np.arange(nrho) * drho
        r = np.arange(nr) * dr
        return Setfl([element], [(Z, mass, a, lattice)], nrho, drho, nr, dr, self.rc,
                     [self.embed(rho)[0]], [self.density(r)[0]], {(0, 0): r * self.pair(r)[0]},
                     ["analytic EAM generated by hpcmsm (not a fitted potential)",
                      " ".join(f"{k}={v:.10g}" for k, v in self.describe().items() if k != "potential"),
                      "units: eV, Angstrom"])


class SetflEAM(EAMBase):
    """One element (or the pure-element interactions of ``element``) of a setfl file, natural
    cubic splines through the tables (C², so the Cauchy–Born tangent is continuous)."""

    def __init__(self, source, element: str | None = None):
        from scipy.interpolate import CubicSpline

        s = read_setfl(source) if not isinstance(source, Setfl) else source
        self.path = None if isinstance(source, Setfl) else os.fspath(source)
        if element is None:
            e = 0
        elif element in s.elements:
            e = s.elements.index(element)
        else:
            raise InputError(f"{self.path or 'setfl'}: element {element!r} not in the file ({', '.join(s.elements)})")
        self.element, self.setfl = s.elements[e], s
        self.rc = s.rcut
        rho = np.arange(s.nrho) * s.drho
        r = np.arange(s.nr) * s.dr
        self.rho_max, self.r_max = rho[-1], r[-1]
        self._F = CubicSpline(rho, s.embed[e], bc_type="natural")
        self._f = CubicSpline(r, s.density[e], bc_type="natural")
        self._z = CubicSpline(r, s.rphi[(e, e)], bc_type="natural")
        self._dF, self._d2F = self._F.derivative(1), self._F.derivative(2)
        self._df, self._d2f = self._f.derivative(1), self._f.derivative(2)
        self._dz, self._d2z = self._z.derivative(1), self._z.derivative(2)

    def describe(self) -> dict:
        return {"potential": "SetflEAM", "file": self.path, "element": self.element, "rc": self.rc}

    def embed(self, rho):
        rho = np.asarray(rho, float)
        if np.any(rho > self.rho_max) or np.any(rho < 0):
            raise InputError(f"{self.path or 'setfl'}: electron density {float(np.max(rho)):.4g} outside the "
                             f"F(rho) table [0, {self.rho_max:.4g}]")
        return self._F(rho), self._dF(rho), self._d2F(rho)

    def density(self, r):
        r = np.asarray(r, float)
        inside = r < self.rc
        rs = np.where(inside, r, 0.0)
        z = np.zeros_like(r)
        return (np.where(inside, self._f(rs), z), np.where(inside, self._df(rs), z),
                np.where(inside, self._d2f(rs), z))

    def pair(self, r):
        r = np.asarray(r, float)
        inside = (r < self.rc) & (r > 0)
        rs = np.where(inside, r, 1.0)
        z, z1, z2 = self._z(rs), self._dz(rs), self._d2z(rs)
        p = z / rs
        p1 = (z1 - p) / rs
        p2 = (z2 - 2 * p1) / rs
        zero = np.zeros_like(r)
        return np.where(inside, p, zero), np.where(inside, p1, zero), np.where(inside, p2, zero)


def make_eam(spec: dict):
    """``{"file": path, "element": name}`` → :class:`SetflEAM`; ``{"analytic": true, ...}`` →
    :class:`AnalyticEAM` with the remaining keys as parameters."""
    spec = dict(spec)
    if spec.pop("analytic", False):
        return AnalyticEAM(**spec)
    if "file" not in spec:
        raise InputError("EAM potential needs a setfl 'file'")
    return SetflEAM(spec["file"], spec.get("element"))


# -----------------------------------------------------------------------------------------------
# explicit atoms
# -----------------------------------------------------------------------------------------------


def eam_energy(pot: EAMBase, x: np.ndarray, box: np.ndarray | None = None, pairs: np.ndarray | None = None):
    """Energy, forces (N, d) = −∂E/∂x and the strain derivative Σ = ∂E/∂ε (d, d) (virial; the
    Cauchy stress of a periodic box is Σ/V) of positions ``x`` (N, d); ``box`` periodic lengths
    (0 = free) or None.  Vectorised over pairs (each i < j once)."""
    from .atoms import minimum_image, neighbour_pairs

    x = np.asarray(x, float)
    N, d = x.shape
    if pairs is None:
        pairs = neighbour_pairs(x, pot.rc, box)
    i, j = pairs[:, 0], pairs[:, 1]
    r = minimum_image(x[j] - x[i], box)
    rn = np.maximum(np.linalg.norm(r, axis=1), 1e-12)
    f, f1, _ = pot.density(rn)
    p, p1, _ = pot.pair(rn)
    rho = np.bincount(i, f, N) + np.bincount(j, f, N)
    F, F1, _ = pot.embed(rho)
    E = float(F.sum() + p.sum())
    dEdr = p1 + (F1[i] + F1[j]) * f1
    g = (dEdr / rn)[:, None] * r  # ∂E/∂x_j of each pair
    grad = np.zeros((N, d))
    for k in range(d):
        grad[:, k] = np.bincount(j, g[:, k], N) - np.bincount(i, g[:, k], N)
    virial = np.einsum("p,pi,pj->ij", dEdr / rn, r, r)
    return E, -grad, virial


# -----------------------------------------------------------------------------------------------
# Cauchy–Born
# -----------------------------------------------------------------------------------------------


class EAMCauchyBorn:
    """Cauchy–Born model of a Bravais ``lattice`` with an EAM potential (same interface as
    :class:`~hpcmsm.atomistic.cauchy_born.CauchyBorn`: ``evaluate(F, order)`` → CBResult).

    With all bonds d_k of the site (both directions), r_k = F d_k, ρ = Σ_k f(r_k):

        V₀ W = F(ρ) + ½ Σ_k φ(r_k)
        V₀ P = F′(ρ) Σ_k f′ r̂_k ⊗ d_k + ½ Σ_k φ′ r̂_k ⊗ d_k
        V₀ A = F″(ρ) R ⊗ R + Σ_k [F′ f″ + ½ φ″] (r̂ ⊗ d) ⊗ (r̂ ⊗ d) + [F′ f′ + ½ φ′]/r (I − r̂r̂) ⊗ d ⊗ d,
               R = Σ_k f′ r̂_k ⊗ d_k (= ∂ρ/∂F).
    """

    def __init__(self, lattice, potential, relax: bool = True, skin: float = 1.3, chunk: int = 4096):
        from .lattices import bonds

        if lattice.nbasis != 1:
            raise InputError(f"EAM Cauchy-Born supports Bravais lattices (one atom per cell); "
                             f"{lattice.name} has {lattice.nbasis}")
        rnn = lattice.nearest_neighbour_distance()
        if potential.rc <= rnn:
            raise InputError(f"cutoff rc = {potential.rc:.6g} is not beyond the nearest-neighbour distance "
                             f"{rnn:.6g} of the {lattice.name} lattice")
        self.lattice, self.potential, self.relax = lattice, potential, relax
        self.dim, self.nb, self.V0 = lattice.dim, 1, lattice.volume
        self.chunk = int(chunk)
        self._skin = float(skin)
        self.bonds = bonds(lattice, potential.rc * skin)
        self.d = self.bonds.d

    def _ensure(self, F) -> None:
        from .lattices import bonds

        smin = np.linalg.svd(F, compute_uv=False)[:, -1].min()
        need = self.potential.rc / smin
        if need > self._skin * self.potential.rc * 0.999:
            self._skin = 1.1 * need / self.potential.rc
            self.bonds = bonds(self.lattice, self.potential.rc * self._skin)
            self.d = self.bonds.d

    def evaluate(self, F: np.ndarray, order: int = 2, shifts=None, relax=None):
        from .cauchy_born import CBResult, check_deformation

        F = check_deformation(F, self.dim)
        self._ensure(F)
        n, dm = F.shape[0], self.dim
        W = np.empty(n)
        P = np.empty((n, dm, dm)) if order >= 1 else None
        A = np.empty((n, dm, dm, dm, dm)) if order >= 2 else None
        D = self.d
        I = np.eye(dm)
        for s in range(0, n, self.chunk):
            Fc = F[s:s + self.chunk]
            r = np.einsum("niJ,kJ->nki", Fc, D)
            rn = np.linalg.norm(r, axis=-1)
            f, f1, f2 = self.potential.density(rn)
            p, p1, p2 = self.potential.pair(rn)
            rho = f.sum(axis=1)
            Fe, F1, F2 = self.potential.embed(rho)
            W[s:s + self.chunk] = (Fe + 0.5 * p.sum(axis=1)) / self.V0
            if order < 1:
                continue
            u = r / rn[..., None]
            R = np.einsum("nk,nki,kJ->niJ", f1, u, D)
            P[s:s + self.chunk] = (F1[:, None, None] * R + 0.5 * np.einsum("nk,nki,kJ->niJ", p1, u, D)) / self.V0
            if order < 2:
                continue
            a = F1[:, None] * f2 + 0.5 * p2
            b = (F1[:, None] * f1 + 0.5 * p1) / rn
            Ac = F2[:, None, None, None, None] * np.einsum("niJ,nkL->niJkL", R, R)
            Ac += np.einsum("nq,nqi,nqk,qJ,qL->niJkL", a - b, u, u, D, D, optimize=True)
            Ac += np.einsum("nq,ik,qJ,qL->niJkL", b, I, D, D, optimize=True)
            A[s:s + self.chunk] = Ac / self.V0
        return CBResult(W, P, A, np.zeros((n, 1, dm)), A)
