"""The Python example in docs/fem.md runs and its assertions hold (serial and under MPI)."""
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.mpi
def test_fem_doc_example(capsys):
    text = open(os.path.join(ROOT, "docs", "fem.md")).read()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    for b in blocks:
        exec(compile(b, "docs/fem.md", "exec"), {})
    out = capsys.readouterr().out
    assert "checks passed" in out


@pytest.mark.mpi
@pytest.mark.parametrize("opts", [{"pc_type": "hypre"},
                                  {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"}])
def test_alternative_solvers_selectable(comm, opts):
    """BoomerAMG and MUMPS through the macro_ options give the same field as CG+GAMG."""
    import numpy as np

    from hpcmsm.fem import Dirichlet, ElasticityProblem, create_box
    from hpcmsm.materials.base import LinearElastic

    mesh = create_box(comm, (4, 2, 2), cell="hexahedron")
    bcs = [Dirichlet("xmin", 0.0), Dirichlet("xmax", [0.01, 0.0, 0.02])]
    ref = ElasticityProblem(mesh, LinearElastic.isotropic(3, 1.0, 0.3), bcs)
    ref.solve(1)
    alt = ElasticityProblem(mesh, LinearElastic.isotropic(3, 1.0, 0.3), bcs, petsc_options=opts)
    alt.solve(1)
    assert alt.ksp.getPC().getType() == opts["pc_type"]
    assert np.allclose(alt.u.getArray(), ref.u.getArray(), atol=1e-9)
    ref.destroy()
    alt.destroy()
