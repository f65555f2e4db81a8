"""Scale-separation advisor.

Given a micro length ℓ and macro length L, and a micro time τ (given, or τ = ℓ²/D from a
diffusivity D) and macro time T, compute ℓ/L and τ/T and recommend *sequential* (hierarchical)
coupling when both ratios are below a threshold, or *concurrent* coupling otherwise, saying
whether space, time or both break the separation (THEORY.md, "Scale Separation").
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .config import param
from .errors import ConfigError


@dataclass
class ScalesInput:
    micro_length: float = param(unit="m", gt=0, doc="micro length ℓ (heterogeneity size)")
    macro_length: float = param(unit="m", gt=0, doc="macro length L (component or load wavelength)")
    macro_time: float | None = param(None, unit="s", gt=0, doc="macro time T (loading period)")
    micro_time: float | None = param(None, unit="s", gt=0, doc="micro relaxation time τ")
    diffusivity: float | None = param(None, unit="m^2/s", gt=0, doc="diffusivity D giving τ = ℓ²/D")
    threshold: float = param(0.05, gt=0, lt=1, doc="ratios below this count as separated")
    name: str = param("case", doc="label for the report")

    def validate(self) -> None:
        if self.micro_time is not None and self.diffusivity is not None:
            raise ConfigError("give either micro_time or diffusivity (τ = ℓ²/D), not both", key="diffusivity")
        has_micro_t = self.micro_time is not None or self.diffusivity is not None
        if has_micro_t and self.macro_time is None:
            raise ConfigError("a micro time scale needs macro_time to compare with", key="macro_time")
        if self.macro_time is not None and not has_micro_t:
            raise ConfigError("macro_time needs micro_time or diffusivity", key="micro_time")
        if self.micro_length >= self.macro_length * 1e6:
            raise ConfigError("micro_length exceeds macro_length by more than 10^6: units mixed up?",
                              key="micro_length")


@dataclass
class ScalesResult:
    name: str
    length_ratio: float
    micro_time: float | None
    time_ratio: float | None
    space_separated: bool
    time_separated: bool | None
    verdict: str            # "sequential" or "concurrent"
    broken_by: str          # "none", "space", "time", "space and time"
    reasoning: str

    def as_dict(self) -> dict:
        return asdict(self)


def advise(inp: ScalesInput) -> ScalesResult:
    """Apply the scale-separation criterion to one case."""
    eps = inp.micro_length / inp.macro_length
    tau = inp.micro_time
    why = [f"ℓ/L = {inp.micro_length:.3g} m / {inp.macro_length:.3g} m = {eps:.3g}"]
    if inp.diffusivity is not None:
        tau = inp.micro_length**2 / inp.diffusivity
        why.append(f"τ = ℓ²/D = ({inp.micro_length:.3g} m)² / {inp.diffusivity:.3g} m²/s = {tau:.3g} s")
    space_ok = eps < inp.threshold
    time_ratio = time_ok = None
    if tau is not None:
        time_ratio = tau / inp.macro_time
        time_ok = time_ratio < inp.threshold
        why.append(f"τ/T = {tau:.3g} s / {inp.macro_time:.3g} s = {time_ratio:.3g}")
    broken = [w for w, ok in (("space", space_ok), ("time", time_ok)) if ok is False]
    if not broken:
        verdict, by = "sequential", "none"
        why.append(f"all ratios < {inp.threshold:g}: the micro-scale equilibrates quickly on regions small "
                   "compared with the macro variation, so compute effective properties once "
                   "(RVE homogenization) and run a macro-only model (sequential/hierarchical).")
        if tau is None:
            why.append("no time scales given: the verdict rests on the spatial ratio alone.")
    else:
        verdict, by = "concurrent", " and ".join(broken)
        parts = []
        if "space" in broken:
            parts.append(f"ℓ/L = {eps:.3g} ≥ {inp.threshold:g}: the microstructure is not small against the "
                         "macro gradients (no RVE exists at a macro point)")
        if "time" in broken:
            parts.append(f"τ/T = {time_ratio:.3g} ≥ {inp.threshold:g}: the micro-scale does not relax within a "
                         "macro time step, so its history matters")
        if space_ok and "time" in broken:
            parts.append("space is separated, time is not: keep the micro problems alive and evolve them with "
                         "the macro time (e.g. FE² with transient RVEs, or particle-scale diffusion models)")
        elif "space" in broken:
            parts.append("resolve the fine scale where it matters and couple concurrently (e.g. quasicontinuum, "
                         "atomistic/continuum or FE² with a true two-scale exchange)")
        why += parts
    return ScalesResult(inp.name, eps, tau, time_ratio, space_ok, time_ok, verdict, by, "\n".join(why))


def report(r: ScalesResult) -> str:
    lines = [f"== {r.name} ==", f"  length ratio ℓ/L : {r.length_ratio:.3g}"]
    if r.time_ratio is not None:
        lines += [f"  micro time τ     : {r.micro_time:.3g} s", f"  time ratio τ/T   : {r.time_ratio:.3g}"]
    lines.append(f"  verdict          : {r.verdict.upper()} coupling"
                 + ("" if r.broken_by == "none" else f" (separation broken in {r.broken_by})"))
    lines += ["  reasoning:"] + ["    " + s for s in r.reasoning.splitlines()]
    return "\n".join(lines)


#: The three classic cases of THEORY.md; ``examples/scales_*.toml`` hold the same numbers.
CLASSIC_CASES = {
    "composite": dict(name="fibre-composite panel", micro_length=5e-6, macro_length=5e-3,
                      diffusivity=1e-6, macro_time=60.0),
    "film": dict(name="thin metal film", micro_length=2e-7, macro_length=1e-6, micro_time=1e-7,
                 macro_time=1e-6),
    "battery": dict(name="Li-ion cathode", micro_length=2e-6, macro_length=2e-4, diffusivity=1e-14,
                    macro_time=1800.0),
}
