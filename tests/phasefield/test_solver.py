"""Distributed CH/AC steps against the serial scipy oracle; conservation; energy; dissipation."""
import numpy as np
import pytest

from hpcmsm.phasefield import DoubleWell, Landau, RegularSolution
from hpcmsm.phasefield import reference as ref

pytestmark = pytest.mark.mpi


def _petsc():
    from hpcmsm.parallel import init_petsc

    init_petsc([])
    from hpcmsm.phasefield.solver import Mobility, PhaseFieldSolver, SolverOptions
    return PhaseFieldSolver, SolverOptions, Mobility


def _ic(coords, lengths, base=0.5, amp=0.05):
    # smooth, periodic, every axis different (catches axis mix-ups)
    out = base
    for k, (x, L) in enumerate(zip(coords, lengths)):
        out = out + amp * np.cos(2 * np.pi * (k + 1) * x / L + 0.3 * k) * (1 + 0.5 * np.sin(2 * np.pi * x / L))
    return out


def _global_coords(shape_xyz, lengths):
    h = [L / n for L, n in zip(lengths, shape_xyz)]
    axes = [(np.arange(n) + 0.5) * hh for n, hh in zip(shape_xyz, h)]
    grids = np.meshgrid(*reversed(axes), indexing="ij")  # natural (z, y, x)
    return list(reversed(grids)), list(reversed(h))


CASES = [
    ("ch", (24, 18), (24.0, 27.0), True, "implicit"),
    ("ch", (24, 18), (24.0, 27.0), False, "convex_splitting"),
    ("ch", (10, 8, 7), (10.0, 8.0, 10.5), False, "implicit"),
    ("ac", (24, 18), (24.0, 27.0), True, "convex_splitting"),
    ("ac", (20, 15), (20.0, 30.0), False, "implicit"),
]


@pytest.mark.parametrize("model,shape,lengths,periodic,scheme", CASES)
def test_matches_serial_reference_and_conserves(comm, model, shape, lengths, periodic, scheme):
    PhaseFieldSolver, SolverOptions, _ = _petsc()
    energy = DoubleWell() if model == "ch" else Landau(A=-1.0, B=1.0)
    kappa, M = 2.0, (5.0 if model == "ch" else 0.5)
    base = 0.5 if model == "ch" else 0.0
    amp = 0.05 if model == "ch" else 0.3
    s = PhaseFieldSolver(comm, model, shape, lengths, periodic, energy, kappa, M,
                         options=SolverOptions(scheme=scheme, snes_rtol=1e-12, ksp_rtol=1e-10))
    s.set_state(_ic(s.grid.coordinates_xyz(), lengths, base, amp))
    (X, h) = _global_coords(shape, lengths)
    c_ref = _ic(X, lengths, base, amp)
    lap = ref.laplacian(c_ref.shape, h, periodic)
    m0, F = s.mass(), [s.free_energy()]
    assert F[0] == pytest.approx(ref.free_energy(c_ref, h, periodic, energy, kappa), rel=1e-13)
    split = scheme == "convex_splitting"
    for k, dt in enumerate([0.05, 0.2, 0.5, 1.0]):
        r = s.step(dt, dt)
        assert r.converged
        F.append(s.free_energy())
        flat = c_ref.ravel()
        if model == "ch":
            flat = ref.step_ch(flat, dt, lap, energy, kappa, M, split)
        else:
            flat = ref.step_ac(flat, dt, lap, energy, kappa, M, split)
        c_ref = flat.reshape(c_ref.shape)
    c = s.gather(0)
    assert np.max(np.abs(c - c_ref)) < 1e-9
    assert np.all(np.diff(F) < 0)  # energy decreases every step
    if model == "ch":
        assert abs(s.mass() - m0) / m0 < 1e-12  # exact mass conservation
    s.destroy()


def test_energy_monotone_at_huge_steps_convex_splitting(comm):
    """Convex splitting: F never increases, whatever Δt (here up to 10⁶)."""
    PhaseFieldSolver, SolverOptions, _ = _petsc()
    lengths = (32.0, 32.0)
    s = PhaseFieldSolver(comm, "ch", (32, 32), lengths, True, DoubleWell(), 2.0, 5.0,
                         options=SolverOptions(scheme="convex_splitting"))
    s.set_state(_ic(s.grid.coordinates_xyz(), lengths, 0.5, 0.1))
    m0, F = s.mass(), [s.free_energy()]
    t = 0.0
    for dt in [1.0, 10.0, 1e2, 1e3, 1e4, 1e5, 1e6]:
        t += dt
        assert s.step(dt, t).converged
        F.append(s.free_energy())
    assert np.all(np.diff(F) <= 1e-12 * abs(F[0]))
    assert abs(s.mass() - m0) / m0 < 1e-12
    s.destroy()


def test_dissipation_matches_energy_decrease(comm):
    """(Fⁿ − Fⁿ⁺¹)/Δt → ∫M|∇μ|² as Δt → 0 (first order in Δt)."""
    PhaseFieldSolver, SolverOptions, _ = _petsc()
    lengths = (40.0, 40.0)
    s = PhaseFieldSolver(comm, "ch", (40, 40), lengths, False, DoubleWell(), 2.0, 5.0,
                         options=SolverOptions(scheme="implicit", snes_rtol=1e-12, ksp_rtol=1e-10))
    s.set_state(_ic(s.grid.coordinates_xyz(), lengths, 0.5, 0.08))
    X0 = s.X.copy()
    errs = []
    for dt in (0.004, 0.002, 0.001):
        X0.copy(s.X)
        F0 = s.free_energy()
        s.step(dt, dt)
        D1 = s.dissipation()
        rate = (F0 - s.free_energy()) / dt
        errs.append(abs(rate - D1) / D1)
    X0.destroy()
    assert errs[-1] < 0.005
    # first order in Δt: halving Δt halves the mismatch (ratios → 2 from below)
    assert 1.6 < errs[0] / errs[1] < 2.2 and 1.7 < errs[1] / errs[2] < 2.2
    s.destroy()


def test_concentration_dependent_mobility_and_log_energy(comm):
    """Degenerate mobility M0 c(1−c) with the regular-solution ψ: mass exact, energy decreasing,
    result independent of the rank count (compared with a fine-tolerance serial-equivalent run
    through the same solver on COMM_SELF)."""
    from mpi4py import MPI

    PhaseFieldSolver, SolverOptions, Mobility = _petsc()
    lengths = (20.0, 20.0)
    energy = RegularSolution(theta=1.0, chi=2.6)
    opts = SolverOptions(scheme="convex_splitting", snes_rtol=1e-12, ksp_rtol=1e-10)
    runs = []
    for cm in (comm, MPI.COMM_SELF):
        s = PhaseFieldSolver(cm, "ch", (20, 20), lengths, True, energy, 1.0, Mobility(2.0, "quadratic"), options=opts)
        s.set_state(_ic(s.grid.coordinates_xyz(), lengths, 0.45, 0.05))
        m0, F = s.mass(), [s.free_energy()]
        t = 0.0
        for dt in (0.1, 0.3, 1.0, 3.0):
            t += dt
            r = s.step(dt, t)
            assert r.converged and r.newton_its < 10
            F.append(s.free_energy())
        assert abs(s.mass() - m0) / m0 < 1e-12
        assert np.all(np.diff(F) < 0)
        runs.append(s.gather(0))
        s.destroy()
    assert np.max(np.abs(runs[0] - runs[1])) < 1e-9
