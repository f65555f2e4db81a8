"""Manufactured solutions for the FE tests: sympy derives the sources, numpy evaluates them."""
from __future__ import annotations

import numpy as np
import sympy as sp


def _vectorise(expr, X):
    f = sp.lambdify(X, expr, "numpy")
    d = len(X)

    def ev(x):
        v = f(*[x[..., k] for k in range(d)])

        def rec(o):
            if isinstance(o, (list, tuple)):
                return np.stack([rec(c) for c in o], -1)
            return np.broadcast_to(np.asarray(o, float), x.shape[:-1])
        r = rec(v)
        return np.swapaxes(r, -1, -2) if isinstance(v, list) and isinstance(v[0], list) else r
    return ev


def diffusion_mms(dim: int, kappa=None):
    """u, ∇u and f = -∇·(κ∇u) for a smooth u on the unit box; κ a constant SPD matrix."""
    X = sp.symbols(f"x0:{dim}")
    u = sp.sin(sp.pi * X[0]) * sp.cos(sp.pi * X[1] / 2) * (1 + X[1] * X[0] ** 2)
    if dim == 3:
        u = u * sp.cos(X[2]) + X[2] ** 3
    K = sp.Matrix(kappa if kappa is not None else np.eye(dim))
    g = sp.Matrix([sp.diff(u, xi) for xi in X])
    flux = K * g
    f = -sum(sp.diff(flux[i], X[i]) for i in range(dim))
    return _vectorise(u, X), _vectorise(list(g), X), _vectorise(f, X)


def elasticity_mms(dim: int, E: float = 1.0, nu: float = 0.3):
    """u, ∇u and body force b = -∇·σ(u) for isotropic linear elasticity (2D plane strain)."""
    lam = E * nu / ((1 + nu) * (1 - 2 * nu))
    mu = E / (2 * (1 + nu))
    X = sp.symbols(f"x0:{dim}")
    if dim == 2:
        U = [sp.sin(sp.pi * X[0]) * sp.sin(sp.pi * X[1]), X[0] ** 2 * X[1] * (1 - X[1]) + sp.cos(X[0])]
    else:
        U = [sp.sin(sp.pi * X[0]) * X[1] * X[2], sp.cos(X[1]) * X[0] ** 2, sp.sin(X[0] + X[2]) * X[1]]
    eps = [[(sp.diff(U[i], X[j]) + sp.diff(U[j], X[i])) / 2 for j in range(dim)] for i in range(dim)]
    tr = sum(eps[i][i] for i in range(dim))
    sig = [[lam * tr * int(i == j) + 2 * mu * eps[i][j] for j in range(dim)] for i in range(dim)]
    b = [-sum(sp.diff(sig[i][j], X[j]) for j in range(dim)) for i in range(dim)]
    G = [[sp.diff(U[i], X[j]) for j in range(dim)] for i in range(dim)]
    return _vectorise(U, X), _vectorise(G, X), _vectorise(b, X)
