"""The three classic cases of THEORY.md, from the built-in table and from examples/."""
import json
import os

import pytest

from hpcmsm.config import from_dict, read_toml
from hpcmsm.scales import CLASSIC_CASES, ScalesInput, advise

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_composite_sequential():
    r = advise(ScalesInput(**CLASSIC_CASES["composite"]))
    assert r.length_ratio == pytest.approx(1e-3)
    assert r.micro_time == pytest.approx(2.5e-5)
    assert r.time_ratio == pytest.approx(2.5e-5 / 60)  # ≈ 4e-7
    assert round(r.time_ratio, 7) == pytest.approx(4e-7)
    assert r.verdict == "sequential" and r.broken_by == "none"


def test_film_concurrent_space_and_time():
    r = advise(ScalesInput(**CLASSIC_CASES["film"]))
    assert r.length_ratio == pytest.approx(0.2) and r.time_ratio == pytest.approx(0.1)
    assert r.verdict == "concurrent" and r.broken_by == "space and time"


def test_battery_separated_in_space_coupled_in_time():
    r = advise(ScalesInput(**CLASSIC_CASES["battery"]))
    assert r.length_ratio == pytest.approx(1e-2)
    assert r.micro_time == pytest.approx(400.0)
    assert r.time_ratio == pytest.approx(400 / 1800)
    assert r.space_separated and not r.time_separated
    assert r.verdict == "concurrent" and r.broken_by == "time"


@pytest.mark.parametrize("name", ["composite", "film", "battery"])
def test_examples_match_builtin(name):
    data, _ = read_toml(os.path.join(ROOT, "examples", f"scales_{name}.toml"))
    ex = advise(from_dict(ScalesInput, data["scales"]))
    builtin = advise(ScalesInput(**CLASSIC_CASES[name]))
    assert ex == builtin


def test_space_only_and_threshold():
    r = advise(ScalesInput(micro_length=1e-6, macro_length=1e-2))
    assert r.verdict == "sequential" and r.time_ratio is None and "spatial ratio alone" in r.reasoning
    r = advise(ScalesInput(micro_length=1e-6, macro_length=1e-2, threshold=1e-5))
    assert r.verdict == "concurrent" and r.broken_by == "space"


def test_cli_json_under_mpi(tmp_path, hpcmsm_cli):
    out = tmp_path / "r.json"
    r = hpcmsm_cli(["scales", "--classic", "--json", str(out)], n=2, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("== thin metal film ==") == 1   # rank 0 speaks
    res = json.loads(out.read_text())
    assert [x["verdict"] for x in res] == ["sequential", "concurrent", "concurrent"]
