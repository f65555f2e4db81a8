"""Neo-Hookean: P = ∂W/∂F and A = ∂P/∂F by Taylor tests, objectivity, uniaxial stretch."""
import numpy as np
import pytest

from hpcmsm.materials.hyperelastic import NeoHookean


def _taylor(f, df, x, dx):
    r = []
    f0 = f(x)
    for h in (1e-2, 5e-3, 2.5e-3):
        r.append(np.abs(f(x + h * dx) - f0 - h * df(x, dx)).max())
    return np.log2(np.array(r[:-1]) / np.array(r[1:]))


@pytest.mark.parametrize("dim", [2, 3])
def test_taylor_stress_and_tangent(dim):
    mat = NeoHookean(dim, 10.0, 0.3)
    rng = np.random.default_rng(0)
    F = np.eye(dim) + 0.2 * rng.normal(size=(10, dim, dim))
    dF = rng.normal(size=(10, dim, dim))
    r1 = _taylor(mat.energy, lambda x, d: np.einsum("qij,qij->q", mat.stress(x), d), F, dF)
    r2 = _taylor(mat.stress, lambda x, d: np.einsum("qiJkL,qkL->qiJ", mat.tangent(x), d), F, dF)
    assert np.all(r1 > 1.9) and np.all(r2 > 1.9), (r1, r2)


def test_objectivity_and_reference_state():
    mat = NeoHookean(3, 10.0, 0.3)
    assert np.allclose(mat.stress(np.eye(3)[None]), 0)
    rng = np.random.default_rng(1)
    F = np.eye(3) + 0.1 * rng.normal(size=(1, 3, 3))
    Q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    Q *= np.sign(np.linalg.det(Q))
    assert np.allclose(mat.energy(Q @ F), mat.energy(F))
    assert np.allclose(mat.stress(Q @ F), Q @ mat.stress(F))
    # small strain limit: A(I) is the isotropic stiffness
    A = mat.tangent(np.eye(3)[None])[0]
    assert np.isclose(A[0, 0, 0, 0], mat.lam + 2 * mat.mu) and np.isclose(A[0, 0, 1, 1], mat.lam)


def test_uniaxial_strain_closed_form():
    """F = diag(s, 1, 1): P11 = μ(s - 1/s) + λ ln(s)/s, P22 = λ ln s."""
    mat = NeoHookean(3, lam=3.0, mu=2.0)
    s = np.array([0.5, 0.9, 1.3, 2.0])
    F = np.zeros((4, 3, 3))
    F[:, 0, 0] = s
    F[:, 1, 1] = F[:, 2, 2] = 1
    P = mat.stress(F)
    assert np.allclose(P[:, 0, 0], 2.0 * (s - 1 / s) + 3.0 * np.log(s) / s)
    assert np.allclose(P[:, 1, 1], 3.0 * np.log(s))
