"""Explicit atomistics and Cauchy–Born breakdown: forces vs finite differences, neighbour lists vs
brute force, parallel TAO relaxation independent of the rank count, fitted decay exponents."""
import numpy as np
import pytest

from hpcmsm.atomistic import CauchyBorn, LennardJones, equilibrium_lattice, make_lattice
from hpcmsm.atomistic.atoms import ParallelRelaxation, minimum_image, neighbour_pairs, pair_energy
from hpcmsm.atomistic.breakdown import (analyse_defect, edge_dislocation_system, fcc_block, nonaffinity,
                                        triangular_block, vacancy_system)

LJ = LennardJones(rc=2.5, cutoff="smooth", r_on=2.2)


@pytest.fixture(scope="module")
def tri():
    return equilibrium_lattice(make_lattice("triangular", 1.12), LJ)


def test_pairs_and_forces(tri):
    rng = np.random.default_rng(1)
    X, box = triangular_block(8, 8, tri.a)
    x = X + 0.05 * rng.standard_normal(X.shape)
    pairs = neighbour_pairs(x, LJ.rc, box)
    # brute force with the minimum image
    i, j = np.triu_indices(len(x), 1)
    r = np.linalg.norm(minimum_image(x[j] - x[i], box), axis=1)
    assert {tuple(p) for p in pairs.tolist()} == {(a, b) for a, b in zip(i[r < LJ.rc], j[r < LJ.rc])}
    E, F, e = pair_energy(LJ, x, pairs, box, per_atom=True)
    assert e.sum() == pytest.approx(E, rel=1e-13)
    h = 1e-6
    for k in rng.choice(len(x), 5, replace=False):
        for c in range(2):
            xp, xm = x.copy(), x.copy()
            xp[k, c] += h
            xm[k, c] -= h
            fd = -(pair_energy(LJ, xp, pairs, box)[0] - pair_energy(LJ, xm, pairs, box)[0]) / (2 * h)
            assert F[k, c] == pytest.approx(fd, abs=1e-7)
    # perfect periodic crystals: energy per atom equals the Cauchy–Born energy at F = I
    cb = CauchyBorn(tri, LJ)
    E0 = pair_energy(LJ, X, neighbour_pairs(X, LJ.rc, box), box)[0]
    assert E0 / len(X) == pytest.approx(cb.energy(np.eye(2))[0] * tri.atomic_volume, rel=1e-12)
    fcc = make_lattice("fcc", 1.55)
    X3, box3 = fcc_block(4, fcc.a)
    E3 = pair_energy(LJ, X3, neighbour_pairs(X3, LJ.rc, box3), box3)[0]
    assert E3 / len(X3) == pytest.approx(CauchyBorn(fcc, LJ).energy(np.eye(3))[0] * fcc.atomic_volume, rel=1e-12)


def test_nonaffinity_zero_for_affine_maps(tri):
    X, box = triangular_block(10, 10, tri.a)
    F = np.array([[1.02, 0.01], [-0.015, 0.99]])
    x = X @ F.T
    D2, J, n = nonaffinity(tri, x, None)  # free block (no periodic wrap)
    inner = np.all((X > 2 * tri.a) & (X < box - 2 * tri.a), axis=1)
    assert np.all(n[inner] == 6)
    assert D2[inner].max() < 1e-24
    np.testing.assert_allclose(J[inner], np.broadcast_to(F, J[inner].shape), atol=1e-12)


@pytest.mark.mpi
def test_parallel_relaxation_matches_serial(comm, tri):
    from mpi4py import MPI

    from hpcmsm.parallel import init_petsc

    init_petsc()
    s = vacancy_system(tri, 12)
    rng = np.random.default_rng(3)
    x0 = s.x0 + 0.02 * rng.standard_normal(s.x0.shape)  # same start on all ranks (seeded)
    par = ParallelRelaxation(comm, LJ, x0, s.fixed, s.box)
    out = par.run(gatol=1e-10)
    par.destroy()
    ser = ParallelRelaxation(MPI.COMM_SELF, LJ, x0, s.fixed, s.box)
    ref = ser.run(gatol=1e-10)
    ser.destroy()
    assert out["energy"] == pytest.approx(ref["energy"], rel=1e-12)
    u, uref = minimum_image(out["x"] - s.X, s.box), minimum_image(ref["x"] - s.X, s.box)
    u -= u.mean(axis=0)  # the periodic crystal may translate rigidly
    uref -= uref.mean(axis=0)
    np.testing.assert_allclose(u, uref, atol=1e-8)
    # and the relaxed state is an equilibrium: forces vanish
    F = pair_energy(LJ, out["x"], neighbour_pairs(out["x"], LJ.rc, s.box), s.box)[1]
    assert np.abs(F).max() < 1e-9


@pytest.mark.mpi
def test_dislocation_relaxation_with_clamped_ring_parallel(comm, tri):
    from mpi4py import MPI

    from hpcmsm.parallel import init_petsc

    init_petsc()
    s = edge_dislocation_system(tri, 9 * tri.a, 3 * tri.a)
    out = ParallelRelaxation(comm, LJ, s.x0, s.fixed, s.box).run(gatol=1e-10)
    ref = ParallelRelaxation(MPI.COMM_SELF, LJ, s.x0, s.fixed, s.box).run(gatol=1e-10)
    assert out["energy"] == pytest.approx(ref["energy"], rel=1e-12)
    np.testing.assert_allclose(out["x"], ref["x"], atol=1e-8)
    np.testing.assert_array_equal(out["x"][s.fixed], s.x0[s.fixed])  # the ring stays clamped
    F = pair_energy(LJ, out["x"], neighbour_pairs(out["x"], LJ.rc, None), None)[1]
    assert np.abs(F[~s.fixed]).max() < 1e-9


def test_breakdown_decay_exponents(tri):
    """Non-affinity decays like the strain gradient of the elastic field: r^-3 around a 2D vacancy,
    r^-2 around an edge dislocation; the CB energy error like its square."""
    from mpi4py import MPI

    from hpcmsm.parallel import init_petsc

    init_petsc()
    cb = CauchyBorn(tri, LJ)
    v = analyse_defect(MPI.COMM_SELF, cb, vacancy_system(tri, 40))
    assert 2.4 < v["fit_xi_exponent"] < 3.4 and 5.0 < v["fit_dE_exponent"] < 7.0
    d = analyse_defect(MPI.COMM_SELF, cb, edge_dislocation_system(tri, 22 * tri.a, 3 * tri.a))
    assert 1.8 < d["fit_xi_exponent"] < 3.0 and 3.5 < d["fit_dE_exponent"] < 5.0
    # breakdown is local: a few lattice constants, and wider for the dislocation than the vacancy
    assert 1.0 < d["breakdown_radius_xi"] < 8.0
    assert v["breakdown_radius_xi"] < d["breakdown_radius_xi"]
    assert v["breakdown_radius_energy"] < d["breakdown_radius_energy"] < 10.0
