"""Reference elements and quadrature (serial, pure numpy)."""
import math

import numpy as np
import pytest

from hpcmsm.fem.elements import Element
from hpcmsm.fem.quadrature import gauss_simplex, gauss_tensor

ALL = [(c, p) for c in ("triangle", "quadrilateral", "tetrahedron", "hexahedron") for p in (1, 2)]


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("deg", range(0, 8))
def test_simplex_rule_exact(dim, deg):
    """Every monomial of total degree <= deg: ∫ x^a y^b z^c = a! b! c! / (a+b+c+d)!."""
    import itertools

    x, w = gauss_simplex(dim, deg)
    assert len(w) == ((deg + 2) // 2) ** dim or deg <= 1
    for a in itertools.product(range(deg + 1), repeat=dim):
        if sum(a) > deg:
            continue
        exact = np.prod([math.factorial(k) for k in a]) / math.factorial(sum(a) + dim)
        assert abs(np.sum(w * np.prod(x ** np.array(a), axis=1)) - exact) < 1e-15


@pytest.mark.parametrize("dim,deg", [(2, 3), (3, 5)])
def test_tensor_rule_exact(dim, deg):
    x, w = gauss_tensor(dim, deg)
    a = np.array([deg, deg - 1, 2][:dim])
    exact = np.prod([(1 - (-1) ** (k + 1)) / (k + 1) for k in a])
    assert abs(np.sum(w * np.prod(x ** a, axis=1)) - exact) < 1e-13


@pytest.mark.parametrize("cell,p", ALL)
def test_lagrange_property_and_gradients(cell, p):
    el = Element(cell, p)
    N, dN = el.tabulate(el.nodes)
    assert np.allclose(N, np.eye(el.nen), atol=1e-14)          # N_a(x_b) = δ_ab
    rng = np.random.default_rng(0)
    x = rng.random((7, el.dim)) * 0.3 + 0.1
    N, dN = el.tabulate(x)
    assert np.allclose(N.sum(axis=1), 1)
    assert np.allclose(N @ el.nodes, x)                        # reproduces linear functions
    h = 1e-6
    for k in range(el.dim):
        e = np.zeros(el.dim)
        e[k] = h
        fd = (el.tabulate(x + e)[0] - el.tabulate(x - e)[0]) / (2 * h)
        assert np.allclose(fd, dN[:, :, k], atol=1e-8)


@pytest.mark.parametrize("cell,p", ALL)
def test_facet_nodes_lie_on_facets(cell, p):
    el = Element(cell, p)
    X = el.nodes
    for loc in el.facet_local_nodes():
        pts = X[loc]
        # all facet nodes are coplanar/colinear: rank of differences is dim-1
        assert np.linalg.matrix_rank(pts[1:] - pts[0], tol=1e-12) == el.dim - 1
        assert len(set(loc)) == len(loc) == el.facet.nen
