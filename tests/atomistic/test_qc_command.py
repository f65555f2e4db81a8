"""``hpcmsm qc``: the examples at tiny sizes (QC vs full atomistics), bad input."""
import argparse
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EX = os.path.join(ROOT, "examples")


def _tiny(name, tmp_path, repl):
    text = open(os.path.join(EX, name)).read()
    for a, b in repl:
        assert a in text
        text = text.replace(a, b)
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def _run(path, out):
    from mpi4py import MPI

    from hpcmsm.commands import qc

    return qc.run(argparse.Namespace(input=path, output=out), MPI.COMM_SELF)


def test_vacancy_cluster_example_tiny(tmp_path):
    path = _tiny("qc_vacancy_cluster_shear.toml", tmp_path,
                 [("nx = 120", "nx = 22"), ("ny = 140", "ny = 24"),
                  ("vacancies = [[0, 0], [1, 0], [0.5, 0.866], [-4, 3.464], [3, -2.598]]",
                   "vacancies = [[0, 0], [1, 0]]"), ("atomistic_radius = 4.0", "atomistic_radius = 3.0")])
    out = str(tmp_path / "o")
    assert _run(path, out) == 0
    s = json.load(open(os.path.join(out, "summary.json")))
    assert s["qcf_residual"] < 1e-6 and s["audit"]["passed"]
    assert s["dofs_qc"] <= s["dofs_full"]
    assert s["energy_error_rel_deformation"] < 1e-3 and s["displacement_error_rel"] < 0.05
    for f in ("qc.png", "qc_mesh.xdmf", "qc_atoms.xdmf"):
        assert os.path.exists(os.path.join(out, f))


def test_nanoindentation_example_tiny(tmp_path):
    path = _tiny("qc_nanoindentation.toml", tmp_path,
                 [("nx = 160", "nx = 30"), ("ny = 80", "ny = 16"), ("radius = 30.0", "radius = 8.0"),
                  ("max_depth = 1.0", "max_depth = 0.4"), ("steps = 5", "steps = 2"),
                  ("atomistic_radius = 5.0", "atomistic_radius = 4.0")])
    out = str(tmp_path / "o")
    assert _run(path, out) == 0
    s = json.load(open(os.path.join(out, "summary.json")))
    assert s["audit"]["passed"] and len(s["qc"]) == 2 and s["load_error_rel_max"] < 5e-3
    assert 0 < s["qc"][0]["load"] < s["qc"][1]["load"]
    rows = open(os.path.join(out, "load_depth.csv")).read().splitlines()
    assert len(rows) == 3 and rows[0].startswith("depth,load_qc,load_full")
    for f in ("load_depth.png", "indent_atoms.xdmf", "indent_mesh_000.xdmf", "indent_mesh_001.xdmf"):
        assert os.path.exists(os.path.join(out, f))


@pytest.mark.slow
def test_dislocation_dipole_example_small(tmp_path):
    path = _tiny("qc_dislocation_dipole.toml", tmp_path, [("nx = 80", "nx = 40"), ("ny = 90", "ny = 44")])
    out = str(tmp_path / "o")
    assert _run(path, out) == 0
    s = json.load(open(os.path.join(out, "summary.json")))
    assert s["qcf_residual"] < 1e-6 and s["displacement_error_rel"] < 0.1


@pytest.mark.parametrize("body,msg", [
    ('[lattice]\ntype = "fcc"\n[qc]\nvacancies = [[0, 0]]\n', "lattice.type"),
    ('[qc]\n', "qc.vacancies"),
    ('[qc]\nvacancies = [[0, 0]]\nF = [[-1, 0], [0, 1]]\n', "qc.F"),
    ('[qc]\nvacancies = [[0, 0]]\nscheme = "magic"\n', "qc.scheme"),
    ('[qc]\nvacancies = [[0, 0]]\nring = 1.0\n', "ring"),
    ('[qc]\nvacancies = [[0, 0]]\n[indent]\nradius = 5.0\n', "qc.vacancies"),
    ('[indent]\nradius = -5.0\n', "indent.radius"),
])
def test_bad_input(tmp_path, hpcmsm_cli, body, msg):
    p = tmp_path / "bad.toml"
    p.write_text(body)
    r = hpcmsm_cli(["qc", str(p), "-o", str(tmp_path / "o")], n=2, timeout=120)
    assert r.returncode == 2, r.stderr
    assert msg in r.stderr and r.stderr.count("hpcmsm: error") == 1, r.stderr
