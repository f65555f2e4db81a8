"""``hpcmsm solve`` with the finite-strain J2 law (``model = "j2_log"``): the example bar at a tiny
size against the exact uniaxial solution (reaction, equivalent plastic strain field, dissipation),
and a run stopped at 2 ranks and restarted at 3 ranks equals the one-shot run."""
import json
import os

import numpy as np

from hpcmsm.materials.j2 import uniaxial_closed_form

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "examples", "solve_bar_j2_log.toml")
E, SY, HI, HK, STRETCH = 200e3, 250.0, 2000.0, 500.0, 1.5


def _run(hpcmsm_cli, tmp_path, out, n=2, extra=(), steps=10):
    inp = tmp_path / "bar.toml"
    inp.write_text(open(EXAMPLE).read().replace("[4, 2, 2]", "[2, 2, 1]").replace("steps = 10", f"steps = {steps}"))
    r = hpcmsm_cli(["solve", str(inp), "--output", str(tmp_path / out), *extra], n=n, timeout=300)
    assert r.returncode == 0, r.stderr + r.stdout
    return json.load(open(tmp_path / out / "summary.json")), r.stdout


def test_bar_example_exact(hpcmsm_cli, tmp_path):
    import h5py

    s, _ = _run(hpcmsm_cli, tmp_path, "out")
    tau = float(uniaxial_closed_form(np.log(STRETCH), E, SY, HI, HK))
    assert abs(s["reactions"]["xmax"][0] - tau / STRETCH) < 1e-8 * tau          # P11 × unit area
    assert s["audit"]["passed"]
    e = s["energies"]
    assert e["dissipation"] > 0.1 * e["external_work"]
    with h5py.File(tmp_path / "out" / "macro_000010.h5", "r") as f:
        peeq = f["fields/eq_plastic_strain"][...]
        sig = f["fields/stress"][...].reshape(-1, 3, 3)
    assert np.allclose(peeq, np.log(STRETCH) - tau / E, rtol=1e-8)
    # Cauchy stress σ11 = τ11 / J, uniaxial
    J = np.exp((1 - 2 * 0.3) * tau / E)                                          # elastic volume change
    assert np.allclose(sig[:, 0, 0], tau / J, rtol=1e-8)
    assert np.abs(sig[:, 1:, 1:]).max() < 1e-8 * tau


def test_bar_restart_on_other_rank_count(hpcmsm_cli, tmp_path):
    full, _ = _run(hpcmsm_cli, tmp_path, "full", steps=4)
    _, log = _run(hpcmsm_cli, tmp_path, "part", steps=4, extra=["--max-steps", "2"])
    assert "stopped after --max-steps" in log
    part, log = _run(hpcmsm_cli, tmp_path, "part", n=3, steps=4, extra=["--restart"])
    assert "restarted from" in log and len(part["history"]) == 4
    assert np.allclose(part["reactions"]["xmax"], full["reactions"]["xmax"], rtol=1e-9)
    for k in ("external_work", "stored", "dissipation"):
        assert np.isclose(part["energies"][k], full["energies"][k], rtol=1e-9), k


def test_j2_log_needs_finite_strain(tmp_path):
    import pytest

    from hpcmsm.commands.solve import SolveInput
    from hpcmsm.config import load
    from hpcmsm.errors import ConfigError

    inp = tmp_path / "bad.toml"
    inp.write_text(open(EXAMPLE).read().replace('physics = "hyperelasticity"', 'physics = "elasticity"'))
    with pytest.raises(ConfigError, match="does not fit physics"):
        load(str(inp), SolveInput)
