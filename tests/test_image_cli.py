"""nst-image with a style NAME: the exported network through the engine (no PyTorch needed); photos as
people have them (upright, transparent, 16-bit, grey, a folder with a broken file), --keep-colours."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from pictures import corrupt_image, jpeg_with_exif, sticker, stored_pixels, upright_scene

from stylecast.realtime.cli.image import main
from stylecast.realtime.colors import keep_colors
from stylecast.realtime.images import read_picture


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
        "import sys; from stylecast.realtime.cli.image import main; "
        f"rc = main([{str(src)!r}, 'gamma', {str(tmp_path / 'o.jpg')!r}, '--model', {str(tiny_model_dir)!r}]); "
        "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(rc)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o.jpg").is_file()


# ---------------------------------------------------------------- photos as people have them


def _ycrcb(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_BGR2YCrCb).astype(int)


def test_phone_photo_comes_out_upright(tiny_model_dir: Path, tmp_path: Path) -> None:
    upright = upright_scene(48, 80)
    src = jpeg_with_exif(tmp_path / "IMG_0001.jpg", stored_pixels(upright, 6), 6)
    out = tmp_path / "out.png"
    assert main([str(src), "alpha", str(out), "--model", str(tiny_model_dir)]) == 0
    assert cv2.imread(str(out)).shape == (48, 80, 3)


@pytest.mark.parametrize("suffix", [".png", ".webp", ".tif"])
def test_transparency_is_kept_and_hidden_pixels_do_not_leak(suffix: str, tiny_model_dir: Path, tmp_path: Path) -> None:
    bgra = sticker()
    other = bgra.copy()
    other[bgra[..., 3] == 0, :3] = (255, 255, 0)  # the same logo, other colours under alpha 0
    outs = []
    for name, img in (("a", bgra), ("b", other)):
        cv2.imwrite(str(tmp_path / f"{name}.png"), img)
        out = tmp_path / f"{name}_out{suffix}"
        assert main([str(tmp_path / f"{name}.png"), "beta", str(out), "--model", str(tiny_model_dir)]) == 0
        outs.append(read_picture(out))
    assert all(np.array_equal(o.alpha, bgra[..., 3]) for o in outs)
    assert np.array_equal(outs[0].bgr, outs[1].bgr)


def test_transparency_into_jpeg_is_one_warning_line(tiny_model_dir: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    cv2.imwrite(str(tmp_path / "logo.png"), sticker())
    out = tmp_path / "logo.jpg"
    assert main([str(tmp_path / "logo.png"), "beta", str(out), "--model", str(tiny_model_dir), "-q"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"warning: {out}:") and "grey" in err and ".png" in err
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).shape == (40, 56, 3)
    opaque = np.full((30, 30, 4), 200, np.uint8)
    opaque[..., 3] = 255  # an alpha channel with nothing transparent: nothing to warn about
    cv2.imwrite(str(tmp_path / "opaque.png"), opaque)
    assert main([str(tmp_path / "opaque.png"), "beta", str(tmp_path / "opaque.jpg"), "--model", str(tiny_model_dir), "-q"]) == 0
    assert capsys.readouterr().err == ""


def test_16_bit_and_grey_inputs(tiny_model_dir: Path, tmp_path: Path) -> None:
    eight = cv2.imread(str(_photo(tmp_path / "p8.png")))
    cv2.imwrite(str(tmp_path / "p16.png"), eight.astype(np.uint16) * 257)  # the same picture in 16 bits
    cv2.imwrite(str(tmp_path / "grey.png"), cv2.cvtColor(eight, cv2.COLOR_BGR2GRAY))
    for name in ("p8", "p16", "grey"):
        assert main([str(tmp_path / f"{name}.png"), "gamma", str(tmp_path / f"o_{name}.png"), "--model", str(tiny_model_dir)]) == 0
    o8, o16 = cv2.imread(str(tmp_path / "o_p8.png"), cv2.IMREAD_UNCHANGED), cv2.imread(str(tmp_path / "o_p16.png"), cv2.IMREAD_UNCHANGED)
    assert o16.dtype == np.uint8 and np.array_equal(o8, o16)
    assert cv2.imread(str(tmp_path / "o_grey.png"), cv2.IMREAD_UNCHANGED).shape == (31, 45, 3)


def test_folder_with_a_corrupt_file(tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "photos"
    src.mkdir()
    _photo(src / "a.png")
    corrupt_image(src / "broken.jpg")
    _photo(src / "c.png", 30, 20)
    (src / "empty.png").write_bytes(b"")
    out = tmp_path / "styled"
    assert main([str(src), "alpha", str(out), "--model", str(tiny_model_dir), "-q"]) == 4
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if line.startswith("warning:")] == [
        f"warning: {src / 'broken.jpg'}: not an image file OpenCV can read; skipped",
        f"warning: {src / 'empty.png'}: the file is empty; skipped",
    ]
    assert err[-1].startswith("error: 2 of 4 images could not be read and were skipped (broken.jpg, empty.png)")
    assert f"the other 2 were written to {out}" in err[-1]
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]  # nothing half-written, no temp files
    assert cv2.imread(str(out / "c.png")).shape == (20, 30, 3)


def test_folder_of_only_unreadable_files(tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "photos"
    src.mkdir()
    corrupt_image(src / "x.jpg")
    out = tmp_path / "styled"
    assert main([str(src), "alpha", str(out), "--model", str(tiny_model_dir), "-q"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"error: {src}: none of the 1 image files could be read (x.jpg)"
    assert not out.exists()


@pytest.mark.parametrize("flag", ["--keep-colours", "--keep-colors"])
def test_keep_colours(flag: str, tiny_model_dir: Path, tmp_path: Path) -> None:
    src = _photo(tmp_path / "in.png", 64, 48)
    plain, kept = tmp_path / "plain.png", tmp_path / "kept.png"
    assert main([str(src), "alpha", str(plain), "--model", str(tiny_model_dir)]) == 0
    assert main([str(src), "alpha", str(kept), "--model", str(tiny_model_dir), flag]) == 0
    images = [cv2.imread(str(x)) for x in (src, plain, kept)]
    assert np.array_equal(images[2], keep_colors(images[0], images[1]))  # nst-live's key c, the same function
    original, p, k = (_ycrcb(x) for x in images)
    assert np.abs(k[..., 0] - p[..., 0]).mean() < 1  # the style's light and shade
    assert np.abs(k[..., 1:] - original[..., 1:]).mean() * 4 < np.abs(p[..., 1:] - original[..., 1:]).mean()  # the photo's colours
