"""Manufactured solutions: the symbolic sources agree with independent finite differences of the
lambdified fields, and a tiny independent FE solver converges at the expected order (and an
injected coefficient bug is caught by the order test)."""
import numpy as np
import pytest
import sympy as sp

from hpcmsm.vv import mms
from hpcmsm.vv.convergence import ConvergenceStudy

rng = np.random.default_rng(1)
H = 1e-4


def fd_grad(f, X, t=0.0, h=H):
    """Central-difference gradient of a scalar or vector field: (..., dim) appended."""
    cols = []
    for j in range(X.shape[1]):
        d = np.zeros(X.shape[1])
        d[j] = h
        cols.append((f(X + d, t) - f(X - d, t)) / (2 * h))
    return np.stack(cols, axis=-1)


def fd_div_rows(f, X, t=0.0):
    """Row divergence of a (n, d, d) tensor field or divergence of an (n, d) vector field."""
    G = fd_grad(f, X, t)
    if G.ndim == 3:  # vector field (n, d, d_x)
        return np.einsum("nii->n", G)
    return np.einsum("nijj->ni", G)


def test_diffusion_source_matches_finite_differences():
    x, y, t = mms.coords(2, time=True)
    ms = mms.diffusion(mms.default_scalar(2, time=True), conductivity=1 + x ** 2 + sp.sin(y), dim=2, transient=True)
    X = rng.uniform(0.1, 0.9, (20, 2))
    u, k, f = ms.fn("u"), ms.fn("conductivity"), ms.fn("source")
    flux = lambda P, t=0.0: -k(P, t)[:, None] * fd_grad(u, P, t)  # noqa: E731
    dudt = (u(X, 0.3 + H) - u(X, 0.3 - H)) / (2 * H)
    ref = dudt + fd_div_rows(flux, X, 0.3)
    assert np.allclose(f(X, 0.3), ref, rtol=1e-5, atol=1e-5)
    assert np.allclose(ms.fn("flux")(X, 0.3), flux(X, 0.3), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dim", [2, 3])
def test_small_strain_body_force_balances_stress(dim):
    x = mms.coords(dim)[0]
    ms = mms.small_strain_elasticity(mms.default_displacement(dim), lam=2 + x, mu=1.5, dim=dim)
    X = rng.uniform(0.1, 0.9, (15, dim))
    u, sig, b = ms.fn("u"), ms.fn("stress"), ms.fn("body_force")
    G = fd_grad(u, X)  # (n, d, d): ∂u_i/∂x_j
    eps = (G + np.swapaxes(G, 1, 2)) / 2
    lam = 2 + X[:, 0]
    ref = lam[:, None, None] * np.trace(eps, axis1=1, axis2=2)[:, None, None] * np.eye(dim) + 3.0 * eps
    assert np.allclose(sig(X), ref, atol=1e-7)
    assert np.allclose(b(X), -fd_div_rows(sig, X), atol=1e-6)


def test_anisotropic_matches_isotropic_for_isotropic_stiffness():
    from hpcmsm.materials.base import isotropic_stiffness

    u = mms.default_displacement(2)
    iso = mms.small_strain_elasticity(u, lam=1.2, mu=0.7)
    ani = mms.small_strain_anisotropic(u, isotropic_stiffness(2, lam=1.2, mu=0.7))
    X = rng.uniform(0, 1, (10, 2))
    assert np.allclose(iso.fn("body_force")(X), ani.fn("body_force")(X), atol=1e-12)


@pytest.mark.parametrize("dim", [2, pytest.param(3, marks=pytest.mark.slow)])  # 3D: slow sympy
def test_finite_strain_piola_stress_and_body_force(dim):
    mu, lam = 1.3, 2.1
    ms = mms.finite_strain_elasticity(mms.default_displacement(dim, 0.1), mu=mu, lam=lam, dim=dim)
    X = rng.uniform(0.1, 0.9, (12, dim))
    F = np.eye(dim) + fd_grad(ms.fn("u"), X)
    assert np.allclose(ms.fn("F")(X), F, atol=1e-7)
    Fit = np.linalg.inv(F).transpose(0, 2, 1)
    J = np.linalg.det(F)
    assert np.all(J > 0.5)
    P_ref = mu * (F - Fit) + lam * np.log(J)[:, None, None] * Fit  # closed form of neo-Hooke
    assert np.allclose(ms.fn("P")(X), P_ref, atol=1e-7)
    assert np.allclose(ms.fn("body_force")(X), -fd_div_rows(ms.fn("P"), X), atol=1e-5)


def fd_lap(f, X, t=0.0, h=1e-3):
    out = -2 * X.shape[1] * f(X, t)
    for j in range(X.shape[1]):
        d = np.zeros(X.shape[1])
        d[j] = h
        out = out + f(X + d, t) + f(X - d, t)
    return out / h ** 2


def test_cahn_hilliard_source():
    x, y, t = mms.coords(2, time=True)
    c = 0.5 * sp.cos(2 * sp.pi * x) * sp.cos(2 * sp.pi * y) * sp.exp(-t)
    ms = mms.cahn_hilliard(c, mobility=lambda c: 1 + c ** 2, kappa=0.01)
    X = rng.uniform(0, 1, (20, 2))
    cf, muf, S = ms.fn("c"), ms.fn("mu"), ms.fn("source")
    mu_ref = cf(X, 0.2) ** 3 - cf(X, 0.2) - 0.01 * fd_lap(cf, X, 0.2)
    assert np.allclose(muf(X, 0.2), mu_ref, atol=1e-5)
    flux = lambda P, t: (1 + cf(P, t) ** 2)[:, None] * fd_grad(muf, P, t)  # noqa: E731
    dcdt = (cf(X, 0.2 + H) - cf(X, 0.2 - H)) / (2 * H)
    assert np.allclose(S(X, 0.2), dcdt - fd_div_rows(flux, X, 0.2), atol=1e-4)


def test_allen_cahn_source():
    x, y, t = mms.coords(2, time=True)
    phi = sp.tanh((x - 0.5 - 0.1 * t) / 0.1) * sp.cos(sp.pi * y) ** 2
    ms = mms.allen_cahn(phi, mobility=2.0, kappa=0.02)
    X = rng.uniform(0, 1, (20, 2))
    pf, S = ms.fn("phi"), ms.fn("source")
    dpdt = (pf(X, 0.4 + H) - pf(X, 0.4 - H)) / (2 * H)
    ref = dpdt + 2.0 * (pf(X, 0.4) ** 3 - pf(X, 0.4) - 0.02 * fd_lap(pf, X, 0.4, h=1e-4))
    assert np.allclose(S(X, 0.4), ref, rtol=1e-4, atol=1e-3)


def test_fn_shapes_and_constant_broadcast():
    ms = mms.diffusion(sp.Integer(3), dim=2)
    X = np.zeros((7, 2))
    assert ms.fn("u")(X).shape == (7,) and np.all(ms.fn("source")(X) == 0)
    assert ms.fn("grad_u")(X).shape == (7, 2)
    with pytest.raises(KeyError):
        ms.fn("nope")


# --- an independent tiny solver: 1D P1 FE for −(k u')' = f on (0,1), u(0)=u(1)=0 --------------

def p1_1d(n, ms, k_scale=1.0):
    xs = np.linspace(0, 1, n + 1)
    h = np.diff(xs)
    xm = 0.5 * (xs[:-1] + xs[1:])
    # 3-point Gauss on each element for the load and the conductivity
    g, w = np.polynomial.legendre.leggauss(3)
    xq = xm[:, None] + 0.5 * h[:, None] * g[None, :]
    k = ms.fn("conductivity")(xq.reshape(-1, 1)).reshape(xq.shape) * k_scale
    f = ms.fn("source")(xq.reshape(-1, 1)).reshape(xq.shape)
    kel = (k * w).sum(1) / 2 / h  # ∫ k dx / h²
    A = np.zeros((n + 1, n + 1))
    idx = np.arange(n)
    np.add.at(A, (idx, idx), kel)
    np.add.at(A, (idx + 1, idx + 1), kel)
    np.add.at(A, (idx, idx + 1), -kel)
    np.add.at(A, (idx + 1, idx), -kel)
    phi0, phi1 = (1 - g) / 2, (1 + g) / 2
    b = np.zeros(n + 1)
    np.add.at(b, idx, (f * phi0 * w).sum(1) * h / 2)
    np.add.at(b, idx + 1, (f * phi1 * w).sum(1) * h / 2)
    u = np.zeros(n + 1)
    u[1:-1] = np.linalg.solve(A[1:-1, 1:-1], b[1:-1])
    uq = u[:-1, None] * phi0 + u[1:, None] * phi1
    ue = ms.fn("u")(xq.reshape(-1, 1)).reshape(xq.shape)
    return np.sqrt(((uq - ue) ** 2 * w).sum(1) @ (h / 2))


def test_order_test_catches_injected_coefficient_bug():
    (x,) = mms.coords(1)
    ms = mms.diffusion(sp.sin(sp.pi * x) * sp.exp(x), conductivity=1 + x ** 2, dim=1)
    ok = ConvergenceStudy("P1 1D", lambda l: {"h": 1 / (8 * 2 ** l), "errors": {"L2": p1_1d(8 * 2 ** l, ms)}},
                          {"L2": 2.0}).run(range(5))
    assert ok.passed, ok.markdown()
    bad = ConvergenceStudy("P1 1D, k × 1.01", lambda l: {"h": 1 / (8 * 2 ** l),
                                                         "errors": {"L2": p1_1d(8 * 2 ** l, ms, 1.01)}},
                           {"L2": 2.0}).run(range(5))
    assert not bad.passed and bad.entries[0].lsq_order < 1.0
