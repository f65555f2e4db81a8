"""Cauchy–Born verification: W, P, A vs finite differences, frame indifference, Cauchy relation,
stability of SC/FCC, elastic constants vs an independent explicit periodic crystal, diamond inner
relaxation, Stillinger–Weber literature constants, bad input."""
import numpy as np
import pytest

from hpcmsm.atomistic import (CauchyBorn, LennardJones, Morse, StillingerWeber, elastic_constants,
                              equilibrium_lattice, make_lattice, make_potential, shells, stability)
from hpcmsm.atomistic.material import CauchyBornMaterial
from hpcmsm.errors import InputError

RNG = np.random.default_rng(7)


def random_F(d, n, amp=0.04):
    return np.eye(d)[None] + amp * RNG.standard_normal((n, d, d))


def random_rotation(d):
    Q, R = np.linalg.qr(RNG.standard_normal((d, d)))
    Q = Q * np.sign(np.diag(R))
    if np.linalg.det(Q) < 0:
        Q[:, 0] *= -1
    return Q


@pytest.mark.parametrize("name,counts", [
    ("sc", [6, 12, 8, 6]), ("fcc", [12, 6, 24, 12, 24]), ("bcc", [8, 6, 12, 24, 8]),
    ("diamond", [4, 12, 12, 6]), ("hcp", [12, 6, 2, 18]), ("triangular", [6, 6, 6, 12]), ("square", [4, 4, 4, 8])])
def test_neighbour_shells(name, counts):
    r, c = shells(make_lattice(name, 1.0), len(counts))
    assert c.tolist() == counts
    assert np.all(np.diff(r) > 0)


def test_simple_cubic_textbook_formula():
    """W = a⁻³[Σ_i φ(a|c_i|) + Σ_{i<j} φ(a|c_i ± c_j|)], c_i = F e_i (first + second neighbours)."""
    a = 1.1
    lj = LennardJones(rc=1.6 * a, cutoff="plain")
    cb = CauchyBorn(make_lattice("sc", a), lj)
    F = random_F(3, 20, 0.02)  # small enough that the third shell stays outside rc
    phi = lambda x: lj.pair(x)[0]  # noqa: E731
    c = np.swapaxes(F, 1, 2)  # c[:, i] = F e_i
    W = sum(phi(a * np.linalg.norm(c[:, i], axis=1)) for i in range(3))
    for i in range(3):
        for j in range(i + 1, 3):
            W = W + phi(a * np.linalg.norm(c[:, i] + c[:, j], axis=1)) + phi(a * np.linalg.norm(c[:, i] - c[:, j], axis=1))
    np.testing.assert_allclose(cb.energy(F), W / a**3, rtol=1e-13)


CASES = {
    "fcc-lj-plain": lambda: CauchyBorn(make_lattice("fcc", 1.55), LennardJones(rc=2.5, cutoff="plain")),
    "fcc-lj-shifted": lambda: CauchyBorn(make_lattice("fcc", 1.55), LennardJones(rc=2.5, cutoff="shifted")),
    "fcc-lj-smooth": lambda: CauchyBorn(make_lattice("fcc", 1.55), LennardJones(rc=2.5, cutoff="smooth", r_on=2.1)),
    "bcc-morse": lambda: CauchyBorn(make_lattice("bcc", 1.3), Morse(alpha=3.0, r0=1.1, rc=2.2, cutoff="smooth")),
    "hcp-lj-relaxed": lambda: CauchyBorn(make_lattice("hcp", 1.09), LennardJones(rc=2.2, cutoff="smooth")),
    "diamond-sw-relaxed": lambda: CauchyBorn(make_lattice("diamond", 5.431), StillingerWeber()),
    "diamond-sw-unrelaxed": lambda: CauchyBorn(make_lattice("diamond", 5.431), StillingerWeber(), relax=False),
    "triangular-lj": lambda: CauchyBorn(make_lattice("triangular", 1.1), LennardJones(rc=2.5, cutoff="smooth")),
    "square-morse": lambda: CauchyBorn(make_lattice("square", 1.0), Morse(alpha=4.0, r0=1.0, rc=1.8)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_stress_and_tangent_match_finite_differences(case):
    cb = CASES[case]()
    d = cb.dim
    F = random_F(d, 3, 0.03)
    res = cb.evaluate(F)
    h = 1e-6
    Pfd = np.zeros_like(res.P)
    Afd = np.zeros_like(res.A)
    for k in range(d):
        for L in range(d):
            dF = np.zeros((d, d))
            dF[k, L] = h
            rp, rm = cb.evaluate(F + dF, order=1), cb.evaluate(F - dF, order=1)
            Pfd[:, k, L] = (rp.W - rm.W) / (2 * h)
            Afd[:, :, :, k, L] = (rp.P - rm.P) / (2 * h)
    scale = np.abs(res.A).max()
    np.testing.assert_allclose(res.P, Pfd, atol=1e-7 * scale)
    np.testing.assert_allclose(res.A, Afd, atol=1e-7 * scale)
    # major symmetry of a hyperelastic tangent
    np.testing.assert_allclose(res.A, res.A.transpose(0, 3, 4, 1, 2), atol=1e-11 * scale)


@pytest.mark.parametrize("case", ["fcc-lj-smooth", "hcp-lj-relaxed", "diamond-sw-relaxed", "triangular-lj"])
def test_frame_indifference(case):
    cb = CASES[case]()
    d = cb.dim
    F = random_F(d, 4, 0.05)
    Q = random_rotation(d)
    QF = np.einsum("ij,njk->nik", Q, F)
    a, b = cb.evaluate(F), cb.evaluate(QF)
    np.testing.assert_allclose(b.W, a.W, rtol=1e-12)
    np.testing.assert_allclose(b.P, np.einsum("ij,njK->niK", Q, a.P), atol=1e-11 * np.abs(a.P).max())
    np.testing.assert_allclose(b.A, np.einsum("ia,kb,naJbL->niJkL", Q, Q, a.A), atol=1e-10 * np.abs(a.A).max())


@pytest.mark.parametrize("pot,sc_unstable", [(LennardJones(rc=2.5, cutoff="smooth"), True),
                                             (LennardJones(rc=2.5, cutoff="shifted"), True),
                                             (Morse(alpha=4.0, r0=1.0, rc=2.0, cutoff="smooth"), False)])
def test_cauchy_relation_and_stability_fcc_vs_sc(pot, sc_unstable):
    """FCC is stable; SC is shear-unstable with Lennard-Jones.  The textbook statement is not
    general: a short-ranged Morse potential (α r0 = 4) gives C44 = C12 > 0 for SC at zero stress."""
    fcc = CauchyBorn(equilibrium_lattice(make_lattice("fcc", 1.5), pot), pot)
    ec = elastic_constants(fcc)
    C = ec.voigt
    assert np.abs(ec.stress).max() < 1e-10 * C[0, 0]  # zero stress at the equilibrium lattice
    assert abs(C[0, 1] - C[3, 3]) < 1e-10 * C[0, 0]  # Cauchy relation C12 = C44
    np.testing.assert_allclose(np.diag(C)[:3], C[0, 0], rtol=1e-12)  # cubic symmetry
    st = stability(fcc)
    assert st["stable"] and st["born_min"] > 0 and st["acoustic_min"] > 0
    sc = CauchyBorn(equilibrium_lattice(make_lattice("sc", 1.0), pot), pot)
    Csc = elastic_constants(sc).voigt
    assert abs(Csc[0, 1] - Csc[3, 3]) < 1e-10 * Csc[0, 0]
    st = stability(sc)
    if sc_unstable:
        assert Csc[3, 3] < 0  # simple cubic with LJ: shear unstable
        assert not st["stable"] and st["born_min"] < 0
    else:
        assert Csc[3, 3] > 0


# ----------------------------------------------------------------------------------------------
# independent direct atomistic calculation: explicit periodic crystal, finite strains
# ----------------------------------------------------------------------------------------------

def _conventional(name, a):
    if name == "fcc":
        X = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]]) * a
    else:  # diamond
        f = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]])
        X = np.vstack([f, f + 0.25]) * a
    return X, np.eye(3) * a


def _images(H, rc):
    m = int(np.ceil(rc / H[0, 0] * 1.3)) + 1
    n = np.array(np.meshgrid(*[np.arange(-m, m + 1)] * 3, indexing="ij")).reshape(3, -1).T
    return n @ H


def direct_pair_energy(pot, X, H, F):
    """Energy per volume of an explicit periodic crystal, summing φ over all images (no lattice sums)."""
    x, Hd = X @ F.T, H @ F.T
    T = _images(Hd, pot.rc)
    diff = x[None, :, None, :] - x[:, None, None, :] + T[None, None]
    r = np.linalg.norm(diff, axis=-1)
    r = r[(r > 1e-9) & (r < pot.rc)]
    return 0.5 * pot.pair(r)[0].sum() / abs(np.linalg.det(Hd)) * np.linalg.det(F)


def direct_sw_energy(sw, X, H, F, u=None):
    """Stillinger–Weber energy per reference volume of an explicit periodic diamond cell; the second
    FCC sublattice is shifted by ``u`` (inner displacement).  Written from the SW paper's formulas."""
    x = X.copy()
    if u is not None:
        x[4:] += u
    x, Hd = x @ F.T, H @ F.T
    T = _images(Hd, sw.rc)
    e, s, a, lam, g = sw.epsilon, sw.sigma, sw.a, sw.lam, sw.gamma
    E = 0.0
    for i in range(len(x)):
        v = (x[None, :, :] - x[i] + T[:, None, :]).reshape(-1, 3)
        r = np.linalg.norm(v, axis=1)
        keep = (r > 1e-9) & (r < a * s)
        v, r = v[keep], r[keep]
        E += 0.5 * np.sum(sw.A * e * (sw.B * (s / r) ** sw.p - (s / r) ** sw.q) * np.exp(s / (r - a * s)))
        for j in range(len(r)):
            for k in range(j + 1, len(r)):
                c = v[j] @ v[k] / (r[j] * r[k])
                E += lam * e * (c + 1 / 3) ** 2 * np.exp(g * s / (r[j] - a * s)) * np.exp(g * s / (r[k] - a * s))
    return E / abs(np.linalg.det(H))


def _sqrtm_sym(M):
    w, V = np.linalg.eigh(M)
    return (V * np.sqrt(w)) @ V.T


def fd_voigt(energy, entries, h):
    """Voigt constants ∂²W/∂E∂E by 5-point differences of W along Green strains E = t·M."""
    basis = []
    for i, j in [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]:
        M = np.zeros((3, 3))
        M[i, j] += 0.5
        M[j, i] += 0.5
        basis.append(M)

    def Q(M):
        Ws = [energy(_sqrtm_sym(np.eye(3) + 2 * t * M)) for t in (-2 * h, -h, 0.0, h, 2 * h)]
        return (-Ws[0] + 16 * Ws[1] - 30 * Ws[2] + 16 * Ws[3] - Ws[4]) / (12 * h * h)

    out = {}
    diag = {}
    for a, b in entries:
        for k in (a, b):
            if k not in diag:
                diag[k] = Q(basis[k])
        out[(a, b)] = diag[a] if a == b else 0.5 * (Q(basis[a] + basis[b]) - diag[a] - diag[b])
    return out


def test_elastic_constants_match_explicit_periodic_crystal_fcc_lj():
    pot = LennardJones(rc=2.5, cutoff="smooth", r_on=2.1)
    lat = make_lattice("fcc", 1.56)  # deliberately not at equilibrium: pre-stressed reference
    C = elastic_constants(CauchyBorn(lat, pot)).voigt
    X, H = _conventional("fcc", lat.a)
    entries = [(a, b) for a in range(6) for b in range(a, 6)]
    fd = fd_voigt(lambda F: direct_pair_energy(pot, X, H, F), entries, 2e-3)
    for (a, b), v in fd.items():
        assert abs(v - C[a, b]) <= 1e-6 * abs(C[0, 0]), (a, b, v, C[a, b])


def test_elastic_constants_match_explicit_crystal_diamond_sw_relaxed_and_unrelaxed():
    sw = StillingerWeber()
    lat = make_lattice("diamond", 5.431)
    ec = elastic_constants(CauchyBorn(lat, sw))
    X, H = _conventional("diamond", lat.a)
    entries = [(0, 0), (0, 1), (3, 3)]
    fd_un = fd_voigt(lambda F: direct_sw_energy(sw, X, H, F), entries, 2e-3)

    def relaxed(F):
        # minimise over the sublattice shift u with Newton on central differences of the direct energy
        u, du = np.zeros(3), 1e-4
        for _ in range(8):
            f0 = direct_sw_energy(sw, X, H, F, u)
            g, K = np.zeros(3), np.zeros((3, 3))
            for i in range(3):
                ei = np.eye(3)[i] * du
                fp, fm = direct_sw_energy(sw, X, H, F, u + ei), direct_sw_energy(sw, X, H, F, u - ei)
                g[i], K[i, i] = (fp - fm) / (2 * du), (fp - 2 * f0 + fm) / du**2
                for j in range(i):
                    ej = np.eye(3)[j] * du
                    K[i, j] = K[j, i] = (direct_sw_energy(sw, X, H, F, u + ei + ej) - fp
                                         - direct_sw_energy(sw, X, H, F, u + ej) + f0) / du**2
            step = np.linalg.solve(K, g)
            u -= step
            if np.abs(step).max() < 1e-9:
                break
        return direct_sw_energy(sw, X, H, F, u)

    fd_rel = fd_voigt(relaxed, entries, 2e-3)
    for (a, b) in entries:
        assert abs(fd_un[(a, b)] - ec.voigt_unrelaxed[a, b]) <= 1e-6 * ec.voigt[0, 0]
        assert abs(fd_rel[(a, b)] - ec.voigt[a, b]) <= 1e-6 * ec.voigt[0, 0]


def test_diamond_inner_relaxation_changes_only_c44_and_softens():
    sw = StillingerWeber()
    cb = CauchyBorn(equilibrium_lattice(make_lattice("diamond", 5.4), sw), sw)
    ec = elastic_constants(cb)
    Cr, Cu = ec.voigt, ec.voigt_unrelaxed
    scale = Cu[0, 0]
    np.testing.assert_allclose(Cr[:3, :3], Cu[:3, :3], atol=1e-10 * scale)  # C11, C12 unchanged
    assert Cr[3, 3] < Cu[3, 3] - 0.1 * scale  # C44 drops substantially
    assert np.linalg.eigvalsh(Cu - Cr).min() > -1e-10 * scale  # relaxed <= unrelaxed (PSD difference)
    # Stillinger–Weber's published constants (GPa): C11 = 151.4, C12 = 76.4, C44 = 56.4 (relaxed)
    GPa = 160.21766208
    assert cb.lattice.a == pytest.approx(5.431, abs=1e-3)
    np.testing.assert_allclose([Cr[0, 0] * GPa, Cr[0, 1] * GPa, Cr[3, 3] * GPa], [151.4, 76.4, 56.4], atol=0.1)


def test_cauchy_born_material_interface():
    lj = LennardJones(rc=2.2, cutoff="smooth")
    cb = CauchyBorn(make_lattice("hcp", 1.09), lj)
    mat = CauchyBornMaterial(cb)
    assert mat.kind == "finite" and mat.dim == 3
    st = mat.initial_state(5)
    F = random_F(3, 5, 0.02)
    st0 = {k: v.copy() for k, v in st.items()}
    P, A, new = mat.update(F, st)
    assert P.shape == (5, 3, 3) and A.shape == (5, 3, 3, 3, 3)
    for k in st:
        np.testing.assert_array_equal(st[k], st0[k])  # pure update
    P2, A2, _ = mat.update(F, new)  # warm start from the relaxed shifts gives the same answer
    np.testing.assert_allclose(P2, P, atol=1e-12)
    np.testing.assert_allclose(mat.energy(F, new), cb.energy(F), rtol=1e-12)
    mat2 = CauchyBornMaterial(CauchyBorn(make_lattice("triangular", 1.1), lj))
    P, A, _ = mat2.update(np.eye(2)[None].repeat(3, 0), mat2.initial_state(3))
    assert P.shape == (3, 2, 2) and A.shape == (3, 2, 2, 2, 2)


def test_bad_input():
    with pytest.raises(InputError, match="unknown lattice"):
        make_lattice("quasicrystal")
    with pytest.raises(InputError, match="unknown potential"):
        make_potential({"type": "buckingham"})
    with pytest.raises(InputError, match="unknown cutoff"):
        LennardJones(cutoff="abrupt")
    with pytest.raises(InputError, match="nearest-neighbour"):
        CauchyBorn(make_lattice("fcc", 1.55), LennardJones(rc=1.0))
    cb = CauchyBorn(make_lattice("fcc", 1.55), LennardJones())
    F = np.eye(3)
    F[0, 0] = -1
    with pytest.raises(InputError, match="det F"):
        cb.evaluate(F)
    with pytest.raises(InputError, match="r_on"):
        LennardJones(rc=2.5, cutoff="smooth", r_on=3.0)
