"""Manufactured solutions for Cahn–Hilliard with the PFHub double well: second order in space,
first order in time (backward Euler), through the optional source term f(x, y, t)."""
import numpy as np
import pytest

from hpcmsm.phasefield import DoubleWell

pytestmark = pytest.mark.mpi

KAPPA, M = 1.0, 1.0
L = 2 * np.pi


def _manufactured(steady: bool):
    import sympy as sp

    x, y, t = sp.symbols("x y t", real=True)
    amp = sp.Rational(1, 10) if steady else sp.Rational(1, 10) * (1 + sp.sin(2 * t) / 2)
    c = sp.Rational(1, 2) + amp * sp.cos(x) * sp.cos(2 * y) + sp.Rational(1, 20) * sp.sin(x + y)
    f = DoubleWell()
    u = c - sp.Rational(1, 2)
    dpsi = 4 * f.rho * u * (u ** 2 - sp.Rational(1, 25))  # ψ' with d = 0.2
    mu = dpsi - KAPPA * (sp.diff(c, x, 2) + sp.diff(c, y, 2))
    src = sp.diff(c, t) - M * (sp.diff(mu, x, 2) + sp.diff(mu, y, 2))
    return sp.lambdify((x, y, t), c, "numpy"), sp.lambdify((x, y, t), src, "numpy")


def _solver(comm, n, source):
    from hpcmsm.parallel import init_petsc

    init_petsc([])
    from hpcmsm.phasefield.solver import PhaseFieldSolver, SolverOptions

    return PhaseFieldSolver(comm, "ch", (n, n), (L, L), True, DoubleWell(), KAPPA, M, source=source,
                            options=SolverOptions(scheme="implicit", snes_rtol=1e-12, snes_atol=1e-12,
                                                  ksp_rtol=1e-11))


def _max_error(s, exact, t, comm):
    from mpi4py import MPI

    x, y = s.grid.coordinates_xyz()
    e = float(np.max(np.abs(s.field(0) - exact(x, y, t))))
    return comm.allreduce(e, op=MPI.MAX)


def test_space_order_two(comm):
    exact, src = _manufactured(steady=True)
    errs = []
    for n in (16, 32, 64):
        s = _solver(comm, n, lambda x, y, t: src(x, y, t) + 0 * x)
        x, y = s.grid.coordinates_xyz()
        s.set_state(exact(x, y, 0.0))
        t = 0.0
        for dt in (1.0, 10.0, 100.0, 1e3, 1e3, 1e3):  # march to the discrete steady state
            t += dt
            prev = s.field(0)
            assert s.step(dt, t).converged
        assert np.max(np.abs(s.field(0) - prev)) < 1e-10  # steady
        errs.append(_max_error(s, exact, t, comm))
        s.destroy()
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert errs[-1] < 1e-3
    assert np.all(orders > 1.85) and np.all(orders < 2.15), (errs, orders)


def test_time_order_one(comm):
    """Backward Euler is first order: errors against the exact solution contain the (fixed)
    spatial error of the grid, so the temporal part is measured against a 16× finer Δt on the
    same grid (the semi-discrete solution), and the total error against the exact one is checked
    to approach the spatial error."""
    exact, src = _manufactured(steady=False)
    T, n = 0.5, 32
    fields, errs_exact = {}, {}
    for nsteps in (8, 16, 32, 512):
        s = _solver(comm, n, lambda x, y, t: src(x, y, t) + 0 * x)
        x, y = s.grid.coordinates_xyz()
        s.set_state(exact(x, y, 0.0))
        dt = T / nsteps
        for k in range(nsteps):
            assert s.step(dt, (k + 1) * dt).converged
        fields[nsteps] = s.field(0)
        errs_exact[nsteps] = _max_error(s, exact, T, comm)
        s.destroy()
    from mpi4py import MPI

    errs = [comm.allreduce(float(np.max(np.abs(fields[k] - fields[512]))), op=MPI.MAX) for k in (8, 16, 32)]
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(orders > 0.85) and np.all(orders < 1.2), (errs, orders)
    assert errs_exact[512] < 5e-3  # spatial error at h = 2π/32
