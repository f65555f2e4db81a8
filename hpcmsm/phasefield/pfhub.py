"""PFHub benchmark 1 (spinodal decomposition): parameters, initial conditions, output times.

Specification (https://pages.nist.gov/pfhub/benchmarks/benchmark1.ipynb):
f_chem = ρ_s (c − c_α)² (c_β − c)², ρ_s = 5, c_α = 0.3, c_β = 0.7, κ = 2, M = 5, domain 200 × 200,
c₀ = 0.5, ε = 0.01,
c(x, y, 0) = c₀ + ε [cos(0.105x) cos(0.11y) + (cos(0.13x) cos(0.087y))² + cos(0.025x − 0.15y) cos(0.07x − 0.02y)].
Variant a: periodic; b: no-flux.  The official initial condition is not periodic on the
200 × 200 box; variant ``periodic`` snaps every wavenumber to the nearest multiple of 2π/200.
"""
from __future__ import annotations

import numpy as np

RHO, C_ALPHA, C_BETA, KAPPA, MOBILITY = 5.0, 0.3, 0.7, 2.0, 5.0
C0, EPS, LENGTH = 0.5, 0.01, 200.0

#: (k_x, k_y) pairs of the four cosine factors, in the order of the formula
WAVES = ((0.105, 0.11), (0.13, 0.087), (0.025, -0.15), (0.07, -0.02))

#: output times asked for by PFHub (snapshots are written at those inside the run)
OUTPUT_TIMES = (1, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 3000, 5000, 10000, 20000, 50000,
                100000, 200000, 500000, 1000000)


def snapped_waves(length: float = LENGTH) -> tuple[tuple[float, float], ...]:
    """Wavenumbers rounded to the nearest multiple of 2π/length (periodic variant)."""
    q = 2 * np.pi / length
    return tuple((float(np.round(kx / q) * q), float(np.round(ky / q) * q)) for kx, ky in WAVES)


def initial_condition(x: np.ndarray, y: np.ndarray, periodic_ic: bool = False, c0: float = C0,
                      eps: float = EPS, length: float = LENGTH) -> np.ndarray:
    """c(x, y, 0) of benchmark 1 (``periodic_ic``: the snapped, periodic variant)."""
    (a1, b1), (a2, b2), (a3, b3), (a4, b4) = snapped_waves(length) if periodic_ic else WAVES
    return c0 + eps * (np.cos(a1 * x) * np.cos(b1 * y) + (np.cos(a2 * x) * np.cos(b2 * y)) ** 2
                       + np.cos(a3 * x + b3 * y) * np.cos(a4 * x + b4 * y))


def initial_gradient(x: np.ndarray, y: np.ndarray, periodic_ic: bool = False, eps: float = EPS,
                     length: float = LENGTH) -> tuple[np.ndarray, np.ndarray]:
    """Exact ∇c of :func:`initial_condition` (for the exact initial free energy)."""
    (a1, b1), (a2, b2), (a3, b3), (a4, b4) = snapped_waves(length) if periodic_ic else WAVES
    p = np.cos(a2 * x) * np.cos(b2 * y)
    u3, u4 = a3 * x + b3 * y, a4 * x + b4 * y
    cx = (-a1 * np.sin(a1 * x) * np.cos(b1 * y) + 2 * p * (-a2 * np.sin(a2 * x) * np.cos(b2 * y))
          - a3 * np.sin(u3) * np.cos(u4) - a4 * np.cos(u3) * np.sin(u4))
    cy = (-b1 * np.cos(a1 * x) * np.sin(b1 * y) + 2 * p * (-b2 * np.cos(a2 * x) * np.sin(b2 * y))
          - b3 * np.sin(u3) * np.cos(u4) - b4 * np.cos(u3) * np.sin(u4))
    return eps * cx, eps * cy


def exact_initial_energy(periodic_ic: bool = False, n: int = 2000) -> float:
    """∫ f_chem(c) + (κ/2)|∇c|² over the 200 × 200 square for the exact initial field.

    Gauss–Legendre quadrature per axis on 40 panels (the integrand is smooth; converged to
    round-off for ``n`` ≥ 1000 points per axis).
    """
    panels = 40
    g, w = np.polynomial.legendre.leggauss(n // panels)
    edges = np.linspace(0, LENGTH, panels + 1)
    x = ((edges[:-1, None] + edges[1:, None]) / 2 + (edges[1] - edges[0]) / 2 * g[None, :]).ravel()
    wx = np.tile((edges[1] - edges[0]) / 2 * w, panels)
    total = 0.0
    for i0 in range(0, x.size, 200):  # rows in blocks to bound memory
        X, Y = np.meshgrid(x, x[i0:i0 + 200], indexing="xy")
        c = initial_condition(X, Y, periodic_ic)
        cx, cy = initial_gradient(X, Y, periodic_ic)
        f = RHO * (c - C_ALPHA) ** 2 * (C_BETA - c) ** 2 + 0.5 * KAPPA * (cx * cx + cy * cy)
        total += float(np.einsum("ij,i,j->", f, wx[i0:i0 + 200], wx))
    return total
