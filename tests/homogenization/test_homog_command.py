"""`hpcmsm homogenize`: every example at a tiny size (in-process on the test communicator, so at
1, 2 and 3 ranks), the CLI end to end, and bad input."""
import glob
import json
import os
import sys

import numpy as np
import pytest

from hpcmsm.config import from_dict, read_toml
from hpcmsm.errors import InputError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EX = os.path.join(ROOT, "examples")

TINY = {
    "homogenize_inclusions_2d.toml": {"shape": [24, 24], "radius": 3.0},
    "homogenize_laminate_3d.toml": {"shape": [8, 4, 4]},
    "homogenize_checkerboard_2d.toml": {"shape": [16, 16]},
    "homogenize_fibres_3d.toml": {"shape": [12, 12, 2]},
    "homogenize_ellipses_2d.toml": {"shape": [48, 24]},
    "homogenize_polycrystal_3d.toml": {"shape": [6, 6, 6], "grains": 3},
    "homogenize_micrograph.toml": {"stride": 3},
}


def test_every_example_is_listed():
    assert sorted(os.path.basename(p) for p in glob.glob(os.path.join(EX, "homogenize_*.toml"))) == sorted(TINY)


@pytest.mark.mpi
@pytest.mark.parametrize("name", sorted(TINY))
def test_example_tiny(comm, shared_tmp, name):
    from hpcmsm.homogenization.driver import homogenize
    from hpcmsm.homogenization.inputs import HomogenizeInput
    from hpcmsm.parallel import Log, init_petsc

    init_petsc()
    data, text = read_toml(os.path.join(EX, name))
    data["microstructure"].update(TINY[name])
    data["output"]["dir"] = os.path.join(shared_tmp, "out")
    data["output"]["png"] = name == "homogenize_inclusions_2d.toml"   # plotting is slow; check it once
    cfg = from_dict(HomogenizeInput, data, file=name)
    s = homogenize(cfg, comm, input_text=text, base_dir=EX, log=Log(comm, quiet=True))
    assert s["_audit"].passed, s["_audit"].summary()
    for bc in cfg.problem.bc:
        C = np.array(s["effective"][bc])
        assert np.linalg.eigvalsh(0.5 * (C + C.T)).min() > 0
    comm.Barrier()
    out = cfg.output.dir
    for f in ("summary.json", "effective.h5", "microstructure.xdmf"):
        assert os.path.exists(os.path.join(out, f)), f
    if cfg.output.png:
        for f in ("microstructure.png", "bounds.png", "two_point_correlation.png"):
            assert os.path.exists(os.path.join(out, f)), f
    if "periodic" in cfg.problem.bc:
        assert os.path.exists(os.path.join(out, "correctors.xdmf"))
        if comm.rank == 0:
            import h5py

            with h5py.File(os.path.join(out, "correctors_000000.h5"), "r") as f:
                chi = f["fields"][sorted(f["fields"])[0]][...]
            nodes = tuple(reversed(s["grid"]))
            assert chi.shape[:len(nodes)] == nodes and np.isfinite(chi).all() and np.abs(chi).max() > 0


def test_cli_two_ranks_and_json(hpcmsm_cli, tmp_path):
    out = tmp_path / "o"
    text = open(os.path.join(EX, "homogenize_laminate_3d.toml")).read().replace("[16, 8, 8]", "[8, 4, 4]")
    assert "[8, 4, 4]" in text
    (tmp_path / "in.toml").write_text(text)
    r = hpcmsm_cli(["homogenize", str(tmp_path / "in.toml"), "--out", str(out), "--quiet"],
                   n=2, timeout=300)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "periodic vs exact laminate tensor" in r.stdout
    s = json.load(open(out / "summary.json"))
    assert s["audit"]["passed"] and set(s["effective"]) == {"periodic", "kubc", "tubc"}
    assert "cell problems" in s["timings"]


BAD = [
    ("[microstructure]\ntype='random_inclusions'\nshape=[16,16]\nvolume_fraction=1.5\n[[phases]]\nE=1.0\nnu=0.3\n",
     "volume_fraction': volume fraction must lie strictly between 0 and 1"),
    ("[microstructure]\ntype='inclusion_array'\nshape=[8,8]\nvolume_fraction=0.85\n[[phases]]\nE=1.0\nnu=0.3\n"
     "[[phases]]\nE=2.0\nnu=0.3\n", "unreachable without overlap"),
    ("[microstructure]\ntype='inclusion_array'\nshape=[4,4]\nvolume_fraction=0.1\n[[phases]]\nE=1.0\nnu=0.3\n"
     "[[phases]]\nE=2.0\nnu=0.3\n", "too small to resolve"),
    ("[microstructure]\ntype='laminate'\nshape=[8,8]\n[[phases]]\ntensor=[[1.0,2.0,0.0],[2.0,1.0,0.0],[0.0,0.0,1.0]]\n"
     "[[phases]]\nE=2.0\nnu=0.3\n", "not positive definite"),
    ("[microstructure]\ntype='laminate'\nshape=[8,8]\n[[phases]]\ntensor=[[2.0,1.0,0.0],[0.5,2.0,0.0],[0.0,0.0,1.0]]\n"
     "[[phases]]\nE=2.0\nnu=0.3\n", "not symmetric"),
    ("[microstructure]\ntype='laminate'\nshape=[8,8]\n[[phases]]\nE=-2.0\nnu=0.3\n[[phases]]\nE=2.0\nnu=0.3\n",
     "phases[0].E': expected a positive number"),
    (f"[microstructure]\ntype='image'\nfile='{os.path.join(EX, 'data', 'micrograph.png')}'\nlabels={{'40'=0,'150'=1}}\n"
     "[[phases]]\nE=1.0\nnu=0.3\n[[phases]]\nE=2.0\nnu=0.3\n", "unmapped phase labels in the input: [235]"),
]


@pytest.mark.parametrize("text,msg", BAD)
def test_bad_input_clear_error(tmp_path, text, msg):
    from hpcmsm.config import loads
    from hpcmsm.homogenization.inputs import HomogenizeInput, build_micro, build_phases

    with pytest.raises(InputError) as ei:
        cfg = loads(text, HomogenizeInput, name="bad.toml")
        micro = build_micro(cfg.microstructure, str(tmp_path), nphases=len(cfg.phases))
        build_phases(cfg.phases, cfg.problem.kind, micro)
    assert msg in str(ei.value), str(ei.value)


def test_bad_input_cli_message_once(hpcmsm_cli, tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text(BAD[0][0])
    r = hpcmsm_cli(["homogenize", str(p)], n=2, timeout=120)
    assert r.returncode == 2
    assert r.stderr.count("volume fraction must lie strictly between 0 and 1") == 1, r.stderr
