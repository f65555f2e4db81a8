"""Manufactured-solution convergence: observed L2/H1 orders p+1/p (±0.1) on the finest pair of
meshes, for diffusion and elasticity, 2D and 3D, linear and quadratic elements.  Marked mpi:
the orders must hold at 1, 2 and 3 ranks (the partition changes, the answer must not)."""
import numpy as np
import pytest

from tests.fem.mms import diffusion_mms, elasticity_mms

pytestmark = pytest.mark.mpi

DIFFUSION_CASES = [
    ("quadrilateral", 1, (8, 16, 32)),
    ("triangle", 1, (8, 16, 32)),
    ("quadrilateral", 2, (4, 8, 16)),
    ("triangle", 2, (4, 8, 16)),
    ("hexahedron", 1, (4, 8, 16)),
    ("tetrahedron", 1, (4, 8, 12)),
    ("hexahedron", 2, (2, 4, 8)),
    ("tetrahedron", 2, (2, 4, 8)),
]
ELASTICITY_CASES = [
    ("quadrilateral", 1, (8, 16, 32)),
    ("triangle", 2, (4, 8, 16)),
    ("quadrilateral", 2, (4, 8, 16)),
    ("hexahedron", 1, (4, 8, 12)),
    ("hexahedron", 2, (2, 4, 8)),
    ("tetrahedron", 1, (4, 8, 12)),
]


def _dim(cell):
    return 2 if cell in ("triangle", "quadrilateral") else 3


@pytest.mark.parametrize("cell,p,ns", DIFFUSION_CASES)
def test_diffusion_mms_orders(comm, cell, p, ns):
    from hpcmsm.fem import Dirichlet, create_box, error_norms, observed_orders, solve_diffusion

    dim = _dim(cell)
    kappa = np.array([[2.0, 0.5], [0.5, 1.0]]) if dim == 2 else np.diag([1.0, 2.0, 1.5])
    u, gu, f = diffusion_mms(dim, kappa)
    errs = []
    for n in ns:
        mesh = create_box(comm, (n,) * dim, cell=cell, degree=p)
        res = solve_diffusion(mesh, kappa, f, [Dirichlet("boundary", u)])
        assert res.ksp["reason"] > 0
        errs.append(error_norms(res.space, res.u_local, u, gu))
        res.u.destroy()
    errs = np.array(errs)
    h = 1.0 / np.array(ns)
    l2, h1 = observed_orders(h, errs[:, 0])[-1], observed_orders(h, errs[:, 1])[-1]
    assert abs(l2 - (p + 1)) <= 0.1, (l2, errs)
    assert abs(h1 - p) <= 0.1, (h1, errs)


@pytest.mark.parametrize("cell,p,ns", ELASTICITY_CASES)
def test_elasticity_mms_orders(comm, cell, p, ns):
    from hpcmsm.fem import Dirichlet, ElasticityProblem, create_box, error_norms, observed_orders
    from hpcmsm.materials.base import LinearElastic

    dim = _dim(cell)
    u, gu, b = elasticity_mms(dim)
    errs = []
    for n in ns:
        mesh = create_box(comm, (n,) * dim, cell=cell, degree=p)
        prob = ElasticityProblem(mesh, LinearElastic.isotropic(dim, 1.0, 0.3), [Dirichlet("boundary", u)],
                                 body_force=b)
        prob.solve(1)
        errs.append(error_norms(prob.space, prob.space.local_array(prob.u), u, gu))
        # linear problem: one Newton correction reaches equilibrium
        assert prob.history[-1]["newton_iterations"] == 1
        prob.destroy()
    errs = np.array(errs)
    h = 1.0 / np.array(ns)
    l2, h1 = observed_orders(h, errs[:, 0])[-1], observed_orders(h, errs[:, 1])[-1]
    assert abs(l2 - (p + 1)) <= 0.1, (l2, errs)
    assert abs(h1 - p) <= 0.1, (h1, errs)
