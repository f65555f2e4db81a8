"""``hpcmsm solve``: the four examples (run at 2 ranks through mpirun, checked against
analytical values), output files, and bad input reported once, on every rank, with exit code 2."""
import json
import os
import shutil

import numpy as np
import pytest
from scipy.optimize import brentq

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EX = os.path.join(ROOT, "examples")


def _run(hpcmsm_cli, tmp_path, name, n=2, edit=None, extra=(), out="out"):
    src = os.path.join(EX, name)
    text = open(src).read()
    if edit:
        text = edit(text)
    inp = tmp_path / name
    inp.write_text(text)
    if os.path.isdir(os.path.join(EX, "meshes")) and not (tmp_path / "meshes").exists():
        shutil.copytree(os.path.join(EX, "meshes"), tmp_path / "meshes")
    out = tmp_path / out
    r = hpcmsm_cli(["solve", str(inp), "--output", str(out), *extra], n=n, timeout=300)
    return r, out


def test_cantilever_matches_beam_theory(hpcmsm_cli, tmp_path):
    r, out = _run(hpcmsm_cli, tmp_path, "solve_cantilever_3d.toml",
                  edit=lambda t: t.replace('region = "xmin"\nvalue = 0.0',
                                           'region = "xmin"\nvalue = 0.0').replace("[20, 2, 2]", "[10, 1, 1]"))
    assert r.returncode == 0, r.stderr + r.stdout
    s = json.load(open(out / "summary.json"))
    L, E, F, I = 10.0, 1e7, 100.0, 1.0 / 12
    delta = F * L ** 3 / (3 * E * I)
    uz = s["load_displacement"]["displacement"][-1][2]
    assert s["load_displacement"]["region"] == "xmax"
    # Q2 bricks vs Euler–Bernoulli (+ Timoshenko shear correction ~0.1 % at L/h = 10)
    assert abs(-uz - delta) / delta < 0.02, (uz, delta)
    assert np.allclose(s["reactions"]["xmin"], [0, 0, F], atol=1e-6 * F)
    assert s["audit"]["passed"]
    assert (out / "macro.xdmf").exists() and (out / "load_displacement.png").exists()


def test_neohookean_block_example(hpcmsm_cli, tmp_path):
    r, out = _run(hpcmsm_cli, tmp_path, "solve_neohookean_block.toml",
                  edit=lambda t: t.replace("[4, 4, 4]", "[2, 2, 2]"))
    assert r.returncode == 0, r.stderr + r.stdout
    s = json.load(open(out / "summary.json"))
    E, nu, st = 10.0, 0.3, 1.6
    lam, mu = E * nu / ((1 + nu) * (1 - 2 * nu)), E / (2 * (1 + nu))
    t = brentq(lambda t: mu * (t - 1 / t) + lam * np.log(st * t * t) / t, 0.2, 5.0)
    P11 = mu * (st - 1 / st) + lam * np.log(st * t * t) / st
    assert abs(s["reactions"]["xmax"][0] - P11) < 1e-7 * P11


def test_heat_gmsh_example(hpcmsm_cli, tmp_path):
    r, out = _run(hpcmsm_cli, tmp_path, "solve_heat_gmsh.toml", n=3,
                  edit=lambda t: t.replace("steps = 20", "steps = 6"))
    assert r.returncode == 0, r.stderr + r.stdout
    s = json.load(open(out / "summary.json"))
    assert s["audit"]["passed"]
    # bounds of the data (consistent mass undershoots slightly at early times, by design)
    assert -0.01 <= s["T_min"] and s["T_max"] <= 1 + 1e-9
    import h5py

    with h5py.File(out / "macro_000006.h5", "r") as f:
        T = f["fields/temperature"][...]
        assert T.shape == (s["nodes"],) and T.max() > 0.5


def test_plate_hole_j2_example(hpcmsm_cli, tmp_path):
    r, out = _run(hpcmsm_cli, tmp_path, "solve_plate_hole_j2.toml",
                  edit=lambda t: t.replace("steps = 12", "steps = 4").replace("degree = 2", "degree = 1"))
    assert r.returncode == 0, r.stderr + r.stdout
    s = json.load(open(out / "summary.json"))
    e = s["energies"]
    assert e["dissipation"] > 0 and s["audit"]["passed"]
    assert abs(e["external_work"] - e["stored"] - e["dissipation"]) < 1e-8 * e["external_work"]
    # the symmetry supports balance the pull on the top edge
    assert abs(s["reactions"]["top"][1] + s["reactions"]["bottom"][1]) < 1e-6 * abs(s["reactions"]["top"][1])
    import h5py

    with h5py.File(out / "macro_000004.h5", "r") as f:
        peeq = f["fields/eq_plastic_strain"][...]
        assert peeq.max() > 0 and (peeq == 0).any()     # a plastic zone at the hole, elastic elsewhere
    assert (out / "load_displacement.png").exists()


BAD = [
    ("missing boundary region", lambda t: t.replace('region = "xmin"', 'region = "west"'), "unknown boundary region 'west'"),
    ("unknown material region", lambda t: t.replace('model = "linear_elastic"', 'model = "linear_elastic"\nregion = "steel"'),
     "unknown material region 'steel'"),
    ("non-positive-definite", lambda t: t.replace('model = "linear_elastic"',
     'model = "anisotropic"\nC = [[1,2,0,0,0,0],[2,1,0,0,0,0],[0,0,1,0,0,0],[0,0,0,1,0,0],[0,0,0,0,1,0],[0,0,0,0,0,1]]'),
     "not positive definite"),
    ("element unsupported by the mesh", lambda t: t.replace("cells = [20, 2, 2]", "cells = [20, 2]"), "does not fit a 2D box"),
    ("mesh file missing", lambda t: t.replace('type = "box"', 'type = "gmsh"\nfile = "nothere.msh"'), "does not exist"),
    ("mesh does not parse", lambda t: t.replace('type = "box"', 'type = "gmsh"\nfile = "solve_cantilever_3d.toml"'), "does not parse"),
    ("bad poisson", lambda t: t.replace("nu = 0.0", "nu = 0.7"), "'material[0].nu'"),
    ("wrong model for physics", lambda t: t.replace('model = "linear_elastic"', 'model = "neo_hookean"'), "does not fit physics"),
]


@pytest.mark.parametrize("what,edit,msg", BAD, ids=[b[0] for b in BAD])
def test_bad_input(hpcmsm_cli, tmp_path, what, edit, msg):
    r, _ = _run(hpcmsm_cli, tmp_path, "solve_cantilever_3d.toml", n=2, edit=edit)
    assert r.returncode == 2, r.stderr + r.stdout
    assert msg in r.stderr
    assert r.stderr.count("hpcmsm: error:") == 1          # printed once, all ranks exit cleanly


def test_plate_restart_on_other_rank_count(hpcmsm_cli, tmp_path):
    """Stop after 2 of 4 load steps at 2 ranks, restart at 3 ranks: same result as one run."""
    edit = lambda t: t.replace("steps = 12", "steps = 4").replace("degree = 2", "degree = 1")  # noqa: E731
    r, full = _run(hpcmsm_cli, tmp_path, "solve_plate_hole_j2.toml", n=2, edit=edit, out="full")
    assert r.returncode == 0, r.stderr
    r, part = _run(hpcmsm_cli, tmp_path, "solve_plate_hole_j2.toml", n=2, edit=edit, out="part",
                   extra=["--max-steps", "2"])
    assert r.returncode == 0 and "stopped after --max-steps" in r.stdout, r.stderr + r.stdout
    r, part = _run(hpcmsm_cli, tmp_path, "solve_plate_hole_j2.toml", n=3, edit=edit, out="part",
                   extra=["--restart"])
    assert r.returncode == 0 and "restarted from" in r.stdout, r.stderr + r.stdout
    a, b = (json.load(open(d / "summary.json")) for d in (full, part))
    assert len(b["history"]) == 4
    assert np.allclose(a["reactions"]["top"], b["reactions"]["top"], rtol=1e-7)
    for k in ("external_work", "stored", "dissipation"):
        assert np.isclose(a["energies"][k], b["energies"][k], rtol=1e-7), k


PLANE_STRAIN_C6 = """[mesh]
type = "box"
cells = [3, 2]
upper = [2.0, 1.0]
cell = "quadrilateral"

[problem]
physics = "elasticity"

[[material]]
model = "anisotropic"
C = [[200.0, 80.0, 70.0, 10.0, 5.0, 0.0], [80.0, 150.0, 60.0, 8.0, 4.0, 0.0], [70.0, 60.0, 120.0, 6.0, 3.0, 0.0],
     [10.0, 8.0, 6.0, 50.0, 2.0, 0.0], [5.0, 4.0, 3.0, 2.0, 40.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 60.0]]

[[dirichlet]]
region = "xmin"
value = 0.0
components = [0]

[[dirichlet]]
region = "ymin"
value = 0.0
components = [1]

[[dirichlet]]
region = "xmax"
value = 0.02
components = [0]

[[dirichlet]]
region = "ymax"
value = 0.004
components = [1]

[output]
dir = "out"
png = false
"""


def test_plane_strain_full_stiffness_gives_exact_out_of_plane_stress(hpcmsm_cli, tmp_path):
    """A 6x6 C on a 2D mesh: plane strain (ε33 = ε23 = ε13 = 0) with the in-plane block, and σ33,
    σ23, σ13 = rows 33, 23, 13 of C times the in-plane strain, in every cell (homogeneous biaxial
    stretch of an orthotropic-in-plane material with out-of-plane couplings)."""
    import h5py

    inp = tmp_path / "ps.toml"
    inp.write_text(PLANE_STRAIN_C6)
    out = tmp_path / "out"
    r = hpcmsm_cli(["solve", str(inp), "--output", str(out), "--quiet"], n=2, timeout=300)
    assert r.returncode == 0, r.stderr + r.stdout
    C = np.array([[200.0, 80.0, 70.0, 10.0, 5.0, 0.0], [80.0, 150.0, 60.0, 8.0, 4.0, 0.0],
                  [70.0, 60.0, 120.0, 6.0, 3.0, 0.0], [10.0, 8.0, 6.0, 50.0, 2.0, 0.0],
                  [5.0, 4.0, 3.0, 2.0, 40.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 60.0]])
    eps = np.array([0.01, 0.004, 0.0, 0.0, 0.0, 0.0])               # Mandel (11, 22, 33, 23, 13, 12)
    s = C @ eps
    S = np.array([[s[0], s[5], s[4]], [s[5], s[1], s[3]], [s[4], s[3], s[2]]])
    S[0, 1] /= np.sqrt(2)
    S[1, 0] /= np.sqrt(2)
    S[0, 2] /= np.sqrt(2)
    S[2, 0] /= np.sqrt(2)
    S[1, 2] /= np.sqrt(2)
    S[2, 1] /= np.sqrt(2)
    with h5py.File(out / "macro_000001.h5", "r") as f:
        sig = f["fields/stress"][...].reshape(-1, 3, 3)
    assert sig.shape[0] == 6
    assert np.allclose(sig, S[None], rtol=0, atol=1e-9 * np.abs(S).max()), (sig[0], S)


def test_mechanics_graceful_stop_and_restart(hpcmsm_cli, tmp_path):
    """A stop request (HPCMSM_STOP_AT in the past, as SLURM's warning signal) after the first load
    step: checkpoint, exit 75; --restart on another rank count finishes with the one-shot answer."""
    import time

    edit = lambda t: t.replace("[4, 4, 4]", "[2, 2, 2]")  # noqa: E731
    r, full = _run(hpcmsm_cli, tmp_path, "solve_neohookean_block.toml", n=1, edit=edit, out="full")
    assert r.returncode == 0, r.stderr
    src = open(os.path.join(EX, "solve_neohookean_block.toml")).read()
    inp = tmp_path / "nh.toml"
    inp.write_text(edit(src))
    part = tmp_path / "part"
    r = hpcmsm_cli(["solve", str(inp), "--output", str(part)], n=2, timeout=300,
                   env={"HPCMSM_STOP_AT": str(time.time() - 1)})
    assert r.returncode == 75 and "stopped cleanly after step 1" in r.stderr, r.stderr + r.stdout
    assert (part / "solve.ckpt.h5").exists()
    r = hpcmsm_cli(["solve", str(inp), "--output", str(part), "--restart"], n=3, timeout=300)
    assert r.returncode == 0 and "restarted from" in r.stdout, r.stderr + r.stdout
    a, b = (json.load(open(d / "summary.json")) for d in (full, part))
    assert len(b["history"]) == len(a["history"]) == 6
    assert np.allclose(a["reactions"]["xmax"], b["reactions"]["xmax"], rtol=1e-7)
