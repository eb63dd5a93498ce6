"""Gatys pixel optimisation and the nst-image command (Gatys mode)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from stylecast.realtime.cli.image import main

RUN_MAIN = "from stylecast.realtime.cli.image import main; main()"


def _img(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------- library


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_gatys_lowers_loss_random_vgg(optimizer: str) -> None:
    pytest.importorskip("torch")
    from stylecast.export.gatys import stylize_gatys
    from stylecast.export.losses import TRUNCATED_MULTISCALE
    from stylecast.export.vgg import VGGFeatures

    vgg = VGGFeatures.random("relu3_1", seed=0)
    seen: list[float] = []
    out = stylize_gatys(
        _img(24, 32, 1), _img(40, 40, 2), vgg, TRUNCATED_MULTISCALE, size=32, steps=6,
        optimizer=optimizer, init="noise", progress=lambda i, n, terms: seen.append(terms["total"]),
    )
    assert out.shape == (24, 32, 3) and out.dtype == np.uint8
    assert len(seen) >= 6 and min(seen[1:]) < seen[0]


def test_gatys_real_vgg_and_seeded(real_vgg) -> None:
    from stylecast.export.gatys import stylize_gatys
    from stylecast.export.losses import TRUNCATED_MULTISCALE
    from stylecast.realtime.errors import UsageError

    seen: list[float] = []
    kwargs = dict(size=32, steps=4, init="noise", seed=3)
    a = stylize_gatys(_img(20, 30, 1), _img(40, 40, 2), real_vgg, TRUNCATED_MULTISCALE,
                      progress=lambda i, n, t: seen.append(t["total"]), **kwargs)
    assert a.shape == (21, 32, 3) and min(seen[1:]) < seen[0]
    b = stylize_gatys(_img(20, 30, 1), _img(40, 40, 2), real_vgg, TRUNCATED_MULTISCALE, **kwargs)
    assert np.array_equal(a, b)
    with pytest.raises(UsageError):
        stylize_gatys(a, a, real_vgg, TRUNCATED_MULTISCALE, init="gray")


# ----------------------------------------------------------------------------- command line


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([flag])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert ("Gatys" in text and "relu3_1" in text and "example" in text) if flag == "--help" else "stylecast" in text


def test_cli_end_to_end(real_vgg_path: Path, tiny_images: tuple[Path, Path], tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    content, style = tiny_images
    out = tmp_path / "out.png"
    rc = main([str(content), str(style), str(out), "--vgg", str(real_vgg_path), "--size", "32", "--steps", "3"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "truncated-VGG multi-scale recipe" in err
    assert cv2.imread(str(out)).shape == (24, 32, 3)  # 40x30 content, longer side 32
    assert sorted(p.name for p in tmp_path.iterdir()) == ["content.png", "out.png", "style.png"]


def _expect_usage_error(argv: list[str], capsys: pytest.CaptureFixture[str], code: int = 2) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == code, err
    assert err.startswith("error:") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_cli_bad_inputs(tiny_images: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    content, style = (str(p) for p in tiny_images)
    out = str(tmp_path / "out.png")
    (tmp_path / "notes.txt").write_text("not an image")
    cv2.imwrite(str(tmp_path / "small.png"), _img(12, 40, 0))
    before = sorted(tmp_path.iterdir())
    cases = [
        [str(tmp_path / "missing.jpg"), style, out],
        [str(tmp_path / "notes.txt"), style, out],
        [content, str(tmp_path / "missing.jpg"), out],
        [content, str(tmp_path / "small.png"), out],
        [content, style, content],  # OUT == CONTENT, even with --overwrite
        [content, style, str(tmp_path / "out.xyz")],
        [content, style, str(tmp_path / "no_folder" / "out.png")],
        [content, style, out, "--size", "8"],
    ]
    for argv in cases:
        _expect_usage_error([*argv, "--overwrite"] if argv[2] == content else argv, capsys)
    (tmp_path / "exists.png").write_bytes(b"keep")
    _expect_usage_error([content, style, str(tmp_path / "exists.png")], capsys)
    assert (tmp_path / "exists.png").read_bytes() == b"keep"
    assert sorted(tmp_path.iterdir()) == sorted([*before, tmp_path / "exists.png"])


def test_cli_vgg_and_backend_errors(tiny_images: tuple[Path, Path], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    import torch

    content, style = (str(p) for p in tiny_images)
    out = str(tmp_path / "out.png")
    monkeypatch.delenv("NST_VGG", raising=False)
    err = _expect_usage_error([content, style, out], capsys)
    assert "--vgg" in err and "NST_VGG" in err and "vgg19-dcbb9e9d.pth" in err
    _expect_usage_error([content, style, out, "--vgg", content], capsys)  # an image is not a weight file
    if not torch.cuda.is_available():
        _expect_usage_error([content, style, out, "--device", "cuda"], capsys, code=3)
    monkeypatch.setitem(sys.modules, "torch", None)  # as if PyTorch were not installed
    err = _expect_usage_error([content, style, out], capsys, code=3)
    assert "pip install 'stylecast[train]'" in err
    assert not (tmp_path / "out.png").exists()


def test_cli_subprocess_no_torch_import_and_exit_code(tiny_images: tuple[Path, Path], tmp_path: Path) -> None:
    # Importing the command must not import torch: the ONNX mode runs without it.
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, stylecast.realtime.cli.image; print('torch' in sys.modules)"],
        capture_output=True, text=True, timeout=60,
    )
    assert probe.stdout.strip() == "False", probe.stderr
    content, style = tiny_images
    env = {k: v for k, v in os.environ.items() if k != "NST_VGG"}
    proc = subprocess.run(
        [sys.executable, "-c", RUN_MAIN, str(content), str(style), str(content), "--overwrite"],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error:") and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_cli_transparent_content_and_keep_colours(real_vgg_path: Path, tiny_images: tuple[Path, Path], tmp_path: Path) -> None:
    """The Gatys result keeps the content's alpha (scaled to the working size) and, with
    --keep-colours, the content's colours through nst-live's keep_colours."""
    from pictures import sticker

    from stylecast.realtime.colors import keep_colors
    from stylecast.realtime.images import read_picture

    logo = tmp_path / "logo.png"
    cv2.imwrite(str(logo), sticker(40, 56, border=8))
    style = tiny_images[1]
    common = ["--vgg", str(real_vgg_path), "--size", "32", "--steps", "2", "-q"]
    plain, kept = tmp_path / "plain.png", tmp_path / "kept.png"
    assert main([str(logo), str(style), str(plain), *common]) == 0
    assert main([str(logo), str(style), str(kept), *common, "--keep-colours"]) == 0
    p = read_picture(plain)
    assert p.bgr.shape == (23, 32, 3) and p.alpha is not None
    alpha = cv2.resize(sticker(40, 56, border=8)[..., 3], (32, 23), interpolation=cv2.INTER_AREA)
    assert np.array_equal(p.alpha, alpha) and (p.alpha[0] == 0).all()
    content = cv2.resize(read_picture(logo).bgr, (32, 23), interpolation=cv2.INTER_AREA)
    raw_plain, raw_kept = (cv2.imread(str(x), cv2.IMREAD_UNCHANGED)[..., :3] for x in (plain, kept))
    assert np.abs(raw_kept.astype(int) - keep_colors(content, raw_plain)).max() <= 2
