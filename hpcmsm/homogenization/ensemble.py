"""SVE ensembles on MPI subcommunicators and RVE-size statistics.

Tasks (size, contrast, realization) are farmed over groups of ``group_size`` ranks with
:class:`hpcmsm.parallel.Ensemble`; each group regenerates its microstructure from
``(seed, index)`` and solves the cell problems on its subcommunicator.  Statistics are pure numpy.
"""
from __future__ import annotations

import time

import numpy as np

from ..parallel import Ensemble
from .bounds import isotropic_projection


def lpt_assignment(costs: np.ndarray, ngroups: int) -> np.ndarray:
    """Longest-processing-time-first assignment of tasks to groups (balanced makespan)."""
    owner = np.zeros(len(costs), int)
    load = np.zeros(ngroups)
    for t in np.argsort(-np.asarray(costs), kind="stable"):
        g = int(np.argmin(load))
        owner[t] = g
        load[g] += costs[t]
    return owner


def run_tasks(comm, group_size: int, tasks: list, costs, solve_task, *, name: str = "sve", progress=None) -> list:
    """Run ``solve_task(task, subcomm) -> picklable`` for every task over groups of ranks.

    Every rank of ``comm`` must call this; results come back in task order on every rank.
    """
    with Ensemble(comm, group_size, name=name) as ens:
        owner = lpt_assignment(np.asarray(costs, float), ens.ngroups)
        local = {}
        for t in ens.my_tasks(len(tasks), owner):
            t0 = time.perf_counter()
            res = solve_task(tasks[t], ens.sub)
            if isinstance(res, dict):
                res["wall_time"] = time.perf_counter() - t0
                res["group"] = ens.group
            local[int(t)] = res
            if progress is not None:
                progress(int(t))
        return ens.gather(len(tasks), local, owner)


def scalar_quantities(C: np.ndarray, kind: str, dim: int) -> dict:
    """Scalars analysed in the size study: isotropic moduli and the diagonal components."""
    q = dict(isotropic_projection(C, kind, dim))
    for i in range(C.shape[0]):
        q[f"C{i}{i}"] = float(C[i, i])
    return q


def sample_stats(x: np.ndarray, conf: float = 0.95) -> dict:
    """Mean, unbiased variance, standard error and the Student-t confidence half-width."""
    from scipy import stats

    x = np.asarray(x, float)
    n = len(x)
    mean = float(x.mean())
    var = float(x.var(ddof=1)) if n > 1 else 0.0
    se = np.sqrt(var / n) if n > 1 else 0.0
    half = float(stats.t.ppf(0.5 + conf / 2, n - 1) * se) if n > 1 else float("nan")
    return {"n": n, "mean": mean, "var": var, "std": float(np.sqrt(var)), "ci_half": half,
            "ci": [mean - half, mean + half]}


def variance_ci(var: float, n: int, conf: float = 0.95) -> tuple[float, float]:
    """Chi-square confidence interval of a (Gaussian) sample variance."""
    from scipy import stats

    if n < 2:
        return float("nan"), float("nan")
    a = stats.chi2.ppf(0.5 + conf / 2, n - 1)
    b = stats.chi2.ppf(0.5 - conf / 2, n - 1)
    return float((n - 1) * var / a), float((n - 1) * var / b)


def power_fit(L, y) -> dict:
    """Least-squares fit of log y = log a + p log L; returns a, exponent p and its std error."""
    L, y = np.asarray(L, float), np.asarray(y, float)
    ok = (y > 0) & np.isfinite(y)
    if ok.sum() < 2:
        return {"a": float("nan"), "exponent": float("nan"), "stderr": float("nan"), "points": int(ok.sum())}
    X = np.log(L[ok])
    Y = np.log(y[ok])
    A = np.vstack([np.ones_like(X), X]).T
    coef, res, *_ = np.linalg.lstsq(A, Y, rcond=None)
    n = ok.sum()
    se = float("nan")
    if n > 2:
        s2 = float(np.sum((Y - A @ coef) ** 2) / (n - 2))
        cov = s2 * np.linalg.inv(A.T @ A)
        se = float(np.sqrt(cov[1, 1]))
    return {"a": float(np.exp(coef[0])), "exponent": float(coef[1]), "stderr": se, "points": int(n)}


def size_for_tolerance(fit: dict, tol: float) -> float:
    """L at which the fitted a·L^p equals ``tol`` (p < 0); nan if the fit does not decay."""
    a, p = fit.get("a"), fit.get("exponent")
    if not (a and np.isfinite(a) and np.isfinite(p) and p < 0):
        return float("nan")
    return float((tol / a) ** (1.0 / p))
