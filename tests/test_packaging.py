"""The set-up promises: pinned, consistent, two commands, CI runs the README's test command."""

import re

from helpers import config

ROOT = config.ROOT


def _pins(lines):
    return {m.group(1).lower(): m.group(2) for m in
            (re.match(r"^\s*(?:-\s+)?([A-Za-z0-9_.\-]+)==([^\s#]+)", ln) for ln in lines) if m}


def test_requirements_are_all_pinned():
    lines = [ln.strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines and all("==" in ln for ln in lines), [ln for ln in lines if "==" not in ln]
    assert _pins(lines)["torch"] == "2.13.0"


def test_environment_yml_matches_requirements():
    req = _pins((ROOT / "requirements.txt").read_text().splitlines())
    env_lines = (ROOT / "environment.yml").read_text().splitlines()
    env = _pins(ln for ln in env_lines if ln.strip().startswith("- ") and "==" in ln)
    assert env == req


def test_two_commands_and_ci():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^walkthrough:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    readme = (ROOT / "README.md").read_text()
    assert "make walkthrough" in readme and "make test" in readme


def test_corpus_licence_is_stated():
    readme = (ROOT / "data" / "README.md").read_text()
    assert "PSF" in readme and "python3.11-doc" in readme
    assert (ROOT / "data" / "corpus" / "LICENSE-python-docs.txt").exists()
