"""Every console script in pyproject.toml: --help explains, --version answers, bad usage is exit 2."""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from conftest import REPO

SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


def _main(target: str):  # noqa: ANN202
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_help_and_version(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    main = _main(SCRIPTS[name])
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {name}") and "exit codes: 0 success" in out and len(out) > 600
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert re.match(rf"{name} \(stylecast\) \d", capsys.readouterr().out)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_unknown_option_is_one_error_line_and_exit_2(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _main(SCRIPTS[name])(["--no-such-option"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_console_scripts_are_installed() -> None:
    missing = [name for name in SCRIPTS if shutil.which(name) is None]
    if missing and not (Path(sys.prefix) / "bin").exists():
        pytest.skip("not an installed environment")
    assert not missing, f"not on PATH: {missing} (pip install -e . again)"
    r = subprocess.run([shutil.which("nst-doctor"), "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "stylecast" in r.stdout
