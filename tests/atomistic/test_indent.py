"""Nanoindentation: the indenter's forces and load are derivatives of its energy, the load equals
dE/dh of the relaxed system (envelope theorem), all-atomistic QC with the indenter equals the full
atomistic relaxation, the adaptive QC load–depth curve matches full atomistics, rank independence."""
import numpy as np
import pytest

from hpcmsm.atomistic import CauchyBorn, LennardJones, equilibrium_lattice, make_lattice
from hpcmsm.atomistic.indent import (CylinderIndenter, full_indentation, half_space_sites, initial_atomistic,
                                     qc_indentation)
from hpcmsm.atomistic.qc import QCModel

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


def test_indenter_force_and_load_are_energy_derivatives():
    rng = np.random.default_rng(3)
    ind = CylinderIndenter(R=5.0, K=37.0, x_c=0.3, depth=0.8)
    x = np.c_[rng.uniform(-5, 5, 200), rng.uniform(-2, 0.5, 200)]
    E, g = ind.energy_gradient(x)
    assert E > 0 and np.count_nonzero(g.any(axis=1)) > 5
    h = 1e-6
    fd = np.zeros_like(x)
    for k in range(2):
        dx = np.zeros_like(x)
        dx[:, k] = h
        # one atom at a time (central differences)
        fd[:, k] = [(ind.energy_gradient(x + dx * (np.arange(len(x)) == i)[:, None])[0]
                     - ind.energy_gradient(x - dx * (np.arange(len(x)) == i)[:, None])[0]) / (2 * h)
                    for i in range(len(x))]
    np.testing.assert_allclose(g, fd, atol=1e-7 * np.abs(g).max())
    # load = ∂E/∂depth at fixed atoms
    P = ind.load(x)
    ind.depth += h
    Ep = ind.energy_gradient(x)[0]
    ind.depth -= 2 * h
    Em = ind.energy_gradient(x)[0]
    assert P > 0 and P == pytest.approx((Ep - Em) / (2 * h), rel=1e-7)


def test_load_is_derivative_of_relaxed_energy(setup):
    """Envelope theorem: at equilibrium P(h) = dE_min/dh — checks the load against the energy of
    the relaxed full atomistic system, including the relaxation."""
    lat, cb = setup
    a = lat.a
    sites = half_space_sites(a, 20, 12, 3 * a)
    ind = CylinderIndenter(R=6 * a, K=50.0)
    h, dh = 0.3 * a, 0.01 * a
    recs, _ = full_indentation(_self(), LJ, sites, ind, [h - dh, h, h + dh], gatol=1e-11)
    dEdh = (recs[2]["energy"] - recs[0]["energy"]) / (2 * dh)
    assert recs[1]["load"] > 0
    assert recs[1]["load"] == pytest.approx(dEdh, rel=2e-3)


@pytest.mark.mpi
def test_all_atomistic_qc_with_indenter_equals_full(comm, setup):
    lat, cb = setup
    a = lat.a
    sites = half_space_sites(a, 18, 12, 3 * a)
    ind = CylinderIndenter(R=6 * a, K=50.0, depth=0.4 * a)
    full, x = full_indentation(comm, LJ, sites, ind, [0.4 * a], gatol=1e-10)
    qc = QCModel(_self(), cb, sites, np.ones(len(sites.X), bool))
    qc.external = ind
    res = qc.solve(np.zeros(2 * qc.nn), "gfc", gatol=1e-10)
    assert res["energy"] == pytest.approx(full[0]["energy"], rel=1e-10)
    np.testing.assert_allclose(qc.site_positions(res["U"]), x, atol=1e-7)


def test_qc_load_depth_matches_full_atomistics(setup):
    lat, cb = setup
    a = lat.a
    sites = half_space_sites(a, 40, 20, 3 * a)
    ind = CylinderIndenter(R=10 * a, K=100.0)
    depths = [0.15 * a, 0.3 * a]
    A0 = initial_atomistic(sites, 2.5 * a, 4 * a)
    q = qc_indentation(_self(), cb, sites, A0, ind, depths, grow=2 * a, margin=3 * a)
    f, _ = full_indentation(_self(), LJ, sites, ind, depths)
    dofs_full = 2 * (~sites.ring).sum()
    for r, s in zip(q, f):
        assert r["qcf_residual"] < 1e-6
        assert r["dofs"] < 0.75 * dofs_full
        assert r["contact_atoms"] == s["contact_atoms"]
        assert r["load"] == pytest.approx(s["load"], rel=5e-3)
    assert q[1]["load"] > 2 * q[0]["load"]  # stiffening contact: P grows faster than linearly in h


@pytest.mark.mpi
def test_qc_indentation_rank_independent(comm, setup):
    lat, cb = setup
    a = lat.a
    sites = half_space_sites(a, 30, 14, 3 * a)
    A0 = initial_atomistic(sites, 2.5 * a, 4 * a)
    runs = []
    for c in (comm, _self()):
        ind = CylinderIndenter(R=8 * a, K=100.0)
        runs.append(qc_indentation(c, cb, sites, A0, ind, [0.3 * a], grow=2 * a, margin=3 * a))
    p, s = runs
    assert p[0]["atomistic_sites"] == s[0]["atomistic_sites"]
    assert p[0]["load"] == pytest.approx(s[0]["load"], rel=1e-8)
    assert p[0]["energy"] == pytest.approx(s[0]["energy"], rel=1e-10)
