"""Boundary conditions: Dirichlet values and Neumann fluxes/tractions on named mesh regions."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence, Union

import numpy as np

from ..errors import InputError

Value = Union[float, Sequence[float], Callable]


@dataclass
class Dirichlet:
    """``value``: a number, a list (one per component) or ``f(x) -> (n,) | (n, ncomp)`` (x: (n, d)).
    ``components``: which components are fixed (None: all)."""

    region: str
    value: Value = 0.0
    components: Sequence[int] | None = None


@dataclass
class Neumann:
    """Flux (scalar problems) or traction vector on a facet set; constant or ``f(x)`` with x (c, q, d)."""

    region: str
    value: Value = 0.0


def evaluate(value: Value, x: np.ndarray, ncomp: int) -> np.ndarray:
    """Evaluate a BC value at points x (..., d) → (..., ncomp); scalars broadcast to all components."""
    v = np.asarray(value(x) if callable(value) else value, dtype=float)
    if ncomp == 1 and v.shape == x.shape[:-1]:
        v = v[..., None]
    try:
        return np.array(np.broadcast_to(v, x.shape[:-1] + (ncomp,)))
    except ValueError:
        raise InputError(f"boundary value of shape {v.shape} does not fit {ncomp} component(s)") from None


def dirichlet_dofs(space, bcs: Sequence[Dirichlet], owned_only: bool = True):
    """Constrained local dofs (owned by default) and their (unscaled) values."""
    dofs, vals = [], []
    for bc in bcs:
        comps = list(range(space.bs)) if bc.components is None else list(bc.components)
        if any(c < 0 or c >= space.bs for c in comps):
            raise InputError(f"Dirichlet condition on {bc.region!r}: components {comps} out of range for "
                             f"a field with {space.bs} component(s)")
        nodes = space.mesh.boundary_nodes(bc.region, owned_only=owned_only)
        x = space.mesh.points[nodes]
        v = evaluate(bc.value, x, len(comps))
        dofs.append((nodes[:, None] * space.bs + np.array(comps)[None, :]).ravel())
        vals.append(np.broadcast_to(v, (len(nodes), len(comps))).ravel())
    if not dofs:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    d = np.concatenate(dofs)
    v = np.concatenate(vals)
    # later conditions win on shared dofs (edges/corners)
    _, last = np.unique(d[::-1], return_index=True)
    keep = len(d) - 1 - last
    return d[keep], v[keep]


def neumann_vector(space, bcs: Sequence[Neumann], vec, quad_degree: int | None = None):
    """Assemble Σ ∫_Γ N t dA over the facet sets and add it to ``vec``."""
    from .elements import Element

    mesh = space.mesh
    fel: Element = mesh.element.facet
    qdeg = quad_degree or 2 * mesh.degree
    xq, wq = fel.quadrature(qdeg)
    N, dN = fel.tabulate(xq)
    nloc = len(mesh.points) * space.bs
    acc = np.zeros(nloc)
    for bc in bcs:
        if bc.region not in mesh.facet_names:
            raise InputError(f"Neumann condition: unknown facet region {bc.region!r}; this mesh has: "
                             f"{', '.join(sorted(mesh.facet_names)) or '(none)'}")
        sel = mesh.facet_tags == mesh.facet_names[bc.region]
        F = mesh.facets[sel]
        if len(F) == 0:
            continue
        X = mesh.points[F]                                    # (f, nfen, d)
        J = np.einsum("fai,qak->fqik", X, dN)                 # (f, q, d, d-1)
        if J.shape[-1] == 1:
            dA = np.linalg.norm(J[..., 0], axis=-1)
        else:
            dA = np.linalg.norm(np.cross(J[..., 0], J[..., 1]), axis=-1)
        x = np.einsum("qa,fai->fqi", N, X)
        t = evaluate(bc.value, x, space.bs)                  # (f, q, bs)
        fe = np.einsum("qa,fqi,fq,q->fai", N, t, dA, wq)
        dofs = (F[:, :, None] * space.bs + np.arange(space.bs)).reshape(len(F), -1)
        acc += np.bincount(dofs.ravel(), weights=fe.ravel(), minlength=nloc)
    from petsc4py import PETSc

    tmp = space.create_vec()
    with tmp.localForm() as loc:
        loc.getArray()[:] = acc
    tmp.ghostUpdate(PETSc.InsertMode.ADD, PETSc.ScatterMode.REVERSE)
    vec.axpy(1.0, tmp)
    tmp.destroy()
    vec.ghostUpdate(PETSc.InsertMode.INSERT, PETSc.ScatterMode.FORWARD)
    return vec
