"""Microstructure generators, import, statistics and the bounds/estimates (pure numpy, serial)."""
import numpy as np
import pytest

from hpcmsm.errors import InputError
from hpcmsm.homogenization import bounds as bd
from hpcmsm.homogenization import microstructure as ms


def test_laminate_checkerboard_fractions():
    m = ms.laminate((10, 4), [0.3, 0.7], axis=0)
    assert np.allclose(m.volume_fractions(), [0.3, 0.7])
    assert np.all(m.labels[:3] == 0) and np.all(m.labels[3:] == 1)
    c = ms.checkerboard((8, 8, 8))
    assert np.allclose(c.volume_fractions(), [0.5, 0.5])
    assert c.labels[0, 0, 0] != c.labels[4, 0, 0]
    with pytest.raises(InputError, match="too small to resolve laminate"):
        ms.laminate((10, 4), [0.02, 0.98])
    with pytest.raises(InputError, match="sum to 1"):
        ms.laminate((10, 4), [0.5, 0.6])


@pytest.mark.parametrize("kind,shape", [("sphere", (40, 40)), ("sphere", (24, 24, 24)),
                                        ("ellipsoid", (48, 32)), ("fibre", (24, 24, 4))])
def test_inclusion_array_volume_fraction(kind, shape):
    m = ms.inclusion_array(shape, 0.3, count=1, shape_kind=kind)
    assert m.volume_fractions()[1] == pytest.approx(0.3, abs=0.03)


def test_inclusion_array_bad_input():
    with pytest.raises(InputError, match="between 0 and 1"):
        ms.inclusion_array((20, 20), 1.2)
    with pytest.raises(InputError, match="unreachable without overlap"):
        ms.inclusion_array((20, 20), 0.9)
    with pytest.raises(InputError, match="too small to resolve"):
        ms.inclusion_array((6, 6), 0.1, count=2)


def test_random_inclusions_reproducible_nonoverlapping():
    a = ms.random_inclusions((40, 40), 0.3, 3.0, seed=5, index=2)
    b = ms.random_inclusions((40, 40), 0.3, 3.0, seed=5, index=2)
    c = ms.random_inclusions((40, 40), 0.3, 3.0, seed=5, index=3)
    assert np.array_equal(a.labels, b.labels) and not np.array_equal(a.labels, c.labels)
    cen = np.array(a.meta["centres"])
    L = np.array([40.0, 40.0])
    dv = np.abs(cen[:, None] - cen[None])
    dv = np.minimum(dv, L - dv)
    dist = np.sqrt((dv ** 2).sum(-1)) + np.eye(len(cen)) * 1e9
    assert dist.min() >= 2 * 3.0 + 1.0 - 1e-12        # periodic minimum image, with the gap
    fixed = ms.random_inclusions((40, 40), 0.3, 3.0, seed=5, index=2, poisson=False)
    assert fixed.volume_fractions()[1] == pytest.approx(0.3, abs=0.03)
    assert fixed.meta["n_inclusions"] == round(0.3 * 1600 / (np.pi * 9))
    # Poisson counts: the mean count is the target (unbiased), the variance equals the mean
    n = np.array([ms.random_inclusions((40, 40), 0.15, 3.0, seed=8, index=i).meta["n_inclusions"] for i in range(300)])
    lam = 0.15 * 1600 / (np.pi * 9)
    assert abs(n.mean() - lam) < 4 * np.sqrt(lam / 300)
    assert abs(n.var(ddof=1) / lam - 1) < 4 * np.sqrt(2 / 299)
    with pytest.raises(InputError, match="unreachable without overlap"):
        ms.random_inclusions((40, 40), 0.6, 3.0)


def test_voronoi_and_independent_voxels():
    v = ms.voronoi((20, 20, 20), 10, seed=1)
    assert v.nlabels == 10 and np.all(v.volume_fractions() > 0)
    with pytest.raises(InputError, match="too small to resolve"):
        ms.voronoi((4, 4), 10)
    # independent voxels: Var[φ_N] = p(1-p)/N within the sampling error of the variance
    p, shape, M = 0.3, (8, 8), 4000
    phis = np.array([ms.independent_voxels(shape, p, seed=9, index=i).volume_fractions(2)[1] for i in range(M)])
    N = np.prod(shape)
    var_th = p * (1 - p) / N
    se = var_th * np.sqrt(2.0 / (M - 1))            # sampling error of a variance (near-Gaussian)
    assert abs(phis.var(ddof=1) - var_th) < 4 * se
    assert abs(phis.mean() - p) < 4 * np.sqrt(var_th / M)


def test_two_point_correlation():
    m = ms.independent_voxels((64, 64), 0.4, seed=3)
    S2 = ms.two_point_correlation(m.labels, 1)
    phi = m.volume_fractions()[1]
    assert S2.flat[0] == pytest.approx(phi, abs=1e-12)
    # brute-force check of one lattice vector
    ind = (m.labels == 1).astype(float)
    assert S2[3, 5] == pytest.approx(np.mean(ind * np.roll(ind, (-3, -5), axis=(0, 1))), abs=1e-12)
    # independent voxels: S2(r≠0) = φ² (on average)
    r, s = ms.radial_average(S2)
    assert np.allclose(s[1:], phi ** 2, atol=0.02)
    lam = ms.laminate((16, 4), [0.5, 0.5])
    assert ms.correlation_length(lam.labels, 1) > ms.correlation_length(m.labels, 1)


def test_image_import(tmp_path):
    from PIL import Image

    img = np.zeros((6, 8), np.uint8)
    img[:, 4:] = 200
    p = tmp_path / "micro.png"
    Image.fromarray(img).save(p)
    m = ms.from_image(str(p), mapping={0: 0, 200: 1})
    assert m.shape == (8, 6) and np.allclose(m.volume_fractions(), [0.5, 0.5])
    assert np.all(m.labels[:4] == 0)
    with pytest.raises(InputError, match=r"unmapped phase labels.*200"):
        ms.from_image(str(p), mapping={0: 0})
    with pytest.raises(InputError, match="unmapped phase labels"):
        ms.from_array(np.array([[0, 1], [2, 1]]), nphases=2)


# ---------------------------------------------------------------------------------------------
# bounds
# ---------------------------------------------------------------------------------------------

def test_laminate_exact_reduces_to_means():
    f = [0.4, 0.6]
    K = bd.laminate_exact([np.eye(3), 5 * np.eye(3)], f, 2, "conductivity", 3)
    assert K[2, 2] == pytest.approx(1 / (0.4 + 0.6 / 5)) and K[0, 0] == pytest.approx(0.4 + 3.0)
    from hpcmsm.materials.base import isotropic_stiffness, lame_from_young_poisson

    C = [isotropic_stiffness(3, 1.0, 0.3), isotropic_stiffness(3, 10.0, 0.2)]
    Ce = bd.laminate_exact(C, f, 0, "elasticity", 3)
    lm = [lame_from_young_poisson(1.0, 0.3), lame_from_young_poisson(10.0, 0.2)]
    M = np.array([l + 2 * m for l, m in lm])
    mu = np.array([m for _, m in lm])
    assert Ce[0, 0] == pytest.approx(1 / np.dot(f, 1 / M))                # normal: harmonic P-modulus
    assert Ce[5, 5] == pytest.approx(2 / np.dot(f, 1 / mu))               # √2·12 shear: harmonic μ
    assert Ce[3, 3] == pytest.approx(2 * np.dot(f, mu))                   # in-plane shear: arithmetic μ
    assert np.allclose(Ce, Ce.T)
    assert bd.loewner_gap(bd.reuss(C, f), Ce) > -1e-12 and bd.loewner_gap(Ce, bd.voigt(C, f)) > -1e-12


def test_hs_mt_sc_relations():
    for dim in (2, 3):
        mods = [{"K": 2.0, "mu": 1.0}, {"K": 20.0, "mu": 9.0}, {"K": 5.0, "mu": 3.0}]
        f = [0.5, 0.3, 0.2]
        hs = bd.hashin_shtrikman("elasticity", dim, mods, f)
        V = bd.isotropic_projection(bd.voigt([bd.isotropic_tensor("elasticity", dim, **m) for m in mods], f), "elasticity", dim)
        R = bd.isotropic_projection(bd.reuss([bd.isotropic_tensor("elasticity", dim, **m) for m in mods], f), "elasticity", dim)
        sc = bd.self_consistent("elasticity", dim, mods, f)
        for k in ("K", "mu"):
            assert R[k] <= hs["lower"][k] < sc[k] < hs["upper"][k] <= V[k] + 1e-12
        # well-ordered phases: MT with the stiffest matrix is the HS upper bound, softest the lower
        mt_hi = bd.mori_tanaka("elasticity", dim, mods, f, matrix=1)
        mt_lo = bd.mori_tanaka("elasticity", dim, mods, f, matrix=0)
        assert mt_hi["K"] == pytest.approx(hs["upper"]["K"]) and mt_lo["mu"] == pytest.approx(hs["lower"]["mu"])
        # equal phases collapse every estimate
        same = bd.hashin_shtrikman("elasticity", dim, [mods[0]] * 2, [0.3, 0.7])
        assert same["lower"]["K"] == pytest.approx(2.0) and same["upper"]["mu"] == pytest.approx(1.0)
    # 2D symmetric self-consistent (Bruggeman) at 50/50 gives √(k1 k2), the checkerboard value
    sc = bd.self_consistent("conductivity", 2, [{"k": 1.0}, {"k": 10.0}], [0.5, 0.5])
    assert sc["k"] == pytest.approx(np.sqrt(10.0), rel=1e-10)
