"""TOML input sections shared by ``hpcmsm cauchy-born`` and ``hpcmsm qc``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..config import OutputSection, param
from ..errors import ConfigError
from .lattices import LATTICES, make_lattice
from .potentials import CUTOFFS, LennardJones, Morse, StillingerWeber


@dataclass
class PotentialSection:
    """``[potential]``: interatomic potential (reduced units for lj/morse, eV and Å for sw)."""

    type: str = param("lj", choices=("lj", "morse", "sw", "eam"),
                      doc="lj, morse, sw (Stillinger-Weber Si) or eam (setfl file, eV and Angstrom)")
    file: Optional[str] = param(None, doc="eam: setfl (eam/alloy) file, relative to the input file or absolute")
    element: Optional[str] = param(None, doc="eam: element of the setfl file (default the first)")
    epsilon: Optional[float] = param(None, gt=0, doc="LJ well depth / SW energy scale")
    sigma: Optional[float] = param(None, gt=0, doc="LJ / SW length scale")
    rc: Optional[float] = param(None, gt=0, doc="cutoff radius (lj, morse)")
    cutoff: str = param("shifted", choices=CUTOFFS, doc="cutoff treatment: plain, shifted or smooth")
    r_on: Optional[float] = param(None, gt=0, doc="start of the smooth switch (default 0.9 rc)")
    D: Optional[float] = param(None, gt=0, doc="Morse well depth")
    alpha: Optional[float] = param(None, gt=0, doc="Morse stiffness parameter")
    r0: Optional[float] = param(None, gt=0, doc="Morse equilibrium distance")

    def validate(self) -> None:
        pair_only = {"rc", "cutoff", "r_on"}
        morse_only = {"D", "alpha", "r0"}
        given = {k for k in ("epsilon", "sigma", "rc", "r_on", "D", "alpha", "r0") if getattr(self, k) is not None}
        if self.type == "lj" and given & morse_only:
            raise ConfigError(f"Morse parameter with an lj potential", key=sorted(given & morse_only)[0])
        if self.type == "morse" and given & {"epsilon", "sigma"}:
            raise ConfigError("LJ parameter with a morse potential", key=sorted(given & {"epsilon", "sigma"})[0])
        if self.type == "sw" and given & (pair_only | morse_only):
            raise ConfigError("Stillinger-Weber has a fixed cutoff a·sigma; remove this key",
                              key=sorted(given & (pair_only | morse_only))[0])
        if self.type == "eam":
            if self.file is None:
                raise ConfigError("an eam potential needs a setfl file", key="file")
            if given:
                raise ConfigError("an eam potential is defined by its file; remove this key", key=sorted(given)[0])
        elif self.file is not None or self.element is not None:
            raise ConfigError("file/element are for type = \"eam\"", key="file" if self.file is not None else "element")
        if self.rc is not None and self.r_on is not None and self.r_on >= self.rc:
            raise ConfigError(f"r_on must be below rc ({self.r_on} >= {self.rc})", key="r_on")

    def build(self, base: str | None = None):
        """The potential; an eam ``file`` is looked up relative to ``base`` (the input file's
        directory) when it is not found as given."""
        if self.type == "eam":
            import os

            from .eam import SetflEAM

            path = self.file
            if not os.path.isabs(path) and not os.path.exists(path) and base is not None:
                path = os.path.join(base, path)
            return SetflEAM(path, self.element)
        kw = {k: getattr(self, k) for k in ("epsilon", "sigma", "rc", "r_on", "D", "alpha", "r0")
              if getattr(self, k) is not None}
        if self.type == "lj":
            return LennardJones(cutoff=self.cutoff, **kw)
        if self.type == "morse":
            return Morse(cutoff=self.cutoff, **kw)
        return StillingerWeber(**kw)


@dataclass
class LatticeSection:
    """``[lattice]``: crystal structure."""

    type: str = param("fcc", choices=LATTICES, doc="lattice name")
    a: float = param(1.55, gt=0, unit="length", doc="lattice constant (start value when equilibrate = true)")
    c_over_a: Optional[float] = param(None, gt=0, doc="hcp c/a (default ideal sqrt(8/3))")
    equilibrate: bool = param(True, doc="rescale a to zero mean stress")
    relax: bool = param(True, doc="relax the inner shifts of complex lattices at every F")

    def build(self, potential):
        from .cauchy_born import equilibrium_lattice

        lat = make_lattice(self.type, self.a, self.c_over_a)
        if self.equilibrate:
            lat = equilibrium_lattice(lat, potential, relax=self.relax)
        return lat


@dataclass
class PathSection:
    """``[[path]]``: F(t) = I + t·G for t in [0, t_max] (G given as rows)."""

    name: str = param("path", doc="label")
    G: list[list[float]] = param(default_factory=list, doc="direction of F - I (d x d rows)")
    t_max: float = param(0.1, gt=0, doc="largest t")
    steps: int = param(50, ge=2, le=100000, doc="number of points")


@dataclass
class BreakdownSection:
    """``[breakdown]``: relax defects atomistically and measure where Cauchy-Born fails."""

    defects: list[str] = param(default_factory=lambda: ["vacancy", "edge_dislocation"],
                               choices=("vacancy", "edge_dislocation"), doc="defects to analyse")
    vacancy_cells: int = param(30, ge=8, le=400, doc="periodic block of n x n rows (2D) or n^3 cells (fcc)")
    dislocation_radius: float = param(25.0, gt=4, unit="a", doc="disc radius in lattice constants")
    ring: float = param(3.0, gt=0, unit="a", doc="clamped outer ring width (must exceed the cutoff)")
    tol_xi: float = param(0.01, gt=0, doc="breakdown: non-affine displacement / r_nn above this")
    tol_energy: float = param(1e-3, gt=0, doc="breakdown: |E_i - E_CB(J_i)| / |E_coh| above this")
    gatol: float = param(1e-9, gt=0, doc="absolute tolerance on |grad E| (TAO, then SNES polish)")


@dataclass
class CauchyBornInput:
    """Input of ``hpcmsm cauchy-born``."""

    lattice: LatticeSection = param(default_factory=LatticeSection)
    potential: PotentialSection = param(default_factory=PotentialSection)
    path: list[PathSection] = param(default_factory=list)
    breakdown: Optional[BreakdownSection] = param(None, doc="defect breakdown analysis")
    petsc: dict[str, dict[str, Any]] = param(default_factory=dict, doc="PETSc options per prefix (relax)")
    output: OutputSection = param(default_factory=OutputSection)


@dataclass
class QCSection:
    """``[qc]``: block, defects, loading and the coupling scheme."""

    nx: int = param(60, ge=8, le=4000, doc="lattice columns of the block")
    ny: int = param(70, ge=8, le=4000, doc="lattice rows of the block (made even)")
    ring: float = param(3.0, gt=0, unit="a", doc="clamped outer ring width (> cutoff)")
    vacancies: list[list[float]] = param(default_factory=list, unit="a", doc="vacancy positions [x, y]")
    dislocation_dipole: Optional[list[float]] = param(None, unit="a",
                                                      doc="edge dipole: [x1, y1, x2, y2] core positions (+b, -b)")
    atomistic_radius: float = param(5.0, gt=0, unit="a", doc="initial atomistic region around each defect")
    F: list[list[float]] = param(default_factory=lambda: [[1.0, 0.0], [0.0, 1.0]],
                                 doc="homogeneous deformation applied to the ring (and start)")
    scheme: str = param("gfc", choices=("gfc", "qce"), doc="gfc (ghost-force corrected) or qce (uncorrected)")
    coarsest: int = param(16, ge=1, le=1024, doc="largest node spacing in lattice sites")
    adapt: bool = param(True, doc="grow the atomistic region where the non-affinity indicator fires")
    adapt_tol: float = param(2e-3, gt=0, doc="non-affinity / r_nn that marks a continuum site")
    adapt_grow: float = param(2.0, gt=0, unit="a", doc="radius added around marked sites")
    max_cycles: int = param(6, ge=1, le=50, doc="adaptive cycles")
    compare_full: bool = param(True, doc="also relax the full atomistic block and report the QC errors")
    gatol: float = param(1e-9, gt=0, doc="gradient tolerance")

    def validate(self) -> None:
        import numpy as np

        if np.asarray(self.F, float).shape != (2, 2):
            raise ConfigError("expected a 2x2 list of rows", key="F")
        if np.linalg.det(np.asarray(self.F, float)) <= 0:
            raise ConfigError("det F <= 0", key="F")
        for i, v in enumerate(self.vacancies):
            if len(v) != 2:
                raise ConfigError("expected [x, y]", key=f"vacancies[{i}]")
        if self.dislocation_dipole is not None and len(self.dislocation_dipole) != 4:
            raise ConfigError("expected [x1, y1, x2, y2]", key="dislocation_dipole")


@dataclass
class IndentSection:
    """``[indent]``: nanoindentation of the block's free top surface by a rigid cylinder (the block
    is clamped on its sides and bottom); uses nx, ny, ring, adapt*, gatol and compare_full of [qc]."""

    radius: float = param(30.0, gt=0, unit="a", doc="indenter radius R")
    stiffness: float = param(100.0, gt=0, unit="energy/length^3", doc="K in F(r) = -K (r - R)^2")
    max_depth: float = param(1.0, gt=0, unit="a", doc="final indentation depth")
    steps: int = param(5, ge=1, le=10000, doc="equal depth increments")
    surface: float = param(2.5, gt=0, unit="a", doc="thickness of the all-atomistic surface layer")
    atomistic_radius: float = param(5.0, gt=0, unit="a", doc="initial atomistic disc around the contact")
    contact_margin: float = param(3.0, ge=0, unit="a", doc="continuum sites this close to the indenter become atomistic")


@dataclass
class QCInput:
    """Input of ``hpcmsm qc``."""

    lattice: LatticeSection = param(default_factory=lambda: LatticeSection(type="triangular", a=1.12))
    potential: PotentialSection = param(default_factory=PotentialSection)
    qc: QCSection = param(default_factory=QCSection)
    indent: Optional[IndentSection] = param(None, doc="nanoindentation instead of defects")
    petsc: dict[str, dict[str, Any]] = param(default_factory=dict, doc="PETSc options per prefix (qc, full)")
    output: OutputSection = param(default_factory=OutputSection)

    def validate(self) -> None:
        q = self.qc
        if self.indent is None and not q.vacancies and q.dislocation_dipole is None:
            raise ConfigError("no defect: give vacancies or dislocation_dipole (or an [indent] table)",
                              key="qc.vacancies")
        if self.indent is not None:
            if q.vacancies or q.dislocation_dipole is not None:
                raise ConfigError("defects are not used with [indent]", key="qc.vacancies")
            if q.F != [[1.0, 0.0], [0.0, 1.0]]:
                raise ConfigError("the indented block is loaded by the indenter only (F must be the identity)",
                                  key="qc.F")
            if q.scheme != "gfc":
                raise ConfigError("indentation uses the ghost-force-corrected scheme", key="qc.scheme")
            if self.indent.max_depth >= 0.5 * q.ny * 0.866:
                raise ConfigError("deeper than half the block", key="indent.max_depth")
