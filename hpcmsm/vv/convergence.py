"""Convergence studies: observed orders, Richardson extrapolation and the Grid Convergence Index.

* :func:`observed_orders` — pairwise orders ``p_i = ln(e_i/e_{i+1}) / ln(h_i/h_{i+1})``.
* :func:`fit_order` — least-squares fit ``ln e = ln C + p ln h`` over the finest levels.
* :func:`richardson` — ``φ_ext = (r^p φ_fine − φ_coarse)/(r^p − 1)``.
* :func:`gci_three_grid` — Roache's GCI by the procedure of Celik et al. (2008), J. Fluids Eng.
  130, 078001: apparent order from three grids by fixed-point iteration (non-constant refinement
  ratio, oscillatory convergence detected by the sign ``s``), extrapolated value, relative errors and
  ``GCI_fine = Fs e_a / (r^p − 1)`` with safety factor ``Fs = 1.25`` for three or more grids.
* :func:`gci_two_grid` — two grids and an assumed order: ``Fs = 3`` (Roache).
* :class:`ConvergenceStudy` — runs a solver over refinement levels (space or time), checks the
  observed order against the expected one, writes a PNG plot and a markdown table.

Grid sizes ``h`` can be mesh sizes or time steps; any positive "step" works.  For unstructured
grids use ``h = (V/N)^(1/d)`` (:func:`representative_h`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np


def representative_h(ncells: float, dim: int, volume: float = 1.0) -> float:
    """Representative grid size ``(V/N)^(1/d)``."""
    return (volume / ncells) ** (1.0 / dim)


def observed_orders(h: Sequence[float], err: Sequence[float]) -> np.ndarray:
    """Pairwise observed orders between consecutive levels (length ``n − 1``)."""
    h, e = np.asarray(h, float), np.abs(np.asarray(err, float))
    if h.shape != e.shape or h.size < 2:
        raise ValueError("observed_orders needs two or more (h, err) pairs of equal length")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(e[:-1] / e[1:]) / np.log(h[:-1] / h[1:])


def fit_order(h: Sequence[float], err: Sequence[float], nfinest: int | None = None) -> tuple[float, float]:
    """Least-squares ``e ≈ C h^p`` over the ``nfinest`` smallest ``h`` (all by default). Returns (p, C)."""
    h, e = np.asarray(h, float), np.abs(np.asarray(err, float))
    order = np.argsort(h)
    h, e = h[order], e[order]
    if nfinest is not None:
        h, e = h[:nfinest], e[:nfinest]
    if h.size < 2:
        raise ValueError("fit_order needs at least two levels")
    if np.any(e <= 0) or np.any(~np.isfinite(e)):
        return float("nan"), float("nan")
    A = np.vstack([np.ones_like(h), np.log(h)]).T
    (lnC, p), *_ = np.linalg.lstsq(A, np.log(e), rcond=None)
    return float(p), float(math.exp(lnC))


def richardson(phi_fine: float, phi_coarse: float, r: float, p: float) -> float:
    """Richardson extrapolation from two levels with refinement ratio ``r = h_coarse/h_fine > 1``."""
    rp = r ** p
    return (rp * phi_fine - phi_coarse) / (rp - 1.0)


@dataclass
class GCIResult:
    """Three-grid GCI (index 1 = finest). Relative errors are fractions (0.015 = 1.5 %)."""

    phi: tuple[float, float, float]
    r21: float
    r32: float
    p: float                 # apparent order
    s: int                   # sign of ε32/ε21: −1 means oscillatory convergence
    phi_ext21: float
    phi_ext32: float
    ea21: float
    eext21: float
    gci_fine21: float
    ea32: float
    gci_coarse32: float
    asymptotic_ratio: float  # GCI32 / (r21^p GCI21) ≈ 1 in the asymptotic range
    iterations: int
    safety_factor: float = 1.25

    def as_dict(self) -> dict:
        return asdict(self)


def apparent_order(phi: Sequence[float], r21: float, r32: float, tol: float = 1e-12,
                   maxit: int = 500) -> tuple[float, int, int]:
    """Apparent order of Celik et al. (2008), eqs. (3)–(5), by fixed-point iteration.

    ``p = |ln|ε32/ε21| + q(p)| / ln r21``, ``q(p) = ln((r21^p − s)/(r32^p − s))``, ``s = sign(ε32/ε21)``.
    Returns ``(p, s, iterations)``.
    """
    f1, f2, f3 = map(float, phi)
    e21, e32 = f2 - f1, f3 - f2
    if e21 == 0 or e32 == 0:
        raise ValueError("apparent_order: two grids give identical values; the order is undefined")
    ratio = e32 / e21
    s = 1 if ratio > 0 else -1
    lr = math.log(abs(ratio))
    p = abs(lr) / math.log(r21)
    for it in range(1, maxit + 1):
        a, b = r21 ** p - s, r32 ** p - s
        q = math.log(a / b) if a > 0 and b > 0 else 0.0
        pn = abs(lr + q) / math.log(r21)
        if abs(pn - p) < tol * max(1.0, abs(pn)):
            return pn, s, it
        p = pn
    return p, s, maxit


def gci_three_grid(phi: Sequence[float], r21: float | None = None, r32: float | None = None, *,
                   ncells: Sequence[float] | None = None, dim: int | None = None,
                   h: Sequence[float] | None = None, safety_factor: float = 1.25) -> GCIResult:
    """GCI from three solutions ``phi = (φ1, φ2, φ3)``, finest first.

    Refinement ratios from ``r21, r32`` directly, or from ``h`` (finest first), or from cell counts
    ``ncells`` and ``dim`` (``h ∝ N^(−1/d)``).
    """
    if r21 is None or r32 is None:
        if h is not None:
            h1, h2, h3 = map(float, h)
        elif ncells is not None and dim is not None:
            h1, h2, h3 = (representative_h(n, dim) for n in ncells)
        else:
            raise ValueError("gci_three_grid needs r21 and r32, h, or ncells with dim")
        r21, r32 = h2 / h1, h3 / h2
    if not (r21 > 1 and r32 > 1):
        raise ValueError(f"refinement ratios must exceed 1 (got r21={r21}, r32={r32}); give the finest grid first")
    f1, f2, f3 = map(float, phi)
    p, s, it = apparent_order(phi, r21, r32)
    ext21 = richardson(f1, f2, r21, p)
    ext32 = richardson(f2, f3, r32, p)
    ea21 = abs((f1 - f2) / f1)
    eext21 = abs((ext21 - f1) / ext21)
    gci21 = safety_factor * ea21 / (r21 ** p - 1)
    ea32 = abs((f2 - f3) / f2)
    gci32 = safety_factor * ea32 / (r32 ** p - 1)
    ratio = gci32 / (r21 ** p * gci21) if gci21 > 0 else float("nan")
    return GCIResult((f1, f2, f3), r21, r32, p, s, ext21, ext32, ea21, eext21, gci21, ea32, gci32, ratio, it,
                     safety_factor)


def gci_two_grid(phi_fine: float, phi_coarse: float, r: float, p: float, safety_factor: float = 3.0) -> float:
    """Two-grid GCI (relative) with an assumed order ``p``; Roache's ``Fs = 3`` for two grids."""
    return safety_factor * abs((phi_fine - phi_coarse) / phi_fine) / (r ** p - 1.0)


# ---------------------------------------------------------------------------------------------
# convergence-study runner
# ---------------------------------------------------------------------------------------------

@dataclass
class StudyEntry:
    """Result of one error norm of one study."""

    norm: str
    expected: float
    h: list[float]
    errors: list[float]
    pairwise: list[float]
    lsq_order: float
    tolerance: float
    passed: bool
    nfit: int


@dataclass
class StudyResult:
    name: str
    variable: str                 # "h" (space) or "dt" (time)
    entries: list[StudyEntry]
    dofs: list[int] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(e.passed for e in self.entries)

    def as_dict(self) -> dict:
        return {"name": self.name, "variable": self.variable, "passed": self.passed, "dofs": self.dofs,
                "entries": [asdict(e) for e in self.entries], "extra": self.extra}

    def markdown(self, level: int = 3) -> str:
        """A markdown section: per-level table and expected/observed orders."""
        out = [f"{'#' * level} {self.name}", ""]
        norms = [e.norm for e in self.entries]
        head = f"| level | {self.variable} |" + ("" if not self.dofs else " DOFs |") + "".join(
            f" {n} | order |" for n in norms)
        out += [head, "|" + "---|" * (head.count("|") - 1)]
        nlev = len(self.entries[0].h)
        for i in range(nlev):
            row = f"| {i} | {self.entries[0].h[i]:.4g} |" + ("" if not self.dofs else f" {self.dofs[i]} |")
            for e in self.entries:
                o = "" if i == 0 or i - 1 >= len(e.pairwise) else f"{e.pairwise[i - 1]:.2f}"
                row += f" {e.errors[i]:.3e} | {o} |"
            out.append(row)
        out += ["", "| norm | expected order | observed (LSQ, finest levels) | tolerance | result |",
                "|---|---|---|---|---|"]
        for e in self.entries:
            out.append(f"| {e.norm} | {e.expected:g} | {e.lsq_order:.3f} (n={e.nfit}) | ±{e.tolerance:g} | "
                       f"{'pass' if e.passed else '**FAIL**'} |")
        return "\n".join(out) + "\n"

    def plot(self, path: str) -> str:
        """Log–log error plot with reference slopes; returns ``path``."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 4))
        for e in self.entries:
            h = np.asarray(e.h)
            err = np.asarray(e.errors)
            (line,) = ax.loglog(h, err, "o-", label=f"{e.norm} (p={e.lsq_order:.2f})")
            ref = err[-1] * (h / h[-1]) ** e.expected
            ax.loglog(h, ref, "--", color=line.get_color(), alpha=0.5, label=f"slope {e.expected:g}")
        ax.set_xlabel(self.variable)
        ax.set_ylabel("error")
        ax.set_title(self.name, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path


def evaluate_study(name: str, h: Sequence[float], errors: dict[str, Sequence[float]],
                   expected: dict[str, float], tolerance: float | dict[str, float] = 0.2,
                   nfit: int = 3, variable: str = "h", dofs: Sequence[int] | None = None,
                   one_sided: bool = False) -> StudyResult:
    """Compare observed orders with the expected ones.

    An entry passes if the least-squares order over the ``nfit`` finest levels is within
    ``tolerance`` of the expected order (``one_sided``: at least expected − tolerance, for
    superconvergent quantities).
    """
    entries = []
    for norm, err in errors.items():
        p_exp = float(expected[norm])
        tol = tolerance[norm] if isinstance(tolerance, dict) else float(tolerance)
        n = min(nfit, len(h))
        p, _ = fit_order(h, err, n)
        ok = math.isfinite(p) and (p >= p_exp - tol if one_sided else abs(p - p_exp) <= tol)
        entries.append(StudyEntry(norm, p_exp, [float(v) for v in h], [float(v) for v in err],
                                  [float(v) for v in observed_orders(h, err)], p, tol, bool(ok), n))
    return StudyResult(name, variable, entries, list(dofs or []))


class ConvergenceStudy:
    """Run ``solve(level) -> {"h": ..., "errors": {norm: value}, "dofs": n}`` over ``levels``.

    >>> study = ConvergenceStudy("P1 Poisson", solve, expected={"L2": 2, "H1": 1})
    >>> res = study.run(levels=range(4)); res.passed
    """

    def __init__(self, name: str, solve: Callable[[int], dict], expected: dict[str, float],
                 tolerance: float | dict[str, float] = 0.2, nfit: int = 3, variable: str = "h",
                 one_sided: bool = False):
        self.name, self.solve, self.expected = name, solve, expected
        self.tolerance, self.nfit, self.variable, self.one_sided = tolerance, nfit, variable, one_sided

    def run(self, levels: Sequence[int]) -> StudyResult:
        hs, errs, dofs = [], {k: [] for k in self.expected}, []
        for lev in levels:
            r = self.solve(lev)
            hs.append(float(r["h"]))
            for k in self.expected:
                errs[k].append(float(r["errors"][k]))
            if "dofs" in r:
                dofs.append(int(r["dofs"]))
        return evaluate_study(self.name, hs, errs, self.expected, self.tolerance, self.nfit, self.variable,
                              dofs if len(dofs) == len(hs) else None, self.one_sided)
