"""Validation/UQ: role separation, calibration (least squares vs an analytic Gaussian posterior),
Latin-hypercube propagation (analytic moments, stratification, rank independence), V&V 20 and
the area metric."""
import numpy as np
import pytest

from hpcmsm.errors import InputError
from hpcmsm.vv import validation as va

SYN = {"synthetic": True, "description": "test data"}


def linear_data(role, n=12, seed=3, a=1.5, b=-0.7, sigma=0.05):
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, n)
    y = a + b * x + sigma * rng.standard_normal(n)
    return va.Dataset(f"lin-{role}", role, {"x": x}, y, sigma, provenance=SYN)


def line(x, p):
    return p["a"] + p["b"] * x["x"]


def test_dataset_needs_provenance_and_role():
    with pytest.raises(InputError, match="provenance"):
        va.Dataset("d", "calibration", {"x": [1.0]}, [1.0], 0.1)
    with pytest.raises(InputError, match="role"):
        va.Dataset("d", "training", {"x": [1.0]}, [1.0], 0.1, provenance=SYN)
    d = va.Dataset("d", "calibration", {"x": [1.0, 2.0]}, [1.0, 2.0], 0.1, provenance={"citation": "A. B. (2000)"})
    assert not d.synthetic and len(d) == 2


def test_read_dataset_csv(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("# name: demo\n# role: validation\n# quantity: E\n# unit: GPa\n# synthetic: true\n"
                 "# value_column: E\n# uncertainty_column: u_E\nf,E,u_E\n0.1,3.5,0.1\n0.2,4.0,0.12\n")
    d = va.read_dataset(p)
    assert d.role == "validation" and d.synthetic and d.unit == "GPa"
    assert np.allclose(d.x["f"], [0.1, 0.2]) and np.allclose(d.u_y, [0.1, 0.12]) and list(d.x) == ["f"]
    q = tmp_path / "u.csv"
    q.write_text("f,y\n0.1,3.5\n")
    with pytest.raises(InputError, match="role"):
        va.read_dataset(q)


def test_least_squares_calibration_matches_normal_equations_and_refuses_validation_data():
    d = linear_data("calibration")
    cal = va.calibrate_least_squares(line, d, {"a": 0.0, "b": 0.0})
    A = np.column_stack([np.ones(len(d)), d.x["x"]]) / 0.05
    cov = np.linalg.inv(A.T @ A)
    beta = cov @ A.T @ (d.y / 0.05)
    assert np.allclose(cal.mean, beta, atol=1e-9) and np.allclose(cal.cov, cov, rtol=1e-6)
    with pytest.raises(va.RoleError):
        va.calibrate_least_squares(line, linear_data("validation"), {"a": 0.0, "b": 0.0})
    with pytest.raises(va.RoleError):
        va.calibrate_bayesian_grid(line, linear_data("validation"), {"a": (0, 3), "b": (-2, 1)})


def test_grid_posterior_matches_analytic_gaussian_posterior():
    """Linear model + Gaussian noise + flat prior: the posterior is N(β_LSQ, (AᵀWA)⁻¹)."""
    d = linear_data("calibration", n=20)
    ls = va.calibrate_least_squares(line, d, {"a": 0.0, "b": 0.0})
    sd = np.sqrt(np.diag(ls.cov))
    prior = {k: (m - 8 * s, m + 8 * s) for k, m, s in zip(ls.names, ls.mean, sd)}
    post = va.calibrate_bayesian_grid(line, d, prior, n=121)
    assert np.allclose(post.mean, ls.mean, atol=1e-3 * sd.max())
    assert np.allclose(post.cov, ls.cov, rtol=2e-3, atol=1e-3 * ls.cov.max())


def test_lhs_propagation_moments_and_stratification(comm):
    inputs = [va.UncertainInput("k1", "normal", 1.0, 0.1), va.UncertainInput("k2", "uniform", 0.0, 1.0)]
    X = va.lhs_samples(inputs, 200, seed=7)
    # one sample per stratum in every dimension
    for j in range(2):
        from scipy import stats
        U = stats.norm.cdf(X[:, 0], 1.0, 0.1) if j == 0 else X[:, 1]
        assert np.array_equal(np.sort(np.floor(U * 200).astype(int)), np.arange(200))
    pr = va.propagate_lhs(comm, lambda s: np.array([2 * s["k1"] + 3 * s["k2"], s["k1"] * s["k2"]]), inputs, 200, 7)
    assert pr.outputs.shape == (200, 2)
    assert pr.mean()[0] == pytest.approx(3.5, abs=2e-3)          # LHS: tiny error for additive models
    assert pr.std()[0] == pytest.approx(np.sqrt(4 * 0.01 + 9 / 12), rel=0.05)  # random pairing: ~1/√n correlation
    assert pr.mean()[1] == pytest.approx(0.5, abs=5e-3)           # E[k1 k2] = 1 · 1/2


@pytest.mark.mpi
def test_propagation_and_validation_independent_of_rank_count(comm):
    """Oracle: the same computation on COMM_SELF."""
    from mpi4py import MPI

    inputs = [va.UncertainInput("a", "normal", 1.5, 0.02), va.UncertainInput("b", "normal", -0.7, 0.02)]
    d = linear_data("validation", seed=11)
    pred = lambda x, s: s["a"] + s["b"] * x["x"]  # noqa: E731
    r = va.validate(comm, d, pred, inputs, n_samples=32, seed=1)
    r0 = va.validate(MPI.COMM_SELF, d, pred, inputs, n_samples=32, seed=1)
    assert r.as_dict() == r0.as_dict()
    assert r.fraction_within >= 0.8 and r.u_pooled < 0.25


def test_vv20_and_area_metric():
    c = va.vv20(S=10.0, D=9.0, u_num=0.3, u_input=0.4, u_D=0.0)
    assert c.E == 1.0 and c.u_val == pytest.approx(0.5) and c.interval == pytest.approx((0.0, 2.0))
    assert not c.model_error_detected
    assert va.vv20(10.0, 8.0, 0.3, 0.4, 0.0).model_error_detected
    assert va.area_metric([1.0], [3.0]) == pytest.approx(2.0)
    rng = np.random.default_rng(0)
    s = rng.standard_normal(4000)
    assert va.area_metric(s, s + 0.7) == pytest.approx(0.7, abs=1e-12)  # same shape: area = shift
    assert va.area_metric(s, [0.0]) == pytest.approx(np.mean(np.abs(s)), abs=1e-12)
    # u-pooling: perfectly uniform u's give ~0, all-equal extreme u's give 0.5
    assert va.u_pooling_area((np.arange(1000) + 0.5) / 1000) < 1e-3
    assert va.u_pooling_area(np.ones(5)) == pytest.approx(0.5)


def test_validation_refuses_calibration_data_and_reused_data():
    cal_d = linear_data("calibration")
    inputs = [va.UncertainInput("a", "normal", 1.5, 0.02), va.UncertainInput("b", "normal", -0.7, 0.02)]
    pred = lambda x, s: s["a"] + s["b"] * x["x"]  # noqa: E731
    from mpi4py import MPI

    with pytest.raises(va.RoleError, match="validation"):
        va.validate(MPI.COMM_SELF, cal_d, pred, inputs)
    cal = va.calibrate_least_squares(line, cal_d, {"a": 0.0, "b": 0.0})
    # relabelling the calibration data as validation data does not fool the check
    relabelled = va.Dataset(cal_d.name, "validation", cal_d.x, cal_d.y, cal_d.u_y, provenance=SYN)
    with pytest.raises(va.RoleError, match="calibration"):
        va.validate(MPI.COMM_SELF, relabelled, pred, inputs, calibration=cal)


def test_biased_model_is_detected():
    from mpi4py import MPI

    d = linear_data("validation", sigma=0.01)
    inputs = [va.UncertainInput("a", "normal", 1.5, 0.005)]
    good = va.validate(MPI.COMM_SELF, d, lambda x, s: s["a"] - 0.7 * x["x"], inputs, 32)
    bad = va.validate(MPI.COMM_SELF, d, lambda x, s: s["a"] - 0.5 * x["x"], inputs, 32)
    assert good.fraction_within > 0.8 and bad.fraction_within < 0.5
    assert bad.area > 5 * good.area and bad.u_pooled > 0.3
    assert "E = S−D" in good.markdown() and "synthetic" in good.markdown()
