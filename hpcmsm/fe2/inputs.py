"""``hpcmsm fe2`` input: TOML tables → validated dataclasses (see docs/fe2.md for every key)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from ..config import OutputSection, param
from ..errors import ConfigError


@dataclass
class MacroSection:
    """``[macro]``: geometry, mesh and loading (displacement-controlled tension along x)."""

    geometry: Literal["plate_with_hole", "box"] = param("plate_with_hole", doc="macro geometry")
    dim: int = param(2, choices=(2, 3), doc="macro dimension (box: 2 or 3; plate_with_hole: 2)")
    size: float = param(1.0, unit="m", gt=0, doc="plate half-width L (plate) or box edge length")
    hole_radius: float = param(0.3, unit="m", gt=0, doc="hole radius (plate_with_hole)")
    cells: list[int] = param(default_factory=lambda: [8, 4], doc="plate: [n_theta, n_r]; box: cells per axis")
    grading: float = param(1.5, gt=0, doc="radial grading of the plate mesh towards the hole")
    displacement: float = param(0.005, unit="m", doc="final x-displacement of the loaded face (x = L)")
    steps: int = param(10, ge=1, doc="load steps (equal increments)")
    kinematics: Literal["small", "finite"] = param(
        "small", doc="small strain (Mandel ε, σ) or finite strain (total Lagrangian: F and P at every QP)")

    def validate(self):
        if self.geometry == "plate_with_hole":
            if self.dim != 2:
                raise ConfigError("plate_with_hole is a 2D geometry (set dim = 2)", key="dim")
            if len(self.cells) != 2:
                raise ConfigError("plate_with_hole needs cells = [n_theta, n_r]", key="cells")
            if not self.hole_radius < self.size:
                raise ConfigError("hole_radius must be smaller than size", key="hole_radius")
        elif len(self.cells) != self.dim:
            raise ConfigError(f"box needs {self.dim} cell counts", key="cells")
        if min(self.cells) < 1:
            raise ConfigError("cell counts must be >= 1", key="cells")


SMALL_LAWS = ("linear_elastic", "j2")
FINITE_LAWS = ("neo_hookean", "j2_log")


@dataclass
class PhaseSection:
    """A micro phase.  ``model = "auto"``: J2 elasto-plastic if ``sigma_y`` is given, else linear
    elastic (small strain); finite strain: ``"neo_hookean"`` (compressible Neo-Hookean with the
    same E, ν) or ``"j2_log"`` (J2 plasticity in logarithmic strain, needs ``sigma_y``)."""

    model: Literal["auto", "linear_elastic", "j2", "neo_hookean", "j2_log"] = param(
        "auto", doc="material law: auto (j2 if sigma_y else linear_elastic), linear_elastic, j2 (small strain); "
                    "neo_hookean, j2_log (finite strain)")
    E: float = param(200e3, unit="MPa", gt=0, doc="Young's modulus")
    nu: float = param(0.3, gt=-1, lt=0.5, doc="Poisson's ratio")
    sigma_y: Optional[float] = param(None, unit="MPa", doc="yield stress (omit: elastic phase)")
    H: float = param(0.0, unit="MPa", ge=0, doc="linear isotropic hardening modulus")

    def validate(self):
        if self.sigma_y is not None and not self.sigma_y > 0:
            raise ConfigError("expected a positive yield stress", key="sigma_y")
        if self.model in ("j2", "j2_log") and self.sigma_y is None:
            raise ConfigError(f"model {self.model!r} needs sigma_y", key="sigma_y")
        if self.model in ("linear_elastic", "neo_hookean") and self.sigma_y is not None:
            raise ConfigError(f"model {self.model!r} has no yield stress (remove sigma_y or use model = 'j2')",
                              key="sigma_y")

    @property
    def law(self) -> str:
        if self.model == "auto":
            return "j2" if self.sigma_y is not None else "linear_elastic"
        return self.model

    @property
    def kinematics(self) -> str:
        return "finite" if self.law in FINITE_LAWS else "small"


@dataclass
class MicroSection:
    """``[micro]``: the RVE at every macro quadrature point."""

    model: Literal["voxel", "point"] = param("voxel", doc="voxel RVE, or a single material point (matrix)")
    dim: Optional[int] = param(None, choices=(2, 3), doc="RVE dimension (must equal the macro dimension)")
    voxels: int = param(8, ge=2, doc="voxels per RVE edge")
    microstructure: Literal["particle", "random_particles", "laminate", "homogeneous"] = param(
        "particle", doc="particle: one centred circle/sphere; random_particles; laminate; homogeneous (matrix)")
    volume_fraction: float = param(0.2, gt=0, lt=1, doc="particle/laminate volume fraction")
    particle_radius: float = param(2.0, gt=0, doc="random_particles: radius in voxels")
    seed: int = param(0, ge=0, doc="random_particles: seed")
    bc: Literal["periodic", "kubc", "tubc"] = param("periodic", doc="RVE boundary condition")
    solver: Literal["direct", "distributed"] = param(
        "direct", doc="RVE linear algebra on a group: direct (element work shared, tangent gathered to the "
                      "group root for sparse Cholesky) or distributed (DMDA rows + PETSc Krylov, GMRES + GAMG by "
                      "default; small strain, periodic/kubc; for large RVEs); options in [petsc.micro]")
    rtol: float = param(1e-10, gt=0, lt=1, doc="RVE Newton tolerance (relative)")
    max_iterations: int = param(25, ge=1, doc="RVE Newton iterations before the step is cut back")
    matrix: PhaseSection = param(default_factory=lambda: PhaseSection(E=70e3, nu=0.33, sigma_y=100.0, H=500.0),
                                 doc="matrix phase (label 0)")
    particle: PhaseSection = param(default_factory=lambda: PhaseSection(E=400e3, nu=0.2),
                                   doc="particle phase (label 1)")


@dataclass
class PoolSection:
    """``[pool]``: RVE farming over MPI groups."""

    group_size: int = param(1, ge=1, doc="ranks per RVE group (must divide the number of ranks)")
    balance: Literal["round_robin", "cost", "block"] = param("cost", doc="QP → group assignment")
    cost_measure: Literal["time", "iterations"] = param("time", doc="what the balancer measures per RVE")
    min_gain: float = param(1.05, ge=1.0, doc="rebalance only if the predicted makespan gain exceeds this "
                                              "factor (hysteresis: measured costs are noisy and migration costs)")
    elastic_reuse: bool = param(True, doc="skip the RVE solve when the step stays elastic (exact)")


@dataclass
class NewtonSection:
    rtol: float = param(1e-8, gt=0, lt=1, doc="macro Newton tolerance (free residual / internal force)")
    max_iterations: int = param(12, ge=1, doc="macro Newton iterations per attempt")
    max_cutbacks: int = param(4, ge=0, doc="step halvings allowed before giving up")


@dataclass
class FE2Output(OutputSection):
    micro_qps: list[int] = param(default_factory=list, doc="macro QP ids whose full micro fields are written")
    micro_points: list[list[float]] = param(default_factory=list, doc="positions; the nearest QP's micro fields are written")


@dataclass
class FE2Input:
    macro: MacroSection = param(default_factory=MacroSection)
    micro: MicroSection = param(default_factory=MicroSection)
    pool: PoolSection = param(default_factory=PoolSection)
    newton: NewtonSection = param(default_factory=NewtonSection)
    output: FE2Output = param(default_factory=FE2Output)
    petsc: dict = param(default_factory=dict, doc="PETSc options per prefix, e.g. [petsc.macro]")

    def validate(self):
        if self.micro.dim is not None and self.micro.dim != self.macro.dim:
            raise ConfigError(f"RVE dimension {self.micro.dim} does not match the macro dimension "
                              f"{self.macro.dim}", key="micro.dim")
        if self.micro.model == "voxel" and self.micro.microstructure != "homogeneous" \
                and self.micro.voxels < 4:
            raise ConfigError("a heterogeneous RVE needs at least 4 voxels per edge", key="micro.voxels")
        # every phase that occurs must use the macro kinematics (a small-strain law cannot take F)
        phases = [("micro.matrix", self.micro.matrix)]
        if self.micro.model == "voxel" and self.micro.microstructure != "homogeneous":
            phases.append(("micro.particle", self.micro.particle))
        for key, ph in phases:
            if ph.kinematics != self.macro.kinematics:
                need = FINITE_LAWS if self.macro.kinematics == "finite" else SMALL_LAWS
                raise ConfigError(f"[macro] kinematics = {self.macro.kinematics!r} needs {self.macro.kinematics}-"
                                  f"strain phase materials ({', '.join(need)}), but this phase is "
                                  f"{ph.law!r} ({ph.kinematics} strain)", key=f"{key}.model")
        if self.macro.kinematics == "finite" and self.micro.model == "voxel" and self.micro.bc == "tubc":
            raise ConfigError("TUBC is implemented for small strain only; use bc = 'periodic' or 'kubc' "
                              "with kinematics = 'finite'", key="micro.bc")
        if self.micro.solver == "distributed":
            if self.micro.model != "voxel":
                raise ConfigError("solver = 'distributed' needs model = 'voxel'", key="micro.solver")
            if self.macro.kinematics == "finite":
                raise ConfigError("solver = 'distributed' is small strain only; use solver = 'direct' with "
                                  "kinematics = 'finite'", key="micro.solver")
            if self.micro.bc == "tubc":
                raise ConfigError("solver = 'distributed' supports bc = 'periodic' or 'kubc'; use solver = "
                                  "'direct' for TUBC", key="micro.solver")
        for k in self.output.micro_points:
            if len(k) != self.macro.dim:
                raise ConfigError(f"positions need {self.macro.dim} coordinates", key="output.micro_points")
