"""CauchyBornMaterial inside the finite-strain FE solver (hpcmsm.fem.HyperelasticProblem): a block
in homogeneous uniaxial strain must carry exactly the Cauchy–Born stress P11 = ∂W/∂F11."""
import numpy as np
import pytest

pytestmark = pytest.mark.mpi


@pytest.mark.parametrize("s", [1.03, 0.97])
def test_block_uniaxial_strain_matches_cauchy_born(comm, s):
    from hpcmsm.atomistic import CauchyBorn, LennardJones, equilibrium_lattice, make_lattice
    from hpcmsm.atomistic.material import CauchyBornMaterial
    from hpcmsm.fem import Dirichlet, HyperelasticProblem, create_box

    lj = LennardJones(rc=2.5, cutoff="smooth", r_on=2.2)
    cb = CauchyBorn(equilibrium_lattice(make_lattice("fcc", 1.55), lj), lj)
    mesh = create_box(comm, (2, 2, 2), cell="hexahedron", degree=1)
    bcs = [Dirichlet("xmin", 0.0, [0]), Dirichlet("ymin", 0.0, [1]), Dirichlet("zmin", 0.0, [2]),
           Dirichlet("ymax", 0.0, [1]), Dirichlet("zmax", 0.0, [2]), Dirichlet("xmax", s - 1.0, [0])]
    prob = HyperelasticProblem(mesh, CauchyBornMaterial(cb), bcs)
    prob.solve(2)
    P11 = -prob.reaction("xmin")[0]  # unit reference area
    F = np.diag([s, 1.0, 1.0])
    ref = cb.stress(F)[0, 0, 0]
    assert abs(P11 - ref) < 1e-8 * abs(ref)
    assert max(r["newton_iterations"] for r in prob.history) <= 6  # analytic tangent: Newton converges fast
    prob.destroy()
