"""Stillinger–Weber in the explicit parallel relaxer: energy = an independent brute-force SW sum
written from the paper's formulas, = Cauchy–Born for the perfect crystal, forces = −FD, and the
parallel relaxation of a vacancy is rank independent."""
import numpy as np
import pytest

from hpcmsm.atomistic import CauchyBorn, StillingerWeber, equilibrium_lattice, make_lattice
from hpcmsm.atomistic.atoms import ParallelRelaxation

SW = StillingerWeber()


def _self():
    from mpi4py import MPI

    return MPI.COMM_SELF


@pytest.fixture(scope="module")
def diamond():
    from hpcmsm.parallel import init_petsc

    init_petsc()
    lat = equilibrium_lattice(make_lattice("diamond", 5.43), SW)
    f = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]])
    f = np.vstack([f, f + 0.25])
    c = np.array(np.meshgrid(*[np.arange(2)] * 3, indexing="ij")).reshape(3, -1).T
    x = ((c[:, None, :] + f[None]).reshape(-1, 3)) * lat.a
    return lat, x, np.full(3, 2 * lat.a)


def brute_force_sw(x):
    """Free cluster, every atom and angle visited explicitly (no neighbour lists, no vectorised
    kernels of the library)."""
    e, s, a, lam, g = SW.epsilon, SW.sigma, SW.a, SW.lam, SW.gamma
    E = 0.0
    for i in range(len(x)):
        v = x - x[i]
        r = np.linalg.norm(v, axis=1)
        nb = np.flatnonzero((r > 1e-9) & (r < a * s))
        for j in nb:
            if j > i:
                E += SW.A * e * (SW.B * (s / r[j]) ** SW.p - (s / r[j]) ** SW.q) * np.exp(s / (r[j] - a * s))
        for m, j in enumerate(nb):
            for k in nb[m + 1:]:
                cos = v[j] @ v[k] / (r[j] * r[k])
                E += lam * e * (cos + 1 / 3) ** 2 * np.exp(g * s / (r[j] - a * s)) * np.exp(g * s / (r[k] - a * s))
    return E


def test_sw_relaxer_energy_forces(diamond):
    lat, x, box = diamond
    cb = CauchyBorn(lat, SW)
    rel = ParallelRelaxation(_self(), SW, x, None, box)
    assert rel.energy(x) / len(x) == pytest.approx(cb.evaluate(np.eye(3), order=0).W[0] * cb.V0 / 2, rel=1e-13)
    rel.destroy()
    rng = np.random.default_rng(2)
    cl = x[np.linalg.norm(x - x.mean(axis=0), axis=1) < 6.0] + rng.normal(scale=0.08, size=(1, 3))
    cl = cl + rng.normal(scale=0.08, size=cl.shape)
    rel = ParallelRelaxation(_self(), SW, cl, None, None)
    assert rel.energy(cl) == pytest.approx(brute_force_sw(cl), rel=1e-12)
    X = rel.X.duplicate()
    G = rel.X.duplicate()
    X.setArray(cl.ravel())
    rel._objective_gradient(None, X, G)
    g = G.getArray().reshape(-1, 3).copy()
    X.destroy()
    G.destroy()
    h = 1e-6
    for i in rng.choice(len(cl), 5, replace=False):
        for k in range(3):
            xp, xm = cl.copy(), cl.copy()
            xp[i, k] += h
            xm[i, k] -= h
            assert g[i, k] == pytest.approx((rel.energy(xp) - rel.energy(xm)) / (2 * h), abs=1e-6)
    rel.destroy()


@pytest.mark.mpi
def test_sw_vacancy_relaxation_rank_independent(comm, diamond):
    lat, x, box = diamond
    xv = np.delete(x, 0, axis=0)
    xv = xv + 0.05 * np.sin(np.arange(xv.size)).reshape(xv.shape)  # break the symmetry
    out = []
    for c in (comm, _self()):
        rel = ParallelRelaxation(c, SW, xv, None, box)
        out.append(rel.run(gatol=1e-9))
        rel.destroy()
    p, s = out
    assert p["gnorm"] < 1e-8
    assert p["energy"] == pytest.approx(s["energy"], rel=1e-12)
    np.testing.assert_allclose(p["x"], s["x"], atol=1e-7)
    # formation energy of the SW vacancy relative to the perfect crystal (eV): positive, ~4.3 here
    cb = CauchyBorn(lat, SW)
    Ev = p["energy"] - len(xv) * cb.evaluate(np.eye(3), order=0).W[0] * cb.V0 / 2
    assert 2.0 < Ev < 6.0
