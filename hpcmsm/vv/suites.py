"""Code-verification suites: one per solver, each a set of manufactured-solution convergence
studies with expected orders.  ``hpcmsm verify`` runs them and writes the report.

A suite names the modules it needs; a missing solver shows as *not available* instead of
crashing.  Every suite accepts ``perturb`` (a factor applied to one coefficient *inside the
solver call only*, never to the manufactured source): with ``perturb != 1`` the discretisation
is inconsistent and the order test must fail — that is how the suite proves it can catch a bug.
"""
from __future__ import annotations

import importlib
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .convergence import ConvergenceStudy, StudyResult, evaluate_study


@dataclass
class Suite:
    name: str
    solver: str                      # what is verified (module / class)
    description: str
    requires: tuple[str, ...]        # importable names "module:attr"
    run: Callable                    # run(comm, quick, perturb) -> list[StudyResult]
    kind: str = "code"               # "consistency", "code" (MMS) or "solution" (DWR)


@dataclass
class SuiteResult:
    name: str
    solver: str
    kind: str
    status: str                      # "pass", "fail", "not available", "error"
    studies: list[StudyResult] = field(default_factory=list)
    message: str = ""
    seconds: float = 0.0
    perturb: float = 1.0

    def as_dict(self) -> dict:
        return {"name": self.name, "solver": self.solver, "kind": self.kind, "status": self.status,
                "message": self.message, "seconds": self.seconds, "perturb": self.perturb,
                "studies": [s.as_dict() for s in self.studies]}


def _qp(fn):
    """Adapt an ``f(X (n, d))`` callable to quadrature-point arrays ``x (c, q, d)``."""
    def g(x):
        x = np.asarray(x, float)
        v = fn(x.reshape(-1, x.shape[-1]))
        return v.reshape(x.shape[:-1] + v.shape[1:])
    return g


# ---------------------------------------------------------------------------------------------
# consistency checks of the V&V machinery itself
# ---------------------------------------------------------------------------------------------

def _run_gci(comm, quick: bool, perturb: float = 1.0) -> list[StudyResult]:
    """Celik et al. (2008) Table 1, column 1, and exact Richardson for a power law."""
    from .convergence import gci_three_grid, richardson

    g = gci_three_grid((6.063, 5.972, 5.863), ncells=(18000, 8000, 4500), dim=2)
    printed = {"p": (round(g.p, 2), 1.53), "phi_ext21": (round(g.phi_ext21, 4), 6.1685),
               "e_a21 %": (round(100 * g.ea21, 1), 1.5), "e_ext21 %": (round(100 * g.eext21, 1), 1.7),
               "GCI_fine21 %": (round(100 * g.gci_fine21, 1), 2.2)}
    # encode as a "study" whose errors are the deviations from the printed digits (must be 0)
    res = StudyResult("GCI: Celik et al. (2008) Table 1, reattachment length", "item", [])
    table = ["| quantity | computed (rounded to the printed digits) | published |", "|---|---|---|"]
    table += [f"| {k} | {a} | {b} |" for k, (a, b) in printed.items()]
    res.extra = {"table": "Input: N = 18000, 8000, 4500 cells (2D); φ = 6.063, 5.972, 5.863.\n\n" + "\n".join(table)}
    ok = all(a == b for a, b in printed.values())
    ok &= abs(richardson(1.0 + 0.3 * 0.1 ** 2, 1.0 + 0.3 * 0.2 ** 2, 2.0, 2.0) - 1.0) < 1e-14
    from .convergence import StudyEntry

    res.entries.append(StudyEntry("printed digits", 0.0, [0.0], [0.0 if ok else 1.0], [], 0.0, 0.0, ok, 0))
    return [res]


def _run_mms_symbolic(comm, quick: bool, perturb: float = 1.0) -> list[StudyResult]:
    """The generated sources satisfy their PDEs: finite-difference residuals shrink at order 2."""
    import sympy as sp

    from . import mms

    x, y, t = mms.coords(2, time=True)
    cases = {
        "diffusion": (mms.diffusion(mms.default_scalar(2), conductivity=1 + x * y), "u"),
        "Allen-Cahn": (mms.allen_cahn(sp.sin(2 * sp.pi * x) * sp.cos(sp.pi * y) * sp.exp(-t), 1.5, 0.05), "phi"),
    }
    rng = np.random.default_rng(0)
    X = rng.uniform(0.2, 0.8, (16, 2))
    out = []
    for name, (ms, field_name) in cases.items():
        u = ms.fn(field_name)
        S = ms.fn("source")
        hs, errs = [0.02, 0.01, 0.005], []
        for h in hs:
            lap = (-4 * u(X, 0.1) + sum(u(X + d, 0.1) + u(X - d, 0.1) for d in ([h, 0], [0, h]))) / h ** 2
            if name == "diffusion":
                k = ms.fn("conductivity")
                # −∇·(k∇u) = −k Δu − ∇k·∇u
                gk = np.stack([(k(X + [h, 0]) - k(X - [h, 0])) / (2 * h), (k(X + [0, h]) - k(X - [0, h])) / (2 * h)], 1)
                gu = np.stack([(u(X + [h, 0]) - u(X - [h, 0])) / (2 * h), (u(X + [0, h]) - u(X - [0, h])) / (2 * h)], 1)
                res = S(X) + perturb * (k(X) * lap + (gk * gu).sum(1))
            else:
                dt = h
                dudt = (u(X, 0.1 + dt) - u(X, 0.1 - dt)) / (2 * dt)
                ph = u(X, 0.1)
                res = S(X, 0.1) - dudt - 1.5 * perturb * (ph ** 3 - ph - 0.05 * lap)
            errs.append(float(np.abs(res).max()))
        out.append(evaluate_study(f"symbolic source vs finite differences: {name}", hs, {"max residual": errs},
                                  {"max residual": 2.0}, tolerance=0.3, nfit=3))
    return out


def _run_hill_mandel(comm, quick: bool, perturb: float = 1.0) -> list[StudyResult]:
    """RVE consistency: Hill–Mandel residual of every BC and Reuss ≤ TUBC ≤ PBC ≤ KUBC ≤ Voigt."""
    from ..audit import Audit
    from ..homogenization import driver, microstructure, phases
    from .convergence import StudyEntry

    n = 16 if quick else 32
    micro = microstructure.checkerboard((n, n), 4)
    ks = (1.0, 10.0)
    ph = [phases.isotropic_phase("conductivity", 2, k=k) for k in ks]
    res = driver.solve_all(micro, ph, "conductivity", ("kubc", "periodic", "tubc"), comm)
    audit = Audit()
    for bc, (C, info, _) in res.items():
        driver.audit_tensor(audit, bc, C, info)
    driver.order_checks(audit, {bc: v[0] for bc, v in res.items()}, [k * np.eye(2) for k in ks], [0.5, 0.5])
    st = StudyResult(f"RVE consistency: checkerboard {n}×{n}, conductivity contrast 10", "check", [])
    rows = ["| check | value | tolerance | result |", "|---|---|---|---|"]
    rows += [f"| {c.name} | {c.value:.3e} | {c.relation} {c.tolerance:.0e} | {'pass' if c.passed else '**FAIL**'} |"
             for c in audit.checks]
    st.extra = {"table": "\n".join(rows) + "\n\nk_eff (periodic) = "
                + f"{float(np.trace(res['periodic'][0]) / 2):.5f} (continuum: √(k1 k2) = {np.sqrt(ks[0] * ks[1]):.5f})"}
    st.entries.append(StudyEntry("Hill–Mandel and bound ordering", 0.0, [0.0], [0.0], [], 0.0, 0.0, audit.passed, 0))
    return [st]


# ---------------------------------------------------------------------------------------------
# the V&V module's own P1/P2 triangle solver (used by DWR)
# ---------------------------------------------------------------------------------------------

def _poisson_mms():
    import sympy as sp

    from . import mms

    x, y = mms.coords(2)
    return mms.diffusion(sp.sin(sp.pi * x) * sp.sin(sp.pi * y) * sp.exp(x / 2), conductivity=1 + x ** 2 / 2, dim=2)


def _run_vv_tri(comm, quick: bool, perturb: float = 1.0) -> list[StudyResult]:
    from . import dwr, tri

    ms = _poisson_mms()
    out = []
    for order, levels in ((1, [8, 16, 32] if quick else [8, 16, 32, 64]), (2, [4, 8, 16] if quick else [4, 8, 16, 32])):
        kf = lambda X: perturb * ms.fn("conductivity")(X)  # noqa: E731

        def solve(n, order=order):
            V = tri.space(tri.square_mesh(n), order)
            A, b = tri.assemble(V, kf, ms.fn("source"))
            u = dwr.solve_dirichlet(comm, V, A, b, ms.fn("u"), "verify_")
            e0, e1 = tri.l2_h1_errors(V, u, ms.fn("u"), ms.fn("grad_u"))
            return {"h": 1.0 / n, "errors": {"L2": e0, "H1": e1}, "dofs": V.ndofs}

        st = ConvergenceStudy(f"vv.tri P{order} triangles, −∇·(k∇u) = f, k = 1 + x²/2", solve,
                              {"L2": order + 1, "H1": order}, tolerance=0.15, nfit=2)
        out.append(st.run(levels))
    return out


def _run_dwr(comm, quick: bool, perturb: float = 1.0) -> list[StudyResult]:
    """Solution verification: DWR on deal.II step-14 (point value)."""
    from . import dwr

    prob = dwr.step14_problem()
    if perturb != 1.0:
        prob.conductivity = perturb
    res = dwr.adapt(comm, prob, tol=5e-5 if quick else 5e-6, theta=0.6)
    steps = [s for s in res.steps if s.ndofs >= 100]
    st = StudyResult("DWR: deal.II step-14 point value u(0.75, 0.75), adaptive P1/P2", "DOFs", [],
                     dofs=[s.ndofs for s in res.steps])
    from .convergence import StudyEntry

    effs = [s.effectivity for s in steps]
    table = ["| step | P1 DOFs | J(u_h) | η (DWR) | J(u) − J(u_h) | effectivity |", "|---|---|---|---|---|---|"]
    table += [f"| {i} | {s.ndofs} | {s.qoi:.7f} | {s.estimate:.3e} | {s.error:.3e} | {s.effectivity:.3f} |"
              for i, s in enumerate(res.steps)]
    ok = bool(effs) and all(0.8 <= e <= 1.25 for e in effs)
    last = res.steps[-1]
    st.extra = {"reference": dwr.STEP14_REFERENCE, "final_qoi": last.qoi, "final_estimate": last.estimate,
                "final_error": last.error, "effectivities": effs, "ndofs": [s.ndofs for s in steps],
                "errors": [s.error for s in steps], "estimates": [s.estimate for s in steps],
                "table": "\n".join(table)}
    st.entries.append(StudyEntry("effectivity in [0.8, 1.25]", 1.0, [float(s.ndofs) for s in steps],
                                 [abs(e - 1.0) for e in effs], [], float(np.mean(effs)) if effs else float("nan"),
                                 0.25, ok, len(effs)))
    return [st]


def _run_dwr_elasticity(comm, quick: bool, perturb: float = 1.0) -> list[StudyResult]:
    """Solution verification: DWR for the mean stress in a region (plane elasticity, corner
    singularity, closed-form answer), adaptive against uniform refinement."""
    from . import dwr_elasticity as de
    from .convergence import StudyEntry
    from .dwr import dofs_to_reach

    prob = de.corner_problem()
    if perturb != 1.0:  # solver-side shear modulus only: the exact QoI keeps μ = 1
        prob.mu = perturb
    tol = 1e-3 if quick else 1e-4
    res = de.adapt(comm, prob, tol=tol, theta=0.5, max_steps=60)
    uni = de.adapt(comm, prob, tol=0.0, uniform=True, max_dofs=4000 if quick else 60000)
    steps = [s for s in res.steps if s.ndofs >= 50]
    st = StudyResult(f"DWR elasticity: {prob.name}, adaptive P1/P2", "DOFs", [], dofs=[s.ndofs for s in res.steps])
    effs = [s.effectivity for s in steps]
    table = ["| step | vertices | J(u_h) | η (DWR) | J(u) − J(u_h) | effectivity |", "|---|---|---|---|---|---|"]
    table += [f"| {i} | {s.ndofs} | {s.qoi:.7f} | {s.estimate:.3e} | {s.error:.3e} | {s.effectivity:.3f} |"
              for i, s in enumerate(res.steps)]
    table += ["", "Uniform refinement (same estimator):", "",
              "| vertices | J(u_h) | η | J(u) − J(u_h) | effectivity |", "|---|---|---|---|---|"]
    table += [f"| {s.ndofs} | {s.qoi:.7f} | {s.estimate:.3e} | {s.error:.3e} | {s.effectivity:.3f} |"
              for s in uni.steps]
    ok = bool(effs) and all(0.8 <= e <= 1.25 for e in effs)
    last = res.steps[-1]
    target = abs(uni.steps[-1].error)
    n_ad, n_un = dofs_to_reach(res, target * 1.0001), dofs_to_reach(uni, target * 1.0001)
    st.extra = {"reference": prob.exact_qoi, "reference_note": "closed form, 2μ/a² [φ(a,a) − φ(0,a) − φ(a,0)]",
                "min_dofs": "≥ 50 vertices", "xlabel": "mesh vertices (P1 DOFs / 2)",
                "title": "DWR, plane elasticity, mean σ_xy near a corner singularity",
                "final_qoi": last.qoi, "final_estimate": last.estimate, "final_error": last.error,
                "effectivities": effs, "ndofs": [s.ndofs for s in steps], "errors": [s.error for s in steps],
                "estimates": [s.estimate for s in steps],
                "uniform": {"ndofs": [s.ndofs for s in uni.steps], "errors": [s.error for s in uni.steps]},
                "vertices_to_reach_uniform_final_error": {"adaptive": n_ad, "uniform": n_un},
                "table": "\n".join(table)}
    st.entries.append(StudyEntry("effectivity in [0.8, 1.25]", 1.0, [float(s.ndofs) for s in steps],
                                 [abs(e - 1.0) for e in effs], [], float(np.mean(effs)) if effs else float("nan"),
                                 0.25, ok, len(effs)))
    fewer = n_ad is not None and n_un is not None and 3 * n_ad < n_un
    st.entries.append(StudyEntry(f"adaptive reaches the finest uniform error ({target:.2e}) with < 1/3 of the "
                                 f"vertices ({n_ad} vs {n_un})", 0.0, [], [], [], 0.0, 0.0, fewer, 0))
    return [st]


# ---------------------------------------------------------------------------------------------
# hpcmsm.fem: diffusion, small-strain and finite-strain elasticity
# ---------------------------------------------------------------------------------------------

def _run_fem_diffusion(comm, quick: bool, perturb: float = 1.0) -> list[StudyResult]:
    from ..fem import Dirichlet, create_box, error_norms, solve_diffusion

    ms = _poisson_mms()
    out = []
    for cell, p, ns in (("triangle", 1, [8, 16, 32]), ("quadrilateral", 2, [4, 8, 16])):
        def solve(n, cell=cell, p=p):
            mesh = create_box(comm, (n, n), cell=cell, degree=p)
            k = _qp(lambda X: perturb * ms.fn("conductivity")(X))
            res = solve_diffusion(mesh, k, _qp(ms.fn("source")), [Dirichlet("boundary", ms.fn("u"))],
                                  prefix="verify_")
            e0, e1 = error_norms(res.space, res.u_local, _qp(ms.fn("u")), _qp(ms.fn("grad_u")))
            res.u.destroy()
            return {"h": 1.0 / n, "errors": {"L2": e0, "H1": e1}}

        out.append(ConvergenceStudy(f"fem.solve_diffusion {cell} p={p}, k = 1 + x²/2", solve,
                                    {"L2": p + 1, "H1": p}, tolerance=0.15, nfit=2).run(ns if quick else ns + [2 * ns[-1]]))
    return out


def _run_fem_heat(comm, quick: bool, perturb: float = 1.0) -> list[StudyResult]:
    """Temporal refinement: backward Euler must be first order in dt.

    u = w(x) + e^{−λt} sin(πx) sin(πy), λ = 2π²k/ρc: the eigenmode decays, so the source −kΔw and
    the Dirichlet data w are time independent (HeatProblem assembles them once)."""
    import sympy as sp

    from ..fem import Dirichlet, HeatProblem, create_box, error_norms
    from . import mms

    x, y, t = mms.coords(2, time=True)
    lam = 2 * sp.pi ** 2
    w = sp.exp(x / 2) * sp.cos(y) + x * y
    ms_exact = mms.diffusion(w + sp.exp(-lam * t) * sp.sin(sp.pi * x) * sp.sin(sp.pi * y), 1, 2, transient=True)
    ms_w = mms.diffusion(w, 1, 2)
    T = 0.05
    n = 48 if quick else 96
    mesh = create_box(comm, (n, n), cell="quadrilateral", degree=1)
    ue = ms_exact.fn("u")

    def solve(nsteps):
        prob = HeatProblem(mesh, 1.0, perturb, _qp(ms_w.fn("source")), [Dirichlet("boundary", ms_w.fn("u"))],
                           dt=T / nsteps, prefix="verify_heat_")
        prob.set_initial(lambda X: ue(X, 0.0))
        for _ in range(nsteps):
            prob.step()
        ul = prob.space.local_array(prob.u)
        e0, _ = error_norms(prob.space, ul, _qp(lambda X: ue(X, T)))
        prob.destroy()
        return {"h": T / nsteps, "errors": {"L2(t=T)": e0}}

    return [ConvergenceStudy(f"fem.HeatProblem backward Euler, Q1 {n}×{n}, temporal refinement", solve,
                             {"L2(t=T)": 1.0}, tolerance=0.15, nfit=2, variable="dt").run([4, 8, 16, 32])]


def _run_fem_elasticity(comm, quick: bool, perturb: float = 1.0) -> list[StudyResult]:
    from ..fem import Dirichlet, ElasticityProblem, create_box, error_norms
    from ..materials.base import LinearElastic
    from . import mms

    lam, mu = 1.2, 0.8
    ms = mms.small_strain_elasticity(mms.default_displacement(2, 0.1), lam=lam, mu=mu, dim=2)
    out = []
    for cell, p, ns in (("quadrilateral", 1, [8, 16, 32]), ("triangle", 2, [4, 8, 16])):
        def solve(n, cell=cell, p=p):
            mesh = create_box(comm, (n, n), cell=cell, degree=p)
            from ..materials.base import isotropic_stiffness

            mat = LinearElastic(isotropic_stiffness(2, lam=lam * perturb, mu=mu))
            prob = ElasticityProblem(mesh, mat, [Dirichlet("boundary", ms.fn("u"))],
                                     body_force=_qp(ms.fn("body_force")), prefix="verify_")
            prob.solve(1)
            e0, e1 = error_norms(prob.space, prob.space.local_array(prob.u), _qp(ms.fn("u")), _qp(ms.fn("grad_u")))
            prob.destroy()
            return {"h": 1.0 / n, "errors": {"L2": e0, "H1": e1}}

        out.append(ConvergenceStudy(f"fem.ElasticityProblem {cell} p={p}, plane strain", solve,
                                    {"L2": p + 1, "H1": p}, tolerance=0.15, nfit=2).run(ns))
    return out


def _run_fem_finite_strain(comm, quick: bool, perturb: float = 1.0) -> list[StudyResult]:
    from ..fem import Dirichlet, HyperelasticProblem, create_box, error_norms
    from ..materials.hyperelastic import NeoHookean
    from . import mms

    lam, mu = 1.5, 1.0
    ms = mms.finite_strain_elasticity(mms.default_displacement(2, 0.1), mu=mu, lam=lam, dim=2)
    out = []
    for cell, p, ns in (("triangle", 2, [4, 8, 12] if quick else [4, 8, 16]),):
        def solve(n, cell=cell, p=p):
            mesh = create_box(comm, (n, n), cell=cell, degree=p)
            prob = HyperelasticProblem(mesh, NeoHookean(2, lam=lam, mu=mu * perturb), [Dirichlet("boundary", ms.fn("u"))],
                                       body_force=_qp(ms.fn("body_force")), prefix="verify_")
            prob.solve(2)
            e0, e1 = error_norms(prob.space, prob.space.local_array(prob.u), _qp(ms.fn("u")), _qp(ms.fn("grad_u")))
            prob.destroy()
            return {"h": 1.0 / n, "errors": {"L2": e0, "H1": e1}}

        out.append(ConvergenceStudy(f"fem.HyperelasticProblem {cell} p={p}, neo-Hooke", solve,
                                    {"L2": p + 1, "H1": p}, tolerance=0.2, nfit=2).run(ns))
    return out


# ---------------------------------------------------------------------------------------------
# hpcmsm.phasefield: Cahn–Hilliard and Allen–Cahn on a DMDA (cell-centred FV, backward Euler)
# ---------------------------------------------------------------------------------------------

def _run_phasefield(model: str):
    def run(comm, quick: bool, perturb: float = 1.0) -> list[StudyResult]:
        import sympy as sp

        from ..phasefield.energies import DoubleWell
        from ..phasefield.solver import PhaseFieldSolver, SolverOptions
        from . import mms

        rho, ca, cb, kappa, M = 2.0, 0.3, 0.7, 0.01, 1.0
        psi = lambda c: rho * (c - ca) ** 2 * (cb - c) ** 2  # noqa: E731
        x, y, t = mms.coords(2, time=True)
        c_ex = 0.5 + 0.15 * sp.cos(2 * sp.pi * x) * sp.sin(2 * sp.pi * y + 1) * sp.exp(-t) + 0.05 * sp.sin(2 * sp.pi * x)
        ms = (mms.cahn_hilliard(c_ex, M, kappa, 2, psi) if model == "ch" else mms.allen_cahn(c_ex, M, kappa, 2, psi))
        name = "c" if model == "ch" else "phi"
        src, ue = ms.fn("source"), ms.fn(name)

        def source(X, Y, tt):
            return src(np.stack([X.ravel(), Y.ravel()], 1), tt).reshape(np.shape(X))

        T = 0.25
        ns = [8, 16, 32] if quick else [8, 16, 32, 64]

        def solve(n):
            h = 1.0 / n
            nsteps = int(round(T / (4 * h * h)))  # dt = 4 h²: backward Euler O(dt) balances O(h²)
            dt = T / nsteps
            solver = PhaseFieldSolver(comm, model, (n, n), (1.0, 1.0), True, DoubleWell(rho, ca, cb),
                                      kappa * perturb, M, source=source,
                                      options=SolverOptions(scheme="implicit", snes_rtol=1e-12, snes_atol=1e-13,
                                                            ksp_rtol=1e-10), prefix=f"verify_{model}_")
            X, Y = solver._xyz[:2]
            pts = np.stack([X.ravel(), Y.ravel()], 1)
            solver.set_state(ue(pts, 0.0).reshape(np.shape(X)))
            for k in range(nsteps):
                r = solver.step(dt, (k + 1) * dt)
                if not r.converged:
                    raise RuntimeError(f"{model} step {k} did not converge (reason {r.reason})")
            err = solver.field(0) - ue(pts, T).reshape(np.shape(X))
            e2 = solver.grid.sum(float(np.sum(err ** 2))) * solver.grid.cell_volume
            solver.destroy()
            return {"h": h, "errors": {"L2(t=T)": float(np.sqrt(e2))}}

        title = "Cahn–Hilliard" if model == "ch" else "Allen–Cahn"
        return [ConvergenceStudy(f"phasefield {title}, periodic, backward Euler, dt = 4h²", solve,
                                 {"L2(t=T)": 2.0}, tolerance=0.2, nfit=2).run(ns)]
    return run


SUITES: dict[str, Suite] = {}


def register(suite: Suite) -> Suite:
    SUITES[suite.name] = suite
    return suite


register(Suite("gci", "hpcmsm.vv.convergence", "GCI/Richardson reproduce Celik et al. (2008) Table 1",
               (), _run_gci, "consistency"))
register(Suite("mms-symbolic", "hpcmsm.vv.mms", "sympy sources satisfy their PDEs (FD residual → 0 at order 2)",
               (), _run_mms_symbolic, "consistency"))
register(Suite("rve-hill-mandel", "hpcmsm.homogenization.RVEProblem",
               "Hill–Mandel condition and Reuss ≤ TUBC ≤ PBC ≤ KUBC ≤ Voigt on a checkerboard RVE",
               ("hpcmsm.homogenization.driver:solve_all", "hpcmsm.homogenization.microstructure:checkerboard"),
               _run_hill_mandel, "consistency"))
register(Suite("vv-tri", "hpcmsm.vv.tri", "P1/P2 triangles (the DWR solver): L2/H1 orders", ("petsc4py.PETSc",),
               _run_vv_tri))
register(Suite("fem-diffusion", "hpcmsm.fem.solve_diffusion", "macro FE diffusion, P1 triangles and Q2 quads",
               ("hpcmsm.fem:solve_diffusion", "hpcmsm.fem:error_norms"), _run_fem_diffusion))
register(Suite("fem-heat", "hpcmsm.fem.HeatProblem", "transient diffusion, backward Euler: order 1 in dt",
               ("hpcmsm.fem:HeatProblem",), _run_fem_heat))
register(Suite("fem-elasticity", "hpcmsm.fem.ElasticityProblem", "small-strain elasticity, Q1 and P2",
               ("hpcmsm.fem:ElasticityProblem",), _run_fem_elasticity))
register(Suite("fem-finite-strain", "hpcmsm.fem.HyperelasticProblem", "finite-strain neo-Hooke, P2 triangles",
               ("hpcmsm.fem:HyperelasticProblem", "hpcmsm.materials.hyperelastic:NeoHookean"), _run_fem_finite_strain))
for _m, _t in (("ch", "Cahn–Hilliard"), ("ac", "Allen–Cahn")):
    register(Suite(f"phasefield-{_m}", "hpcmsm.phasefield.PhaseFieldSolver",
                   f"{_t} with a manufactured source, space-time refinement (dt ∝ h²)",
                   ("hpcmsm.phasefield.solver:PhaseFieldSolver", "hpcmsm.phasefield.energies:DoubleWell"),
                   _run_phasefield(_m)))
register(Suite("dwr-step14", "hpcmsm.vv.dwr", "DWR effectivity on deal.II step-14 (solution verification)",
               ("petsc4py.PETSc",), _run_dwr, "solution"))
register(Suite("dwr-elasticity", "hpcmsm.vv.dwr_elasticity",
               "DWR for the mean stress in a region, plane elasticity with a corner singularity (solution verification)",
               ("petsc4py.PETSc",), _run_dwr_elasticity, "solution"))


def availability(suite: Suite) -> tuple[bool, str]:
    for req in suite.requires:
        mod, _, attr = req.partition(":")
        try:
            m = importlib.import_module(mod)
            if attr and not hasattr(m, attr):
                return False, f"{mod} has no {attr}"
        except Exception as e:  # ImportError or a broken solver module: report, don't crash
            return False, f"cannot import {mod}: {type(e).__name__}: {e}"
    return True, ""


def run_suite(comm, name: str, quick: bool = True, perturb: float = 1.0) -> SuiteResult:
    """Run one suite collectively; failures inside a solver become status ``error``."""
    suite = SUITES[name]
    ok, why = availability(suite)
    if not ok:
        return SuiteResult(name, suite.solver, suite.kind, "not available", message=why, perturb=perturb)
    t0 = time.perf_counter()
    try:
        studies = suite.run(comm, quick, perturb)
        status = "pass" if all(s.passed for s in studies) else "fail"
        msg = ""
    except Exception as e:  # a crash of one solver must not hide the others' results
        studies, status = [], "error"
        msg = f"{type(e).__name__}: {e}\n" + "".join(traceback.format_exception(type(e), e, e.__traceback__, limit=-3))
    return SuiteResult(name, suite.solver, suite.kind, status, studies, msg, time.perf_counter() - t0, perturb)
