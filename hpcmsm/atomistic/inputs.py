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

    type: str = param("lj", choices=("lj", "morse", "sw"), doc="lj, morse or sw (Stillinger-Weber Si)")
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
        if self.rc is not None and self.r_on is not None and self.r_on >= self.rc:
            raise ConfigError(f"r_on must be below rc ({self.r_on} >= {self.rc})", key="r_on")

    def build(self):
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
