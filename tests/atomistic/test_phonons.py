"""Phonon stability: the long-wavelength limit of the dynamical matrix is the Cauchy–Born acoustic
tensor, D(q) is lattice periodic and PSD for stable FCC, soft modes appear for SC and for strongly
sheared or stretched FCC."""
import numpy as np
import pytest

from hpcmsm.atomistic import CauchyBorn, LennardJones, Morse, equilibrium_lattice, make_lattice, stability
from hpcmsm.atomistic.phonons import dynamical_matrix, phonon_stability
from hpcmsm.errors import InputError

LJ = LennardJones(rc=2.5, cutoff="smooth", r_on=2.2)


@pytest.fixture(scope="module")
def fcc():
    return equilibrium_lattice(make_lattice("fcc", 1.55), LJ)


@pytest.mark.parametrize("F", [np.eye(3), np.array([[1.02, 0.05, 0], [0, 0.99, 0.01], [0.02, 0, 1.0]])])
def test_long_wavelength_limit_is_cauchy_born_acoustic_tensor(fcc, F):
    cb = CauchyBorn(fcc, LJ)
    A = cb.evaluate(F, order=2).A[0]
    rng = np.random.default_rng(5)
    for n in rng.normal(size=(4, 3)):
        n /= np.linalg.norm(n)
        eps = 1e-4
        D = dynamical_matrix(fcc, LJ, eps * n, F)[0] / eps**2
        m = F.T @ n
        Q = cb.V0 * np.einsum("iJkL,J,L->ik", A, m, m)
        np.testing.assert_allclose(D, Q, rtol=1e-6, atol=1e-6 * np.abs(Q).max())


def test_dynamical_matrix_periodic_and_fcc_stable(fcc):
    B = 2 * np.pi * np.linalg.inv(fcc.cell).T
    q = np.array([0.3, -0.7, 1.1])
    np.testing.assert_allclose(dynamical_matrix(fcc, LJ, q + B[1] - 2 * B[2]), dynamical_matrix(fcc, LJ, q),
                               atol=1e-10)
    ph = phonon_stability(fcc, LJ, n=8)
    assert ph["stable"] and ph["omega2_min"] > 0  # Γ excluded: every mode on the grid is stiff
    # square Morse and triangular LJ in 2D as well
    tri = equilibrium_lattice(make_lattice("triangular", 1.12), LJ)
    assert phonon_stability(tri, LJ, n=16)["stable"]


def test_soft_modes_flagged():
    # simple cubic with LJ: C44 < 0, so the transverse acoustic branch is soft near Γ
    sc = equilibrium_lattice(make_lattice("sc", 1.1), LJ)
    ph = phonon_stability(sc, LJ, n=8)
    assert not ph["stable"] and ph["omega2_min"] < 0
    assert not stability(CauchyBorn(sc, LJ))["stable"]


def test_sheared_and_stretched_fcc_unstable(fcc):
    cb = CauchyBorn(fcc, LJ)
    for F in (np.array([[1, 0.3, 0], [0, 1, 0], [0, 0, 1.0]]), 1.12 * np.eye(3)):
        ph = phonon_stability(fcc, LJ, F, n=8)
        assert not ph["stable"], F
        assert not stability(cb, F)["stable"]  # both beyond the loss of strong ellipticity
    # a small shear is still stable
    assert phonon_stability(fcc, LJ, np.array([[1, 0.03, 0], [0, 1, 0], [0, 0, 1.0]]), n=8)["stable"]


def test_phonons_bad_input(fcc):
    with pytest.raises(InputError, match="Bravais"):
        phonon_stability(make_lattice("diamond", 5.43), Morse(rc=4.0), n=4)
    with pytest.raises(InputError, match="det F"):
        phonon_stability(fcc, LJ, -np.eye(3))
