"""``hpcmsm cauchy-born``: examples run (in-process at 1/2/3 ranks), outputs agree with the library,
bad input gives a clear error."""
import argparse
import json
import os

import numpy as np
import pytest

from hpcmsm.atomistic import CauchyBorn, LennardJones, elastic_constants, equilibrium_lattice, make_lattice

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EX = os.path.join(ROOT, "examples")


def _run(comm, path, out):
    from hpcmsm.commands import cauchy_born

    return cauchy_born.run(argparse.Namespace(input=path, output=out), comm)


@pytest.mark.mpi
def test_fcc_example_parallel_matches_library(comm, shared_tmp):
    out = os.path.join(shared_tmp, "fcc")
    assert _run(comm, os.path.join(EX, "cauchy_born_fcc_lj.toml"), out) == 0
    comm.Barrier()
    s = json.load(open(os.path.join(out, "summary.json")))
    pot = LennardJones(rc=2.5, cutoff="smooth", r_on=2.2)
    ref = elastic_constants(CauchyBorn(equilibrium_lattice(make_lattice("fcc", 1.55), pot), pot)).voigt
    np.testing.assert_allclose(s["voigt"], ref, rtol=1e-12, atol=1e-12 * ref[0, 0])
    assert s["stability"]["stable"] and s["audit"]["passed"]
    assert s["phonons"]["stable"]
    # the stress–strain curves gathered from all ranks equal a serial evaluation
    import h5py

    with h5py.File(os.path.join(out, "cauchy_born.h5"), "r", driver=None) if comm.size == 1 else \
            h5py.File(os.path.join(out, "cauchy_born.h5"), "r", driver="mpio", comm=comm) as f:
        P = f["paths/simple-shear-xy/P"][...]
        t = f["paths/simple-shear-xy/t"][...]
    cb = CauchyBorn(equilibrium_lattice(make_lattice("fcc", 1.55), pot), pot)
    F = np.eye(3)[None] + t[:, None, None] * np.array([[0, 1, 0], [0, 0, 0], [0, 0, 0.0]])
    np.testing.assert_allclose(P, cb.stress(F).reshape(len(t), 9), atol=1e-12)
    if comm.rank == 0:
        assert os.path.exists(os.path.join(out, "cauchy_born_paths.png"))


def test_diamond_and_sc_examples(tmp_path):
    from mpi4py import MPI

    comm = MPI.COMM_SELF
    assert _run(comm, os.path.join(EX, "cauchy_born_diamond_sw.toml"), str(tmp_path / "d")) == 0
    s = json.load(open(tmp_path / "d" / "summary.json"))
    assert s["units"] == "GPa"
    np.testing.assert_allclose([s["voigt"][0][0], s["voigt"][0][1], s["voigt"][3][3]], [151.4, 76.4, 56.4], atol=0.1)
    assert s["voigt_unrelaxed"][3][3] > s["voigt"][3][3]
    assert _run(comm, os.path.join(EX, "cauchy_born_sc_lj.toml"), str(tmp_path / "s")) == 0
    s = json.load(open(tmp_path / "s" / "summary.json"))
    assert s["voigt"][3][3] < 0 and not s["stability"]["stable"]
    assert not s["phonons"]["stable"] and s["phonons"]["omega2_min"] < 0  # soft shear modes


@pytest.mark.parametrize("body,msg", [
    ('[lattice]\ntype = "quasicrystal"\n', "lattice.type"),
    ('[potential]\ntype = "lj"\nrc = 0.9\n', "nearest-neighbour"),
    ('[potential]\ntype = "sw"\nrc = 3.0\n', "potential.rc"),
    ('[potential]\ntype = "lj"\nalpha = 2.0\n', "potential.alpha"),
    ('[lattice]\ntype = "fcc"\nbogus = 1\n', "lattice.bogus"),
    ('[[path]]\nG = [[1, 0], [0, 1]]\n', "path[0].G"),
    ('[[path]]\nG = [[-2, 0, 0], [0, 0, 0], [0, 0, 0]]\nt_max = 1.0\n', "det F"),
    ('[potential]\ntype = "eam"\n', "potential.file"),
    ('[potential]\ntype = "eam"\nfile = "nowhere.eam.alloy"\n', "nowhere.eam.alloy: cannot read"),
    ('[potential]\ntype = "lj"\nelement = "Cu"\n', "potential.element"),
])
def test_bad_input_clear_error(tmp_path, hpcmsm_cli, body, msg):
    p = tmp_path / "bad.toml"
    p.write_text(body)
    r = hpcmsm_cli(["cauchy-born", str(p), "-o", str(tmp_path / "o")], n=2, timeout=120)
    assert r.returncode == 2, r.stderr
    assert msg in r.stderr and r.stderr.count("hpcmsm: error") == 1, r.stderr


def test_eam_example_matches_analytic_potential(tmp_path):
    """The setfl example: the committed file holds the analytic functions it was generated from, and
    the constants the command prints agree with Cauchy–Born of the analytic potential itself."""
    from mpi4py import MPI

    from hpcmsm.atomistic.cauchy_born import make_cauchy_born
    from hpcmsm.atomistic.eam import AnalyticEAM, read_setfl
    from hpcmsm.atomistic.potentials import EV_PER_A3_IN_GPA

    ana = AnalyticEAM()
    f = read_setfl(os.path.join(EX, "data", "analytic_fcc.eam.alloy"))
    ref = ana.to_setfl("Cu", nrho=f.nrho, nr=f.nr)
    np.testing.assert_allclose(f.embed, ref.embed, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(f.density, ref.density, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(f.rphi[(0, 0)], ref.rphi[(0, 0)], rtol=1e-15, atol=1e-15)
    assert _run(MPI.COMM_SELF, os.path.join(EX, "cauchy_born_fcc_eam.toml"), str(tmp_path / "e")) == 0
    s = json.load(open(tmp_path / "e" / "summary.json"))
    assert s["units"] == "GPa" and s["audit"]["passed"] and s["stability"]["stable"]
    C = elastic_constants(make_cauchy_born(equilibrium_lattice(make_lattice("fcc", 3.6), ana), ana)).voigt
    np.testing.assert_allclose(s["voigt"], C * EV_PER_A3_IN_GPA, rtol=2e-5, atol=1e-4)
    assert s["voigt"][0][1] - s["voigt"][3][3] > 100  # C12 - C44 (GPa): no Cauchy relation for EAM


def test_truncated_setfl_file_clear_error(tmp_path, hpcmsm_cli):
    lines = open(os.path.join(EX, "data", "analytic_fcc.eam.alloy")).read().splitlines()
    (tmp_path / "cut.eam.alloy").write_text("\n".join(lines[:-1]) + "\n")
    p = tmp_path / "bad.toml"
    p.write_text('[lattice]\ntype = "fcc"\na = 3.6\n[potential]\ntype = "eam"\nfile = "cut.eam.alloy"\n')
    r = hpcmsm_cli(["cauchy-born", str(p), "-o", str(tmp_path / "o")], n=2, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "cut.eam.alloy: expected 3004 values" in r.stderr and r.stderr.count("hpcmsm: error") == 1, r.stderr


@pytest.mark.mpi
def test_breakdown_example_tiny_parallel(comm, shared_tmp):
    """The breakdown example at a tiny size, in parallel: relaxed energies equal a serial run."""
    from mpi4py import MPI

    from hpcmsm.atomistic.breakdown import analyse_defect, edge_dislocation_system, vacancy_system
    from hpcmsm.parallel import init_petsc

    init_petsc()
    text = open(os.path.join(EX, "cauchy_born_breakdown.toml")).read()
    text = text.replace("vacancy_cells = 40", "vacancy_cells = 12").replace("dislocation_radius = 30.0",
                                                                              "dislocation_radius = 9.0")
    path = os.path.join(shared_tmp, "bd.toml")
    if comm.rank == 0:
        open(path, "w").write(text)
    comm.Barrier()
    out = os.path.join(shared_tmp, "bd")
    assert _run(comm, path, out) == 0
    comm.Barrier()
    s = json.load(open(os.path.join(out, "summary.json")))
    pot = LennardJones(rc=2.5, cutoff="smooth", r_on=2.2)
    lat = equilibrium_lattice(make_lattice("triangular", 1.12), pot)
    cb = CauchyBorn(lat, pot)
    v = analyse_defect(MPI.COMM_SELF, cb, vacancy_system(lat, 12))
    d = analyse_defect(MPI.COMM_SELF, cb, edge_dislocation_system(lat, 9.0 * lat.a, 3.0 * lat.a))
    assert s["breakdown"]["vacancy"]["energy"] == pytest.approx(v["energy"], rel=1e-12)
    assert s["breakdown"]["edge_dislocation"]["energy"] == pytest.approx(d["energy"], rel=1e-12)
    assert s["breakdown"]["edge_dislocation"]["breakdown_radius_xi"] == pytest.approx(d["breakdown_radius_xi"])
    if comm.rank == 0:
        for k in ("vacancy", "edge_dislocation"):
            assert os.path.exists(os.path.join(out, f"breakdown_{k}.png"))
            assert os.path.exists(os.path.join(out, f"atoms_{k}.xdmf"))
