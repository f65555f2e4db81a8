"""Reports: the verification report (suites → markdown/JSON/PNG), the validation pipeline driven
by a TOML input, and the V&V hierarchy report (consistency → MMS → DWR → validation), which does
not report validation if any verification level failed."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from ..config import OutputSection, param
from ..errors import ConfigError
from .composite import MODELS
from .suites import SUITES, SuiteResult

LEVELS = (("consistency", "1. Consistency checks of the V&V machinery"),
          ("code", "2. Code verification: manufactured solutions"),
          ("solution", "3. Solution verification: goal-oriented error estimation (DWR)"))


# ---------------------------------------------------------------------------------------------
# input
# ---------------------------------------------------------------------------------------------

@dataclass
class InputSpec:
    """One uncertain input (``[[validation.inputs]]``)."""

    name: str = param(doc="parameter name (E_m, nu_m, E_p, nu_p)", choices=("E_m", "nu_m", "E_p", "nu_p"))
    a: float = param(doc="normal: mean; uniform: low; lognormal: median")
    b: float = param(doc="normal: std; uniform: high; lognormal: sigma of ln", ge=0)
    dist: str = param("normal", doc="distribution", choices=("normal", "uniform", "lognormal"))

    def validate(self):
        if self.dist == "uniform" and not self.b > self.a:
            raise ConfigError("uniform distribution needs b > a", key="b")


@dataclass
class ValidationSection:
    """``[validation]``: calibrate on one data set, validate on another, with UQ."""

    calibration_data: str = param(doc="CSV with '# role: calibration' (path relative to the input file)")
    validation_data: str = param(doc="CSV with '# role: validation'")
    inputs: list[InputSpec] = param(doc="uncertain inputs ([[validation.inputs]]); calibrated ones act as uniform priors")
    model: str = param("mori_tanaka", doc="effective-modulus model", choices=MODELS)
    calibrate: list[str] = param(default_factory=lambda: ["E_m"], doc="inputs calibrated on the calibration data")
    method: str = param("bayesian", doc="calibration method", choices=("bayesian", "least_squares"))
    grid_points: int = param(101, ge=11, doc="grid points per calibrated parameter (bayesian)")
    samples: int = param(64, ge=2, doc="Latin-hypercube samples per validation point")
    seed: int = param(0, ge=0, doc="LHS seed")
    numerical_uncertainty: float = param(0.0, ge=0, doc="relative numerical uncertainty u_num/S (e.g. from GCI)")

    def validate(self):
        names = [i.name for i in self.inputs]
        if len(set(names)) != len(names):
            raise ConfigError("each input may appear once", key="inputs")
        for c in self.calibrate:
            if c not in names:
                raise ConfigError(f"calibrated parameter {c!r} needs an entry in [[validation.inputs]] (its prior)",
                                  key="calibrate")
        for n in ("E_m", "nu_m", "E_p", "nu_p"):
            if n not in names:
                raise ConfigError(f"input {n!r} missing", key="inputs")


@dataclass
class ValidationInput:
    validation: ValidationSection = param(doc="[validation] table")
    output: OutputSection = param(default_factory=lambda: OutputSection(dir="out/validation"), doc="[output]")


@dataclass
class VerifySection:
    """``[verify]``: which suites, how large, and the hierarchy report."""

    suites: list[str] = param(default_factory=list, doc="suite names (empty: all)")
    quick: bool = param(True, doc="small refinement levels (CI size)")
    inject_bug: str = param("", doc="suite whose solver gets a perturbed coefficient (must then fail)")
    perturbation: float = param(1.05, gt=0, doc="factor applied to that coefficient")
    hierarchy: bool = param(False, doc="run the V&V hierarchy (consistency → MMS → DWR → validation)")
    validation: str = param("", doc="validation TOML for the hierarchy (relative to this file)")

    def validate(self):
        for s in self.suites:
            if s not in SUITES:
                raise ConfigError(f"unknown suite {s!r} (known: {', '.join(SUITES)})", key="suites")
        if self.inject_bug and self.inject_bug not in SUITES:
            raise ConfigError(f"unknown suite {self.inject_bug!r}", key="inject_bug")
        if self.hierarchy and not self.validation:
            raise ConfigError("the hierarchy report needs a validation input", key="validation")


@dataclass
class VerifyInput:
    verify: VerifySection = param(default_factory=VerifySection, doc="[verify] table")
    output: OutputSection = param(default_factory=lambda: OutputSection(dir="out/verify"), doc="[output]")


# ---------------------------------------------------------------------------------------------
# verification report
# ---------------------------------------------------------------------------------------------

def _slug(s: str) -> str:
    out = "".join(c if (c.isascii() and c.isalnum()) else "_" for c in s.lower())
    while "__" in out:
        out = out.replace("__", "_")
    return out.strip("_")[:60]


def plot_dwr(extra: dict, path: str) -> str:
    """|J(u) − J(u_h)| and |η| against P1 DOFs (adaptive loop), with the effectivity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = np.array(extra["ndofs"], float)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.5))
    a1.loglog(n, np.abs(extra["errors"]), "o-", label=f"|J(u) − J(u_h)| (reference {extra['reference']:.7g})")
    a1.loglog(n, np.abs(extra["estimates"]), "s--", label="|η| (DWR)")
    if "uniform" in extra:
        a1.loglog(extra["uniform"]["ndofs"], np.abs(extra["uniform"]["errors"]), "^:", label="|error|, uniform")
    a1.set_xlabel(extra.get("xlabel", "P1 DOFs"))
    a1.legend(fontsize=7)
    a1.grid(True, which="both", alpha=0.3)
    a2.semilogx(n, extra["effectivities"], "o-")
    a2.axhspan(0.8, 1.25, color="g", alpha=0.1)
    a2.set_xlabel(extra.get("xlabel", "P1 DOFs"))
    a2.set_ylabel("effectivity η / error")
    a2.grid(True, alpha=0.3)
    fig.suptitle(extra.get("title", "DWR, deal.II step-14 point value") + ", adaptive newest-vertex bisection",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def suites_markdown(results: list[SuiteResult], outdir: str | None = None, png: bool = True,
                    rel_png: str = "") -> str:
    """Summary table plus one section per suite (tables, expected vs observed order, plots)."""
    lines = ["| suite | verifies | kind | result | time [s] |", "|---|---|---|---|---|"]
    for r in results:
        res = {"pass": "pass", "fail": "**FAIL**", "error": "**ERROR**"}.get(r.status, r.status)
        bug = f" (injected bug ×{r.perturb:g})" if r.perturb != 1.0 else ""
        lines.append(f"| {r.name} | `{r.solver}` | {r.kind} | {res}{bug} | {r.seconds:.1f} |")
    lines.append("")
    for r in results:
        lines += [f"### Suite `{r.name}` — {r.status}", "", SUITES[r.name].description + ".", ""]
        if r.message:
            lines += ["```", r.message.strip()[:1500], "```", ""]
        for st in r.studies:
            if "table" in st.extra:
                lines += [f"#### {st.name}", "", st.extra["table"], ""]
                for e in st.entries:
                    lines.append(f"- {e.norm}: {'pass' if e.passed else '**FAIL**'} "
                                 + (f"(mean {e.lsq_order:.3f} over {e.nfit} steps with {st.extra.get('min_dofs', '≥ 100 DOFs')})"
                                    if e.nfit else ""))
                if "reference" in st.extra:
                    lines.append(f"- reference J(u) = {st.extra['reference']:.10g} "
                                 f"({st.extra.get('reference_note', 'deal.II step-14 results page')})")
                lines.append("")
                if outdir and png and "effectivities" in st.extra and st.extra["effectivities"]:
                    name = f"{_slug(r.name + '_' + st.name)}.png"
                    plot_dwr(st.extra, os.path.join(outdir, name))
                    lines += [f"![{st.name}]({rel_png}{name})", ""]
            else:
                lines.append(st.markdown(level=4))
                if st.extra:
                    lines += ["```json", json.dumps(st.extra, indent=1, default=float)[:3000], "```", ""]
            if outdir and png and st.variable in ("h", "dt") and len(st.entries[0].h) > 1:
                name = f"{_slug(r.name + '_' + st.name)}.png"
                st.plot(os.path.join(outdir, name))
                lines += [f"![{st.name}]({rel_png}{name})", ""]
    return "\n".join(lines)


def verification_header(results: list[SuiteResult], command: str) -> str:
    npass = sum(r.status == "pass" for r in results)
    return (f"Generated by `{command}`. {npass}/{len(results)} suites pass; "
            f"{sum(r.status == 'not available' for r in results)} not available.\n")


# ---------------------------------------------------------------------------------------------
# validation pipeline
# ---------------------------------------------------------------------------------------------

@dataclass
class ValidationOutcome:
    result: object                      # validation.ValidationResult
    calibration: object                 # validation.Calibration
    calibration_data: object
    validation_data: object
    markdown: str
    summary: dict = field(default_factory=dict)


def run_validation(comm, cfg: ValidationSection, base_dir: str = ".") -> ValidationOutcome:
    """Calibrate the chosen parameters on the calibration data, then propagate all input
    uncertainties (calibrated ones by their posterior) to every validation point and compare."""
    from . import validation as va
    from .composite import effective_young

    cal_d = va.read_dataset(os.path.join(base_dir, cfg.calibration_data))
    val_d = va.read_dataset(os.path.join(base_dir, cfg.validation_data))
    specs = {i.name: i for i in cfg.inputs}
    fixed = {n: (s.a if s.dist != "uniform" else 0.5 * (s.a + s.b)) for n, s in specs.items()}

    def model(x, p):
        q = dict(fixed)
        q.update(p)
        return np.array([effective_young(cfg.model, float(f), q["E_m"], q["nu_m"], q["E_p"], q["nu_p"]) for f in x["f"]])

    prior = {}
    for n in cfg.calibrate:
        s = specs[n]
        prior[n] = (s.a, s.b) if s.dist == "uniform" else (s.a - 5 * s.b, s.a + 5 * s.b)
    if cfg.method == "bayesian":
        cal = va.calibrate_bayesian_grid(model, cal_d, prior, n=cfg.grid_points)
    else:
        cal = va.calibrate_least_squares(model, cal_d, {n: 0.5 * (lo + hi) for n, (lo, hi) in prior.items()},
                                         bounds=prior)
    inputs = []
    for n, s in specs.items():
        inputs.append(va.UncertainInput.from_calibration(cal, n) if n in cfg.calibrate
                      else va.UncertainInput(n, s.dist, s.a, s.b))

    def predict(x, sample):
        return effective_young(cfg.model, x["f"], sample["E_m"], sample["nu_m"], sample["E_p"], sample["nu_p"])

    u_num = (lambda x: cfg.numerical_uncertainty * predict(x, fixed)) if cfg.numerical_uncertainty else 0.0
    res = va.validate(comm, val_d, predict, inputs, cfg.samples, cfg.seed, u_num=u_num, calibration=cal)
    md = [f"Model: `{cfg.model}` (hpcmsm.homogenization.bounds), quantity {val_d.quantity} [{val_d.unit}].", "",
          f"Calibration ({cal.method}) on `{cal_d.name}`"
          + (" (**synthetic data**)" if cal_d.synthetic else f" ({cal_d.provenance.get('citation', '')})") + ": "
          + ", ".join(f"{k} = {v:.4g} ± {cal.std[k]:.2g}" for k, v in cal.params.items())
          + f" (χ² = {cal.chi2:.3g}, {cal.dof} degrees of freedom).", "",
          "Uncertain inputs: " + ", ".join(f"{i.name} ~ {i.dist}({i.a:.4g}, {i.b:.3g})" for i in inputs)
          + f"; {cfg.samples} Latin-hypercube samples per point (seed {cfg.seed}).", "",
          res.markdown()]
    from ..audit import Audit

    audit = Audit()
    audit.add("calibration: reduced chi^2 (fit quality on calibration data)", cal.chi2 / max(cal.dof, 1), 4.0, "<=",
              note="> 4: the model cannot fit its own calibration data")
    if "posterior" in cal.extra:
        post = cal.extra["posterior"]
        for ax in range(post.ndim):
            marg = post.sum(axis=tuple(a for a in range(post.ndim) if a != ax))
            audit.add(f"calibration: posterior mass at the prior edges ({cal.names[ax]})",
                      float(marg[:2].sum() + marg[-2:].sum()), 1e-3, "<=", note="widen the prior if this fails")
    audit.add("validation: prediction samples finite", float(not all(np.isfinite(p.S) and np.isfinite(p.u_input)
                                                                    for p in res.points)), 0.0, "<=")
    md += ["", "```", audit.summary(), "```", ""]
    return ValidationOutcome(res, cal, cal_d, val_d, "\n".join(md),
                             {"validation": res.as_dict(), "calibration": cal.as_dict(), "audit": audit.as_dict()})


def plot_validation(out: ValidationOutcome, path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = out.result
    fig, ax = plt.subplots(figsize=(5, 4))
    cd, vd = out.calibration_data, out.validation_data
    ax.errorbar(cd.x["f"], cd.y, 2 * cd.u_y, fmt="s", color="C1", label="calibration data (±2u)")
    ax.errorbar(vd.x["f"], vd.y, 2 * vd.u_y, fmt="o", color="C0", label="validation data (±2u)")
    f = [p.x["f"] for p in r.points]
    S = np.array([p.S for p in r.points])
    ui = np.array([p.u_input for p in r.points])
    ax.plot(f, S, "k-", label="prediction S")
    ax.fill_between(f, S - 2 * ui, S + 2 * ui, color="k", alpha=0.2, label="±2 u_input")
    ax.set_xlabel("particle volume fraction f")
    ax.set_ylabel(f"{vd.quantity} [{vd.unit}]")
    syn = " (synthetic data)" if vd.synthetic else ""
    ax.set_title(f"validation{syn}", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------
# the V&V hierarchy
# ---------------------------------------------------------------------------------------------

@dataclass
class Hierarchy:
    levels: list[dict]
    verified: bool
    validation: ValidationOutcome | None
    markdown: str

    def as_dict(self) -> dict:
        return {"levels": self.levels, "verified": self.verified,
                "validation": self.validation.summary if self.validation else None}


def hierarchy_report(comm, results: list[SuiteResult], validation_cfg: ValidationSection | None,
                     base_dir: str = ".") -> Hierarchy:
    """Consistency → MMS → DWR → validation. Validation runs (and is reported) only if every
    verification level has at least one passing suite and no failing or crashing one."""
    levels, md, verified = [], ["## V&V hierarchy", ""], True
    for kind, title in LEVELS:
        rs = [r for r in results if r.kind == kind]
        bad = [r.name for r in rs if r.status in ("fail", "error")]
        good = [r.name for r in rs if r.status == "pass"]
        na = [r.name for r in rs if r.status == "not available"]
        ok = bool(good) and not bad
        verified &= ok
        levels.append({"level": title, "passed": ok, "pass": good, "fail": bad, "not_available": na})
        md.append(f"- {title}: {'**passed**' if ok else '**FAILED**'} (pass: {', '.join(good) or '—'}"
                  + (f"; fail: {', '.join(bad)}" if bad else "") + (f"; not available: {', '.join(na)}" if na else "")
                  + ("; nothing ran" if not rs else "") + ")")
    md.append("")
    outcome = None
    title4 = "4. Validation against independent data with UQ"
    if not verified:
        md += [f"- {title4}: **NOT REPORTED** — verification failed above; a comparison with experiments "
               "means nothing while the code does not solve its own equations correctly.", ""]
        levels.append({"level": title4, "passed": None, "reported": False})
    elif validation_cfg is None:
        md += [f"- {title4}: not requested.", ""]
        levels.append({"level": title4, "passed": None, "reported": False})
    else:
        outcome = run_validation(comm, validation_cfg, base_dir)
        md += [f"- {title4}: reported below.", "", "### Validation", "", outcome.markdown]
        levels.append({"level": title4, "passed": None, "reported": True,
                       "fraction_within": outcome.result.fraction_within})
    return Hierarchy(levels, verified, outcome, "\n".join(md))


USAGE_EXAMPLE = """\
import sympy as sp
from mpi4py import MPI
from hpcmsm.vv import mms, tri, dwr
from hpcmsm.vv.convergence import ConvergenceStudy, gci_three_grid

comm = MPI.COMM_WORLD
x, y = mms.coords(2)
ms = mms.diffusion(sp.sin(sp.pi * x) * sp.sin(sp.pi * y), conductivity=1 + x * y)  # -div(k grad u) = f

def solve(n):   # replace by your solver: source ms.fn("source"), boundary data ms.fn("u")
    V = tri.space(tri.square_mesh(n), 1)
    A, b = tri.assemble(V, ms.fn("conductivity"), ms.fn("source"))
    u = dwr.solve_dirichlet(comm, V, A, b, ms.fn("u"))
    e_l2, e_h1 = tri.l2_h1_errors(V, u, ms.fn("u"), ms.fn("grad_u"))
    return {"h": 1.0 / n, "errors": {"L2": e_l2, "H1": e_h1}}

result = ConvergenceStudy("my solver", solve, expected={"L2": 2, "H1": 1}).run([8, 16, 32])
assert result.passed
print(result.markdown())   # per-level errors, pairwise and least-squares orders, pass/fail
gci = gci_three_grid((0.9713, 0.9702, 0.9658), r21=2, r32=2)   # a QoI on three grids, finest first
print(f"p = {gci.p:.2f}, extrapolated {gci.phi_ext21:.5f}, GCI_fine = {100 * gci.gci_fine21:.2f} %")
"""


DWR_EXAMPLE = """\
import numpy as np
from mpi4py import MPI
from hpcmsm.vv import dwr_elasticity as de, tri

# plane strain, clamped on x = 0, traction (0, -0.1) on x = 2: a cantilever; QoI = mean σ_xx over
# the cells of [0, 0.25] × [0, 0.25] (next to the clamped corner)
prob = de.ElasticityProblem(
    tri.square_mesh(4, 0, 2, 0, 1), lam=1.0, mu=0.5,
    dirichlet=lambda P: np.zeros((len(P), 2)),
    traction=lambda P: np.where(np.isclose(P[:, [0]], 2.0), [[0.0, -0.1]], [[0.0, 0.0]]),
    neumann=lambda P: ~np.isclose(P[:, 0], 0.0),                 # Γ_N: every edge except x = 0
    region=lambda P: (P[:, 0] < 0.25) & (P[:, 1] < 0.25), component="xx")
res = de.adapt(MPI.COMM_WORLD, prob, tol=2e-3, theta=0.5, max_steps=25)
last = res.steps[-1]
print(f"J(u_h) = {last.qoi:.5f}, DWR estimate {last.estimate:.2e}, corrected {last.qoi + last.estimate:.5f}")
"""


DOC_INTRO = """# Verification

*This page is generated: `./run verify --hierarchy --validation examples/validation_composite.toml
--docs docs/verification.md`. Do not edit it by hand.*

hpcmsm verifies its solvers by the **method of manufactured solutions** (MMS): an exact solution
is chosen symbolically (`hpcmsm.vv.mms`, sympy), the source terms and boundary data are derived
automatically, and the solver is run on a sequence of refined meshes (or time steps). The
observed order of accuracy — pairwise and a least-squares fit over the finest levels
(`hpcmsm.vv.convergence`) — must match the theoretical order of the discretisation (L2: p+1,
H1: p for degree-p elements; 1 for backward Euler in time) within the stated tolerance. An
inconsistent discretisation (a wrong coefficient, a sign error) produces an error plateau and an
order near zero: `./run verify fem-diffusion --inject-bug fem-diffusion` multiplies one
coefficient inside the solver call by 1.05 and the suite fails (this is tested for the macro FE
diffusion solver, the V&V module's own solver, the phase-field Allen–Cahn solver and, with
`--runslow`, every suite).

Solution verification uses the **dual-weighted residual** estimator (`hpcmsm.vv.dwr`) on deal.II's
step-14 point-value benchmark (Exercise 2.3: −Δu = 1 on (−1,1)² without the central square
[−½,½]², u = 0 on the boundary, J(u) = u(0.75, 0.75); reference value 0.0334473 from step-14's
results page), and the elasticity estimator (`hpcmsm.vv.dwr_elasticity`) on the **average stress
in a region** next to a corner singularity, whose exact value is closed-form (suite
`dwr-elasticity`, below); the effectivity index η / (J(u) − J(u_h)) must stay in [0.8, 1.25]. The GCI
machinery reproduces the worked example of Celik et al. (2008), J. Fluids Eng. 130, 078001,
Table 1, first column (the other columns are not checked).

The consistency level also checks the RVE solver (`hpcmsm.homogenization`): Hill–Mandel residuals
of KUBC/PBC/TUBC and the ordering Reuss ≤ TUBC ≤ PBC ≤ KUBC ≤ Voigt.

Suites whose solver module is missing on this installation are listed as *not available*; the
V&V hierarchy (consistency → MMS → DWR → validation) does not report validation if any
verification level failed. Validation is documented in [validation.md](validation.md).

## Using the tools on your own solver

The manufactured solution, the convergence study and the GCI work with any solver that returns
an error norm (this example is executed by `tests/vv/test_vv_verify_cli.py`):

```python
""" + USAGE_EXAMPLE + """```

`hpcmsm.vv.mms` also provides `small_strain_elasticity`, `small_strain_anisotropic`,
`finite_strain_elasticity` (any strain energy W(F); default compressible neo-Hooke),
`cahn_hilliard` (field-dependent mobility, any ψ) and `allen_cahn`; `ms.fn(name)` returns a
vectorised numpy function of points (n, d) and time.

## Methods

* **Observed order**: pairwise `p_i = ln(e_i/e_{i+1}) / ln(h_i/h_{i+1})` and the least-squares
  slope of `ln e` against `ln h` over the finest levels; pass if `|p_LSQ − p_expected| ≤ tol`.
* **Richardson extrapolation and GCI** (Roache; procedure of Celik et al. 2008): apparent order
  from three grids by fixed-point iteration (non-constant ratios, oscillatory convergence),
  `φ_ext = (r^p φ1 − φ2)/(r^p − 1)`, `GCI_fine = 1.25 |(φ1 − φ2)/φ1| / (r^p − 1)` for three or
  more grids (`Fs = 3` for two grids).
* **DWR** (Becker & Rannacher): `J(u) − J(u_h) = ℓ(z) − a(u_h, z)` with the adjoint
  `a(v, z) = J(v)`. Primal P1 on triangles, adjoint P2 on the same mesh (deal.II used Q1/Q2 on
  quadrilaterals); cell indicators `η_K = ∫_K f w − ½ Σ_e ∫_e ⟦k ∂_n u_h⟧ w`, `w = z_h − I_h z_h`;
  Dörfler marking and newest-vertex bisection (conforming, no hanging nodes). QoIs: point values,
  weighted means and boundary fluxes `∫_Γ k ∂_n u` (via `J(u) = a(u, ψ) − ℓ(ψ)`; effectivity
  1.01–1.08 on the flux through the hole of step-14's domain, tested).
* **Non-homogeneous Dirichlet data**: `u_h = I_h g` on the boundary, so `u − u_h ∉ H¹₀`. Writing
  `u − u_h = e_0 + e_g` with a lifting `e_g` of `g − I_h g` gives the extra term
  `J(e_g) − a(e_g, z)`; with the P2 lifting (`g(m) − ½(g(a) + g(b))` at the midpoint of each
  Dirichlet edge) it is `e_g · (j_2 − A_2 z_2)`, the data error weighted by the discrete dual
  reactions, and it lives in the one cell owning each boundary edge. It is of leading order for
  flux QoIs: on the flux through step-14's hole with non-zero data the effectivity is 1.01 with
  it and 2.0 without it (tested), likewise for elasticity (0.24–0.34 without it on uniform meshes of the smooth test problem).
* **Elasticity** (`hpcmsm.vv.dwr_elasticity`): `−∇·σ(u) = b`, plane strain or plane stress,
  `λ`, `μ` constant per cell; `u = g` on Γ_D, `σn = t` on Γ_N. QoI `J(u) = (1/|ω|) ∫_ω σ_ij dx`
  for ij = xx, yy or xy over a region ω made of cells of the initial mesh (so `J(u_h)` is exact).
  Indicators: `∫_K b·w − ½ Σ ∫_e ⟦σ(u_h)n⟧·w + Σ_{Γ_N} ∫_e (t − σ(u_h)n)·w` plus the data term.
  Verified (tests/vv/test_vv_dwr_elasticity.py) on (i) a smooth manufactured solution with
  non-zero boundary data and a traction edge, exact J by quadrature of the symbolic stress, σ_xy
  plane strain and σ_xx plane stress: effectivity in [0.8, 1.25] on every mesh with ≥ 100
  vertices; (ii) the corner problem u = ∇ Re z^{3/2} (divergence-free and harmonic, so b = 0;
  σ ~ r^{−1/2}), mean σ_xy over [0, ¼]², exact `2μ/a² [φ(a,a) − φ(0,a) − φ(a,0)]`: effectivity
  0.95–1.00, and adaptive refinement reaches the error of a 4 225-vertex uniform mesh with 219
  vertices (about 20× fewer; the tests require 5×).
* **Parallel model** (`hpcmsm.vv.dwr_parallel`): the mesh and its refinement are replicated on
  every rank (deterministic), the cells are partitioned by recursive coordinate bisection of
  their centroids, and each rank computes the element matrices, QoI loads and indicators of its
  own cells only; the matrix rows go to their owners and the systems are solved by CG + GAMG
  (prefixes `dwr_primal_`/`dwr_dual_`, `dwre_primal_`/`dwre_dual_` for elasticity, with the
  rigid-body near-null space). Solutions and indicators are gathered on every rank; marking cuts
  the sorted indicators only at gaps far above solver round-off, so the mesh sequence is
  identical at any rank count (tested at 1, 2 and 3 ranks). Not distributed: the mesh itself, its
  refinement and the edge connectivity (O(cells) memory and work per rank; about 2 % of an
  estimate-and-refine step at 66 049 vertices, see the issue-8 section of performance.md). Distributing them would mean replacing `hpcmsm.vv.tri` (mesh, bisection
  with its closure, P2 edge numbering) by DMPlex + PetscSection, with a refinement whose closure
  crosses rank boundaries; that was not attempted (DMPlex's parallel simplex refinement
  transforms were not evaluated).

## Goal-oriented estimation for your own elasticity problem

This example (executed by `tests/vv/test_vv_dwr_elasticity.py`) estimates the error in the mean
σ_xx next to the clamped corner of a cantilever and refines until |η| < 2·10⁻³:

```python
""" + DWR_EXAMPLE + """```

## Step-14 to the reference's precision (benchmark, run once)

`./run python benchmarks/vv_dwr_step14.py --tol 3e-7` (serial, shared and heavily loaded
machine; wall times are from that one run and only indicative):

| refinement | steps | final P1 DOFs | J(u_h) | η | J(u_h) + η | DOFs for error < 1e-4 | DOFs for error < 1e-5 | wall [s] |
|---|---|---|---|---|---|---|---|---|
| adaptive (DWR, θ = 0.6) | 31 | 451 342 | 0.03344697 | 2.53e-7 | 0.03344722 | 810 | 9 139 | 529 |
| uniform | 8 | 198 144 | 0.03343996 | 5.92e-6 | 0.03344588 | 3 264 | 198 144 | 110 |

The corrected value J(u_h) + η = 0.03344722 agrees with deal.II's extrapolated 0.0334473 within
its stated ±1e-7. Below errors of about 1e-6 the reference's own uncertainty dominates the
effectivity index (0.77 at the last step, where the error is 3.3e-7 ± 1e-7), so the tests check
effectivities only on the meshes with error ≫ 1e-7.
"""
