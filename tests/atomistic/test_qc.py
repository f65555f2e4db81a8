"""2D quasicontinuum: patch test (QCE fails, ghost-force-corrected passes), consistency with full
atomistics, errors falling as the atomistic region grows, rank independence."""
import numpy as np
import pytest

from hpcmsm.atomistic import CauchyBorn, LennardJones, equilibrium_lattice, make_lattice
from hpcmsm.atomistic.qc import QCModel, atomistic_mask, block_sites, compare, full_atomistic, site_energy

LJ = LennardJones(rc=2.5, cutoff="smooth", r_on=2.2)


@pytest.fixture(scope="module")
def setup():
    from hpcmsm.parallel import init_petsc

    init_petsc()
    lat = equilibrium_lattice(make_lattice("triangular", 1.12), LJ)
    return lat, CauchyBorn(lat, LJ)


def _self():
    from mpi4py import MPI

    return MPI.COMM_SELF


def test_patch_test(setup):
    lat, cb = setup
    a = lat.a
    sites = block_sites(a, 20, 24, ring=3 * a)
    qc = QCModel(_self(), cb, sites, atomistic_mask(sites, np.zeros((1, 2)), 4 * a))
    F = np.array([[1.01, 0.03], [-0.01, 0.98]])
    U = (sites.X[qc.node_ids] @ (F - np.eye(2)).T).ravel()
    free = qc.node_free
    E, G = qc.energy_gradient(U)
    f_qce = -G.reshape(-1, 2)[free]
    f_qcf = qc.qcf_forces(U)[free]
    assert np.abs(f_qce).max() > 0.05          # energy-based coupling: ghost forces at the interface
    assert np.abs(f_qcf).max() < 1e-10         # ghost-force-free forces vanish
    np.testing.assert_allclose(qc.ghost_forces(U)[free], f_qce, atol=1e-10)
    # the interpolated homogeneous state has the exact atomistic energy (CB is exact for it)
    assert E == pytest.approx(site_energy(LJ, sites.X @ F.T), rel=1e-12)
    res = qc.solve(U, "gfc")
    assert res["outer_iterations"] == 1 and np.abs(res["U"] - U).max() < 1e-12  # nothing moves
    res = qc.solve(U, "qce")
    assert np.abs(res["U"] - U).max() > 1e-3                                  # QCE distorts the patch


def test_all_atomistic_qc_equals_full_atomistics(setup):
    lat, cb = setup
    a = lat.a
    sites = block_sites(a, 16, 18, ring=3 * a, vacancies=np.array([[0.0, 0.0]]))
    x0 = sites.X @ np.array([[1.0, 0.03], [0.0, 1.0]]).T
    qc = QCModel(_self(), cb, sites, np.ones(len(sites.X), bool))
    assert qc.nn == len(sites.X) and qc.n_e.sum() == 0
    res = qc.solve((x0 - sites.X)[qc.node_ids].ravel(), "gfc", gatol=1e-10)
    ex = full_atomistic(_self(), LJ, sites, x0, gatol=1e-10)
    assert res["energy"] == pytest.approx(ex["energy"], rel=1e-12)
    np.testing.assert_allclose(qc.site_positions(res["U"]), ex["x"], atol=1e-8)


def test_errors_fall_as_atomistic_region_grows(setup):
    lat, cb = setup
    a = lat.a
    vac = np.array([[0.0, 0.0], [a, 0.0]])
    sites = block_sites(a, 26, 30, ring=3 * a, vacancies=vac)
    x0 = sites.X @ np.array([[1.0, 0.04], [0.0, 1.0]]).T
    ex = full_atomistic(_self(), LJ, sites, x0)
    rows = []
    for R in (2.5, 4.0, 6.5):
        qc = QCModel(_self(), cb, sites, atomistic_mask(sites, vac, R * a))
        res = qc.solve((x0 - sites.X)[qc.node_ids].ravel(), "gfc")
        assert res["qcf_residual"] < 1e-6
        c = compare(qc, res, ex, x0)
        # any QC configuration is admissible for the full model: its true energy is above the minimum
        assert c["true_energy_of_qc_configuration"] >= ex["energy"] - 1e-9
        rows.append((c["true_energy_of_qc_configuration"] - ex["energy"], c["displacement_error_max"], c["dofs_qc"]))
    errs = np.array(rows)
    assert np.all(np.diff(errs[:, 0]) < 0) and np.all(np.diff(errs[:, 1]) < 0)
    assert np.all(np.diff(errs[:, 2]) > 0)
    assert errs[-1, 1] < 0.3 * errs[0, 1]


@pytest.mark.mpi
def test_qc_parallel_matches_serial(comm, setup):
    lat, cb = setup
    a = lat.a
    vac = np.array([[0.0, 0.0]])
    sites = block_sites(a, 18, 20, ring=3 * a, vacancies=vac)
    x0 = sites.X @ np.array([[1.0, 0.03], [0.0, 1.0]]).T
    A = atomistic_mask(sites, vac, 3 * a)
    par = QCModel(comm, cb, sites, A)
    U0 = (x0 - sites.X)[par.node_ids].ravel()
    E0, G0 = par.energy_gradient(U0)
    ser = QCModel(_self(), cb, sites, A)
    E1, G1 = ser.energy_gradient(U0)
    assert E0 == pytest.approx(E1, rel=1e-13)
    np.testing.assert_allclose(G0, G1, atol=1e-11)
    r0 = par.solve(U0, "gfc")
    r1 = ser.solve(U0, "gfc")
    assert r0["energy"] == pytest.approx(r1["energy"], rel=1e-11)
    np.testing.assert_allclose(r0["U"], r1["U"], atol=1e-7)
