"""Error norms against exact solutions (for manufactured-solution studies)."""
from __future__ import annotations

from typing import Callable

import numpy as np


def error_norms(space, u_local: np.ndarray, exact: Callable, grad_exact: Callable | None = None,
                quad_degree: int | None = None) -> tuple[float, float]:
    """Global L2 error and H1-seminorm error of a discrete field (collective).

    ``exact(x)`` → (c, q) or (c, q, bs); ``grad_exact(x)`` → (c, q, d) or (c, q, bs, d); x (c, q, d).
    Integrated with a rule of degree ``2p + 3`` (default) so quadrature error is negligible."""
    from mpi4py import MPI

    from .space import FunctionSpace

    qd = quad_degree or 2 * space.element.degree + 3
    sp = FunctionSpace(space.mesh, space.bs, quad_degree=qd) if qd != space.quad_degree else space
    e2 = h2 = 0.0
    for sl in sp.chunks():
        if sl.stop <= sl.start:
            continue
        x, dNdx, w = sp.geometry(sl)
        ue = sp.cell_values(u_local, sl)                                  # (c, nen, bs)
        uh = np.matmul(sp.N[None], ue)
        ux = np.asarray(exact(x), float).reshape(uh.shape)
        e2 += float(np.einsum("cqb,cq->", (uh - ux) ** 2, w))
        if grad_exact is not None:
            gh = np.matmul(ue.transpose(0, 2, 1)[:, None], dNdx)
            gx = np.asarray(grad_exact(x), float).reshape(gh.shape)
            h2 += float(np.einsum("cqbi,cq->", (gh - gx) ** 2, w))
    comm = space.comm
    return float(np.sqrt(comm.allreduce(e2, op=MPI.SUM))), float(np.sqrt(comm.allreduce(h2, op=MPI.SUM)))


def observed_orders(h, err) -> np.ndarray:
    """log(e_i/e_{i+1}) / log(h_i/h_{i+1}) for successive refinements."""
    h, err = np.asarray(h, float), np.asarray(err, float)
    return np.log(err[:-1] / err[1:]) / np.log(h[:-1] / h[1:])
