"""Config validation: every error names the file and the key, and says what was expected."""
from dataclasses import dataclass, field

import pytest

from hpcmsm.config import from_dict, load, loads, param, petsc_table_to_options
from hpcmsm.errors import ConfigError
from hpcmsm.scales import ScalesInput


@dataclass
class Inner:
    kappa: float = param(1.0, gt=0, unit="W/m/K")
    kind: str = param("linear", choices=("linear", "quadratic"))


@dataclass
class Outer:
    n: int = param(ge=2, doc="grid points")
    inner: Inner = field(default_factory=Inner)
    sizes: list[int] = param(default_factory=list)
    petsc: dict = param(default_factory=dict)


def _err(text, cls=Outer):
    with pytest.raises(ConfigError) as e:
        loads(text, cls, name="in.toml")
    return str(e.value)


def test_valid_roundtrip():
    o = loads("n = 4\nsizes=[1,2]\n[inner]\nkappa = 2\n[petsc.macro]\nksp_type='cg'\nksp_rtol=1e-8", Outer)
    assert o.n == 4 and o.inner.kappa == 2.0 and isinstance(o.inner.kappa, float) and o.sizes == [1, 2]
    assert petsc_table_to_options(o.petsc) == {"macro_": {"ksp_type": "cg", "ksp_rtol": "1e-08"}}


@pytest.mark.parametrize("text, key, words", [
    ("n = 4\nm = 3", "'m'", "unknown key"),
    ("n = 4\n[inner]\nkapa = 1", "'inner.kapa'", "unknown key"),
    ("n = 'four'", "'n'", "expected an integer"),
    ("n = 4.5", "'n'", "expected an integer"),
    ("n = 1", "'n'", ">= 2"),
    ("n = 4\n[inner]\nkappa = -1", "'inner.kappa'", "positive"),
    ("n = 4\n[inner]\nkappa = true", "'inner.kappa'", "expected a number"),
    ("n = 4\n[inner]\nkind = 'cubic'", "'inner.kind'", "one of"),
    ("n = 4\nsizes = [1, 'a']", "'sizes[1]'", "expected an integer"),
    ("", "'n'", "missing required key"),
])
def test_errors_name_file_key_and_expectation(text, key, words):
    msg = _err(text)
    assert msg.startswith("in.toml: ") and key in msg and words in msg, msg


def test_malformed_and_missing_file(tmp_path):
    assert "malformed TOML" in _err("n = = 3")
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "nope.toml", Outer)
    p = tmp_path / "bin.toml"
    p.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="UTF-8"):
        load(p, Outer)


def test_inconsistent_values_named():
    with pytest.raises(ConfigError, match="'diffusivity': give either micro_time or diffusivity"):
        from_dict(ScalesInput, dict(micro_length=1, macro_length=2, micro_time=1, diffusivity=1, macro_time=3),
                  file="x.toml")
    with pytest.raises(ConfigError, match="'macro_length': expected a positive number"):
        from_dict(ScalesInput, dict(micro_length=1, macro_length=-2), file="x.toml")


@pytest.mark.parametrize("content, expect", [
    ("[scales]\nmicro_length = -1\nmacro_length = 1\n", "'scales.micro_length': expected a positive number"),
    ("[scales]\nmicro_length = 1\nmacro_length = 1\nmacro_tme = 3\n", "'scales.macro_tme': unknown key"),
    ("[scale]\nmicro_length = 1\n", "unknown table"),
    ("[scales\n", "malformed TOML"),
])
def test_cli_bad_input_is_one_clean_line(tmp_path, hpcmsm_cli, content, expect):
    p = tmp_path / "bad.toml"
    p.write_text(content)
    for n in (1, 2):
        r = hpcmsm_cli(["scales", str(p)], n=n, timeout=60)
        assert r.returncode != 0
        err = [l for l in r.stderr.splitlines() if l.startswith("hpcmsm")]
        assert len(err) == 1 and expect in err[0], r.stderr
        assert "Traceback" not in r.stderr


def test_cli_unknown_command_and_missing_file(hpcmsm_cli):
    r = hpcmsm_cli(["frobnicate"], timeout=60)
    assert r.returncode == 2 and "invalid choice" in r.stderr and "Traceback" not in r.stderr
    r = hpcmsm_cli(["scales", "/nonexistent/in.toml"], n=2, timeout=60)
    assert r.returncode == 2 and r.stderr.count("does not exist") == 1, r.stderr
