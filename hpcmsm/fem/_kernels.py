"""Compiled (numba) assembly kernels, with the pure-numpy path in :mod:`hpcmsm.fem.space` as fallback.

The kernels fuse, per cell: geometry (Jacobian at each quadrature point, det, inverse, dN/dx),
the element matrix (isotropic λ, μ or a per-point Mandel tangent D: Σ_q Bᵀ D B w|J|) and the
scatter-add of its owned-row entries straight into the CSR value buffer PETSc's matrix uses.
No (ncell, ndof_e, ndof_e) temporaries, so memory stays flat at 10⁶ DOFs.

Disabled (numpy path) if numba is not importable or ``HPCMSM_NUMBA=0`` is set in the environment
(read at every call, so tests can compare both paths in one process).  ``cache=True``: the JIT
compile (a few seconds) is paid once per machine and signature, not per run.
"""
from __future__ import annotations

import os

import numpy as np

try:                                    # optional dependency (Debian python3-numba)
    from numba import njit
    HAVE_NUMBA = True
except Exception:                       # pragma: no cover - depends on the installation
    HAVE_NUMBA = False

    def njit(*a, **k):                  # keeps the module importable; kernels are never called
        return (lambda f: f) if not (a and callable(a[0])) else a[0]


# reassociation/contraction only: no "nnan"/"ninf" (a NaN tangent must stay visible, dmin starts at inf)
_FM = {"reassoc", "contract", "nsz", "arcp"}


def enabled() -> bool:
    """True if the compiled kernels are used (numba importable and HPCMSM_NUMBA not 0/false/off)."""
    return HAVE_NUMBA and os.environ.get("HPCMSM_NUMBA", "1").strip().lower() not in ("0", "false", "no", "off")


def mandel_tables(d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse columns of the Mandel strain operator: B[k, a·d+i] = Σ_n [k = K[i,n]] C[i,n] ∂N_a/∂x_T[i,n].
    Each displacement component i enters 1 (2D: 2) ... d Mandel rows; unused slots have C = 0."""
    from ..materials.base import MANDEL_PAIRS, SQ2
    pairs = MANDEL_PAIRS[d]
    rows: list[list[tuple[int, int, float]]] = [[] for _ in range(d)]
    for k, (i, j) in enumerate(pairs):
        if i == j:
            rows[i].append((k, i, 1.0))
        else:
            rows[i].append((k, j, 1.0 / SQ2))
            rows[j].append((k, i, 1.0 / SQ2))
    w = max(len(r) for r in rows)
    K = np.zeros((d, w), np.int64)
    T = np.zeros((d, w), np.int64)
    C = np.zeros((d, w))
    for i, r in enumerate(rows):
        for n, (k, t, c) in enumerate(r):
            K[i, n], T[i, n], C[i, n] = k, t, c
    return K, T, C


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def _cell_geometry(X, dN, qw, g, w):
    """dN/dx (q, a, i) into g and w|J| (q,) into w for one cell with node coordinates X (nen, d).
    Returns the smallest det J (callers only use it for the affine / sanity case)."""
    nq, nen, d = dN.shape
    J = np.empty((d, d))
    inv = np.empty((d, d))
    dmin = np.inf
    if d == 3:          # literal trip counts: LLVM unrolls these (≈3x faster than runtime-d loops)
        for q in range(nq):
            for i in range(3):
                for k in range(3):
                    s = 0.0
                    for a in range(nen):
                        s += X[a, i] * dN[q, a, k]
                    J[i, k] = s
            c00 = J[1, 1] * J[2, 2] - J[1, 2] * J[2, 1]
            c01 = J[1, 2] * J[2, 0] - J[1, 0] * J[2, 2]
            c02 = J[1, 0] * J[2, 1] - J[1, 1] * J[2, 0]
            det = J[0, 0] * c00 + J[0, 1] * c01 + J[0, 2] * c02
            r = 1.0 / det
            inv[0, 0] = c00 * r
            inv[1, 0] = c01 * r
            inv[2, 0] = c02 * r
            inv[0, 1] = (J[0, 2] * J[2, 1] - J[0, 1] * J[2, 2]) * r
            inv[1, 1] = (J[0, 0] * J[2, 2] - J[0, 2] * J[2, 0]) * r
            inv[2, 1] = (J[0, 1] * J[2, 0] - J[0, 0] * J[2, 1]) * r
            inv[0, 2] = (J[0, 1] * J[1, 2] - J[0, 2] * J[1, 1]) * r
            inv[1, 2] = (J[0, 2] * J[1, 0] - J[0, 0] * J[1, 2]) * r
            inv[2, 2] = (J[0, 0] * J[1, 1] - J[0, 1] * J[1, 0]) * r
            dmin = min(dmin, det)
            w[q] = det * qw[q]
            for a in range(nen):
                for i in range(3):
                    g[q, a, i] = dN[q, a, 0] * inv[0, i] + dN[q, a, 1] * inv[1, i] + dN[q, a, 2] * inv[2, i]
        return dmin
    for q in range(nq):
        for i in range(d):
            for k in range(d):
                s = 0.0
                for a in range(nen):
                    s += X[a, i] * dN[q, a, k]
                J[i, k] = s
        if d == 2:
            det = J[0, 0] * J[1, 1] - J[0, 1] * J[1, 0]
            inv[0, 0] = J[1, 1] / det
            inv[0, 1] = -J[0, 1] / det
            inv[1, 0] = -J[1, 0] / det
            inv[1, 1] = J[0, 0] / det
        elif d == 3:
            c00 = J[1, 1] * J[2, 2] - J[1, 2] * J[2, 1]
            c01 = J[1, 2] * J[2, 0] - J[1, 0] * J[2, 2]
            c02 = J[1, 0] * J[2, 1] - J[1, 1] * J[2, 0]
            det = J[0, 0] * c00 + J[0, 1] * c01 + J[0, 2] * c02
            inv[0, 0] = c00 / det
            inv[1, 0] = c01 / det
            inv[2, 0] = c02 / det
            inv[0, 1] = (J[0, 2] * J[2, 1] - J[0, 1] * J[2, 2]) / det
            inv[1, 1] = (J[0, 0] * J[2, 2] - J[0, 2] * J[2, 0]) / det
            inv[2, 1] = (J[0, 1] * J[2, 0] - J[0, 0] * J[2, 1]) / det
            inv[0, 2] = (J[0, 1] * J[1, 2] - J[0, 2] * J[1, 1]) / det
            inv[1, 2] = (J[0, 2] * J[1, 0] - J[0, 0] * J[1, 2]) / det
            inv[2, 2] = (J[0, 0] * J[1, 1] - J[0, 1] * J[1, 0]) / det
        else:
            det = J[0, 0]
            inv[0, 0] = 1.0 / det
        dmin = min(dmin, det)
        w[q] = det * qw[q]
        for a in range(nen):
            for i in range(d):
                s = 0.0
                for k in range(d):
                    s += dN[q, a, k] * inv[k, i]
                g[q, a, i] = s
    return dmin


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def _scatter_cell(vals, pos, own, ebase, estride, Ke, c, bs):
    """vals[ebase[p] + i·estride[p] + j] += Ke[a·bs+i, b·bs+j] for the owned rows a of cell c."""
    nen = pos.shape[1]
    if bs == 3:         # literal trip counts (unrolled)
        for a in range(nen):
            if not own[c, a]:
                continue
            for b in range(nen):
                p = pos[c, a, b]
                base = ebase[p]
                st = estride[p]
                for i in range(3):
                    r = base + i * st
                    vals[r] += Ke[3 * a + i, 3 * b]
                    vals[r + 1] += Ke[3 * a + i, 3 * b + 1]
                    vals[r + 2] += Ke[3 * a + i, 3 * b + 2]
        return
    for a in range(nen):
        if not own[c, a]:
            continue
        for b in range(nen):
            p = pos[c, a, b]
            base = ebase[p]
            st = estride[p]
            for i in range(bs):
                r = base + i * st
                for j in range(bs):
                    vals[r + j] += Ke[a * bs + i, b * bs + j]


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def scatter_add(vals, pos, own, ebase, estride, Ke, cids, bs):
    """Sum element matrices Ke (len(cids), ndof_e, ndof_e) of the cells cids into the value buffer
    (owned rows only; see FunctionSpace._structure for pos/own/ebase/estride)."""
    for n in range(len(cids)):
        _scatter_cell(vals, pos, own, ebase, estride, Ke[n], cids[n], bs)


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def elasticity_isotropic(vals, pos, own, ebase, estride, points, cells, dN, qw, cids, lam, mu,
                         iface_idx, Kout):
    """Fused geometry + isotropic element matrix + scatter for the cells cids (bs = d).

    K[a i, b j] = Σ_q w (λ g_ai g_bj + μ g_aj g_bi + μ δ_ij g_a·g_b) — the same form as
    forms.stiffness_isotropic.  Cells with iface_idx[n] >= 0 also copy their element matrix to
    Kout[iface_idx[n]] (rows owned by other ranks go through PETSc's stash)."""
    nq, nen, d = dN.shape
    nd = nen * d
    X = np.empty((nen, d))
    g = np.empty((nq, nen, d))
    G = g.reshape((nq, nd))             # flat view: (q, a·d+i)
    w = np.empty(nq)
    M = np.empty((nd, nd))              # Σ_q w g_ai g_bj
    Ke = np.empty((nd, nd))
    for n in range(len(cids)):
        c = cids[n]
        for a in range(nen):
            for i in range(d):
                X[a, i] = points[cells[c, a], i]
        _cell_geometry(X, dN, qw, g, w)
        if d == 3:
            # node-pair blocks A_ab = Σ_q w g_a g_bᵀ for b >= a in registers (K is symmetric):
            # K_ab = λ A_ab + μ A_abᵀ + μ tr(A_ab) I,  K_ba = K_abᵀ
            for a in range(nen):
                for b in range(a, nen):
                    a00 = a01 = a02 = a10 = a11 = a12 = a20 = a21 = a22 = 0.0
                    for q in range(nq):
                        wq = w[q]
                        x0, x1, x2 = wq * g[q, a, 0], wq * g[q, a, 1], wq * g[q, a, 2]
                        y0, y1, y2 = g[q, b, 0], g[q, b, 1], g[q, b, 2]
                        a00 += x0 * y0
                        a01 += x0 * y1
                        a02 += x0 * y2
                        a10 += x1 * y0
                        a11 += x1 * y1
                        a12 += x1 * y2
                        a20 += x2 * y0
                        a21 += x2 * y1
                        a22 += x2 * y2
                    mt = mu * (a00 + a11 + a22)
                    ra, rb = 3 * a, 3 * b
                    Ke[ra, rb] = lam * a00 + mu * a00 + mt
                    Ke[ra, rb + 1] = lam * a01 + mu * a10
                    Ke[ra, rb + 2] = lam * a02 + mu * a20
                    Ke[ra + 1, rb] = lam * a10 + mu * a01
                    Ke[ra + 1, rb + 1] = lam * a11 + mu * a11 + mt
                    Ke[ra + 1, rb + 2] = lam * a12 + mu * a21
                    Ke[ra + 2, rb] = lam * a20 + mu * a02
                    Ke[ra + 2, rb + 1] = lam * a21 + mu * a12
                    Ke[ra + 2, rb + 2] = lam * a22 + mu * a22 + mt
                    if b != a:
                        for i in range(3):
                            for j in range(3):
                                Ke[rb + j, ra + i] = Ke[ra + i, rb + j]
            _scatter_cell(vals, pos, own, ebase, estride, Ke, c, d)
            if iface_idx[n] >= 0:
                Kout[iface_idx[n]] = Ke
            continue
        # rank-nq update M = Gᵀ W G with contiguous length-nd inner loops (vectorised by LLVM)
        for r in range(nd):
            Mr = M[r]
            f = G[0, r] * w[0]
            for t in range(nd):
                Mr[t] = f * G[0, t]
            for q in range(1, nq):
                f = G[q, r] * w[q]
                Gq = G[q]
                for t in range(nd):
                    Mr[t] += f * Gq[t]
        for a in range(nen):
            for b in range(nen):
                tr = 0.0
                for k in range(d):
                    tr += M[a * d + k, b * d + k]
                for i in range(d):
                    for j in range(d):
                        v = lam * M[a * d + i, b * d + j] + mu * M[a * d + j, b * d + i]
                        if i == j:
                            v += mu * tr
                        Ke[a * d + i, b * d + j] = v
        _scatter_cell(vals, pos, own, ebase, estride, Ke, c, d)
        if iface_idx[n] >= 0:
            Kout[iface_idx[n]] = Ke


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def elasticity_tangent(vals, pos, own, ebase, estride, points, cells, dN, qw, cids, D,
                       mK, mT, mC, iface_idx, Kout):
    """Fused geometry + Σ_q Bᵀ D_q B w|J| (Mandel tangent D (len(cids), nq, m, m)) + scatter.
    B's columns are sparse (mandel_tables): B[k, a·d+i] = Σ_n [k=mK[i,n]] mC[i,n] ∂N_a/∂x_mT[i,n];
    Bᵀ(DB) is summed over those non-zeros only."""
    nq, nen, d = dN.shape
    nd = nen * d
    m = D.shape[2]
    nz = mK.shape[1]
    X = np.empty((nen, d))
    g = np.empty((nq, nen, d))
    w = np.empty(nq)
    B = np.empty((m, nd))
    DB = np.empty((m, nd))              # w · D B
    Ke = np.empty((nd, nd))
    for n in range(len(cids)):
        c = cids[n]
        for a in range(nen):
            for i in range(d):
                X[a, i] = points[cells[c, a], i]
        _cell_geometry(X, dN, qw, g, w)
        Ke[:, :] = 0.0
        for q in range(nq):
            B[:, :] = 0.0
            for a in range(nen):
                for i in range(d):
                    for t in range(nz):
                        B[mK[i, t], a * d + i] += mC[i, t] * g[q, a, mT[i, t]]
            for k in range(m):
                DBk = DB[k]
                f = D[n, q, k, 0] * w[q]
                B0 = B[0]
                for s in range(nd):
                    DBk[s] = f * B0[s]
                for l in range(1, m):
                    f = D[n, q, k, l] * w[q]
                    Bl = B[l]
                    for s in range(nd):
                        DBk[s] += f * Bl[s]
            for a in range(nen):
                for i in range(d):
                    Kr = Ke[a * d + i]
                    for t in range(nz):
                        f = mC[i, t] * g[q, a, mT[i, t]]
                        DBk = DB[mK[i, t]]
                        for s in range(nd):
                            Kr[s] += f * DBk[s]
        _scatter_cell(vals, pos, own, ebase, estride, Ke, c, d)
        if iface_idx[n] >= 0:
            Kout[iface_idx[n]] = Ke


# ------------------------------------------------------------------ sparsity structure (FunctionSpace._structure)
@njit(cache=True, nogil=True, error_model="numpy")
def cell_positions(ptr, cols, gn, ns, no, pos):
    """pos[c, a, b] = index in the node graph (ptr, cols; sorted columns per row) of the entry
    (row gn[c, a] - ns, column gn[c, b]) for owned row nodes, -1 for rows owned elsewhere.
    Binary search inside the short row (vs a global searchsorted over all graph keys)."""
    nc, nen = gn.shape
    for c in range(nc):
        for a in range(nen):
            r = gn[c, a] - ns
            if r < 0 or r >= no:
                for b in range(nen):
                    pos[c, a, b] = -1
                continue
            lo0, hi0 = ptr[r], ptr[r + 1]
            for b in range(nen):
                key = gn[c, b]
                lo, hi = lo0, hi0
                while lo < hi:
                    mid = (lo + hi) >> 1
                    if cols[mid] < key:
                        lo = mid + 1
                    else:
                        hi = mid
                pos[c, a, b] = lo


@njit(cache=True, nogil=True, error_model="numpy")
def entry_layout(ptr, cols, ns, no, bs, dptr, optr, Ld, Lo, nnz_d, ebase, estride):
    """Buffer base and row stride of every node-graph entry (see FunctionSpace._structure)."""
    b2 = bs * bs
    for r in range(len(ptr) - 1):
        kd = 0
        ko = 0
        for e in range(ptr[r], ptr[r + 1]):
            cc = cols[e]
            if cc >= ns and cc < ns + no:
                ebase[e] = b2 * dptr[r] + bs * kd
                estride[e] = bs * Ld[r]
                kd += 1
            else:
                ebase[e] = nnz_d + b2 * optr[r] + bs * ko
                estride[e] = bs * Lo[r]
                ko += 1


@njit(cache=True, nogil=True, error_model="numpy")
def expand_csr(ptr, cols, shift, bs, indptr, idx):
    """Dof-level CSR of a node-level one (cols - shift) with bs interleaved components."""
    k = 0
    indptr[0] = 0
    for r in range(len(ptr) - 1):
        for i in range(bs):
            for e in range(ptr[r], ptr[r + 1]):
                cb = (cols[e] - shift) * bs
                for j in range(bs):
                    idx[k] = cb + j
                    k += 1
            indptr[r * bs + i + 1] = k
