"""nst-image with a style NAME: the exported network through the engine (no PyTorch needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from stylecast.realtime.cli_image import main


def _photo(path: Path, w: int = 45, h: int = 31) -> Path:
    yy, xx = np.mgrid[0:h, 0:w]
    cv2.imwrite(str(path), np.stack([xx * 5, yy * 7, (xx + yy) * 3], -1).astype(np.uint8))
    return path


def test_style_name_file_to_file(tiny_model_dir: Path, tmp_path: Path) -> None:
    src = _photo(tmp_path / "in.png")
    outs = {}
    for style in ("alpha", "2"):
        out = tmp_path / f"out_{style}.png"
        assert main([str(src), style, str(out), "--model", str(tiny_model_dir)]) == 0
        outs[style] = cv2.imread(str(out))
        assert outs[style].shape == (31, 45, 3)
    assert np.abs(outs["alpha"].astype(int) - outs["2"].astype(int)).mean() > 1


def test_folder_in_folder_out_and_mix(tiny_model_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "photos"
    src.mkdir()
    for i in range(2):
        _photo(src / f"p{i}.png", 20 + i, 17)
    out = tmp_path / "styled"
    assert main([str(src), "mix", str(out), "--model", str(tiny_model_dir), "--mix", "alpha=0.5", "beta=0.5"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["p0.png", "p1.png"]
    assert cv2.imread(str(out / "p1.png")).shape == (17, 21, 3)


def test_demo_scene_with_a_style_name(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo.png"
    assert main(["demo:scene", "beta", str(out), "--model", str(tiny_model_dir), "--max-side", "64"]) == 0
    assert cv2.imread(str(out)).shape == (288, 512, 3)


def test_list_styles(tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["x.png", "anything", "y.png", "--model", str(tiny_model_dir), "--list-styles"]) == 0
    assert capsys.readouterr().out.split() == ["0", "alpha", "1", "beta", "2", "gamma"]


@pytest.mark.parametrize("case", ["unknown_style", "existing_out", "out_is_input", "missing_content", "no_model"])
def test_bad_input(case: str, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _photo(tmp_path / "in.png")
    out = tmp_path / "out.png"
    style, model = "alpha", str(tiny_model_dir)
    if case == "unknown_style":
        style = "nosuchstyle"
    elif case == "existing_out":
        out.write_bytes(b"keep me")
    elif case == "out_is_input":
        out = src
    elif case == "missing_content":
        src = tmp_path / "missing.png"
    elif case == "no_model":
        model = str(tmp_path / "nomodel")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main([str(src), style, str(out), "--model", model]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    if case == "existing_out":
        assert out.read_bytes() == b"keep me"


def test_name_mode_does_not_import_torch(tiny_model_dir: Path, tmp_path: Path) -> None:
    src = _photo(tmp_path / "in.png")
    code = (
        "import sys; from stylecast.realtime.cli_image import main; "
        f"rc = main([{str(src)!r}, 'gamma', {str(tmp_path / 'o.jpg')!r}, '--model', {str(tiny_model_dir)!r}]); "
        "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(rc)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o.jpg").is_file()
