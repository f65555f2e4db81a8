"""Compiled (numba) assembly kernels, with the pure-numpy path in :mod:`hpcmsm.fem.space` as fallback.

:func:`elastic_system` fuses, per cell: geometry (Jacobian at each quadrature point, det,
inverse, dN/dx), the element matrix (isotropic λ, μ or a per-point Mandel tangent D:
Σ_q Bᵀ D B w|J|; dedicated register-blocked versions for Q1 hexahedra), the body-force vector,
the symmetric Dirichlet elimination (lifting into the right-hand side) and the scatter-add of the
owned-row entries straight into the CSR value buffer PETSc's matrix uses (one lookup per node
pair via the per-cell block positions of FunctionSpace._structure).  No (ncell, ndof_e, ndof_e)
temporaries, so memory stays flat at 10⁶ DOFs.  :func:`scatter_add` does the elimination and
scatter for given element matrices.

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
        else:           # d == 1 (d == 3 returned above)
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
def _scatter_cell(vals, cb, sd, so, own, cells, c, Ke, bs):
    """vals[cb[c, a, b] + i·st + j] += Ke[a·bs+i, b·bs+j] for the owned rows a of cell c, with the
    row stride st = sd[r] (column node b owned: diagonal block) or so[r] (off-diagonal block) of
    the row node r = cells[c, a].  One lookup per node pair, no search."""
    nen = cb.shape[1]
    if bs == 3:         # literal trip counts (unrolled)
        allown = True
        for a in range(nen):
            allown = allown and own[c, a]
        if allown:      # interior cell: diagonal-block strides only, no per-pair test
            for a in range(nen):
                st = sd[cells[c, a]]
                for b in range(nen):
                    base = cb[c, a, b]
                    for i in range(3):
                        p = base + i * st
                        vals[p] += Ke[3 * a + i, 3 * b]
                        vals[p + 1] += Ke[3 * a + i, 3 * b + 1]
                        vals[p + 2] += Ke[3 * a + i, 3 * b + 2]
            return
        for a in range(nen):
            if not own[c, a]:
                continue
            r = cells[c, a]
            std, sto = sd[r], so[r]
            for b in range(nen):
                base = cb[c, a, b]
                st = std if own[c, b] else sto
                for i in range(3):
                    p = base + i * st
                    vals[p] += Ke[3 * a + i, 3 * b]
                    vals[p + 1] += Ke[3 * a + i, 3 * b + 1]
                    vals[p + 2] += Ke[3 * a + i, 3 * b + 2]
        return
    for a in range(nen):
        if not own[c, a]:
            continue
        r = cells[c, a]
        std, sto = sd[r], so[r]
        for b in range(nen):
            base = cb[c, a, b]
            st = std if own[c, b] else sto
            for i in range(bs):
                p = base + i * st
                for j in range(bs):
                    vals[p + j] += Ke[a * bs + i, b * bs + j]


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def _finish_cell(vals, cb, sd, so, own, cells, c, Ke, Fe, bs, bcf, bcv, acc, rhs):
    """Symmetric Dirichlet elimination on the element (if bcf is non-empty), scatter of Ke into the
    owned rows, and (if rhs) Fe into the local (owned + ghost) vector acc.

    Constrained column s (bcf[dof] != 0): Fe -= Ke[:, s]·g_s, column zeroed; constrained row: row
    and Fe entry zeroed (the caller puts the diagonal and b = diag·g once per owned dof)."""
    nen = cb.shape[1]
    n = nen * bs
    if bcf.shape[0] > 0:
        hit = False
        for a in range(nen):
            d0 = cells[c, a] * bs
            for i in range(bs):
                if bcf[d0 + i]:
                    hit = True
        if hit:
            for s in range(n):
                ds = cells[c, s // bs] * bs + s % bs
                if bcf[ds]:
                    g = bcv[ds]
                    for r in range(n):
                        Fe[r] -= Ke[r, s] * g
                        Ke[r, s] = 0.0
            for r in range(n):
                dr = cells[c, r // bs] * bs + r % bs
                if bcf[dr]:
                    Fe[r] = 0.0
                    for s in range(n):
                        Ke[r, s] = 0.0
    _scatter_cell(vals, cb, sd, so, own, cells, c, Ke, bs)
    if rhs:
        for a in range(nen):
            d0 = cells[c, a] * bs
            for i in range(bs):
                acc[d0 + i] += Fe[a * bs + i]


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def scatter_add(vals, cb, sd, so, own, cells, Ke, cids, bs, bcf, bcv, acc, iface_idx, Kout):
    """Sum element matrices Ke (len(cids), ndof_e, ndof_e) of the cells cids into the value buffer
    (owned rows only; see FunctionSpace._structure for cb/sd/so/own), with the Dirichlet elimination
    of _finish_cell if bcf is non-empty (lifting terms into acc).  Interface cells
    (iface_idx[n] >= 0) copy their (eliminated) element matrix to Kout[iface_idx[n]]."""
    n = Ke.shape[1]
    K = np.empty((n, n))
    Fe = np.empty(n)
    rhs = bcf.shape[0] > 0
    for k in range(len(cids)):
        c = cids[k]
        for r in range(n):
            Fe[r] = 0.0
            for s in range(n):
                K[r, s] = Ke[k, r, s]
        _finish_cell(vals, cb, sd, so, own, cells, c, K, Fe, bs, bcf, bcv, acc, rhs)
        if iface_idx[k] >= 0:
            Kout[iface_idx[k]] = K


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy", inline="always")
def _hex8_point(X, dN, qw, q, gT):
    """Q1 hexahedron geometry at quadrature point q: the physical gradients of the 8 shape
    functions into gT[q] (i, a) and the weight w|J| returned; J and its inverse in scalars
    (registers), literal trip counts so LLVM unrolls them.  Inlined into both hex8 kernels."""
    j00 = j01 = j02 = j10 = j11 = j12 = j20 = j21 = j22 = 0.0
    for a in range(8):
        x0, x1, x2 = X[a, 0], X[a, 1], X[a, 2]
        d0, d1, d2 = dN[q, a, 0], dN[q, a, 1], dN[q, a, 2]
        j00 += x0 * d0
        j01 += x0 * d1
        j02 += x0 * d2
        j10 += x1 * d0
        j11 += x1 * d1
        j12 += x1 * d2
        j20 += x2 * d0
        j21 += x2 * d1
        j22 += x2 * d2
    c00 = j11 * j22 - j12 * j21
    c01 = j12 * j20 - j10 * j22
    c02 = j10 * j21 - j11 * j20
    det = j00 * c00 + j01 * c01 + j02 * c02
    r = 1.0 / det
    i00, i10, i20 = c00 * r, c01 * r, c02 * r
    i01 = (j02 * j21 - j01 * j22) * r
    i11 = (j00 * j22 - j02 * j20) * r
    i21 = (j01 * j20 - j00 * j21) * r
    i02 = (j01 * j12 - j02 * j11) * r
    i12 = (j02 * j10 - j00 * j12) * r
    i22 = (j00 * j11 - j01 * j10) * r
    for a in range(8):
        d0, d1, d2 = dN[q, a, 0], dN[q, a, 1], dN[q, a, 2]
        gT[q, 0, a] = d0 * i00 + d1 * i10 + d2 * i20
        gT[q, 1, a] = d0 * i01 + d1 * i11 + d2 * i21
        gT[q, 2, a] = d0 * i02 + d1 * i12 + d2 * i22
    return det * qw[q]


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def _iso_ke_hex8(X, dN, qw, gT, w, lam, mu, M, Ke, fill):
    """Q1 hexahedron (8 nodes, 3D), isotropic: geometry into gT (q, i, a) and w (q,), the six
    'moment' matrices M_p[a, b] = Σ_q w g_ai g_bj (p = (i ≤ j)) with contiguous length-8 inner
    loops, the eight b-sums in scalar accumulators (registers: 4x faster than accumulating in
    the M array, which LLVM keeps in memory), then Ke[a i, b j] = λ M_ij[a,b] + μ M_ji[a,b]
    + δ_ij μ Σ_k M_kk[a,b] (M_ji[a, b] = M_ij[b, a]).  Needs nq = 8 (2x2x2 Gauss).  Literal trip
    counts throughout so LLVM unrolls them.  fill=False stops after M."""
    nq = dN.shape[0]
    for q in range(nq):
        w[q] = _hex8_point(X, dN, qw, q, gT)
    p = 0
    for i in range(3):
        for j in range(i, 3):
            for a in range(8):
                m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = 0.0
                for q in range(8):
                    f = w[q] * gT[q, i, a]
                    m0 += f * gT[q, j, 0]
                    m1 += f * gT[q, j, 1]
                    m2 += f * gT[q, j, 2]
                    m3 += f * gT[q, j, 3]
                    m4 += f * gT[q, j, 4]
                    m5 += f * gT[q, j, 5]
                    m6 += f * gT[q, j, 6]
                    m7 += f * gT[q, j, 7]
                M[p, a, 0] = m0
                M[p, a, 1] = m1
                M[p, a, 2] = m2
                M[p, a, 3] = m3
                M[p, a, 4] = m4
                M[p, a, 5] = m5
                M[p, a, 6] = m6
                M[p, a, 7] = m7
            p += 1
    if not fill:        # the caller scatters straight from M (_iso_scatter_hex8)
        return
    # p index of (i, j), i <= j: 00 0, 01 1, 02 2, 11 3, 12 4, 22 5
    lm = lam + mu
    for a in range(8):
        ra = 3 * a
        for b in range(8):
            rb = 3 * b
            m00, m11, m22 = M[0, a, b], M[3, a, b], M[5, a, b]
            mt = mu * (m00 + m11 + m22)
            Ke[ra, rb] = lm * m00 + mt
            Ke[ra + 1, rb + 1] = lm * m11 + mt
            Ke[ra + 2, rb + 2] = lm * m22 + mt
            p01, q01 = M[1, a, b], M[1, b, a]
            p02, q02 = M[2, a, b], M[2, b, a]
            p12, q12 = M[4, a, b], M[4, b, a]
            Ke[ra, rb + 1] = lam * p01 + mu * q01
            Ke[ra + 1, rb] = lam * q01 + mu * p01
            Ke[ra, rb + 2] = lam * p02 + mu * q02
            Ke[ra + 2, rb] = lam * q02 + mu * p02
            Ke[ra + 1, rb + 2] = lam * p12 + mu * q12
            Ke[ra + 2, rb + 1] = lam * q12 + mu * p12


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def _iso_scatter_hex8(vals, cb, sd, cells, c, M, lam, mu):
    """Scatter-add the isotropic Q1-hex element matrix of cell c straight from its moment
    matrices M (see _iso_ke_hex8) into the value buffer, for a cell whose 8 nodes are all owned
    and unconstrained: each 3x3 node-pair block is formed in registers and added where it lives,
    without the 24x24 Ke round trip through memory."""
    lm = lam + mu
    for a in range(8):
        st = sd[cells[c, a]]
        for b in range(8):
            m00, m11, m22 = M[0, a, b], M[3, a, b], M[5, a, b]
            mt = mu * (m00 + m11 + m22)
            p01, q01 = M[1, a, b], M[1, b, a]
            p02, q02 = M[2, a, b], M[2, b, a]
            p12, q12 = M[4, a, b], M[4, b, a]
            p = cb[c, a, b]
            vals[p] += lm * m00 + mt
            vals[p + 1] += lam * p01 + mu * q01
            vals[p + 2] += lam * p02 + mu * q02
            p += st
            vals[p] += lam * q01 + mu * p01
            vals[p + 1] += lm * m11 + mt
            vals[p + 2] += lam * p12 + mu * q12
            p += st
            vals[p] += lam * q02 + mu * p02
            vals[p + 1] += lam * q12 + mu * p12
            vals[p + 2] += lm * m22 + mt


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def _cell_free(own, cells, c, bs, bcf):
    """True if all nodes of cell c are owned and none of its dofs is constrained."""
    nen = own.shape[1]
    for a in range(nen):
        if not own[c, a]:
            return False
    if bcf.shape[0] > 0:
        for a in range(nen):
            d0 = cells[c, a] * bs
            for i in range(bs):
                if bcf[d0 + i]:
                    return False
    return True


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def _iso_ke_generic(X, dN, qw, g, w, lam, mu, M, Ke):
    """Any element/dimension, isotropic: M = Gᵀ W G (rank-nq update with contiguous length-nd inner
    loops), Ke[a i, b j] = λ M[a i, b j] + μ M[a j, b i] + δ_ij μ Σ_k M[a k, b k]."""
    nq, nen, d = dN.shape
    nd = nen * d
    _cell_geometry(X, dN, qw, g, w)
    G = g.reshape((nq, nd))
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


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def _tangent_ke(dN, g, w, D, n, sym, mK, mT, mC, B, DB, Ke):
    """Σ_q Bᵀ D_q B w (Mandel tangent D[n] (nq, m, m)) given the geometry g (q, a, i), w (q,).
    B's columns are sparse (mandel_tables): B[k, a·d+i] = Σ_t [k=mK[i,t]] mC[i,t] ∂N_a/∂x_mT[i,t];
    DB = w D B over B's non-zeros, Bᵀ(DB) likewise; upper triangle only if D[n] is symmetric."""
    nq, nen, d = dN.shape
    nd = nen * d
    m = D.shape[2]
    nz = mK.shape[1]
    for r in range(nd):
        for s in range(nd):
            Ke[r, s] = 0.0
    for q in range(nq):
        wq = w[q]
        for k in range(m):
            for s in range(nd):
                DB[k, s] = 0.0
        for a in range(nen):
            for i in range(d):
                s = a * d + i
                for t in range(nz):
                    f = mC[i, t] * g[q, a, mT[i, t]] * wq
                    kk = mK[i, t]
                    for k in range(m):
                        DB[k, s] += D[n, q, k, kk] * f
        for a in range(nen):
            for i in range(d):
                r = a * d + i
                Kr = Ke[r]
                for t in range(nz):
                    f = mC[i, t] * g[q, a, mT[i, t]]
                    if f == 0.0:
                        continue
                    DBk = DB[mK[i, t]]
                    for s in range(r if sym else 0, nd):
                        Kr[s] += f * DBk[s]
    if sym:
        for r in range(nd):
            for s in range(r + 1, nd):
                Ke[s, r] = Ke[r, s]


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def _tangent_ke_hex8(X, dN, qw, D, n, sym, mK, mT, mC, gT, w, cD, DB, Ke):
    """Q1 hexahedron, 8 points, per-point Mandel tangent D[n] (8, 6, 6): Ke = Σ_q Bᵀ D B w|J|
    vectorised over the 8 nodes b: DB[q, k, j, b] = w Σ_l cD[k, j, l] ∂_l N_b (cD: D times B's
    sparse pattern, 3 terms), then K_ij[a, b] = Σ_q Σ_t mC[i,t] ∂_mT[i,t] N_a DB[q, mK[i,t], j, b]
    with the eight b-sums in registers (4x faster than the generic kernel); if D[n] is symmetric
    only i <= j (K_ji = K_ijᵀ).  Needs d = 3 (three Mandel rows per component)."""
    for q in range(8):
        wq = _hex8_point(X, dN, qw, q, gT)
        w[q] = wq
        # cD[k, j, l] = w Σ_t [mT[j,t] = l] D[k, mK[j,t]] mC[j,t]
        for k in range(6):
            for j in range(3):
                cD[k, j, 0] = 0.0
                cD[k, j, 1] = 0.0
                cD[k, j, 2] = 0.0
                for t in range(3):
                    cD[k, j, mT[j, t]] += wq * D[n, q, k, mK[j, t]] * mC[j, t]
                c0, c1, c2 = cD[k, j, 0], cD[k, j, 1], cD[k, j, 2]
                for b in range(8):
                    DB[q, k, j, b] = c0 * gT[q, 0, b] + c1 * gT[q, 1, b] + c2 * gT[q, 2, b]
    for i in range(3):
        k0, k1, k2 = mK[i, 0], mK[i, 1], mK[i, 2]
        t0, t1, t2 = mT[i, 0], mT[i, 1], mT[i, 2]
        e0, e1, e2 = mC[i, 0], mC[i, 1], mC[i, 2]
        for j in range(i if sym else 0, 3):
            for a in range(8):
                m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = 0.0
                for q in range(8):
                    f0 = e0 * gT[q, t0, a]
                    f1 = e1 * gT[q, t1, a]
                    f2 = e2 * gT[q, t2, a]
                    m0 += f0 * DB[q, k0, j, 0] + f1 * DB[q, k1, j, 0] + f2 * DB[q, k2, j, 0]
                    m1 += f0 * DB[q, k0, j, 1] + f1 * DB[q, k1, j, 1] + f2 * DB[q, k2, j, 1]
                    m2 += f0 * DB[q, k0, j, 2] + f1 * DB[q, k1, j, 2] + f2 * DB[q, k2, j, 2]
                    m3 += f0 * DB[q, k0, j, 3] + f1 * DB[q, k1, j, 3] + f2 * DB[q, k2, j, 3]
                    m4 += f0 * DB[q, k0, j, 4] + f1 * DB[q, k1, j, 4] + f2 * DB[q, k2, j, 4]
                    m5 += f0 * DB[q, k0, j, 5] + f1 * DB[q, k1, j, 5] + f2 * DB[q, k2, j, 5]
                    m6 += f0 * DB[q, k0, j, 6] + f1 * DB[q, k1, j, 6] + f2 * DB[q, k2, j, 6]
                    m7 += f0 * DB[q, k0, j, 7] + f1 * DB[q, k1, j, 7] + f2 * DB[q, k2, j, 7]
                r = 3 * a + i
                Ke[r, j] = m0
                Ke[r, 3 + j] = m1
                Ke[r, 6 + j] = m2
                Ke[r, 9 + j] = m3
                Ke[r, 12 + j] = m4
                Ke[r, 15 + j] = m5
                Ke[r, 18 + j] = m6
                Ke[r, 21 + j] = m7
                if sym and j != i:
                    Ke[j, r] = m0
                    Ke[3 + j, r] = m1
                    Ke[6 + j, r] = m2
                    Ke[9 + j, r] = m3
                    Ke[12 + j, r] = m4
                    Ke[15 + j, r] = m5
                    Ke[18 + j, r] = m6
                    Ke[21 + j, r] = m7


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def _symmetric(D, n):
    """True if every point's tangent D[n, q] is exactly symmetric (then Ke is, and only its upper
    triangle is computed)."""
    nq, m = D.shape[1], D.shape[2]
    for q in range(nq):
        for k in range(m):
            for l in range(k + 1, m):
                if D[n, q, k, l] != D[n, q, l, k]:
                    return False
    return True


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy")
def elastic_system(vals, cb, sd, so, own, points, cells, N, dN, qw, cids, lam, mu, D, mK, mT, mC,
                   fq, bcf, bcv, acc, iface_idx, Kout):
    """Fused small-strain elasticity assembly for the cells cids (bs = d), one pass per cell:
    geometry, element matrix — isotropic λ, μ if D is empty, else the per-point Mandel tangent
    D (len(cids), nq, m, m) —, body-force vector Σ_q N_a f_q w|J| (fq (len(cids) | 1 | 0, nq, d):
    per point, constant, none), symmetric Dirichlet elimination (bcf/bcv per local dof, empty: none),
    scatter into the owned rows of vals and the local vector acc (owned + ghost dofs).
    Interface cells (iface_idx[n] >= 0) copy their element matrix to Kout[iface_idx[n]]; its entries of
    rows owned by other ranks go to their owners through FunctionSpace._iface_exchange."""
    nq, nen, d = dN.shape
    nd = nen * d
    iso = D.shape[0] == 0
    nf = fq.shape[0]
    rhs = nf > 0 or bcf.shape[0] > 0
    X = np.empty((nen, d))
    g = np.empty((nq, nen, d))
    gT = np.empty((nq, d, nen))
    w = np.empty(nq)
    M6 = np.empty((6, nen, nen))
    M = np.empty((nd, nd))
    B = np.empty((1, 1))
    DB = np.empty((D.shape[2] if not iso else 1, nd))
    Ke = np.empty((nd, nd))
    Fe = np.empty(nd)
    hex8 = iso and d == 3 and nen == 8 and nq == 8
    tan8 = (not iso) and d == 3 and nen == 8 and nq == 8
    gT8 = np.empty((8, 3, 8))
    cD8 = np.empty((6, 3, 3))
    DB8 = np.empty((8, 6, 3, 8))
    for n in range(len(cids)):
        c = cids[n]
        for a in range(nen):
            for i in range(d):
                X[a, i] = points[cells[c, a], i]
        direct = False
        if hex8:
            direct = _cell_free(own, cells, c, 3, bcf)
            _iso_ke_hex8(X, dN, qw, gT, w, lam, mu, M6, Ke, not direct)
            if direct:
                _iso_scatter_hex8(vals, cb, sd, cells, c, M6, lam, mu)
        elif iso:
            _iso_ke_generic(X, dN, qw, g, w, lam, mu, M, Ke)
        elif tan8:
            _tangent_ke_hex8(X, dN, qw, D, n, _symmetric(D, n), mK, mT, mC, gT8, w, cD8, DB8, Ke)
        else:
            _cell_geometry(X, dN, qw, g, w)
            _tangent_ke(dN, g, w, D, n, _symmetric(D, n), mK, mT, mC, B, DB, Ke)
        for r in range(nd):
            Fe[r] = 0.0
        if nf == 1:                     # constant force: Fe[a, i] = f_i Σ_q w N_a
            for a in range(nen):
                sa = 0.0
                for q in range(nq):
                    sa += w[q] * N[q, a]
                for i in range(d):
                    Fe[a * d + i] = sa * fq[0, 0, i]
        elif nf > 1:
            k = n
            for q in range(nq):
                for a in range(nen):
                    f = w[q] * N[q, a]
                    for i in range(d):
                        Fe[a * d + i] += f * fq[k, q, i]
        if not direct:
            _finish_cell(vals, cb, sd, so, own, cells, c, Ke, Fe, d, bcf, bcv, acc, rhs)
        elif rhs:
            for a in range(nen):
                d0 = cells[c, a] * d
                for i in range(d):
                    acc[d0 + i] += Fe[a * d + i]
        if iface_idx[n] >= 0:
            Kout[iface_idx[n]] = Ke


# ------------------------------------------------------------------ sparsity structure (FunctionSpace._structure)
@njit(cache=True, nogil=True, error_model="numpy")
def cell_bases(ptr, cols, gn, ns, no, ebase, cb):
    """cb[c, a, b] = ebase[e] of the node-graph entry e (ptr, cols: sorted columns per row) of
    (row gn[c, a] - ns, column gn[c, b]) for owned row nodes, -1 for rows owned elsewhere.
    Binary search inside the short row (vs a global searchsorted over all graph keys)."""
    nc, nen = gn.shape
    for c in range(nc):
        for a in range(nen):
            r = gn[c, a] - ns
            if r < 0 or r >= no:
                for b in range(nen):
                    cb[c, a, b] = -1
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
                cb[c, a, b] = ebase[lo]


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
