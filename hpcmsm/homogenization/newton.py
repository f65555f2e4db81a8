"""The one strain-driven nonlinear cell Newton of hpcmsm's voxel RVEs, with pluggable linear algebra.

Both voxel cell solvers run this loop:

* :class:`hpcmsm.fe2.rve.VoxelRVE` — FE² RVEs on a group communicator: element work split over
  the group, the tangent summed over the group and factorized by a gathered direct solver
  (sparse/dense Cholesky on group rank 0), small or finite strain, flat states;
* :class:`hpcmsm.homogenization.RVEProblem` — large cells on a PETSc DMDA: owned node rows,
  distributed matrix and Krylov solver (CG + GAMG by default).

What is shared (here): the iteration, the convergence test (relative to the assembled magnitude
of the internal forces, or to the first residual), the start policy (a warm start capped in
iterations with a fall-back to the next start), step halving when an iterate makes the residual
non-finite (det F ≤ 0 at finite strain), the final correction with the condensation's
factorization, and the Hill–Mandel measure.  What a *backend* supplies (its data layout and
linear algebra)::

    evaluate(E, w) -> ev            material update + residual (+ tangent assembly, lazily);
                                    ev.rnorm (global residual norm) and ev.ref (force magnitude)
    correction(ev) -> dw            solve K(ev) dw = −r(ev)
    add(w, dw, alpha) -> w + α dw   (a new object; w is never changed in place)
    condense(ev, extra) -> (C, dw)  homogenized tangent by static condensation of K(ev); with
                                    ``extra`` also dw = −K⁻¹ r(ev) with the same factorization
    refresh(E, w) -> ev             material update only (after the final correction)

Every backend method is collective on the backend's communicator and returns the same scalars
on every rank, so every rank takes the same branch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class NewtonResult:
    w: object                      # converged fluctuation (backend's representation)
    ev: object                     # the backend's evaluation at w
    C: np.ndarray | None           # condensed tangent (None if not converged or not requested)
    converged: bool = False
    iterations: int = 0            # linear solves of the accepted start
    cuts: int = 0                  # step halvings
    residuals: list = field(default_factory=list)


def hill_mandel(work: float, S: np.ndarray, E: np.ndarray, scale: float = 0.0) -> float:
    """Relative Hill–Mandel residual |⟨σ:ε⟩ − Σ:E| / max(|Σ||E|, ⟨|σ||ε|⟩) (or ⟨P:F⟩ − P̄:F̄ at finite
    strain).  ``scale`` = ⟨|σ||ε|⟩ keeps the ratio meaningful when |Σ||E| vanishes while the micro
    fields do not (unloaded to E = 0 with residual stresses): then both sides are ~0 at round-off."""
    den = max(np.linalg.norm(S) * np.linalg.norm(E), float(scale), 1e-300)
    return float(abs(work - S @ E) / den)


def _iterate(backend, E, w_base, dw0, *, rtol, max_iterations, reference, max_cuts):
    """Newton from w = w_base + dw0 (dw0 None: from w_base).  Returns (w, ev, converged, its,
    cuts, residuals)."""
    w_prev, step = w_base, dw0
    w = w_base if dw0 is None else backend.add(w_base, dw0, 1.0)
    it = cuts = 0
    scale = 1.0
    ref0 = None
    rnorms = []
    while True:
        ev = backend.evaluate(E, w)
        rn = ev.rnorm
        rnorms.append(rn)
        if ref0 is None and np.isfinite(rn):
            ref0 = rn if reference == "initial" else None
        ref = ref0 if reference == "initial" else ev.ref
        if rn < 1e-300 or (ref is not None and rn <= rtol * ref):
            return w, ev, True, it, cuts, rnorms
        if not np.isfinite(rn) and step is not None and cuts < max_cuts:
            # the last step (or the predictor) left the admissible set — e.g. det F ≤ 0 at a
            # micro point poisons the group-summed residual with NaN on every rank: halve it
            scale *= 0.5
            cuts += 1
            w = backend.add(w_prev, step, scale)
            continue
        if it >= max_iterations or not np.isfinite(rn):
            return w, ev, False, it, cuts, rnorms
        dw = backend.correction(ev)
        w_prev, step, scale = w, dw, 1.0
        w = backend.add(w, dw, 1.0)
        it += 1


def cell_newton(backend, E: np.ndarray, starts: list, *, rtol: float, max_iterations: int,
                reference: str = "forces", warm_cap: int = 10, max_cuts: int = 0,
                final_correction: bool = True, tangent: bool = True) -> NewtonResult:
    """Solve the cell problem for macro strain ``E`` (Mandel vector, or F̄ flattened).

    ``starts``: a list of (w_base, dw0) starting points w = w_base + dw0 tried in order (``dw0``
    may be None); all but the last are warm starts capped at ``warm_cap`` iterations — a warm
    start converges in a few iterations or not at all — and the first that converges is taken.
    ``reference``: "forces" (rnorm ≤ rtol · ev.ref, the assembled |internal force| magnitude) or
    "initial" (rnorm ≤ rtol · first residual).  ``final_correction``: one more Newton correction
    with the condensation's factorization (direct backends: it costs one back-substitution and
    takes the residual from just below the tolerance to round-off).
    """
    for k, (w_base, dw0) in enumerate(starts):
        last = k == len(starts) - 1
        cap = max_iterations if last else min(max_iterations, warm_cap)
        w, ev, ok, its, cuts, rn = _iterate(backend, E, w_base, dw0, rtol=rtol, max_iterations=cap,
                                            reference=reference, max_cuts=max_cuts)
        if ok or last:
            break
    res = NewtonResult(w=w, ev=ev, C=None, converged=ok, iterations=its, cuts=cuts, residuals=rn)
    if not ok or not tangent:
        return res
    if final_correction:
        res.C, dw = backend.condense(ev, True)
        res.w = backend.add(w, dw, 1.0)
        res.ev = backend.refresh(E, res.w)
    else:
        res.C, _ = backend.condense(ev, False)
    return res
