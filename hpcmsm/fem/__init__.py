"""Macroscale finite elements on distributed meshes (see docs/fem.md).

Public API::

    mesh = create_box(comm, (16, 16), cell="quadrilateral", degree=2)   # or read_mesh(comm, "a.msh")
    res = solve_diffusion(mesh, kappa=1.0, source=f, dirichlet=[Dirichlet("boundary", g)])
    prob = ElasticityProblem(mesh, material, dirichlet=[...], traction=[...]); prob.solve(nsteps)
    prob = HyperelasticProblem(mesh, NeoHookean(...), ...); prob.solve(nsteps)
"""
from .mesh import GlobalMesh, Mesh, box_global, create_box, distribute, read_gmsh, read_mesh, write_gmsh2  # noqa: F401
from .elements import Element  # noqa: F401
from .space import FunctionSpace  # noqa: F401
from .bcs import Dirichlet, Neumann  # noqa: F401
from .norms import error_norms, observed_orders  # noqa: F401
from .diffusion import solve_diffusion, HeatProblem, DiffusionResult  # noqa: F401
from .mechanics import ElasticityProblem, HyperelasticProblem, MaterialGroup  # noqa: F401
