"""EAM in the setfl (eam/alloy) format: round trip against the analytic functions it was generated
from, strict reading, forces and virial = derivatives of the energy, Cauchy–Born P and A = finite
differences, elastic constants = an explicit periodic crystal, and the Cauchy relation broken."""
import numpy as np
import pytest

from hpcmsm.atomistic import elastic_constants, equilibrium_lattice, make_lattice, stability
from hpcmsm.atomistic.cauchy_born import CauchyBorn, make_cauchy_born
from hpcmsm.atomistic.eam import AnalyticEAM, SetflEAM, eam_energy, read_setfl, write_setfl
from hpcmsm.errors import InputError

POT = AnalyticEAM()


@pytest.fixture(scope="module")
def setfl_path(tmp_path_factory):
    p = tmp_path_factory.mktemp("eam") / "X.eam.alloy"
    write_setfl(str(p), POT.to_setfl("Cu", nrho=2000, nr=2000))
    return str(p)


@pytest.fixture(scope="module")
def eam(setfl_path):
    return SetflEAM(setfl_path, "Cu")


def test_setfl_round_trip_equals_analytic_functions(setfl_path, eam):
    s = read_setfl(setfl_path)
    assert s.elements == ["Cu"] and s.nrho == 2000 and s.nr == 2000 and s.rcut == POT.rc
    rho = np.arange(s.nrho) * s.drho
    r = np.arange(s.nr) * s.dr
    np.testing.assert_allclose(s.embed[0], POT.embed(rho)[0], rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(s.density[0], POT.density(r)[0], rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(s.rphi[(0, 0)], r * POT.pair(r)[0], rtol=1e-15, atol=1e-15)
    # the splines pass through the table and follow the analytic functions between the points
    np.testing.assert_allclose(eam.density(r[1:-1])[0], POT.density(r[1:-1])[0], atol=1e-14)
    rr = np.linspace(1.8, 4.99, 777)
    for k in range(2):
        np.testing.assert_allclose(eam.density(rr)[k], POT.density(rr)[k], atol=1e-6 * 10**k)
        np.testing.assert_allclose(eam.pair(rr)[k], POT.pair(rr)[k], atol=1e-6 * 10**k)
    q = np.linspace(2.0, 30.0, 301)
    for k in range(3):
        np.testing.assert_allclose(eam.embed(q)[k], POT.embed(q)[k], atol=1e-9)


def test_setfl_strict_reading(tmp_path, setfl_path):
    lines = open(setfl_path).read().splitlines()
    # one value missing in the middle of a table
    bad = lines[:10] + [" ".join(lines[10].split()[:-1])] + lines[11:]
    p = tmp_path / "short.eam.alloy"
    p.write_text("\n".join(bad) + "\n")
    with pytest.raises(InputError, match=r"short\.eam\.alloy.*expected 6004 values.*found 6003"):
        read_setfl(str(p))
    p = tmp_path / "long.eam.alloy"
    p.write_text("\n".join(lines + ["1.0"]) + "\n")
    with pytest.raises(InputError, match=r"long\.eam\.alloy.*found 6005"):
        read_setfl(str(p))
    p = tmp_path / "text.eam.alloy"
    p.write_text("\n".join(lines[:12] + [lines[12].replace(lines[12].split()[0], "abc", 1)] + lines[13:]) + "\n")
    with pytest.raises(InputError, match=r"text\.eam\.alloy: non-numeric value 'abc' in F\(rho\) of Cu"):
        read_setfl(str(p))
    p = tmp_path / "elements.eam.alloy"
    p.write_text("\n".join(lines[:3] + ["2 Cu"] + lines[4:]) + "\n")
    with pytest.raises(InputError, match=r"elements\.eam\.alloy: line 4 announces 2 elements but lists 1"):
        read_setfl(str(p))
    with pytest.raises(InputError, match="cannot read"):
        read_setfl(str(tmp_path / "missing.eam.alloy"))
    with pytest.raises(InputError, match="element 'Al' not in the file"):
        SetflEAM(setfl_path, "Al")


def _fcc_block(n, a):
    f = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]])
    c = np.array(np.meshgrid(*[np.arange(n)] * 3, indexing="ij")).reshape(3, -1).T
    return ((c[:, None, :] + f[None]).reshape(-1, 3)) * a, np.full(3, n * a)


def test_forces_and_virial_are_energy_derivatives(eam):
    rng = np.random.default_rng(7)
    x, box = _fcc_block(3, 3.62)
    x = x + rng.normal(scale=0.05, size=x.shape)
    E, f, _ = eam_energy(eam, x, box)
    h = 1e-5
    for i in rng.choice(len(x), 6, replace=False):
        for k in range(3):
            xp, xm = x.copy(), x.copy()
            xp[i, k] += h
            xm[i, k] -= h
            fd = (eam_energy(eam, xp, box)[0] - eam_energy(eam, xm, box)[0]) / (2 * h)
            assert -f[i, k] == pytest.approx(fd, abs=1e-7)
    assert np.abs(f.sum(axis=0)).max() < 1e-10  # Newton's third law
    # virial = ∂E/∂ε under x → (I + ε) x of a free cluster (shear included)
    cl = x[np.linalg.norm(x - x.mean(axis=0), axis=1) < 6.0]
    _, _, V = eam_energy(eam, cl, None)
    for i, j in [(0, 0), (1, 2), (0, 1)]:
        M = np.zeros((3, 3))
        M[i, j] += 0.5
        M[j, i] += 0.5
        Ep = eam_energy(eam, cl @ (np.eye(3) + h * M).T, None)[0]
        Em = eam_energy(eam, cl @ (np.eye(3) - h * M).T, None)[0]
        assert V[i, j] == pytest.approx((Ep - Em) / (2 * h), rel=1e-6, abs=1e-8)


def test_explicit_crystal_energy_equals_cauchy_born(eam):
    lat = make_lattice("fcc", 3.6)
    x, box = _fcc_block(3, lat.a)
    cb = make_cauchy_born(lat, eam)
    # the periodic box is orthogonal: a diagonal (stretch) F
    Fd = np.diag([1.01, 0.99, 1.0])
    E = eam_energy(eam, x @ Fd.T, box * np.diag(Fd))[0]
    assert E / len(x) == pytest.approx(cb.evaluate(Fd, order=0).W[0] * cb.V0, rel=1e-12)


@pytest.mark.parametrize("source", ["setfl", "analytic"])
def test_cauchy_born_stress_and_tangent_match_finite_differences(eam, source):
    pot = eam if source == "setfl" else POT
    cb = make_cauchy_born(make_lattice("fcc", 3.6), pot)
    rng = np.random.default_rng(11)
    F = np.eye(3) + 0.04 * rng.normal(size=(3, 3))
    res = cb.evaluate(F, order=2)
    h = 1e-6
    for i in range(3):
        for J in range(3):
            dF = np.zeros((3, 3))
            dF[i, J] = h
            rp, rm = cb.evaluate(F + dF, order=1), cb.evaluate(F - dF, order=1)
            assert res.P[0, i, J] == pytest.approx((rp.W[0] - rm.W[0]) / (2 * h), rel=1e-6, abs=1e-9)
            np.testing.assert_allclose(res.A[0, :, :, i, J], (rp.P[0] - rm.P[0]) / (2 * h), rtol=1e-5, atol=1e-7)
    # frame indifference
    Q = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    Q *= np.sign(np.linalg.det(Q))
    assert cb.evaluate(Q @ F, order=0).W[0] == pytest.approx(res.W[0], rel=1e-13)


def _images(H, rc):
    m = int(np.ceil(rc / H[0, 0] * 1.3)) + 1
    n = np.array(np.meshgrid(*[np.arange(-m, m + 1)] * 3, indexing="ij")).reshape(3, -1).T
    return n @ H


def direct_eam_energy(pot, a, F):
    """Energy per reference volume of an explicit periodic conventional FCC cell (4 atoms), every
    image summed explicitly: ρ_i = Σ_j,T f(|x_j + T − x_i|), E = Σ_i F(ρ_i) + ½ Σ φ."""
    X = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]]) * a
    x, H = X @ F.T, (np.eye(3) * a) @ F.T
    T = _images(H, pot.rc)
    E = 0.0
    for i in range(4):
        r = np.linalg.norm((x[None, :, :] - x[i] + T[:, None, :]).reshape(-1, 3), axis=1)
        r = r[(r > 1e-9) & (r < pot.rc)]
        E += pot.embed(np.array([pot.density(r)[0].sum()]))[0][0] + 0.5 * pot.pair(r)[0].sum()
    return E / a**3


def _sqrtm_sym(M):
    w, V = np.linalg.eigh(M)
    return (V * np.sqrt(w)) @ V.T


def test_elastic_constants_match_explicit_periodic_crystal_and_break_cauchy_relation(eam):
    lat = make_lattice("fcc", 3.58)  # not at equilibrium: a pre-stressed reference
    C = elastic_constants(make_cauchy_born(lat, eam)).voigt
    h = 2e-3
    basis = {0: (0, 0), 1: (1, 1), 3: (1, 2)}

    def Q(M):
        Ws = [direct_eam_energy(eam, lat.a, _sqrtm_sym(np.eye(3) + 2 * t * M)) for t in (-2 * h, -h, 0, h, 2 * h)]
        return (-Ws[0] + 16 * Ws[1] - 30 * Ws[2] + 16 * Ws[3] - Ws[4]) / (12 * h * h)

    Ms = {}
    for k, (i, j) in basis.items():
        M = np.zeros((3, 3))
        M[i, j] += 0.5
        M[j, i] += 0.5
        Ms[k] = M
    c11, c44 = Q(Ms[0]), Q(Ms[3])
    c12 = 0.5 * (Q(Ms[0] + Ms[1]) - c11 - Q(Ms[1]))
    for v, ref in ((c11, C[0, 0]), (c12, C[0, 1]), (c44, C[3, 3])):
        assert v == pytest.approx(ref, abs=1e-6 * abs(C[0, 0]))
    # at zero stress the pair part obeys C12 = C44; the embedding adds F''(ρ) ∂ρ/∂E ⊗ ∂ρ/∂E with
    # ∂ρ/∂E_IJ = Σ_k f′(r_k) d_kI d_kJ / r_k, so C12 − C44 = F''(ρ) (Σ_k f′ d_kx²/r_k)² / V₀ > 0
    leq = equilibrium_lattice(make_lattice("fcc", 3.6), eam)
    cb = make_cauchy_born(leq, eam)
    ce = elastic_constants(cb)
    assert np.abs(ce.stress).max() < 1e-10 * abs(ce.voigt[0, 0])
    d = cb.d
    r = np.linalg.norm(d, axis=1)
    f, f1, _ = eam.density(r)
    F2 = eam.embed(np.array([f.sum()]))[2][0]
    pred = F2 * np.sum(f1 * d[:, 0] ** 2 / r) ** 2 / cb.V0
    assert ce.voigt[0, 1] - ce.voigt[3, 3] == pytest.approx(pred, rel=1e-6)
    assert pred > 0.1 * ce.voigt[3, 3]  # clearly violated, as for real metals (C12 > C44)
    assert stability(cb)["stable"]
    # a linear embedding (F'' = 0) is a pair potential in disguise: the Cauchy relation returns
    lin = AnalyticEAM(c=0.0, E_F=2.28)
    ce0 = elastic_constants(make_cauchy_born(equilibrium_lattice(make_lattice("fcc", 3.6), lin), lin)).voigt
    assert ce0[0, 1] == pytest.approx(ce0[3, 3], rel=1e-9)


def test_eam_cauchy_born_bad_input(eam):
    with pytest.raises(InputError, match="many-body"):
        CauchyBorn(make_lattice("fcc", 3.6), eam)
    with pytest.raises(InputError, match="Bravais"):
        make_cauchy_born(make_lattice("diamond", 5.4), eam)
    with pytest.raises(InputError, match="det F"):
        make_cauchy_born(make_lattice("fcc", 3.6), eam).evaluate(-np.eye(3))


@pytest.mark.mpi
def test_parallel_relaxation_of_eam_vacancy(comm, eam):
    """An FCC vacancy relaxed with the EAM potential by the parallel relaxer (ghost densities through
    PETSc scatters): energy = the serial vectorised eam_energy, zero forces, rank independent, a
    positive vacancy formation energy."""
    from mpi4py import MPI

    from hpcmsm.atomistic.atoms import ParallelRelaxation
    from hpcmsm.parallel import init_petsc

    init_petsc()
    lat = equilibrium_lattice(make_lattice("fcc", 3.6), eam)
    x, box = _fcc_block(3, lat.a)
    E_perfect = eam_energy(eam, x, box)[0]
    x = np.delete(x, 13, axis=0)
    x = x + 0.01 * np.sin(np.arange(x.size)).reshape(x.shape)  # a non-symmetric start
    out = {}
    for name, c in (("par", comm), ("ser", MPI.COMM_SELF)):
        rel = ParallelRelaxation(c, eam, x, None, box)
        assert rel.energy(x) == pytest.approx(eam_energy(eam, x, box)[0], rel=1e-13)
        out[name] = rel.run(gatol=1e-9)
        rel.destroy()
    p, s = out["par"], out["ser"]
    assert p["energy"] == pytest.approx(s["energy"], rel=1e-12)
    np.testing.assert_allclose(p["x"], s["x"], atol=1e-7)
    E, f, _ = eam_energy(eam, p["x"], box)
    assert E == pytest.approx(p["energy"], rel=1e-12) and np.abs(f).max() < 1e-8
    Ev = E - (len(x) / (len(x) + 1)) * E_perfect
    assert 0.2 < Ev < 3.0  # eV: a vacancy costs energy, of the order of real FCC metals' ~1 eV
