"""FE² end to end at 1, 2 and 3 ranks and across group sizes, against rank-independent oracles.

Oracles are computed inside the test on ``COMM_SELF`` (a serial run of the same problem), so
the parallel pool, exchange and domain-decomposed macro solve are checked against serial
results, and the physics against independent single-scale solves.
"""
import json
import os

import numpy as np
import pytest
from mpi4py import MPI

from hpcmsm.config import from_dict
from hpcmsm.fe2.driver import build_macro, run_fe2
from hpcmsm.fe2.inputs import FE2Input
from hpcmsm.fe2.macro import MacroProblem, NewtonDriver
from tests.fe2.fe2_common import fe2_input, history

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def _cfg(outdir, **over):
    base = {
        "macro": {"geometry": "plate_with_hole", "size": 10.0, "hole_radius": 3.0, "cells": [4, 2],
                  "displacement": 0.03, "steps": 3},
        "micro": {"model": "voxel", "voxels": 4, "microstructure": "homogeneous",
                  "matrix": {"E": 70e3, "nu": 0.33, "sigma_y": 100.0, "H": 500.0}},
        "pool": {"group_size": 1, "balance": "round_robin"},
        "output": {"dir": outdir, "png": False},
    }
    return fe2_input(base, over)


def _direct(cfg, comm, material):
    """Single-scale macro solve with ``material`` on the same mesh and load steps."""
    mesh, bcs, loaded = build_macro(cfg)
    p = MacroProblem(comm, mesh, [(material, np.arange(len(mesh.cells)))], bcs)
    drv = NewtonDriver(p, rtol=cfg.newton.rtol)
    F = []
    for k in range(1, cfg.macro.steps + 1):
        r = drv.step(k / cfg.macro.steps)
        assert r.converged, r.message
        F.append(p.reaction(drv.f_int, loaded, 0))
    u = p.x.array.copy()
    p.destroy()
    return np.array(F), u


@pytest.mark.mpi
def test_homogeneous_j2_fe2_equals_direct_macro_j2(comm, shared_tmp):
    """One-phase J2 RVEs: FE² reaction history equals direct macro J2 plasticity (the macro FE
    team's J2 implementation), at any rank count and group size."""
    from hpcmsm.materials.j2 import J2Plasticity

    cfg = _cfg(os.path.join(shared_tmp, "a"))
    F_ref, _ = _direct(cfg, comm, J2Plasticity(2, 70e3, 0.33, 100.0, H_iso=500.0))
    for g in (1,):   # group sizes > 1 are covered by test_composite_fe2_rank_and_group_independent
        cfg = _cfg(os.path.join(shared_tmp, f"g{g}"), pool={"group_size": g})
        s = run_fe2(cfg, comm, quiet=True)
        h = history(s)
        assert np.allclose(h["reaction"], F_ref, rtol=1e-8), (h["reaction"], F_ref)
        assert h["plastic_qps"][-1] > 0                    # plasticity really happened
        assert s["audit_passed"], s["audit"]
        # Newton with the condensed tangent converges quadratically
        assert min(o for o in s["newton_orders"]) > 1.6, s["newton_orders"]


@pytest.mark.mpi
def test_linear_micro_fe2_equals_single_scale_with_pbc_tensor(comm, shared_tmp):
    """Elastic two-phase RVEs: FE² equals a single-scale solve with the PBC-homogenized tensor."""
    from hpcmsm.fe2.driver import micro_factory
    from hpcmsm.materials.base import LinearElastic

    over = dict(micro={"microstructure": "particle", "voxels": 8, "volume_fraction": 0.3,
                       "matrix": {"E": 70e3, "nu": 0.33}, "particle": {"E": 400e3, "nu": 0.2}},
                macro={"steps": 2})
    cfg = _cfg(os.path.join(shared_tmp, "lin"), **over)
    C_hom = micro_factory(cfg)(None).elastic_tangent()
    F_ref, _ = _direct(cfg, comm, LinearElastic(C_hom))
    s = run_fe2(cfg, comm, quiet=True)
    h = history(s)
    assert np.allclose(h["reaction"], F_ref, rtol=1e-9)
    # elastic everywhere: every RVE evaluation after the first is an exact reuse
    assert s["rve_reused"] == s["rve_solves"]
    assert s["audit_passed"]


@pytest.mark.mpi
def test_composite_fe2_rank_and_group_independent(comm, shared_tmp):
    """Particle-reinforced J2 composite: the parallel run (any group size, cost balancing on)
    equals a serial run of the same input on COMM_SELF."""
    over = dict(micro={"microstructure": "particle", "voxels": 6, "volume_fraction": 0.3,
                       "particle": {"E": 400e3, "nu": 0.2}},
                pool={"balance": "cost", "cost_measure": "iterations"}, macro={"steps": 2})
    # serial oracle computed by every rank itself (no rank idles in a busy-waiting collective)
    ref = run_fe2(_cfg(os.path.join(shared_tmp, f"serial{comm.rank}"), **over), MPI.COMM_SELF, quiet=True)
    # one group spanning all ranks (voxels split over the group); one rank per group is the
    # default in every other test
    for g in (comm.size,):
        o = dict(over, pool={**over["pool"], "group_size": g})
        s = run_fe2(_cfg(os.path.join(shared_tmp, f"par{g}"), **o), comm, quiet=True)
        a, b = history(s), history(ref)
        for key in ("reaction", "external_work", "stored_energy", "dissipation"):
            assert np.allclose(a[key], b[key], rtol=1e-8, atol=1e-12), key
        assert s["audit_passed"], s["audit"]
        assert a["dissipation"][-1] > 0


@pytest.mark.mpi
def test_output_files(comm, shared_tmp):
    import h5py

    out = os.path.join(shared_tmp, "o")
    cfg = _cfg(out, micro={"microstructure": "particle", "voxels": 6, "volume_fraction": 0.3},
               output={"micro_points": [[3.1, 0.3]], "micro_qps": [1]}, macro={"steps": 2})
    s = run_fe2(cfg, comm, quiet=True)
    comm.Barrier()
    if comm.rank == 0:
        for f in ("fe2_macro.xdmf", "fe2_macro_000002.h5", "fe2_rve_000002.h5", "fe2_load_displacement.csv",
                  "fe2_summary.json", "fe2_micro_qp1.xdmf", "fe2_micro_qp1_000002.h5"):
            assert os.path.exists(os.path.join(out, f)), f
        with h5py.File(os.path.join(out, "fe2_rve_000002.h5"), "r") as f:
            assert f["stress"].shape == (s["quadrature_points"], 3)
            assert np.array_equal(f["qp_id"][...], np.arange(s["quadrature_points"]))
            assert f["hill_mandel"][...].max() < 1e-8
        with h5py.File(os.path.join(out, "fe2_micro_qp1_000002.h5"), "r") as f:
            assert f["fields/phase"].shape == (6, 6) and f["fields/phase"][...].sum() > 0
            assert f["fields/displacement"].shape == (7, 7, 3)
        rows = open(os.path.join(out, "fe2_load_displacement.csv")).read().strip().splitlines()
        assert len(rows) == 3


def test_bad_input(tmp_path):
    from hpcmsm.errors import ConfigError, InputError

    with pytest.raises(ConfigError, match="micro.dim"):
        from_dict(FE2Input, {"macro": {"geometry": "box", "dim": 2, "cells": [2, 2]}, "micro": {"dim": 3}})
    with pytest.raises(ConfigError, match="plate_with_hole"):
        from_dict(FE2Input, {"macro": {"dim": 3, "cells": [2, 2, 2]}})
    with pytest.raises(ConfigError, match="hole_radius"):
        from_dict(FE2Input, {"macro": {"size": 1.0, "hole_radius": 2.0}})
    cfg = _cfg(str(tmp_path), pool={"group_size": 2})
    with pytest.raises(InputError, match="does not divide"):
        run_fe2(cfg, MPI.COMM_SELF, quiet=True)


def test_micro_failure_cuts_back_then_reports(tmp_path, capsys):
    """An RVE Newton that cannot converge cuts the macro step back and finally fails with the
    quadrature point and load step named — never silently accepted."""
    from hpcmsm.errors import ConvergenceError

    cfg = _cfg(str(tmp_path), micro={"microstructure": "particle", "voxels": 6, "volume_fraction": 0.3,
                                     "max_iterations": 1, "particle": {"E": 400e3, "nu": 0.2}},
               newton={"max_cutbacks": 2})
    with pytest.raises(ConvergenceError, match=r"load step \d+: RVE Newton did not converge .*QP \d+"):
        run_fe2(cfg, MPI.COMM_SELF, quiet=False)
    assert "cutting the increment back" in capsys.readouterr().out


def _write_input(path, outdir, steps=4):
    with open(path, "w") as fh:
        fh.write(f"""
[macro]
geometry = "plate_with_hole"
size = 10.0
hole_radius = 3.0
cells = [4, 2]
displacement = 0.03
steps = {steps}
[micro]
voxels = 6
microstructure = "particle"
volume_fraction = 0.3
matrix = {{ E = 70e3, nu = 0.33, sigma_y = 100.0, H = 500.0 }}
particle = {{ E = 400e3, nu = 0.2 }}
[pool]
balance = "cost"
[output]
dir = "{outdir}"
png = false
checkpoint_every = 1
""")


@pytest.mark.parametrize("n,g", [(1, 1), pytest.param(2, 2, marks=pytest.mark.slow)])
def test_restart_on_other_rank_count_and_group_size(tmp_path, hpcmsm_cli, n, g):
    """Stop after step 2 on 2 ranks (checkpoint), restart on 1 rank (or on 2 ranks as one group
    of 2): the final history equals the uninterrupted run's."""
    inp = tmp_path / "in.toml"
    full = tmp_path / "full"
    _write_input(inp, full)
    r = hpcmsm_cli(["fe2", str(inp), "--quiet"], n=2, timeout=600)
    assert r.returncode == 0, r.stderr
    ref = np.loadtxt(full / "fe2_load_displacement.csv", delimiter=",", skiprows=1)
    for tag in ("a",):
        out = tmp_path / f"cut{tag}"
        r = hpcmsm_cli(["fe2", str(inp), "--out", str(out)], n=2, timeout=600,
                       env={"HPCMSM_FE2_STOP_AFTER": "2"})
        assert r.returncode == 75, r.stderr                  # stopped cleanly with a checkpoint
        part = np.loadtxt(out / "fe2_load_displacement.csv", delimiter=",", skiprows=1)
        assert part.shape[0] == 2
        r = hpcmsm_cli(["fe2", str(inp), "--out", str(out), "--restart", "--group-size", str(g)], n=n,
                       timeout=600)
        assert r.returncode == 0, r.stderr
        assert "restarted from" in r.stdout
        got = np.loadtxt(out / "fe2_load_displacement.csv", delimiter=",", skiprows=1)
        assert got.shape == ref.shape
        for col in (3, 4, 5, 6):   # reaction, external work, stored energy, dissipation
            assert np.allclose(got[:, col], ref[:, col], rtol=1e-7, atol=1e-12), col


def test_example_inputs_run(tmp_path, hpcmsm_cli):
    """The shipped examples run (shortened to 2 load steps) and pass their audits."""
    for ex in sorted(os.listdir(os.path.join(ROOT, "examples"))):
        if not (ex.startswith("fe2_") and ex.endswith(".toml")):
            continue
        out = tmp_path / ex
        r = hpcmsm_cli(["fe2", os.path.join(ROOT, "examples", ex), "--out", str(out), "--steps", "2"], n=1,
                       timeout=600)
        assert r.returncode == 0, (ex, r.stdout[-2000:], r.stderr[-2000:])
        assert "checks passed" in r.stdout
        s = json.load(open(out / "fe2_summary.json"))
        assert s["audit"]["passed"] and len(s["history"]) == 2
