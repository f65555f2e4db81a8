"""README stays true: every example it names exists, every command it lists is a real command."""
import os
import re

from hpcmsm.cli import build_parser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme():
    with open(os.path.join(ROOT, "README.md")) as fh:
        return fh.read()


def test_readme_examples_exist():
    paths = set(re.findall(r"(examples/[\w./-]+\.toml)", _readme()))
    assert paths
    missing = [p for p in paths if not os.path.exists(os.path.join(ROOT, p))]
    assert not missing, missing


def test_readme_command_table_matches_cli():
    listed = set(re.findall(r"^\| `([\w-]+)` \|", _readme(), flags=re.M))
    _, modules = build_parser()
    assert listed == set(modules), (listed ^ set(modules))


def test_every_command_has_an_example_or_is_builtin():
    names = os.listdir(os.path.join(ROOT, "examples"))
    _, modules = build_parser()
    builtin = {"demo", "info", "bench"}  # no input file: built-in defaults
    for cmd in set(modules) - builtin:
        stem = {"rve-study": "rve_study", "cauchy-born": "cauchy_born", "validate": "validation"}.get(cmd, cmd)
        assert any(n.startswith(stem) for n in names), f"no example for {cmd}"
