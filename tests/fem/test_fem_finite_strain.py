"""Finite-strain total Lagrangian hyperelasticity: Taylor test of the assembled Jacobian,
Neo-Hookean uniaxial stress against the analytical solution (tension and compression), det F ≤ 0
handled by step cut-back; identical at 1, 2 and 3 ranks."""
import numpy as np
import pytest
from scipy.optimize import brentq

pytestmark = pytest.mark.mpi
LAM, MU = 3.0, 2.0


def _block(comm, stretch, cell="hexahedron", p=1, n=(2, 2, 2), **kw):
    from hpcmsm.fem import Dirichlet, HyperelasticProblem, create_box
    from hpcmsm.materials.hyperelastic import NeoHookean

    mesh = create_box(comm, n, cell=cell, degree=p)
    bcs = [Dirichlet("xmin", 0.0, [0]), Dirichlet("ymin", 0.0, [1]), Dirichlet("zmin", 0.0, [2]),
           Dirichlet("xmax", stretch - 1.0, [0])]
    return HyperelasticProblem(mesh, NeoHookean(3, lam=LAM, mu=MU), bcs, **kw)


def _uniaxial_P11(s):
    t = brentq(lambda t: MU * (t - 1 / t) + LAM * np.log(s * t * t) / t, 0.2, 5.0)
    return MU * (s - 1 / s) + LAM * np.log(s * t * t) / s


@pytest.mark.parametrize("cell,p", [("hexahedron", 1), ("tetrahedron", 2)])
def test_jacobian_taylor(comm, cell, p):
    prob = _block(comm, 1.1, cell, p)
    sp = prob.space
    rng = np.random.default_rng(7 + comm.rank)
    u = sp.create_vec()
    u.setArray(0.01 * rng.normal(size=u.getLocalSize()))
    prob._set_bc(u, 1.0)
    v = sp.create_vec()
    v.setArray(rng.normal(size=v.getLocalSize()))
    v.getArray()[prob.bdofs] = 0.0
    R0, R1, Jv = sp.create_vec(), sp.create_vec(), sp.create_vec()
    prob._lam_trial = 1.0
    prob._residual(None, u, R0)
    assert prob.detF_min > 0.5                 # a genuinely deformed, valid state
    prob._jacobian(None, u, prob.A, prob.A)
    prob.A.mult(v, Jv)
    errs = []
    for h in (1e-2, 5e-3, 2.5e-3):
        w = u.copy()
        w.axpy(h, v)
        prob._residual(None, w, R1)
        R1.axpy(-1.0, R0)
        R1.axpy(-h, Jv)
        errs.append(R1.norm())
        w.destroy()
    rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(rates > 1.9), (errs, rates)
    prob.destroy()


@pytest.mark.parametrize("s", [1.5, 0.7])
def test_neohookean_uniaxial_stress(comm, s):
    prob = _block(comm, s)
    prob.solve(4)
    P11 = -prob.reaction("xmin")[0]           # reference area 1
    assert abs(P11 - _uniaxial_P11(s)) < 1e-8 * abs(_uniaxial_P11(s))
    assert max(r["newton_iterations"] for r in prob.history) <= 8
    a = prob.energy_audit()                    # trapezoidal work vs stored energy
    assert a.passed, a.summary()
    prob.destroy()


def test_detF_nonpositive_cuts_the_step(comm):
    """A single step to 25 % length inverts the cells next to the moved face in the first
    iterate: the step must be cut back and the final state still be exact."""
    prob = _block(comm, 0.25, n=(4, 1, 1))
    prob.solve(1)
    assert sum(r["cutbacks"] for r in prob.history) >= 1
    P11 = -prob.reaction("xmin")[0]
    assert abs(P11 - _uniaxial_P11(0.25)) < 1e-7 * abs(_uniaxial_P11(0.25))
    prob.destroy()
