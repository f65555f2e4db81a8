"""Linear-solver plumbing shared by the FE problems: prefixed KSPs with sensible defaults."""
from __future__ import annotations

import numpy as np

from ..parallel import petsc_options

ELASTICITY_DEFAULTS = {"ksp_type": "cg", "pc_type": "gamg", "ksp_rtol": "1e-10", "ksp_max_it": "1000"}
DIFFUSION_DEFAULTS = {"ksp_type": "cg", "pc_type": "gamg", "ksp_rtol": "1e-10", "ksp_max_it": "1000"}


def make_ksp(comm, A, prefix: str, defaults: dict, options: dict | None = None):
    """A KSP with options prefix ``prefix``; ``defaults`` < TOML ``options`` < command line."""
    from petsc4py import PETSc

    ksp = PETSc.KSP().create(comm=comm)
    ksp.setOptionsPrefix(prefix)
    ksp.setOperators(A)
    merged = dict(defaults)
    merged.update(options or {})
    with petsc_options(prefix, merged):
        ksp.setFromOptions()
    return ksp


def rigid_body_modes(space):
    """Rigid-body near-nullspace of a vector space (translations + rotations) for GAMG."""
    from petsc4py import PETSc

    m = space.mesh
    X = PETSc.Vec().createMPI((m.n_owned * m.dim, m.n_global * m.dim), bsize=m.dim, comm=space.comm)
    X.setArray(np.ascontiguousarray(m.points[:m.n_owned]).ravel())
    ns = PETSc.NullSpace().createRigidBody(X)
    X.destroy()
    return ns


def ksp_info(ksp) -> dict:
    return {"iterations": int(ksp.getIterationNumber()), "reason": int(ksp.getConvergedReason()),
            "residual_norm": float(ksp.getResidualNorm())}
