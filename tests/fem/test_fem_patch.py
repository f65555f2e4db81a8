"""Patch tests: affine fields are reproduced to round-off on distorted meshes of every element
type, at 1, 2 and 3 ranks; a traction-loaded block gives the exact uniform stress state."""
import numpy as np
import pytest

pytestmark = pytest.mark.mpi
TIGHT = {"ksp_rtol": "1e-14", "ksp_atol": "1e-30"}   # round-off, not solver tolerance

CELLS = [("triangle", 1), ("triangle", 2), ("quadrilateral", 1), ("quadrilateral", 2),
         ("tetrahedron", 1), ("tetrahedron", 2), ("hexahedron", 1), ("hexahedron", 2)]


def _distorted(cell, p, n):
    from hpcmsm.fem.mesh import box_global

    d = 2 if cell in ("triangle", "quadrilateral") else 3
    g = box_global((n,) * d, cell=cell, degree=p)
    x = g.points
    interior = np.all((x > 1e-12) & (x < 1 - 1e-12), axis=1)
    # smooth, deterministic perturbation of interior nodes (cells stay valid)
    shift = 0.08 / n * np.sin(7.0 * x.sum(axis=1) + np.arange(d)[:, None]).T
    g.points = np.where(interior[:, None], x + shift, x)
    return g, d


@pytest.mark.parametrize("cell,p", CELLS)
def test_elasticity_patch(comm, cell, p):
    from hpcmsm.fem import Dirichlet, ElasticityProblem, distribute
    from hpcmsm.materials.base import LinearElastic, tensor_to_mandel

    g, d = _distorted(cell, p, 3)
    mesh = distribute(comm, g)
    rng = np.random.default_rng(3)
    Agrad = rng.normal(size=(d, d)) * 1e-3
    c = rng.normal(size=d)
    exact = lambda x: x @ Agrad.T + c  # noqa: E731
    prob = ElasticityProblem(mesh, LinearElastic.isotropic(d, 200.0, 0.3), [Dirichlet("boundary", exact)],
                             petsc_options=TIGHT, rtol=1e-13)
    prob.solve(1)
    eps = tensor_to_mandel(0.5 * (Agrad + Agrad.T))
    err = max([np.abs(gr.strain - eps).max(initial=0.0) for gr in prob.groups])
    err = comm.allreduce(err, op=__import__("mpi4py.MPI", fromlist=["MAX"]).MAX)
    assert err < 1e-9 * np.abs(eps).max()
    # nodal values are the affine field too
    u = prob.u.getArray(readonly=True).reshape(-1, d)
    assert np.allclose(u, exact(mesh.points[:mesh.n_owned]), atol=1e-12)
    prob.destroy()


@pytest.mark.parametrize("cell,p", [("quadrilateral", 2), ("tetrahedron", 1), ("hexahedron", 1)])
def test_diffusion_patch(comm, cell, p):
    from hpcmsm.fem import Dirichlet, distribute, solve_diffusion

    g, d = _distorted(cell, p, 3)
    mesh = distribute(comm, g)
    a = np.arange(1, d + 1) * 0.7
    exact = lambda x: x @ a + 2.0  # noqa: E731
    res = solve_diffusion(mesh, 3.0, 0.0, [Dirichlet("boundary", exact)], petsc_options=TIGHT)
    assert np.allclose(res.u.getArray(readonly=True), exact(mesh.points[:mesh.n_owned]), atol=1e-9)


@pytest.mark.parametrize("cell,p", [("hexahedron", 1), ("tetrahedron", 2), ("quadrilateral", 1)])
def test_traction_block_uniform_stress(comm, cell, p):
    """Rollers on xmin/ymin(/zmin), traction t e_x on xmax: σ_xx = t everywhere, reaction = -t·area."""
    from hpcmsm.fem import Dirichlet, ElasticityProblem, Neumann, create_box
    from hpcmsm.materials.base import LinearElastic

    d = 2 if cell in ("triangle", "quadrilateral") else 3
    L = np.array([2.0, 1.0, 0.5][:d])
    mesh = create_box(comm, (4, 3, 2)[:d], upper=L, cell=cell, degree=p)
    E, nu, t = 100.0, 0.25, 3.0
    bcs = [Dirichlet("xmin", 0.0, [0]), Dirichlet("ymin", 0.0, [1])] + ([Dirichlet("zmin", 0.0, [2])] if d == 3 else [])
    tr = np.zeros(d)
    tr[0] = t
    prob = ElasticityProblem(mesh, LinearElastic.isotropic(d, E, nu), bcs, traction=[Neumann("xmax", tr)])
    prob.solve(1)
    area = np.prod(L[1:])
    R = prob.reaction("xmin")
    assert abs(R[0] + t * area) < 1e-8 * t * area
    sxx = np.concatenate([g.stress[..., 0].ravel() for g in prob.groups])
    assert np.allclose(sxx, t, rtol=1e-8)
    if d == 3:   # uniaxial stress: u_x(L) = t L / E
        ux = prob.mean_displacement("xmax")[0]
        assert abs(ux - t * L[0] / E) < 1e-8 * t * L[0] / E
    prob.destroy()
