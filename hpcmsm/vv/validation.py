"""Validation with uncertainty quantification, kept apart from calibration.

* :class:`Dataset` — a table of inputs ``x`` (named columns), measured values ``y`` and their
  standard uncertainties ``u_y``, with **provenance** (citation, or ``synthetic = true`` and how it
  was generated) and a **role**: ``"calibration"`` or ``"validation"``.  CSV files carry the
  metadata as ``# key: value`` header lines (:func:`read_dataset`).
* Calibration (:func:`calibrate_least_squares`, :func:`calibrate_bayesian_grid`) accepts only
  calibration data; validation (:func:`validate`) accepts only validation data — using the same
  data for both is refused with :class:`RoleError`.
* :func:`propagate_lhs` — forward propagation of input uncertainties by Latin-hypercube sampling
  (``scipy.stats.qmc``) through a model; samples are evaluated in parallel (each rank a block)
  and gathered in sample order, so the result does not depend on the number of ranks.
* :func:`vv20` — ASME V&V 20 comparison error ``E = S − D`` with validation uncertainty
  ``u_val = sqrt(u_num² + u_input² + u_D²)``; the model error lies in ``E ± k u_val``.
* :func:`area_metric` — area between the CDF of the prediction samples and the empirical CDF of
  the data (Ferson, Oberkampf & Ginzburg 2008), in the units of the quantity.
"""
from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Callable, Literal, Mapping, Sequence

import numpy as np

from ..errors import InputError

Role = Literal["calibration", "validation"]


class RoleError(InputError):
    """Calibration data used for validation (or the reverse)."""


@dataclass
class Dataset:
    """Measurements ``y ± u_y`` at inputs ``x`` (dict of equal-length arrays)."""

    name: str
    role: Role
    x: dict[str, np.ndarray]
    y: np.ndarray
    u_y: np.ndarray
    quantity: str = "y"
    unit: str = ""
    provenance: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.role not in ("calibration", "validation"):
            raise InputError(f"dataset {self.name}: role must be 'calibration' or 'validation', got {self.role!r}")
        self.y = np.asarray(self.y, float)
        self.u_y = np.broadcast_to(np.asarray(self.u_y, float), self.y.shape).copy()
        self.x = {k: np.asarray(v, float) for k, v in self.x.items()}
        for k, v in self.x.items():
            if v.shape != self.y.shape:
                raise InputError(f"dataset {self.name}: column {k} has {v.size} values, y has {self.y.size}")
        if np.any(self.u_y < 0) or not np.all(np.isfinite(self.y)):
            raise InputError(f"dataset {self.name}: uncertainties must be >= 0 and values finite")
        if not (self.provenance.get("citation") or self.provenance.get("synthetic")):
            raise InputError(f"dataset {self.name}: provenance needs a 'citation' or 'synthetic = true' "
                             "(with a description of how the data were generated)")

    @property
    def synthetic(self) -> bool:
        return bool(self.provenance.get("synthetic"))

    def __len__(self) -> int:
        return self.y.size

    def require(self, role: Role, purpose: str) -> None:
        if self.role != role:
            raise RoleError(f"dataset '{self.name}' has role '{self.role}' and cannot be used for {purpose} "
                            f"(needs '{role}' data: calibration and validation data must be independent)")

    def split(self, mask: np.ndarray, names: tuple[str, str] = ("calibration", "validation")) -> tuple["Dataset", "Dataset"]:
        """Split rows into a calibration set (``mask``) and a validation set (the rest)."""
        mask = np.asarray(mask, bool)
        out = []
        for sel, role in ((mask, "calibration"), (~mask, "validation")):
            out.append(Dataset(f"{self.name}[{role}]", role, {k: v[sel] for k, v in self.x.items()}, self.y[sel],
                               self.u_y[sel], self.quantity, self.unit, dict(self.provenance, split_from=self.name)))
        return out[0], out[1]


_META_KEYS = {"name", "role", "quantity", "unit", "citation", "synthetic", "description", "doi", "url",
              "uncertainty_column", "value_column", "notes", "generated_by"}


def read_dataset(path: str | os.PathLike, role: Role | None = None) -> Dataset:
    """Read a CSV data table with ``# key: value`` metadata lines (name, role, quantity, unit,
    citation or synthetic, value_column, uncertainty_column, description). Other columns are inputs."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise InputError(f"{p}: data set does not exist")
    meta, rows = {}, []
    with open(p, encoding="utf-8") as fh:
        body = []
        for line in fh:
            s = line.strip()
            if s.startswith("#"):
                if ":" in s:
                    k, v = s[1:].split(":", 1)
                    k = k.strip().lower()
                    if k in _META_KEYS:
                        meta[k] = v.strip()
                continue
            if s:
                body.append(line)
    rows = list(csv.DictReader(io.StringIO("".join(body))))
    if not rows:
        raise InputError(f"{p}: no data rows")
    vcol = meta.get("value_column", "y")
    ucol = meta.get("uncertainty_column", "u_y")
    cols = list(rows[0])
    if vcol not in cols:
        raise InputError(f"{p}: value column '{vcol}' not found (columns: {', '.join(cols)})")
    try:
        table = {c: np.array([float(r[c]) for r in rows]) for c in cols}
    except ValueError as e:
        raise InputError(f"{p}: non-numeric entry ({e})") from None
    r = role or meta.get("role")
    if r is None:
        raise InputError(f"{p}: the data set needs a role ('# role: calibration' or '# role: validation')")
    prov = {k: meta[k] for k in ("citation", "description", "doi", "url", "notes", "generated_by") if k in meta}
    if meta.get("synthetic", "").lower() in ("true", "yes", "1"):
        prov["synthetic"] = True
    prov["file"] = os.path.basename(p)
    x = {c: table[c] for c in cols if c not in (vcol, ucol)}
    uy = table[ucol] if ucol in table else np.zeros(len(rows))
    return Dataset(meta.get("name", os.path.splitext(os.path.basename(p))[0]), r, x, table[vcol], uy,
                   meta.get("quantity", vcol), meta.get("unit", ""), prov)


# ---------------------------------------------------------------------------------------------
# calibration
# ---------------------------------------------------------------------------------------------

Model = Callable[[Mapping[str, np.ndarray], Mapping[str, float]], np.ndarray]
"""``model(x, params) -> predictions`` (vectorised over the rows of ``x``)."""


@dataclass
class Calibration:
    method: str
    names: list[str]
    mean: np.ndarray
    cov: np.ndarray
    dataset: str
    chi2: float
    dof: int
    extra: dict = field(default_factory=dict)

    @property
    def params(self) -> dict[str, float]:
        return dict(zip(self.names, map(float, self.mean)))

    @property
    def std(self) -> dict[str, float]:
        return dict(zip(self.names, map(float, np.sqrt(np.diag(self.cov)))))

    def as_dict(self) -> dict:
        return {"method": self.method, "params": self.params, "std": self.std, "cov": self.cov.tolist(),
                "dataset": self.dataset, "chi2": self.chi2, "dof": self.dof}


def _sigma(data: Dataset, model_sigma: float) -> np.ndarray:
    s = np.sqrt(data.u_y ** 2 + model_sigma ** 2)
    if np.any(s <= 0):
        raise InputError(f"dataset {data.name}: zero uncertainty; give u_y or a model_sigma")
    return s


def calibrate_least_squares(model: Model, data: Dataset, p0: Mapping[str, float],
                            bounds: Mapping[str, tuple[float, float]] | None = None,
                            model_sigma: float = 0.0) -> Calibration:
    """Weighted least squares (weights 1/u_y²). Covariance ``(JᵀWJ)⁻¹`` (Gauss–Newton)."""
    from scipy.optimize import least_squares

    data.require("calibration", "calibration")
    names = list(p0)
    s = _sigma(data, model_sigma)

    def res(theta):
        return (model(data.x, dict(zip(names, theta))) - data.y) / s

    lo = [(bounds or {}).get(n, (-np.inf, np.inf))[0] for n in names]
    hi = [(bounds or {}).get(n, (-np.inf, np.inf))[1] for n in names]
    r = least_squares(res, np.array([p0[n] for n in names], float), bounds=(lo, hi), x_scale="jac",
                      xtol=1e-14, ftol=1e-14, gtol=1e-14)
    J = r.jac
    cov = np.linalg.pinv(J.T @ J)
    chi2 = float(np.sum(r.fun ** 2))
    return Calibration("least squares", names, r.x, cov, data.name, chi2, len(data) - len(names))


def calibrate_bayesian_grid(model: Model, data: Dataset, prior: Mapping[str, tuple[float, float]],
                            n: int = 81, model_sigma: float = 0.0) -> Calibration:
    """Posterior on a tensor grid over a uniform prior box (1–3 parameters), Gaussian likelihood
    with standard deviations ``sqrt(u_y² + model_sigma²)``. Returns posterior mean and covariance;
    ``extra`` holds the grid and the normalised posterior."""
    data.require("calibration", "calibration")
    names = list(prior)
    if not 1 <= len(names) <= 3:
        raise InputError("grid posterior supports 1 to 3 parameters (use least squares otherwise)")
    axes = [np.linspace(prior[k][0], prior[k][1], n) for k in names]
    mesh = np.meshgrid(*axes, indexing="ij")
    pts = np.stack([m.ravel() for m in mesh], axis=1)
    s = _sigma(data, model_sigma)
    logl = np.empty(len(pts))
    for i, th in enumerate(pts):  # model evaluations: one per grid point (vectorised over data rows)
        r = (model(data.x, dict(zip(names, th))) - data.y) / s
        logl[i] = -0.5 * float(r @ r)
    w = np.exp(logl - logl.max())
    w /= w.sum()
    mean = w @ pts
    d = pts - mean
    cov = (d * w[:, None]).T @ d
    best = pts[np.argmax(w)]
    rb = (model(data.x, dict(zip(names, best))) - data.y) / s
    return Calibration("Bayesian (grid posterior, uniform prior)", names, mean, cov, data.name,
                       float(rb @ rb), len(data) - len(names),
                       {"axes": axes, "posterior": w.reshape(mesh[0].shape), "map": dict(zip(names, best))})


# ---------------------------------------------------------------------------------------------
# forward propagation
# ---------------------------------------------------------------------------------------------

@dataclass
class UncertainInput:
    """An uncertain scalar input: ``normal`` (mean, std), ``uniform`` (low, high),
    ``lognormal`` (median, sigma of ln)."""

    name: str
    dist: Literal["normal", "uniform", "lognormal"]
    a: float
    b: float

    def ppf(self, q: np.ndarray) -> np.ndarray:
        from scipy import stats

        if self.dist == "normal":
            return stats.norm.ppf(q, loc=self.a, scale=self.b)
        if self.dist == "uniform":
            return self.a + (self.b - self.a) * q
        if self.dist == "lognormal":
            return self.a * np.exp(self.b * stats.norm.ppf(q))
        raise InputError(f"unknown distribution {self.dist!r}")

    @classmethod
    def from_calibration(cls, cal: Calibration, name: str) -> "UncertainInput":
        """Normal input from a calibrated parameter (posterior mean and standard deviation)."""
        return cls(name, "normal", cal.params[name], cal.std[name])


@dataclass
class Propagation:
    names: list[str]
    inputs: np.ndarray          # (n, k) samples
    outputs: np.ndarray         # (n, m) model outputs
    seed: int

    def mean(self) -> np.ndarray:
        return self.outputs.mean(axis=0)

    def std(self) -> np.ndarray:
        return self.outputs.std(axis=0, ddof=1)

    def quantiles(self, q: Sequence[float] = (0.025, 0.5, 0.975)) -> np.ndarray:
        return np.quantile(self.outputs, q, axis=0)


def lhs_samples(inputs: Sequence[UncertainInput], n: int, seed: int = 0) -> np.ndarray:
    """(n, k) Latin-hypercube samples mapped through the inputs' inverse CDFs."""
    from scipy.stats import qmc

    U = qmc.LatinHypercube(d=len(inputs), seed=seed).random(n)
    return np.column_stack([inp.ppf(U[:, j]) for j, inp in enumerate(inputs)])


def propagate_lhs(comm, model: Callable[[dict[str, float]], np.ndarray], inputs: Sequence[UncertainInput],
                  n: int, seed: int = 0) -> Propagation:
    """Evaluate ``model(sample_dict) -> outputs (m,)`` at ``n`` LHS samples, distributed over
    ``comm`` in contiguous blocks (every rank draws the same samples from ``seed``)."""
    from ..parallel import block_range

    names = [i.name for i in inputs]
    X = lhs_samples(inputs, n, seed)
    lo, hi = block_range(n, comm.size, comm.rank)
    local = [np.atleast_1d(np.asarray(model(dict(zip(names, X[i]))), float)) for i in range(lo, hi)]
    parts = comm.allgather(local)
    out = np.array([o for p in parts for o in p])
    return Propagation(names, X, out, seed)


# ---------------------------------------------------------------------------------------------
# comparison: V&V 20 and the area metric
# ---------------------------------------------------------------------------------------------

@dataclass
class VV20:
    """ASME V&V 20: ``E = S − D``, ``u_val = sqrt(u_num² + u_input² + u_D²)``; the model error
    ``δ_model`` lies in ``E ± k u_val`` (k = 2 ≈ 95 % if the errors are roughly Gaussian)."""

    S: float
    D: float
    E: float
    u_num: float
    u_input: float
    u_D: float
    u_val: float
    k: float
    interval: tuple[float, float]
    model_error_detected: bool   # |E| > k u_val: the model error is resolved above the noise

    def as_dict(self) -> dict:
        return asdict(self)


def vv20(S: float, D: float, u_num: float, u_input: float, u_D: float, k: float = 2.0) -> VV20:
    E = float(S) - float(D)
    u_val = math.sqrt(u_num ** 2 + u_input ** 2 + u_D ** 2)
    return VV20(float(S), float(D), E, float(u_num), float(u_input), float(u_D), u_val, k,
                (E - k * u_val, E + k * u_val), abs(E) > k * u_val)


def area_metric(prediction_samples: np.ndarray, data: np.ndarray) -> float:
    """``∫ |F_pred(y) − S_data(y)| dy`` between the two empirical CDFs (exact for step functions)."""
    a = np.sort(np.asarray(prediction_samples, float).ravel())
    b = np.sort(np.asarray(data, float).ravel())
    grid = np.union1d(a, b)
    Fa = np.searchsorted(a, grid, side="right") / a.size
    Fb = np.searchsorted(b, grid, side="right") / b.size
    return float(np.sum(np.abs(Fa - Fb)[:-1] * np.diff(grid)))


def u_pooling_area(u: np.ndarray) -> float:
    """u-pooling (Ferson et al. 2008): ``u_i = F_pred,i(D_i)`` at every validation point; the area
    between their empirical CDF and the standard uniform CDF (0 … 0.5)."""
    u = np.sort(np.clip(np.asarray(u, float), 0, 1))
    n = u.size
    if n == 0:
        return float("nan")
    # ∫_0^1 |S_n(t) − t| dt over the steps of S_n
    edges = np.concatenate([[0.0], u, [1.0]])
    total = 0.0
    for k in range(n + 1):  # S_n = k/n on [edges[k], edges[k+1])
        a, b, c = edges[k], edges[k + 1], k / n
        if b <= a:
            continue
        if c <= a or c >= b:
            total += abs(c * (b - a) - (b * b - a * a) / 2)
        else:
            total += ((c - a) ** 2 + (b - c) ** 2) / 2
    return float(total)


# ---------------------------------------------------------------------------------------------
# a validation study: prediction with UQ at every validation point
# ---------------------------------------------------------------------------------------------

@dataclass
class ValidationPoint:
    x: dict
    D: float
    u_D: float
    S: float
    u_input: float
    u_num: float
    comparison: VV20


@dataclass
class ValidationResult:
    dataset: str
    quantity: str
    unit: str
    points: list[ValidationPoint]
    area: float                     # area metric over all validation points (pooled residuals)
    area_normalised: float          # area / mean |D|
    provenance: dict
    calibration: dict | None = None
    u_pooled: float = float("nan")  # u-pooling area metric (0 = perfect calibration of the CDFs, max 0.5)

    @property
    def fraction_within(self) -> float:
        """Fraction of points whose interval E ± k u_val contains zero."""
        return float(np.mean([not p.comparison.model_error_detected for p in self.points]))

    def as_dict(self) -> dict:
        return {"dataset": self.dataset, "quantity": self.quantity, "unit": self.unit,
                "area_metric": self.area, "area_normalised": self.area_normalised,
                "u_pooled_area": self.u_pooled, "fraction_within": self.fraction_within, "provenance": self.provenance,
                "calibration": self.calibration,
                "points": [{**{k: float(v) for k, v in p.x.items()}, "D": p.D, "u_D": p.u_D, "S": p.S,
                            "u_input": p.u_input, "u_num": p.u_num, **p.comparison.as_dict()} for p in self.points]}

    def markdown(self) -> str:
        xs = list(self.points[0].x) if self.points else []
        syn = " (**synthetic data**)" if self.provenance.get("synthetic") else ""
        out = [f"Validation data: `{self.dataset}`{syn} — "
               + (self.provenance.get("citation") or self.provenance.get("description", "")), ""]
        head = "| " + " | ".join(xs) + f" | D [{self.unit}] | S | E = S−D | u_num | u_input | u_D | u_val | E ± 2u_val ∋ 0 |"
        out += [head, "|" + "---|" * (head.count("|") - 1)]
        for p in self.points:
            c = p.comparison
            out.append("| " + " | ".join(f"{p.x[k]:.4g}" for k in xs)
                       + f" | {p.D:.4g} | {p.S:.4g} | {c.E:+.3g} | {c.u_num:.2g} | {c.u_input:.2g} | {c.u_D:.2g} "
                       f"| {c.u_val:.2g} | {'yes' if not c.model_error_detected else 'no'} |")
        out += ["", f"Area validation metric (mean over points): {self.area:.4g} {self.unit} "
                f"({100 * self.area_normalised:.2f} % of mean |D|); u-pooling area {self.u_pooled:.3f} "
                f"(0 = the data look like draws from the predicted distributions, 0.5 = worst); "
                f"{100 * self.fraction_within:.0f} % of the points agree within E ± 2 u_val.", ""]
        return "\n".join(out)


def validate(comm, data: Dataset, predict: Callable[[dict[str, float], dict[str, float]], float],
             inputs: Sequence[UncertainInput], n_samples: int = 64, seed: int = 0,
             u_num: Callable[[dict[str, float]], float] | float = 0.0,
             calibration: Calibration | None = None) -> ValidationResult:
    """Propagate ``inputs`` through ``predict(x_row, sample) -> S`` at every validation point
    (LHS, distributed) and compare with V&V 20 and the area metric. Refuses calibration data,
    and refuses a ``calibration`` made from this very data set."""
    data.require("validation", "validation")
    if calibration is not None and calibration.dataset == data.name:
        raise RoleError(f"dataset '{data.name}' was used for calibration and cannot validate the calibrated model")
    names = list(data.x)
    X = lhs_samples(inputs, n_samples, seed)
    inames = [i.name for i in inputs]
    from ..parallel import block_range

    npts = len(data)
    # all (point, sample) model evaluations, distributed in one flat block
    ntot = npts * n_samples
    lo, hi = block_range(ntot, comm.size, comm.rank)
    local = []
    for t in range(lo, hi):
        i, s = divmod(t, n_samples)
        local.append(float(predict({k: float(data.x[k][i]) for k in names}, dict(zip(inames, X[s])))))
    S_all = np.array([v for part in comm.allgather(local) for v in part]).reshape(npts, n_samples)
    pts, resid_pred, resid_data = [], [], []
    for i in range(npts):
        xi = {k: float(data.x[k][i]) for k in names}
        Si = S_all[i]
        S, u_in = float(Si.mean()), float(Si.std(ddof=1)) if n_samples > 1 else 0.0
        un = float(u_num(xi)) if callable(u_num) else float(u_num)
        c = vv20(S, data.y[i], un, u_in, data.u_y[i])
        pts.append(ValidationPoint(xi, float(data.y[i]), float(data.u_y[i]), S, u_in, un, c))
        resid_pred.append(area_metric(Si, [data.y[i]]))
        resid_data.append(float(np.mean(Si <= data.y[i])))
    area = float(np.mean(resid_pred))
    return ValidationResult(data.name, data.quantity, data.unit, pts, area, area / float(np.mean(np.abs(data.y))),
                            data.provenance, calibration.as_dict() if calibration else None,
                            u_pooling_area(np.array(resid_data)))
