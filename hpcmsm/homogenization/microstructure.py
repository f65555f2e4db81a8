"""Voxel/pixel microstructures: generators, import, and statistics.  Pure numpy.

A :class:`Microstructure` is an integer label per voxel, ``labels[x, y(, z)]`` (axis 0 = x), and a
voxel size.  Labels index a list of phases (or grains, for polycrystals).  Random generators are
reproducible from ``(seed, index)`` — the ensemble member ``index`` of the stream ``seed`` — so an
SVE can be regenerated anywhere, on any rank count, without communication.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError


@dataclass
class Microstructure:
    """``labels`` (int array indexed [x, y(, z)]), ``voxel_size`` (length per voxel, scalar or per axis)."""

    labels: np.ndarray
    voxel_size: float | tuple = 1.0
    description: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.labels = np.asarray(self.labels)
        if self.labels.ndim not in (2, 3):
            raise InputError(f"microstructure must be 2D or 3D, got {self.labels.ndim} dimensions")
        if not np.issubdtype(self.labels.dtype, np.integer):
            raise InputError("microstructure labels must be integers")
        if self.labels.min() < 0:
            raise InputError("microstructure labels must be non-negative")
        self.labels = self.labels.astype(np.int32)

    @property
    def dim(self) -> int:
        return self.labels.ndim

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.labels.shape)

    @property
    def nlabels(self) -> int:
        return int(self.labels.max()) + 1

    def volume_fractions(self, nlabels: int | None = None) -> np.ndarray:
        n = nlabels or self.nlabels
        return np.bincount(self.labels.ravel(), minlength=n)[:n] / self.labels.size


def rng_for(seed: int, index: int = 0) -> np.random.Generator:
    """Independent, reproducible stream for ensemble member ``index`` of ``seed``."""
    return np.random.default_rng([int(seed), int(index)])


def _check_fraction(vf: float, what: str = "volume fraction") -> None:
    if not (0.0 < vf < 1.0):
        raise InputError(f"{what} must lie strictly between 0 and 1, got {vf}")


def _grid(shape) -> list[np.ndarray]:
    """Voxel-centre coordinates in voxel units, broadcastable, axis order x, y[, z]."""
    return np.meshgrid(*[np.arange(n) + 0.5 for n in shape], indexing="ij", sparse=True)


# ----------------------------------------------------------------------------------------------
# deterministic generators
# ----------------------------------------------------------------------------------------------

def homogeneous(shape) -> Microstructure:
    return Microstructure(np.zeros(tuple(shape), np.int32), description="homogeneous")


def laminate(shape, fractions, axis: int = 0) -> Microstructure:
    """Layers normal to ``axis``: phase k occupies a contiguous slab of fraction ``fractions[k]``."""
    shape = tuple(int(n) for n in shape)
    f = np.asarray(fractions, dtype=float)
    if len(f) < 2 or np.any(f <= 0) or abs(f.sum() - 1) > 1e-9:
        raise InputError(f"laminate fractions must be positive and sum to 1, got {list(fractions)}")
    if not 0 <= axis < len(shape):
        raise InputError(f"laminate axis {axis} out of range for a {len(shape)}D grid")
    n = shape[axis]
    counts = np.round(np.cumsum(f) * n).astype(int)
    widths = np.diff(np.concatenate([[0], counts]))
    if np.any(widths < 1):
        raise InputError(f"grid of {n} voxels along axis {axis} is too small to resolve laminate fractions "
                         f"{list(fractions)} (a layer would be thinner than one voxel)")
    line = np.repeat(np.arange(len(f)), widths)
    shp = [1] * len(shape)
    shp[axis] = n
    labels = np.broadcast_to(line.reshape(shp), shape).copy()
    return Microstructure(labels, description=f"laminate normal to axis {axis}",
                          meta={"fractions_exact": (widths / n).tolist(), "axis": axis})


def checkerboard(shape, cells: int = 2) -> Microstructure:
    """Periodic checkerboard with ``cells`` squares per side (cells even for periodicity)."""
    shape = tuple(int(n) for n in shape)
    if cells < 2 or cells % 2:
        raise InputError(f"checkerboard needs an even number of cells per side, got {cells}")
    for n in shape:
        if n % cells:
            raise InputError(f"grid {shape} is not divisible into {cells} checkerboard cells per side")
    idx = [np.arange(n) * cells // n for n in shape]
    s = sum(np.meshgrid(*idx, indexing="ij"))
    return Microstructure((s % 2).astype(np.int32), description=f"checkerboard {cells}^{len(shape)}")


def inclusion_array(shape, volume_fraction: float, count: int = 1, shape_kind: str = "sphere",
                    aspect: tuple | None = None) -> Microstructure:
    """Periodic array of ``count``^d equal inclusions (label 1) in a matrix (label 0).

    ``shape_kind``: "sphere" (circle in 2D), "ellipsoid" (ellipse in 2D, semi-axes ∝ ``aspect``)
    or "fibre" (3D: infinite cylinders along z; 2D: same as "sphere").  The size is chosen for the
    requested volume fraction of the continuous geometry; the voxelised fraction is reported.
    """
    shape = tuple(int(n) for n in shape)
    d = len(shape)
    _check_fraction(volume_fraction)
    if count < 1:
        raise InputError("inclusion count per axis must be >= 1")
    cell = np.array(shape, float) / count                        # voxels per periodic cell
    if shape_kind == "fibre" and d == 3:
        ax = np.array([1.0, 1.0, np.inf])
    elif shape_kind in ("sphere", "fibre"):
        ax = np.ones(d)
    elif shape_kind == "ellipsoid":
        a = np.asarray(aspect if aspect is not None else [2.0, 1.0, 1.0][:d], float)
        if len(a) != d or np.any(a <= 0):
            raise InputError(f"ellipsoid aspect must have {d} positive entries, got {aspect}")
        ax = a / a.max()
    else:
        raise InputError(f"unknown inclusion shape {shape_kind!r} (sphere, ellipsoid, fibre)")
    fin = np.isfinite(ax)
    dd = int(fin.sum())
    unit_vol = np.pi if dd == 2 else 4 * np.pi / 3
    # volume of the inclusion (in the finite directions) = vf * cell volume (finite directions)
    cvol = np.prod(cell[fin])
    s = (volume_fraction * cvol / (unit_vol * np.prod(ax[fin]))) ** (1.0 / dd)
    semi = np.where(fin, s * np.where(fin, ax, 1.0), np.inf)
    if np.any(semi[fin] > cell[fin] / 2):
        vmax = unit_vol * np.prod(ax[fin]) * np.prod((cell[fin] / 2 / ax[fin]).min() ** dd) / cvol
        raise InputError(f"volume fraction {volume_fraction} is unreachable without overlap for this "
                         f"inclusion array (at most {vmax:.3f})")
    if np.min(semi[fin]) < 1.5:
        raise InputError(f"grid {shape} is too small to resolve the inclusions (smallest semi-axis "
                         f"{np.min(semi[fin]):.2f} voxels; need >= 1.5)")
    x = _grid(shape)
    r2 = 0.0
    for i in range(d):
        if fin[i]:
            rel = np.mod(x[i], cell[i]) - cell[i] / 2
            r2 = r2 + (rel / semi[i]) ** 2
    labels = np.broadcast_to(r2 <= 1.0, shape).astype(np.int32)
    return Microstructure(labels, description=f"periodic {shape_kind} array {count}^{d}",
                          meta={"semi_axes_voxels": [float(v) for v in semi], "target_fraction": volume_fraction})


# ----------------------------------------------------------------------------------------------
# random generators (reproducible from seed, index)
# ----------------------------------------------------------------------------------------------

def independent_voxels(shape, p: float, seed: int = 0, index: int = 0) -> Microstructure:
    """Every voxel is phase 1 with probability p independently (Bernoulli field)."""
    _check_fraction(p, "voxel probability")
    rng = rng_for(seed, index)
    return Microstructure((rng.random(tuple(shape)) < p).astype(np.int32), description=f"independent voxels p={p}")


def random_inclusions(shape, volume_fraction: float, radius: float, seed: int = 0, index: int = 0,
                      min_gap: float = 1.0, max_attempts: int = 200000, poisson: bool = True) -> Microstructure:
    """Random non-overlapping periodic circles/spheres (label 1) by random sequential addition.

    ``radius`` and ``min_gap`` in voxels.  With ``poisson`` (default) the number of inclusions is
    Poisson distributed with mean ``volume_fraction·|Ω|/|inclusion|``: the medium is then a
    finite-range point process restricted to the box (unbiased mean volume fraction, variance of
    the volume fraction ∝ L^-d), which is what an RVE-size study needs.  Otherwise the count is the
    rounded mean (fixed volume fraction).  An unreachable target (jamming) raises.
    """
    shape = tuple(int(n) for n in shape)
    d = len(shape)
    _check_fraction(volume_fraction)
    if radius < 1.5:
        raise InputError(f"inclusion radius {radius} voxels is too small to resolve (need >= 1.5)")
    L = np.array(shape, float)
    if 2 * radius + min_gap > L.min():
        raise InputError(f"grid {shape} is too small for inclusions of radius {radius} voxels")
    vol1 = np.pi * radius ** 2 if d == 2 else 4 / 3 * np.pi * radius ** 3
    rng = rng_for(seed, index)
    n_real = volume_fraction * np.prod(L) / vol1
    n_inc = int(rng.poisson(n_real)) if poisson else max(1, int(round(n_real)))
    # RSA jams near 0.547 (2D) / 0.38 (3D); refuse clearly unreachable requests early
    jam = 0.547 if d == 2 else 0.384
    dmin = 2 * radius + min_gap
    eff = volume_fraction * (dmin / (2 * radius)) ** d
    if eff > jam:
        raise InputError(f"volume fraction {volume_fraction} with radius {radius} and gap {min_gap} voxels is "
                         f"unreachable without overlap by random sequential addition (limit about "
                         f"{jam * (2 * radius / dmin) ** d:.2f})")
    if poisson:   # a rare Poisson tail beyond the jamming limit is truncated, not an error
        n_inc = min(n_inc, int(jam * np.prod(L) / (vol1 * (dmin / (2 * radius)) ** d)))
    centres = np.empty((0, d))
    attempts = 0
    while len(centres) < n_inc:
        batch = rng.random((256, d)) * L
        for c in batch:
            attempts += 1
            if len(centres):
                dv = np.abs(centres - c)
                dv = np.minimum(dv, L - dv)
                if np.min(np.einsum("ij,ij->i", dv, dv)) < dmin * dmin:
                    continue
            centres = np.vstack([centres, c])
            if len(centres) == n_inc:
                break
        if attempts > max_attempts and poisson and len(centres) >= n_real:
            break                       # a jammed Poisson tail: keep what fits
        if attempts > max_attempts:
            raise InputError(f"could not place {n_inc} non-overlapping inclusions (volume fraction "
                             f"{volume_fraction}) in {max_attempts} attempts: unreachable without overlap")
    labels = _paint_spheres(shape, centres, radius)
    return Microstructure(labels, description=f"random inclusions r={radius}",
                          meta={"centres": centres.tolist(), "n_inclusions": len(centres), "target_fraction": volume_fraction})


def _paint_spheres(shape, centres: np.ndarray, radius: float) -> np.ndarray:
    """Periodic voxelisation: voxel centre within ``radius`` of a centre → 1."""
    d = len(shape)
    labels = np.zeros(shape, np.int32)
    r = int(np.ceil(radius)) + 1
    off = np.stack(np.meshgrid(*[np.arange(-r, r + 1)] * d, indexing="ij"), -1).reshape(-1, d)
    for c in centres:
        base = np.floor(c).astype(int)
        pts = base + off
        dist2 = np.sum((pts + 0.5 - c) ** 2, axis=1)
        pts = pts[dist2 <= radius * radius] % np.array(shape)
        labels[tuple(pts.T)] = 1
    return labels


def voronoi(shape, grains: int, seed: int = 0, index: int = 0) -> Microstructure:
    """Periodic Voronoi tessellation of ``grains`` random seeds: label = grain id."""
    shape = tuple(int(n) for n in shape)
    if grains < 1:
        raise InputError("number of grains must be >= 1")
    if grains > np.prod(shape) // 8:
        raise InputError(f"grid {shape} is too small to resolve {grains} grains (< 8 voxels per grain)")
    rng = rng_for(seed, index)
    L = np.array(shape, float)
    seeds = rng.random((grains, len(shape))) * L
    pts = np.stack([g.ravel() for g in np.meshgrid(*[np.arange(n) + 0.5 for n in shape], indexing="ij")], -1)
    best = np.full(len(pts), np.inf)
    lab = np.zeros(len(pts), np.int32)
    for g, s in enumerate(seeds):
        dv = np.abs(pts - s)
        dv = np.minimum(dv, L - dv)
        d2 = np.einsum("ij,ij->i", dv, dv)
        closer = d2 < best
        best[closer] = d2[closer]
        lab[closer] = g
    labels = lab.reshape(shape)
    # grains that received no voxel would be empty labels: relabel compactly
    used, labels = np.unique(labels, return_inverse=True)
    return Microstructure(labels.reshape(shape).astype(np.int32), description=f"periodic Voronoi, {grains} grains",
                          meta={"grains": int(len(used))})


# ----------------------------------------------------------------------------------------------
# import
# ----------------------------------------------------------------------------------------------

def from_array(arr, mapping: dict | None = None, nphases: int | None = None) -> Microstructure:
    """Labels from an integer array, optionally remapped ``{raw value: label}``.

    Every raw value must be mapped (or be a label < ``nphases``), otherwise an error names the
    unmapped values.
    """
    arr = np.asarray(arr)
    if arr.ndim not in (2, 3):
        raise InputError(f"microstructure array must be 2D or 3D, got shape {arr.shape}")
    vals = np.unique(arr)
    if mapping is not None:
        keys = np.array(sorted(mapping), dtype=arr.dtype if np.issubdtype(arr.dtype, np.integer) else float)
        missing = [v for v in vals.tolist() if v not in set(np.asarray(keys).tolist())]
        if missing:
            raise InputError(f"unmapped phase labels in the input: {missing[:10]} (map them in 'labels')")
        lut_keys = np.asarray(sorted(mapping))
        pos = np.searchsorted(lut_keys, arr)
        out = np.asarray([mapping[k] for k in lut_keys.tolist()], np.int32)[pos]
        return Microstructure(out)
    if not np.issubdtype(arr.dtype, np.integer):
        if np.any(arr != np.round(arr)):
            raise InputError("microstructure array has non-integer values; give a label mapping")
        arr = arr.astype(np.int64)
    if nphases is not None:
        bad = vals[(vals < 0) | (vals >= nphases)]
        if len(bad):
            raise InputError(f"unmapped phase labels in the input: {bad.tolist()[:10]} "
                             f"(only {nphases} phases are defined)")
    return Microstructure(arr.astype(np.int32))


def from_hdf5(path: str, dataset: str = "labels", mapping: dict | None = None, nphases: int | None = None,
              xyz_order: bool = True) -> Microstructure:
    """Labels from an HDF5 dataset (read serially on every rank; voxel arrays are small)."""
    import h5py

    if not os.path.exists(path):
        raise InputError(f"{path}: microstructure file does not exist")
    with h5py.File(path, "r") as f:
        if dataset not in f:
            raise InputError(f"{path}: no dataset '{dataset}'")
        arr = f[dataset][...]
    if not xyz_order:
        arr = arr.T
    return from_array(arr, mapping, nphases)


def from_image(path: str, mapping: dict | None = None, threshold: float | None = None,
               nphases: int | None = None) -> Microstructure:
    """Labels from a (grey-scale) image, e.g. a segmented micrograph.

    Either ``mapping`` {grey value (0–255): label} (every grey value present must be mapped) or a
    ``threshold``: grey >= threshold → 1, else 0.  Image rows run top to bottom, so the array is
    flipped to put y upwards.
    """
    from PIL import Image

    if not os.path.exists(path):
        raise InputError(f"{path}: image file does not exist")
    try:
        img = np.asarray(Image.open(path).convert("L"), dtype=np.int64)
    except Exception as e:  # unreadable file
        raise InputError(f"{path}: cannot read image ({e})") from None
    arr = img[::-1, :].T                                          # [x, y], y up
    if threshold is not None:
        return Microstructure((arr >= threshold).astype(np.int32), description=f"image {os.path.basename(path)}")
    m = from_array(arr, mapping={int(k): int(v) for k, v in mapping.items()} if mapping else None, nphases=nphases)
    m.description = f"image {os.path.basename(path)}"
    return m


# ----------------------------------------------------------------------------------------------
# statistics
# ----------------------------------------------------------------------------------------------

def two_point_correlation(labels: np.ndarray, phase: int = 1) -> np.ndarray:
    """Periodic two-point probability S2(r) = P(x ∈ phase, x + r ∈ phase) for every lattice vector r.

    FFT autocorrelation of the indicator; S2(0) = volume fraction; indexed like ``labels``
    (r = 0 at index 0, negative shifts wrap).
    """
    ind = (np.asarray(labels) == phase).astype(float)
    F = np.fft.rfftn(ind)
    return np.fft.irfftn(F * np.conj(F), s=ind.shape) / ind.size


def radial_average(S2: np.ndarray, voxel: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Average a periodic correlation over shells |r| ∈ [k, k+1) voxels (minimal image); (r, S2(r))."""
    shape = S2.shape
    grids = np.meshgrid(*[np.minimum(np.arange(n), n - np.arange(n)) for n in shape], indexing="ij")
    r = np.sqrt(sum(g.astype(float) ** 2 for g in grids))
    k = np.floor(r + 0.5).astype(int).ravel()
    rmax = min(shape) // 2
    sel = k <= rmax
    cnt = np.bincount(k[sel], minlength=rmax + 1)
    tot = np.bincount(k[sel], weights=S2.ravel()[sel], minlength=rmax + 1)
    ok = cnt > 0
    return np.arange(rmax + 1)[ok] * voxel, tot[ok] / cnt[ok]


def correlation_length(labels: np.ndarray, phase: int = 1) -> float:
    """Distance (voxels) where the radial S2 − φ² first falls below e⁻¹ of its value at 0."""
    S2 = two_point_correlation(labels, phase)
    phi = S2.flat[0]
    r, s = radial_average(S2)
    c = (s - phi * phi) / max(phi - phi * phi, 1e-300)
    below = np.flatnonzero(c < np.exp(-1.0))
    if len(below) == 0:
        return float(r[-1])
    i = below[0]
    if i == 0:
        return 0.0
    # linear interpolation between r[i-1] and r[i]
    t = (c[i - 1] - np.exp(-1.0)) / max(c[i - 1] - c[i], 1e-300)
    return float(r[i - 1] + t * (r[i] - r[i - 1]))


def refine(micro: Microstructure, factor: int) -> Microstructure:
    """Same geometry on a grid ``factor`` times finer (every voxel split into factor^d voxels)."""
    lab = micro.labels
    for ax in range(lab.ndim):
        lab = np.repeat(lab, factor, axis=ax)
    h = np.broadcast_to(np.asarray(micro.voxel_size, float), (lab.ndim,)) / factor
    return Microstructure(lab, tuple(h.tolist()), micro.description + f" refined x{factor}", dict(micro.meta))
