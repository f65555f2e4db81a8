"""Where does the Cauchy–Born rule break down?  Defects, non-affinity, fitted decay, radius.

* :func:`triangular_block`, :func:`fcc_block` — perfect periodic crystals;
* :func:`vacancy_system`, :func:`edge_dislocation_system` — defect configurations (the dislocation
  is the isotropic Volterra field in a disc with a clamped outer ring);
* :func:`nonaffinity` — Falk–Langer D²_min and the best local affine map J_i per atom, with the
  reference bond of each current neighbour taken as the nearest perfect-lattice vector (so the
  slip cut of a dislocation does not count as non-affine);
* :func:`cb_energy_error` — per-atom energy minus the Cauchy–Born energy at J_i;
* :func:`radial_profile`, :func:`fit_power_law`, :func:`breakdown_radius`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .atoms import minimum_image, wrap
from .lattices import Lattice


def triangular_block(nx: int, ny: int, a: float) -> tuple[np.ndarray, np.ndarray]:
    """Periodic triangular crystal, nx × ny rows (ny even): positions (N, 2) and box (2,)."""
    if ny % 2:
        raise InputError("triangular periodic block needs an even number of rows")
    i, j = np.meshgrid(np.arange(nx), np.arange(ny), indexing="xy")
    x = (i + 0.5 * (j % 2)) * a
    y = j * a * np.sqrt(3) / 2
    return np.stack([x.ravel(), y.ravel()], axis=1), np.array([nx * a, ny * a * np.sqrt(3) / 2])


def fcc_block(n: int, a: float) -> tuple[np.ndarray, np.ndarray]:
    """Periodic FCC crystal of n³ conventional cells: positions (4n³, 3) and box (3,)."""
    f = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]])
    c = np.array(np.meshgrid(*[np.arange(n)] * 3, indexing="ij")).reshape(3, -1).T
    X = (c[:, None, :] + f[None]).reshape(-1, 3) * a
    return X, np.full(3, n * a)


@dataclass
class DefectSystem:
    """A defect configuration: reference lattice sites ``X``, start positions ``x0``, ``fixed``
    atoms, periodic ``box`` (None for the disc), defect ``centre`` and a description."""

    kind: str
    X: np.ndarray
    x0: np.ndarray
    fixed: np.ndarray
    box: np.ndarray | None
    centre: np.ndarray
    a: float
    r_nn: float
    r_analysis: float  # atoms beyond this distance from the centre are left out of profiles


def vacancy_system(lattice: Lattice, n: int) -> DefectSystem:
    """One vacancy in a periodic block (triangular: n × n rows, fcc: n³ cells)."""
    if lattice.name == "triangular":
        X, box = triangular_block(n, n if n % 2 == 0 else n + 1, lattice.a)
        rnn = lattice.a
    elif lattice.name == "fcc":
        X, box = fcc_block(n, lattice.a)
        rnn = lattice.a / np.sqrt(2)
    else:
        raise InputError(f"vacancy analysis supports the triangular and fcc lattices (got {lattice.name})")
    c = box / 2
    k = int(np.argmin(np.linalg.norm(minimum_image(X - c, box), axis=1)))
    centre = X[k].copy()
    X = np.delete(X, k, axis=0)
    return DefectSystem("vacancy", X, X.copy(), np.zeros(len(X), bool), box, centre, lattice.a, rnn,
                        0.5 * box.min())


def volterra_edge(X: np.ndarray, centre: np.ndarray, b: float, nu: float = 0.25,
                  cut_angle: float = np.pi) -> np.ndarray:
    """Isotropic Volterra displacement (N, 2) of an edge dislocation with Burgers vector b·e_x at
    ``centre``; the displacement jump b sits on the ray from the core at ``cut_angle`` (default
    along −x, so the extra half-plane is y > 0 for b > 0)."""
    dx, dy = (X - centre).T
    r2 = np.maximum(dx * dx + dy * dy, 1e-24)
    th = cut_angle - 2 * np.pi + np.mod(np.arctan2(dy, dx) - cut_angle, 2 * np.pi)
    ux = b / (2 * np.pi) * (th + dx * dy / (2 * (1 - nu) * r2))
    uy = -b / (2 * np.pi) * ((1 - 2 * nu) / (4 * (1 - nu)) * np.log(r2 / b**2) + (dx * dx - dy * dy) / (4 * (1 - nu) * r2))
    return np.stack([ux, uy], axis=1)


def edge_dislocation_system(lattice: Lattice, radius: float, ring: float, nu: float = 0.25) -> DefectSystem:
    """Edge dislocation (b = a along x) at the centre of a disc of the triangular lattice.

    Atoms start at the isotropic Volterra displacement (Poisson ratio ``nu``; 1/4 is the plane-
    strain equivalent of a 2D central-force triangular crystal, λ = μ); the outer ``ring`` (wider
    than the cutoff) stays clamped there, the rest relaxes.
    """
    if lattice.name != "triangular":
        raise InputError(f"the edge-dislocation analysis uses the triangular lattice (got {lattice.name})")
    a = lattice.a
    n = int(np.ceil(2 * radius / a)) + 4
    X, box = triangular_block(n, n + (n % 2), a)
    # core between two rows and between two columns, at the middle of the patch
    h = a * np.sqrt(3) / 2
    centre = np.array([np.floor(box[0] / 2 / a) * a + 0.25 * a, (np.floor(box[1] / 2 / h) + 0.5) * h])
    r = np.linalg.norm(X - centre, axis=1)
    X = X[r < radius]
    x0 = X + volterra_edge(X, centre, a, nu)
    fixed = np.linalg.norm(X - centre, axis=1) > radius - ring
    # free atoms next to the clamped ring feel the mismatch between the linear Volterra field and
    # the nonlinear crystal: keep them out of the profiles
    return DefectSystem("edge_dislocation", X, x0, fixed, None, centre, a, a, 0.75 * (radius - ring))


def nonaffinity(lattice: Lattice, x: np.ndarray, box: np.ndarray | None, radius: float | None = None):
    """Per-atom D²_min = min_J Σ_j |x_ij − J X_ij|², the best local affine map J (N, d, d) and the
    neighbour count, over current neighbours within ``radius`` (default 1.25 r_nn); X_ij is the
    perfect-lattice vector nearest to x_ij."""
    from scipy.spatial import cKDTree

    N, d = x.shape
    rnn = lattice.nearest_neighbour_distance()
    radius = 1.25 * rnn if radius is None else radius
    kmax = {2: 8, 3: 14}[d]
    if box is not None:
        Y = wrap(x, box)
        tree = cKDTree(Y, boxsize=box)
    else:
        Y = x
        tree = cKDTree(Y)
    dist, idx = tree.query(Y, k=kmax + 1, distance_upper_bound=radius)
    idx, dist = idx[:, 1:], dist[:, 1:]
    ok = np.isfinite(dist)
    idx = np.where(ok, idx, 0)
    xij = minimum_image(x[idx] - x[:, None, :], box)
    # nearest lattice vector: round fractional coordinates in the primitive cell
    frac = xij @ np.linalg.inv(lattice.cell)
    Xij = np.round(frac) @ lattice.cell
    w = ok.astype(float)[..., None]
    M = np.einsum("nki,nkj->nij", Xij * w, Xij)
    Bm = np.einsum("nki,nkj->nij", xij * w, Xij)
    good = np.linalg.det(M) > 1e-8 * rnn ** (2 * d)
    M[~good] = np.eye(d)
    J = np.einsum("nij,njk->nik", Bm, np.linalg.inv(M))
    J[~good] = np.eye(d)
    res = xij - np.einsum("nij,nkj->nki", J, Xij)
    D2 = np.einsum("nki,nki->n", res * w, res)
    return D2, J, ok.sum(axis=1)


def cb_energy_error(cb, e_atom: np.ndarray, J: np.ndarray) -> np.ndarray:
    """Per-atom energy minus the Cauchy–Born energy per atom at the local affine map J."""
    good = np.linalg.det(J) > 0.2
    out = np.full(len(e_atom), np.nan)
    if good.any():
        out[good] = e_atom[good] - cb.energy(J[good]) * cb.lattice.atomic_volume
    return out


def radial_profile(r: np.ndarray, q: np.ndarray, rmin: float, rmax: float, nbins: int = 24):
    """Log-spaced bins on [rmin, rmax]: bin centres, max and median of |q| per bin (empty → nan)."""
    edges = np.geomspace(rmin, rmax, nbins + 1)
    which = np.digitize(r, edges) - 1
    centres = np.sqrt(edges[1:] * edges[:-1])
    qmax = np.full(nbins, np.nan)
    qmed = np.full(nbins, np.nan)
    aq = np.abs(q)
    for b in range(nbins):  # over bins (≈ 24), not atoms
        sel = (which == b) & np.isfinite(aq)
        if sel.any():
            qmax[b] = aq[sel].max()
            qmed[b] = np.median(aq[sel])
    return centres, qmax, qmed


def fit_power_law(r: np.ndarray, q: np.ndarray) -> tuple[float, float]:
    """Least-squares fit |q| = C r^{−p} in log–log; returns (p, C)."""
    ok = np.isfinite(q) & (q > 0)
    if ok.sum() < 3:
        return float("nan"), float("nan")
    slope, icpt = np.polyfit(np.log(r[ok]), np.log(q[ok]), 1)
    return float(-slope), float(np.exp(icpt))


def breakdown_radius(r: np.ndarray, q: np.ndarray, tol: float) -> float:
    """Largest distance at which |q| still exceeds ``tol`` (0 if it never does)."""
    over = np.abs(q) > tol
    return float(r[over].max()) if over.any() else 0.0


PREDICTED_DECAY = {  # exponents p of |ξ| ~ r^-p (strain-gradient order of the elastic field) and ΔE ~ r^-2p
    ("edge_dislocation", 2): 2.0, ("vacancy", 2): 3.0, ("vacancy", 3): 4.0}


def analyse_defect(comm, cb, system: DefectSystem, tol_xi: float = 0.01, tol_e: float = 1e-3,
                   gatol: float = 1e-9, options: dict | None = None, nbins: int = 20) -> dict:
    """Relax ``system`` in parallel, measure non-affinity and the Cauchy–Born energy error per atom
    against the distance r from the defect, fit their decay and return the breakdown radii (in
    lattice constants): r where ξ = √(D²_min/n) falls below ``tol_xi``·r_nn and where |ΔE| falls
    below ``tol_e``·|E_coh|.  Collective on ``comm``."""
    from .atoms import ParallelRelaxation, pair_energy, neighbour_pairs

    pot, lat = cb.potential, cb.lattice
    relax = ParallelRelaxation(comm, pot, system.x0, system.fixed, system.box)
    out = relax.run(gatol=gatol, options=options)
    relax.destroy()
    x = out["x"]
    pairs = neighbour_pairs(x, pot.rc, system.box)
    E, F, e_atom = pair_energy(pot, x, pairs, system.box, per_atom=True)
    D2, J, nnb = nonaffinity(lat, x, system.box)
    xi = np.sqrt(D2 / np.maximum(nnb, 1))
    dE = cb_energy_error(cb, e_atom, J)
    e_coh = abs(float(cb.energy(np.eye(cb.dim))[0] * lat.atomic_volume))
    u = minimum_image(x - system.X, system.box)
    # defect position: the original centre (vacancy site / Volterra core), refined for the dislocation
    centre = system.centre.copy()
    if system.kind == "edge_dislocation":
        top = np.argsort(xi)[-3:]
        centre = x[top].mean(axis=0)
    r = np.linalg.norm(minimum_image(x - centre, system.box), axis=1)
    use = (~system.fixed) & (r < system.r_analysis)
    rmin, rmax = 1.5 * system.a, system.r_analysis
    rc_, xmax, xmed = radial_profile(r[use], xi[use], rmin, rmax, nbins)
    _, emax, emed = radial_profile(r[use], dE[use], rmin, rmax, nbins)
    # fit over the far field: beyond the core (3 a), short of the edge of the analysed region
    sel = (rc_ > 3 * system.a) & (rc_ < 0.8 * rmax)
    p_xi, c_xi = fit_power_law(rc_[sel], xmax[sel])
    p_e, c_e = fit_power_law(rc_[sel], emax[sel])
    rb_xi = breakdown_radius(r[use], xi[use] / system.r_nn, tol_xi) / system.a
    rb_e = breakdown_radius(r[use], dE[use] / e_coh, tol_e) / system.a
    pred = PREDICTED_DECAY.get((system.kind, cb.dim))
    return {"kind": system.kind, "atoms": int(len(x)), "free_atoms": int((~system.fixed).sum()),
            "energy": float(E), "tao_iterations": out["iterations"], "gnorm": out["gnorm"],
            "neighbour_rebuilds": out["rebuilds"],
            "fit_xi_exponent": p_xi, "fit_xi_prefactor": c_xi, "fit_dE_exponent": p_e, "fit_dE_prefactor": c_e,
            "predicted_xi_exponent": pred, "predicted_dE_exponent": None if pred is None else 2 * pred,
            "breakdown_radius_xi": rb_xi, "breakdown_radius_energy": rb_e, "tol_xi": tol_xi, "tol_e": tol_e,
            "centre": centre.tolist(), "max_xi": float(xi[use].max()), "e_coh": e_coh,
            "arrays": {"x": x, "X": system.X, "u": u, "xi": xi, "D2min": D2, "dE": dE, "e_atom": e_atom, "r": r,
                       "fixed": system.fixed, "profile_r": rc_, "profile_xi_max": xmax, "profile_xi_median": xmed,
                       "profile_dE_max": emax, "profile_dE_median": emed, "fit_mask": sel}}


def plot_breakdown(res: dict, path: str, a: float) -> None:
    """Log–log profiles with fits and an atom map coloured by non-affinity (rank 0 only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    A = res["arrays"]
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.5))
    r = A["profile_r"] / a
    for k, (key, lab, pk, ck) in enumerate([("xi", "ξ = √(D²min/n)", "fit_xi_exponent", "fit_xi_prefactor"),
                                            ("dE", "|E_i − E_CB(J_i)|", "fit_dE_exponent", "fit_dE_prefactor")]):
        use = np.isfinite(A["r"]) & ~A["fixed"]
        ax[k].loglog(A["r"][use] / a, np.abs(A[key][use]), ".", ms=2, alpha=0.3, color="0.6", label="atoms")
        ax[k].loglog(r, A[f"profile_{key}_max"], "o-", label="bin max")
        p, c = res[pk], res[ck]
        if np.isfinite(p):
            rr = A["profile_r"][A["fit_mask"]]
            ax[k].loglog(rr / a, c * rr ** (-p), "k--", label=f"fit r^-{p:.2f}")
        ax[k].set_xlabel("r / a")
        ax[k].set_ylabel(lab)
        ax[k].legend(fontsize=8)
    x = A["x"]
    sc = ax[2].scatter(x[:, 0], x[:, 1], c=np.log10(A["xi"] + 1e-12), s=4, cmap="viridis")
    ax[2].set_aspect("equal")
    fig.colorbar(sc, ax=ax[2], label="log10 ξ")
    ax[2].set_title(f"{res['kind']}: r_b = {res['breakdown_radius_xi']:.2f} a", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
