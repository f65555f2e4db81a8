"""Convergence-study machinery: orders, least-squares fit, Richardson, GCI (Celik et al. 2008)."""
import math

import numpy as np
import pytest

from hpcmsm.vv import convergence as cv


def test_pairwise_and_lsq_orders_recover_power_law():
    h = np.array([0.4, 0.2, 0.1, 0.05, 0.025])
    e = 3.0 * h ** 2.5 * (1 + 0.0 * h)
    assert np.allclose(cv.observed_orders(h, e), 2.5)
    p, C = cv.fit_order(h, e, 3)
    assert p == pytest.approx(2.5, abs=1e-12) and C == pytest.approx(3.0, rel=1e-12)
    # a pre-asymptotic coarse level: the fit over the finest levels ignores it
    e2 = e.copy()
    e2[0] *= 5
    assert cv.fit_order(h, e2, 3)[0] == pytest.approx(2.5, abs=1e-12)
    assert abs(cv.fit_order(h, e2)[0] - 2.5) > 0.1


def test_richardson_is_exact_for_pure_power_law_error():
    phi0, C, p = 1.234, 0.7, 2.0
    f = lambda h: phi0 + C * h ** p  # noqa: E731
    assert cv.richardson(f(0.1), f(0.2), 2.0, p) == pytest.approx(phi0, abs=1e-13)
    # three grids with non-constant ratio: the apparent order and extrapolation are exact
    g = cv.gci_three_grid((f(0.1), f(0.15), f(0.21)), h=(0.1, 0.15, 0.21))
    assert g.p == pytest.approx(p, abs=1e-9) and g.phi_ext21 == pytest.approx(phi0, abs=1e-10)
    assert g.asymptotic_ratio == pytest.approx(f(0.1) / f(0.15), rel=1e-9)  # relative errors: φ2/φ1
    assert g.s == 1


def test_gci_celik_2008_table1_reattachment_length():
    """Celik, Ghia, Roache, Freitas, Coleman, Raad (2008), J. Fluids Eng. 130, 078001, Table 1,
    first column (dimensionless reattachment length, monotonic convergence): N = 18000, 8000,
    4500 cells (2D), φ = 6.063, 5.972, 5.863 → r21 = 1.5, r32 = 1.333, p = 1.53,
    φ_ext21 = 6.1685, e_a21 = 1.5 %, e_ext21 = 1.7 %, GCI_fine21 = 2.2 % (printed digits)."""
    g = cv.gci_three_grid((6.063, 5.972, 5.863), ncells=(18000, 8000, 4500), dim=2)
    assert round(g.r21, 3) == 1.5 and round(g.r32, 3) == 1.333
    assert round(g.p, 2) == 1.53
    assert round(g.phi_ext21, 4) == 6.1685
    assert round(100 * g.ea21, 1) == 1.5
    assert round(100 * g.eext21, 1) == 1.7
    assert round(100 * g.gci_fine21, 1) == 2.2
    assert g.safety_factor == 1.25


def test_oscillatory_convergence_sign_and_errors():
    g = cv.gci_three_grid((1.0, 1.01, 0.99), r21=2, r32=2)
    assert g.s == -1 and math.isfinite(g.p)
    with pytest.raises(ValueError):
        cv.gci_three_grid((1.0, 1.0, 0.9), r21=2, r32=2)
    with pytest.raises(ValueError):
        cv.gci_three_grid((1.0, 1.1, 1.2), r21=0.5, r32=0.5)


def test_two_grid_gci_uses_safety_factor_three():
    assert cv.gci_two_grid(1.0, 1.03, 2.0, 2.0) == pytest.approx(3 * 0.03 / 3)


def test_study_runner_passes_and_fails_and_reports(tmp_path):
    def solve(level, p=2.0):
        h = 0.5 ** (level + 1)
        return {"h": h, "errors": {"L2": 0.3 * h ** p, "H1": 0.5 * h}, "dofs": 4 ** level}

    res = cv.ConvergenceStudy("synthetic", solve, {"L2": 2, "H1": 1}).run(range(5))
    assert res.passed
    md = res.markdown()
    assert "| L2 | 2 | 2.000" in md and "pass" in md
    png = res.plot(str(tmp_path / "s.png"))
    assert (tmp_path / "s.png").stat().st_size > 1000 and png.endswith(".png")
    bad = cv.ConvergenceStudy("wrong order", lambda l: solve(l, 1.5), {"L2": 2, "H1": 1}).run(range(5))
    assert not bad.passed and "**FAIL**" in bad.markdown()
    # a plateau (an inconsistent discretisation) gives order ≈ 0 and fails
    flat = cv.evaluate_study("plateau", [0.1, 0.05, 0.025], {"L2": [1e-3, 9e-4, 8.9e-4]}, {"L2": 2})
    assert not flat.passed
