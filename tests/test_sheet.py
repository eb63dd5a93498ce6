"""nst-image PHOTO --sheet SHEET: the photo in every style, labelled, the original first; with
--style-dir, each picture's predicted style too. Real sessions on conftest's tiny models."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from pictures import corrupt_image, jpeg_with_exif, stored_pixels
from test_style_images import painting

from stylecast.realtime.cli.image import main
from stylecast.realtime.colors import keep_colors
from stylecast.realtime.engine import StyleEngine
from stylecast.realtime.model_folder import load_model_folder
from stylecast.realtime.sheet import BACKGROUND, _label, plan_sheet
from stylecast.realtime.style_images import PredictorSession


def _photo(path: Path, w: int, h: int) -> Path:
    yy, xx = np.mgrid[0:h, 0:w]
    cv2.imwrite(str(path), np.stack([xx * 255 // w, yy * 255 // h, (xx * yy) % 200 + 30], -1).astype(np.uint8))
    return path


def _tiles(sheet: np.ndarray, n: int, image_hw: tuple[int, int], tile: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(picture, label strip) of each tile, cut out where plan_sheet says they are."""
    layout = plan_sheet(n, image_hw, tile)
    assert sheet.shape == (*layout.size, 3)
    th, tw = layout.tile
    out = []
    for i in range(n):
        y, x = layout.origin(i)
        out.append((sheet[y:y + th, x:x + tw], sheet[y + th:y + th + layout.label_h, x:x + tw]))
    assert not (sheet[layout.origin(n - 1)[0]:, layout.size[1] - layout.margin:] != BACKGROUND).any()  # the right margin is empty
    return out


def _styled(model_dir: Path, image: np.ndarray, key: str | int | None = None, vector: np.ndarray | None = None) -> np.ndarray:
    with StyleEngine(load_model_folder(model_dir), device="cpu") as engine:
        if vector is not None:
            engine.set_style_vector(vector)
        else:
            engine.set_style(key)
        return engine(image)


def test_sheet_shows_the_original_then_every_style_by_name(tiny_model_dir: Path, tmp_path: Path) -> None:
    src = _photo(tmp_path / "me.png", 64, 48)
    out = tmp_path / "sheet.png"
    assert main([str(src), "--sheet", str(out), "--model", str(tiny_model_dir), "--tile", "64"]) == 0
    photo = cv2.imread(str(src))
    tiles = _tiles(cv2.imread(str(out)), 4, (48, 64), 64)
    assert np.array_equal(tiles[0][0], photo)
    for i, name in enumerate(("alpha", "beta", "gamma"), start=1):
        assert np.array_equal(tiles[i][0], _styled(tiny_model_dir, photo, name)), name
    strips = [strip for _, strip in tiles]
    assert all((s > 200).any() for s in strips)  # every tile is labelled
    assert all(not np.array_equal(strips[i], strips[j]) for i in range(4) for j in range(i + 1, 4))  # with its own name


def test_tiles_are_full_size_results_made_small(tiny_model_dir: Path, tmp_path: Path) -> None:
    """What a tile shows is what nst-image PHOTO NAME OUT gives, shrunk, not the style run on a thumbnail."""
    src = _photo(tmp_path / "big.png", 256, 160)
    out = tmp_path / "sheet.png"
    assert main([str(src), "--sheet", str(out), "--model", str(tiny_model_dir), "--tile", "64", "-q"]) == 0
    photo = cv2.imread(str(src))
    tile = _tiles(cv2.imread(str(out)), 4, (160, 256), 64)[2][0]
    assert tile.shape == (40, 64, 3)
    shrunk = cv2.resize(_styled(tiny_model_dir, photo, "beta"), (64, 40), interpolation=cv2.INTER_AREA)
    thumbnail = _styled(tiny_model_dir, cv2.resize(photo, (64, 40), interpolation=cv2.INTER_AREA), "beta")
    assert np.array_equal(tile, shrunk)
    assert np.abs(tile.astype(int) - thumbnail).mean() > 5


def test_sheet_of_an_upright_phone_photo_with_strength_and_keep_colours(tiny_model_dir: Path, tmp_path: Path) -> None:
    upright = cv2.imread(str(_photo(tmp_path / "u.png", 48, 64)))
    src = jpeg_with_exif(tmp_path / "phone.jpg", stored_pixels(upright, 8), 8)
    photo = cv2.imread(str(src))  # OpenCV's own conversion applies the orientation too
    out = tmp_path / "sheet.png"
    assert main([str(src), "--sheet", str(out), "--model", str(tiny_model_dir), "--tile", "64", "--strength", "0.5",
                 "--keep-colours"]) == 0
    tiles = _tiles(cv2.imread(str(out)), 4, (64, 48), 64)
    full = _styled(tiny_model_dir, photo, "gamma")
    assert np.array_equal(tiles[3][0], keep_colors(photo, cv2.addWeighted(full, 0.5, photo, 0.5, 0.0)))


def test_sheet_with_a_style_dir(tiny_predictor_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _photo(tmp_path / "me.png", 64, 48)
    art = tmp_path / "art"
    art.mkdir()
    painting(art / "a_waves.png", seed=1)
    corrupt_image(art / "b_broken.jpg")
    painting(art / "c_noise.png", seed=4)
    out = tmp_path / "sheet.png"
    code = main([str(src), "--sheet", str(out), "--style-dir", str(art), "--model", str(tiny_predictor_model_dir),
                 "--tile", "64", "-q"])
    err = capsys.readouterr().err.splitlines()
    assert code == 4
    assert err[0] == f"warning: {art / 'b_broken.jpg'}: not an image file OpenCV can read; skipped"
    assert err[-1].startswith("error: 1 of 3 pictures of") and "b_broken.jpg" in err[-1] and len(err) == 2
    tiles = _tiles(cv2.imread(str(out)), 5, (48, 64), 64)  # original, alpha, beta, a_waves, c_noise
    photo = cv2.imread(str(src))
    with PredictorSession(load_model_folder(tiny_predictor_model_dir)) as predictor:
        vec = predictor.predict_file(art / "c_noise.png")
    assert np.array_equal(tiles[4][0], _styled(tiny_predictor_model_dir, photo, vector=vec))
    assert np.array_equal(tiles[2][0], _styled(tiny_predictor_model_dir, photo, "beta"))


@pytest.mark.parametrize("case", ["with_style", "style_option", "style_dir_alone", "no_predictor", "exists", "folder",
                                  "bad_suffix", "empty_style_dir"])
def test_sheet_bad_usage_is_one_error_line(case: str, tiny_model_dir: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    src = _photo(tmp_path / "me.png", 40, 30)
    (tmp_path / "art").mkdir()
    painting(tmp_path / "art" / "p.png")
    sheet = tmp_path / "sheet.png"
    argv = [str(src), "--sheet", str(sheet), "--model", str(tiny_model_dir)]
    expect = {"with_style": "give only the photo", "style_option": "pick one", "style_dir_alone": "--style-dir goes with --sheet",
              "no_predictor": "no style-prediction network", "exists": "already exists", "folder": "--sheet takes one photo",
              "bad_suffix": "unsupported image extension", "empty_style_dir": "no image files"}[case]
    if case == "with_style":
        argv = [str(src), "alpha", "--sheet", str(sheet), "--model", str(tiny_model_dir)]
    elif case == "style_option":
        argv += ["--style", "beta"]
    elif case == "style_dir_alone":
        argv = [str(src), "alpha", str(tmp_path / "o.png"), "--style-dir", str(tmp_path / "art"), "--model", str(tiny_model_dir)]
    elif case == "no_predictor":
        argv += ["--style-dir", str(tmp_path / "art")]
    elif case == "exists":
        sheet.write_bytes(b"keep")
    elif case == "folder":
        argv[0] = str(tmp_path / "art")
    elif case == "bad_suffix":
        argv[2] = str(tmp_path / "sheet.txt")
    elif case == "empty_style_dir":
        (tmp_path / "empty").mkdir()
        argv += ["--style-dir", str(tmp_path / "empty")]
        argv[argv.index("--model") + 1] = str(tmp_path / "unused")  # the folder is looked at first
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and expect in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    if case == "exists":
        assert sheet.read_bytes() == b"keep"


def test_labels_fit_their_tile_in_ascii() -> None:
    assert _label("Café à l'eau", 400, 0.5) == "Cafe a l'eau"
    long = _label("a very long painting file name that goes on and on.png", 100, 0.5)
    assert long.endswith("...") and cv2.getTextSize(long, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)[0][0] <= 100
    assert "?" in _label("日本", 400, 0.5)


def test_compare_puts_models_side_by_side_one_row_each(tiny_model_dir: Path, tiny_predictor_model_dir: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """--compare: one row per model (--model first), the same style in the same column, only the
    styles every model has (tiny has alpha, beta, gamma; the predictor's model alpha and beta)."""
    src = _photo(tmp_path / "me.png", 64, 48)
    out = tmp_path / "cmp.png"
    assert main([str(src), "--sheet", str(out), "--model", str(tiny_model_dir), "--compare", str(tiny_predictor_model_dir),
                 "--tile", "64"]) == 0
    photo, sheet = cv2.imread(str(src)), cv2.imread(str(out))
    layout = plan_sheet(6, (48, 64), 64, columns=3)
    assert sheet.shape == (*layout.size, 3) and layout.rows == 2
    th, tw = layout.tile
    for row, model in enumerate((tiny_model_dir, tiny_predictor_model_dir)):
        for col, name in enumerate((None, "alpha", "beta")):
            y, x = layout.origin(row * 3 + col)
            want = photo if name is None else _styled(model, photo, name)
            assert np.array_equal(sheet[y:y + th, x:x + tw], want), (model, name)
    # both folders are called "tiny": the labels tell them apart by their parent folders
    assert f"{tiny_model_dir.parent.name}/tiny" in capsys.readouterr().err
    # a style one of the models lacks is named with that model's folder
    code = main([str(src), "--sheet", str(tmp_path / "x.png"), "--model", str(tiny_model_dir), "--compare",
                 str(tiny_predictor_model_dir), "--sheet-styles", "alpha", "gamma"])
    err = capsys.readouterr().err
    assert code != 0 and "gamma" in err and str(tiny_predictor_model_dir) in err and not (tmp_path / "x.png").exists()
    for argv, message in (([str(src), "starry", str(tmp_path / "y.png"), "--compare", str(tiny_model_dir)], "go with --sheet"),
                          ([str(src), "--sheet", str(tmp_path / "y.png"), "--sheet-styles", "alpha"], "goes with --compare")):
        assert main(["--model", str(tiny_model_dir), *argv]) == 2
        assert message in capsys.readouterr().err
