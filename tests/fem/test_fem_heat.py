"""Transient heat (backward Euler): decay of a sine mode against the exact solution, first-order
convergence in time, heat-balance audit; identical at 1, 2 and 3 ranks."""
import numpy as np
import pytest

pytestmark = pytest.mark.mpi


def test_sine_mode_decay_first_order_in_time(comm):
    from hpcmsm.fem import Dirichlet, HeatProblem, create_box

    kappa, rho_c, T = 0.5, 2.0, 0.2
    mesh = create_box(comm, (24, 2), cell="quadrilateral", degree=2)
    decay = np.exp(-np.pi ** 2 * kappa / rho_c * T)
    errs = []
    for nsteps in (4, 8, 16):
        prob = HeatProblem(mesh, kappa, rho_c, 0.0, [Dirichlet("xmin", 0.0), Dirichlet("xmax", 0.0)],
                           dt=T / nsteps, petsc_options={"ksp_rtol": "1e-12"})
        prob.set_initial(lambda x: np.sin(np.pi * x[:, 0]))
        for _ in range(nsteps):
            prob.step()
        x = mesh.points[:mesh.n_owned, 0]
        err = np.abs(prob.u.getArray(readonly=True) - decay * np.sin(np.pi * x)).max(initial=0.0)
        errs.append(comm.allreduce(err, op=__import__("mpi4py.MPI", fromlist=["MAX"]).MAX))
        audit = prob.finish_audit()
        assert audit.passed, audit.summary()
        prob.destroy()
    rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(np.abs(rates - 1.0) < 0.15), (errs, rates)
