"""Cauchy–Born strain energy W(F), stress P = ∂W/∂F and tangent A = ∂²W/∂F∂F, analytic and
vectorised over deformation gradients and bonds; inner relaxation of complex lattices; elastic
constants and stability checks.

Kinematics: a bond k of the primitive cell, reference vector d_k from basis atom c(k) to a copy of
basis atom n(k), deforms to r_k = F d_k + p_{n(k)} − p_{c(k)}, where p (nb, d) are the inner shifts
of the basis atoms (p_0 ≡ 0 removes the rigid translation).  W(F) = E_cell(r(F, p*(F)))/V₀ with
V₀ the reference cell volume and p*(F) = argmin_p E_cell (inner relaxation; p ≡ 0 when
``relax=False``).  With G_k = ∂E/∂r_k and H_kl = ∂²E/∂r_k∂r_l:

    P_iJ = Σ_k G_ki d_kJ / V₀,
    A_iJmL = Σ_kl (H_kl)_im d_kJ d_lL / V₀ − (E_Fp E_pp⁻¹ E_pF)_iJmL / V₀     (relaxed),

the last term being the Schur complement of the inner degrees of freedom (it only lowers A).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConvergenceError, InputError
from .lattices import Bonds, Lattice, bonds
from .potentials import bond_energy

VOIGT = {2: [(0, 0), (1, 1), (0, 1)], 3: [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]}


def check_deformation(F: np.ndarray, dim: int) -> np.ndarray:
    """(n, d, d) array of deformation gradients with det F > 0, else :class:`InputError`."""
    F = np.asarray(F, dtype=float)
    if F.ndim == 2:
        F = F[None]
    if F.shape[-2:] != (dim, dim):
        raise InputError(f"deformation gradient must be {dim}x{dim} (got shape {F.shape[-2:]})")
    J = np.linalg.det(F)
    if not np.all(np.isfinite(F)) or np.any(J <= 0):
        bad = int(np.argmin(J)) if np.all(np.isfinite(J)) else 0
        raise InputError(f"deformation gradient with det F <= 0 (det F = {J.flat[bad]:.3g} at index {bad}): "
                         "the Cauchy-Born energy is defined only for orientation-preserving maps")
    return F


@dataclass
class CBResult:
    """Cauchy–Born quantities for n deformation gradients (units: energy/length^d)."""

    W: np.ndarray            # (n,)
    P: np.ndarray | None     # (n, d, d)
    A: np.ndarray | None     # (n, d, d, d, d), A[:, i, J, k, L] = ∂P_iJ/∂F_kL
    shifts: np.ndarray       # (n, nb, d) inner shifts p*(F)
    A_unrelaxed: np.ndarray | None = None


class CauchyBorn:
    """Cauchy–Born model of ``lattice`` with ``potential``.

    ``relax=True`` relaxes the inner shifts of complex lattices (several atoms per primitive cell)
    at every F; Bravais lattices have none.  ``skin`` pads the bond list so bonds that stretch or
    shrink into the cutoff are counted; the list grows automatically for stronger compression.
    """

    def __init__(self, lattice: Lattice, potential, relax: bool = True, skin: float = 1.3, chunk: int = 4096):
        if getattr(potential, "eam", False):
            raise InputError("EAM potentials are many-body: use make_cauchy_born (EAMCauchyBorn)")
        self.lattice, self.potential, self.relax = lattice, potential, bool(relax)
        self.dim, self.nb = lattice.dim, lattice.nbasis
        self.V0 = lattice.volume
        self.chunk = int(chunk)
        rnn = lattice.nearest_neighbour_distance()
        if potential.rc <= rnn:
            raise InputError(f"cutoff rc = {potential.rc:.6g} is not beyond the nearest-neighbour distance "
                             f"{rnn:.6g} of the {lattice.name} lattice (a = {lattice.a:.6g}): no bonds would interact")
        self._skin = float(skin)
        self._build(potential.rc * self._skin)

    # ------------------------------------------------------------------------------------------
    def _build(self, radius: float) -> None:
        b = bonds(self.lattice, radius)
        d = b.d
        if self.nb == 1 and not self.potential.three_body:
            # Bravais lattice + pair potential: bonds ±d contribute equally -> keep half, weight 1
            first = np.array([row[np.flatnonzero(np.abs(row) > 1e-12 * self.lattice.a)[0]] for row in d])
            keep = first > 0
            b = Bonds(d[keep], b.center[keep], b.neighbour[keep], b.radius)
            self.pair_weight = np.ones(len(b.d))
        else:
            self.pair_weight = np.full(len(b.d), 0.5)
        self.bonds = b
        S = np.zeros((len(b.d), self.nb))
        np.add.at(S, (np.arange(len(b.d)), b.neighbour), 1.0)
        np.add.at(S, (np.arange(len(b.d)), b.center), -1.0)
        self.S = S
        self.triplets = None
        if self.potential.three_body:
            # angles: unordered pairs of bonds from the same centre that can both be inside rc
            near = np.linalg.norm(b.d, axis=1) < radius
            tj, tk = [], []
            for c in range(self.nb):
                idx = np.flatnonzero((b.center == c) & near)
                j, k = np.triu_indices(len(idx), 1)
                tj.append(idx[j])
                tk.append(idx[k])
            self.triplets = (np.concatenate(tj), np.concatenate(tk))
        self.radius = radius
        self._full = (self.bonds, self.pair_weight, self.S, self.triplets)
        self._active_need = None

    def _activate(self, need: float) -> None:
        """Use only the bonds that can reach inside the cutoff for this batch (|d| < rc/σ_min(F));
        the padded list stays for later batches.  Cuts SW diamond from 756 to 12 angles per cell."""
        if self._active_need is not None and need <= self._active_need and need >= 0.95 * self._active_need:
            return
        b, w, S, trip = self._full
        need = need * 1.02  # a little margin so nearby batches reuse the same subset
        act = np.linalg.norm(b.d, axis=1) < need
        idx = np.full(len(act), -1)
        idx[act] = np.arange(act.sum())
        self.bonds = Bonds(b.d[act], b.center[act], b.neighbour[act], need)
        self.pair_weight, self.S = w[act], S[act]
        if trip is not None:
            keep = act[trip[0]] & act[trip[1]]
            self.triplets = (idx[trip[0][keep]], idx[trip[1][keep]])
        self._active_need = need

    def _ensure_list(self, F: np.ndarray) -> float:
        # σ_min(F) = 1/‖F⁻¹‖₂ ≥ 1/√(‖F⁻¹‖₁‖F⁻¹‖_∞): cheap and safe (an SVD per F costs more than W)
        Fi = np.abs(np.linalg.inv(F))
        smin = 1.0 / np.sqrt((Fi.sum(axis=1).max(axis=1) * Fi.sum(axis=2).max(axis=1)).max())
        need = self.potential.rc / smin
        if smin < 0.2:
            raise InputError(f"deformation gradient compresses some direction below 0.2 (sigma_min >= {smin:.3g}): "
                             "outside the range of the Cauchy-Born lattice sums")
        if need >= self.radius:
            self._build(need * self._skin)
        self._activate(need)
        return need

    # ------------------------------------------------------------------------------------------
    def bond_vectors(self, F: np.ndarray, p: np.ndarray, D: np.ndarray | None = None) -> np.ndarray:
        b = self.bonds
        r = np.matmul(b.d if D is None else D, np.swapaxes(F, 1, 2))  # r_k = F d_k
        if self.nb > 1:
            r = r + p[:, b.neighbour] - p[:, b.center]
        return r

    def _hessians(self, r, H, need_fp: bool, D: np.ndarray | None = None, only_pp: bool = False):
        """∂²E/∂F∂F (n,d,d,d,d), and if ``need_fp`` ∂²E/∂F∂p (n,d,d,nb,d), ∂²E/∂p∂p (n,nb,d,nb,d)."""
        n, nbond, d = r.shape
        D = self.bonds.d if D is None else D
        if only_pp:  # inner Newton: just the inner block
            S = self.S
            aS = H.alpha[:, :, None] * S[None]
            App = (np.einsum("nkc,ke,nki,nkm->nciem", aS, S, r, r, optimize=True)
                   + np.einsum("nk,kc,ke,im->nciem", H.beta, S, S, np.eye(d), optimize=True))
            if H.blocks is not None:
                App = App + np.einsum("bc,be,nbim->nciem", S[H.rows], S[H.cols], H.blocks, optimize=True)
            return None, None, App
        X = (r[:, :, :, None] * D[None, :, None, :]).reshape(n, nbond, d * d)
        AFF = np.matmul(np.swapaxes(X * H.alpha[:, :, None], 1, 2), X).reshape(n, d, d, d, d)
        Bm = (H.beta @ (D[:, :, None] * D[:, None, :]).reshape(nbond, d * d)).reshape(n, d, d)
        AFF = AFF + np.einsum("im,nJL->niJmL", np.eye(d), Bm)
        if H.blocks is not None:
            AFF = AFF + np.einsum("nbim,bJ,bL->niJmL", H.blocks, D[H.rows], D[H.cols], optimize=True)
        if not need_fp:
            return AFF, None, None
        S = self.S
        aS = H.alpha[:, :, None] * S[None]  # (n, k, c)
        AFp = (np.einsum("nkc,nki,nkm,kJ->niJcm", aS, r, r, D, optimize=True)
               + np.einsum("im,nkc,kJ->niJcm", np.eye(d), H.beta[:, :, None] * S[None], D, optimize=True))
        App = (np.einsum("nkc,ke,nki,nkm->nciem", aS, S, r, r, optimize=True)
               + np.einsum("nk,kc,ke,im->nciem", H.beta, S, S, np.eye(d), optimize=True))
        if H.blocks is not None:
            AFp = AFp + np.einsum("nbim,bJ,bc->niJcm", H.blocks, D[H.rows], S[H.cols], optimize=True)
            App = App + np.einsum("bc,be,nbim->nciem", S[H.rows], S[H.cols], H.blocks, optimize=True)
        return AFF, AFp, App

    def _relax_shifts(self, F: np.ndarray, p0: np.ndarray | None, tol: float = 1e-12, maxit: int = 60) -> np.ndarray:
        """Newton on the inner shifts p_1..p_{nb−1} (p_0 ≡ 0), vectorised over F."""
        n, d, nb = F.shape[0], self.dim, self.nb
        p = np.zeros((n, nb, d)) if p0 is None else np.array(p0, dtype=float)
        p[:, 0] = 0.0
        m = (nb - 1) * d
        scale = self.lattice.nearest_neighbour_distance()
        for it in range(maxit):
            r = self.bond_vectors(F, p)
            _, G, H = bond_energy(self.potential, r, self.pair_weight, self.triplets, order=2)
            g = np.einsum("kc,nki->nci", self.S, G)[:, 1:].reshape(n, m)
            _, _, App = self._hessians(r, H, True, only_pp=True)
            K = App[:, 1:, :, 1:, :].reshape(n, m, m)
            try:
                step = np.linalg.solve(K, g[..., None])[..., 0]
            except np.linalg.LinAlgError:
                raise ConvergenceError("inner relaxation: singular inner Hessian (basis atoms not bound)") from None
            big = np.abs(step).max(axis=1, initial=0.0)
            lim = 0.1 * scale
            step *= np.where(big > lim, lim / np.maximum(big, 1e-300), 1.0)[:, None]
            p[:, 1:] -= step.reshape(n, nb - 1, d)
            if np.abs(step).max(initial=0.0) < tol * scale:
                return p
        raise ConvergenceError(f"inner relaxation did not converge in {maxit} Newton steps "
                               f"(last step {np.abs(step).max():.3g})")

    # ------------------------------------------------------------------------------------------
    def evaluate(self, F: np.ndarray, order: int = 2, shifts: np.ndarray | None = None,
                 relax: bool | None = None) -> CBResult:
        """W (order 0), P (≥ 1), A (2) for deformation gradients F (n, d, d) or (d, d)."""
        F = check_deformation(F, self.dim)
        relax = self.relax if relax is None else relax
        need = self._ensure_list(F)
        n = F.shape[0]
        if n > self.chunk:
            parts = [self.evaluate(F[i:i + self.chunk], order, None if shifts is None else shifts[i:i + self.chunk],
                                   relax) for i in range(0, n, self.chunk)]
            cat = lambda name: None if getattr(parts[0], name) is None else np.concatenate(  # noqa: E731
                [getattr(q, name) for q in parts])
            return CBResult(cat("W"), cat("P"), cat("A"), cat("shifts"), cat("A_unrelaxed"))
        complex_ = self.nb > 1
        if complex_ and relax:
            p = self._relax_shifts(F, shifts)
        else:
            p = np.zeros((n, self.nb, self.dim))
        D, w = self.bonds.d, self.pair_weight
        r = self.bond_vectors(F, p, D)
        E, G, H = bond_energy(self.potential, r, w, self.triplets, order=order)
        W = E / self.V0
        if order == 0:
            return CBResult(W, None, None, p)
        P = np.matmul(np.swapaxes(G, 1, 2), D) / self.V0
        if order == 1:
            return CBResult(W, P, None, p)
        AFF, AFp, App = self._hessians(r, H, complex_ and relax, D)
        A = AFF / self.V0
        Aun = A
        if complex_ and relax:
            d, m = self.dim, (self.nb - 1) * self.dim
            K = App[:, 1:, :, 1:, :].reshape(n, m, m)
            B = AFp[:, :, :, 1:, :].reshape(n, d * d, m)
            corr = np.matmul(B, np.linalg.solve(K, np.swapaxes(B, 1, 2)))
            A = A - corr.reshape(n, d, d, d, d) / self.V0
        return CBResult(W, P, A, p, Aun)

    def energy(self, F, **kw) -> np.ndarray:
        return self.evaluate(F, order=0, **kw).W

    def stress(self, F, **kw) -> np.ndarray:
        return self.evaluate(F, order=1, **kw).P



# ----------------------------------------------------------------------------------------------
# elastic constants, stability, equilibrium lattice constant
# ----------------------------------------------------------------------------------------------

def lagrangian_moduli(F: np.ndarray, P: np.ndarray, A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """C = ∂²W/∂E∂E (n, d, d, d, d) and S = ∂W/∂E (n, d, d) from P and A at F.

    Uses A_iJkL = δ_ik S_JL + F_iI F_kK C_IJKL, so at a pre-stressed state A and C differ by the
    geometric (initial-stress) term δ_ik S_JL.
    """
    Finv = np.linalg.inv(F)
    S = np.einsum("nIi,niJ->nIJ", Finv, P)
    S = 0.5 * (S + np.swapaxes(S, 1, 2))
    d = F.shape[-1]
    Ared = A - np.einsum("ik,nJL->niJkL", np.eye(d), S)
    C = np.einsum("nIi,nKk,niJkL->nIJKL", Finv, Finv, Ared)
    # restore the minor symmetries exactly (they hold analytically)
    C = 0.5 * (C + C.transpose(0, 2, 1, 3, 4))
    C = 0.5 * (C + C.transpose(0, 1, 2, 4, 3))
    return C, S


def to_voigt(C: np.ndarray) -> np.ndarray:
    """Fourth-order (…, d, d, d, d) → Voigt matrix (…, m, m) (no shear factors)."""
    d = C.shape[-1]
    pairs = VOIGT[d]
    m = len(pairs)
    out = np.empty(C.shape[:-4] + (m, m))
    for a, (i, j) in enumerate(pairs):
        for b, (k, l) in enumerate(pairs):
            out[..., a, b] = C[..., i, j, k, l]
    return out


def voigt_to_mandel(Cv: np.ndarray) -> np.ndarray:
    d = {3: 2, 6: 3}[Cv.shape[-1]]
    w = np.array([1.0 if i == j else np.sqrt(2.0) for i, j in VOIGT[d]])
    return Cv * w[:, None] * w[None, :]


def birch_coefficients(C: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Wallace's stress–strain (Birch) coefficients B_ijkl = C_ijkl + ½(δ_ik σ_jl + δ_jk σ_il +
    δ_il σ_jk + δ_jl σ_ik − 2 δ_kl σ_ij) for a pre-stress σ (equal to C when σ = 0)."""
    d = C.shape[-1]
    I = np.eye(d)
    t = (np.einsum("ik,...jl->...ijkl", I, sigma) + np.einsum("jk,...il->...ijkl", I, sigma)
         + np.einsum("il,...jk->...ijkl", I, sigma) + np.einsum("jl,...ik->...ijkl", I, sigma)
         - 2 * np.einsum("kl,...ij->...ijkl", I, sigma))
    return C + 0.5 * t


@dataclass
class ElasticConstants:
    """Small-strain constants at F: ``C`` = ∂²W/∂E² (d,d,d,d), its Voigt matrix, the stress S,
    and the unrelaxed (frozen-basis) constants of complex lattices."""

    C: np.ndarray
    voigt: np.ndarray
    stress: np.ndarray
    voigt_unrelaxed: np.ndarray
    A: np.ndarray

    def as_dict(self) -> dict:
        return {"voigt": self.voigt.tolist(), "voigt_unrelaxed": self.voigt_unrelaxed.tolist(),
                "stress": self.stress.tolist()}


def elastic_constants(cb: CauchyBorn, F: np.ndarray | None = None) -> ElasticConstants:
    """Relaxed and unrelaxed ∂²W/∂E∂E at F (default the reference configuration F = I)."""
    d = cb.dim
    F = np.eye(d)[None] if F is None else check_deformation(F, d)[:1]
    res = cb.evaluate(F, order=2)
    C, S = lagrangian_moduli(F, res.P, res.A)
    Cu, _ = lagrangian_moduli(F, res.P, res.A_unrelaxed)
    return ElasticConstants(C[0], to_voigt(C)[0], S[0], to_voigt(Cu)[0], res.A[0])


def _directions(d: int, n: int = 2000) -> np.ndarray:
    if d == 2:
        t = np.linspace(0, np.pi, n // 4, endpoint=False)
        return np.stack([np.cos(t), np.sin(t)], axis=1)
    i = np.arange(n) + 0.5
    z = i / n  # upper hemisphere suffices (Q(n) = Q(−n))
    phi = np.pi * (1 + 5**0.5) * i
    s = np.sqrt(1 - z * z)
    return np.stack([s * np.cos(phi), s * np.sin(phi), z], axis=1)


def stability(cb: CauchyBorn, F: np.ndarray | None = None, ndir: int = 2000) -> dict:
    """Stability indicators at F (default F = I):

    * ``born_min``: smallest eigenvalue of the Mandel matrix of C = ∂²W/∂E² — the Born criteria
      (positive definite C; at zero stress this is stability against homogeneous strains);
    * ``acoustic_min``: min over directions n of the smallest eigenvalue of the acoustic tensor
      Q_ik(n) = A_iJkL n_J n_L (strong ellipticity / long-wavelength phonons);
    * ``A_min_sym``: smallest eigenvalue of A on symmetric perturbations δF = δFᵀ.
    """
    d = cb.dim
    F = np.eye(d)[None] if F is None else check_deformation(F, d)[:1]
    res = cb.evaluate(F, order=2)
    C, S = lagrangian_moduli(F, res.P, res.A)
    born = float(np.linalg.eigvalsh(voigt_to_mandel(to_voigt(C)[0])).min())
    nn = _directions(d, ndir)
    Q = np.einsum("iJkL,nJ,nL->nik", res.A[0], nn, nn)
    ac = np.linalg.eigvalsh(Q).min(axis=1)
    k = int(np.argmin(ac))
    # A restricted to symmetric δF: basis of symmetric matrices
    basis = []
    for i, j in VOIGT[d]:
        E = np.zeros((d, d))
        E[i, j] = E[j, i] = 1.0 if i == j else 1 / np.sqrt(2)
        basis.append(E)
    Bm = np.array(basis)
    As = np.einsum("aiJ,iJkL,bkL->ab", Bm, res.A[0], Bm)
    return {"born_min": born, "acoustic_min": float(ac[k]), "acoustic_worst_direction": nn[k].tolist(),
            "A_min_sym": float(np.linalg.eigvalsh(As).min()),
            "stable": bool(born > 0 and ac[k] > 0)}


def make_cauchy_born(lattice: Lattice, potential, relax: bool = True, **kw):
    """:class:`CauchyBorn` for pair and Stillinger–Weber potentials, :class:`~.eam.EAMCauchyBorn`
    for EAM (both have ``evaluate(F, order)`` → :class:`CBResult`)."""
    if getattr(potential, "eam", False):
        from .eam import EAMCauchyBorn

        return EAMCauchyBorn(lattice, potential, relax=relax, **kw)
    return CauchyBorn(lattice, potential, relax=relax, **kw)


def equilibrium_lattice(lattice: Lattice, potential, relax: bool = True, tol: float = 1e-13,
                        maxit: int = 50) -> Lattice:
    """The lattice scaled to zero mean normal stress (Newton on the scale factor; for HCP the
    c/a ratio is kept fixed, so only the mean stress vanishes)."""
    s = 1.0
    for _ in range(maxit):
        cb = make_cauchy_born(lattice.scaled(s), potential, relax=relax)
        d = cb.dim
        res = cb.evaluate(np.eye(d), order=2)
        g = np.trace(res.P[0])
        dg = np.einsum("iikk->", res.A[0])
        # Newton where W(s) is convex, else a bounded descent step (start far from equilibrium)
        ds = -g / dg if dg > 0 else -0.02 * np.sign(g)
        s *= 1.0 + float(np.clip(ds, -0.05, 0.05))
        if abs(ds) < tol:
            return lattice.scaled(s)
    raise ConvergenceError("equilibrium lattice constant: Newton did not converge")
