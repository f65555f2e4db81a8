"""TOML input of ``hpcmsm homogenize`` and ``hpcmsm rve-study``: validated dataclasses, and the
builders that turn them into microstructures and phase materials (identically on every rank)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal, Optional

import numpy as np

from ..config import param
from ..errors import ConfigError, InputError
from ..materials.base import check_stiffness, isotropic_stiffness
from . import microstructure as ms
from .phases import LinearConductor, cubic_stiffness, make_phase, random_rotations, rotate_tensor

MICRO_TYPES = ("laminate", "inclusion_array", "checkerboard", "random_inclusions", "voronoi",
               "independent_voxels", "homogeneous", "numpy", "hdf5", "image")


@dataclass
class ProblemSection:
    """``[problem]``"""

    kind: str = param("elasticity", choices=("elasticity", "conductivity"), doc="physics of the cell problem")
    bc: list[str] = param(default_factory=lambda: ["periodic", "kubc", "tubc"],
                          choices=("periodic", "kubc", "tubc"), doc="boundary conditions to solve")


@dataclass
class MicrostructureSection:
    """``[microstructure]``: a generator (``type``) and its parameters."""

    type: str = param(choices=MICRO_TYPES, doc="generator or import format")
    shape: list[int] = param(default_factory=list, ge=2, doc="voxels per direction (x, y[, z])")
    voxel_size: float = param(1.0, gt=0, unit="m", doc="edge length of a voxel")
    fractions: list[float] = param(default_factory=lambda: [0.5, 0.5], gt=0, lt=1, doc="laminate phase fractions")
    axis: int = param(0, ge=0, le=2, doc="laminate normal axis")
    cells: int = param(2, ge=2, doc="checkerboard cells per side")
    volume_fraction: float = param(0.3, doc="inclusion volume fraction (strictly between 0 and 1)")
    count: int = param(1, ge=1, doc="inclusions per axis (inclusion_array)")
    inclusion: str = param("sphere", choices=("sphere", "ellipsoid", "fibre"), doc="inclusion shape")
    aspect: list[float] = param(default_factory=list, gt=0, doc="ellipsoid semi-axis ratios")
    radius: float = param(4.0, gt=0, unit="voxel", doc="random inclusion radius")
    min_gap: float = param(1.0, ge=0, unit="voxel", doc="minimum gap between random inclusions")
    poisson_count: bool = param(True, doc="random inclusions: Poisson number of inclusions (finite-range "
                                          "medium); false: fixed count for the target fraction")
    grains: int = param(16, ge=1, doc="Voronoi grains")
    probability: float = param(0.5, doc="independent-voxel probability of phase 1")
    seed: int = param(0, ge=0, doc="random seed")
    index: int = param(0, ge=0, doc="realization index in the seed's stream")
    file: str = param("", doc="numpy .npy, HDF5 or image file (relative to the input file)")
    dataset: str = param("labels", doc="HDF5 dataset with labels indexed [x, y(, z)]")
    threshold: Optional[float] = param(None, doc="image: grey >= threshold is phase 1")
    labels: dict[str, int] = param(default_factory=dict, doc="raw value → phase label mapping")
    stride: int = param(1, ge=1, doc="imported data: keep every stride-th voxel (coarsen large images)")

    def validate(self):
        if self.type not in ("numpy", "hdf5", "image"):
            if self.shape and len(self.shape) not in (2, 3):
                raise ConfigError("give 2 or 3 voxel counts (x, y[, z])", key="shape")
        elif not self.file:
            raise ConfigError(f"type '{self.type}' needs a file", key="file")
        if self.type in ("inclusion_array", "random_inclusions") and not 0 < self.volume_fraction < 1:
            raise ConfigError(f"volume fraction must lie strictly between 0 and 1, got {self.volume_fraction}",
                              key="volume_fraction")
        if self.type == "independent_voxels" and not 0 < self.probability < 1:
            raise ConfigError(f"probability must lie strictly between 0 and 1, got {self.probability}",
                              key="probability")


@dataclass
class PhaseSection:
    """``[[phases]]``: one per label.  Isotropic (k, or E and nu), cubic (C11, C12, C44) or a full
    ``tensor`` (conductivity d×d, or Mandel stiffness)."""

    name: str = param("", doc="phase name")
    k: Optional[float] = param(None, gt=0, unit="W/(m K)", doc="isotropic conductivity")
    E: Optional[float] = param(None, gt=0, unit="Pa", doc="Young's modulus")
    nu: Optional[float] = param(None, gt=-1, lt=0.5, doc="Poisson's ratio")
    C11: Optional[float] = param(None, unit="Pa", doc="cubic constant")
    C12: Optional[float] = param(None, unit="Pa", doc="cubic constant")
    C44: Optional[float] = param(None, unit="Pa", doc="cubic constant")
    tensor: Optional[list[list[float]]] = param(None, doc="full tensor (Mandel for elasticity)")
    orientations: str = param("none", choices=("none", "random"),
                              doc="random: every label (grain) gets a random rotation of this phase")


@dataclass
class OutputSection:
    dir: str = param("out/homogenize", doc="output directory")
    png: bool = param(True, doc="write PNG plots")
    fields: bool = param(True, doc="write correctors and labels (HDF5 + XDMF)")


@dataclass
class HomogenizeInput:
    problem: ProblemSection = param(default_factory=ProblemSection)
    microstructure: MicrostructureSection = param(default_factory=lambda: None)
    phases: list[PhaseSection] = param(default_factory=list)
    output: OutputSection = param(default_factory=OutputSection)
    petsc: dict[str, dict] = param(default_factory=dict, doc="PETSc options per prefix, e.g. [petsc.rve]")

    def validate(self):
        if self.microstructure is None:
            raise ConfigError("missing [microstructure] table", key="microstructure")
        if not self.phases:
            raise ConfigError("define at least one [[phases]] table", key="phases")
        if self.microstructure.type not in ("numpy", "hdf5", "image") and not self.microstructure.shape:
            raise ConfigError("give 2 or 3 voxel counts (x, y[, z])", key="microstructure.shape")
        for p in self.petsc:
            if p not in ("rve",):
                raise ConfigError("unknown PETSc prefix (known: rve)", key=f"petsc.{p}")


# ----------------------------------------------------------------------------------------------
# builders
# ----------------------------------------------------------------------------------------------

def build_micro(sec: MicrostructureSection, base_dir: str = ".", *, seed: int | None = None,
                index: int | None = None, shape: list[int] | None = None, nphases: int | None = None):
    """Microstructure from its input section (``seed``/``index``/``shape`` override for ensembles)."""
    t = sec.type
    shp = tuple(shape or sec.shape)
    sd = sec.seed if seed is None else seed
    ix = sec.index if index is None else index
    if t == "homogeneous":
        m = ms.homogeneous(shp)
    elif t == "laminate":
        if sec.axis >= len(shp):
            raise ConfigError(f"axis {sec.axis} out of range for a {len(shp)}D grid", key="microstructure.axis")
        m = ms.laminate(shp, sec.fractions, sec.axis)
    elif t == "checkerboard":
        m = ms.checkerboard(shp, sec.cells)
    elif t == "inclusion_array":
        m = ms.inclusion_array(shp, sec.volume_fraction, sec.count, sec.inclusion, tuple(sec.aspect) or None)
    elif t == "random_inclusions":
        m = ms.random_inclusions(shp, sec.volume_fraction, sec.radius, sd, ix, sec.min_gap, poisson=sec.poisson_count)
    elif t == "voronoi":
        m = ms.voronoi(shp, sec.grains, sd, ix)
    elif t == "independent_voxels":
        m = ms.independent_voxels(shp, sec.probability, sd, ix)
    else:
        path = sec.file if os.path.isabs(sec.file) else os.path.join(base_dir, sec.file)
        mapping = {_key(k): v for k, v in sec.labels.items()} or None
        if t == "numpy":
            if not os.path.exists(path):
                raise InputError(f"{path}: microstructure file does not exist")
            m = ms.from_array(np.load(path), mapping, nphases)
        elif t == "hdf5":
            m = ms.from_hdf5(path, sec.dataset, mapping, nphases)
        else:
            m = ms.from_image(path, mapping, sec.threshold, nphases)
        if sec.stride > 1:
            sl = tuple(slice(None, None, sec.stride) for _ in range(m.dim))
            m = ms.Microstructure(m.labels[sl].copy(), description=m.description + f" (stride {sec.stride})")
    m.voxel_size = sec.voxel_size * (sec.stride if t in ("numpy", "hdf5", "image") else 1)
    return m


def _key(k: str):
    try:
        return int(k)
    except ValueError:
        try:
            return float(k)
        except ValueError:
            raise InputError(f"label mapping key {k!r} is not a number") from None


def phase_tensor(p: PhaseSection, kind: str, dim: int, i: int) -> np.ndarray:
    """Constant tensor of one phase, validated (symmetric positive definite)."""
    what = f"phases[{i}]" + (f" ({p.name})" if p.name else "")
    if p.tensor is not None:
        T = np.asarray(p.tensor, float)
        m = dim if kind == "conductivity" else (3 if dim == 2 else 6)
        if T.shape != (m, m):
            raise InputError(f"{what}: tensor must be {m}x{m} for {dim}D {kind}, got {T.shape}")
        if kind == "conductivity":
            return LinearConductor(T).C
        return check_stiffness(T, f"{what} tensor")
    if kind == "conductivity":
        if p.k is None:
            raise InputError(f"{what}: conductivity needs k (or tensor)")
        return p.k * np.eye(dim)
    if p.C11 is not None or p.C12 is not None or p.C44 is not None:
        if dim != 3 or None in (p.C11, p.C12, p.C44):
            raise InputError(f"{what}: cubic phases need C11, C12 and C44, in 3D")
        try:
            return cubic_stiffness(p.C11, p.C12, p.C44)
        except InputError as e:
            raise InputError(f"{what}: {e}") from None
    if p.E is None or p.nu is None:
        raise InputError(f"{what}: elasticity needs E and nu (or C11/C12/C44, or tensor)")
    return isotropic_stiffness(dim, p.E, p.nu)


def build_phases(phases: list[PhaseSection], kind: str, micro, seed: int = 0, index: int = 0):
    """Materials per label and their tensors.  A single phase with ``orientations = "random"``
    makes a polycrystal: every label (grain) is a rotated copy, reproducible from (seed, index)."""
    dim = micro.dim
    tensors = [phase_tensor(p, kind, dim, i) for i, p in enumerate(phases)]
    if any(p.orientations == "random" for p in phases):
        if len(phases) != 1:
            raise InputError("random grain orientations need exactly one [[phases]] entry (the crystal)")
        rot = random_rotations(ms.rng_for(seed, 10_000_019 + index), micro.nlabels, dim)
        tensors = list(rotate_tensor(tensors[0], rot, kind))
        tensors = [0.5 * (T + T.T) for T in tensors]
    if micro.nlabels > len(tensors):
        raise InputError(f"microstructure has labels 0..{micro.nlabels - 1} but only {len(tensors)} "
                         f"phases are defined (unmapped phase labels)")
    return [make_phase(kind, dim, T) for T in tensors], tensors
