"""Reading and writing stills as people have them: EXIF orientation (8 ways, 3 formats),
transparency kept, 16-bit and grey inputs, TIFF's alpha marker, hidden files skipped."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from pictures import (
    corrupt_image,
    jpeg_with_exif,
    png_bytes,
    png_with_exif,
    sticker,
    stored_pixels,
    tiff_with_orientation,
    upright_scene,
    webp_with_exif,
)

from stylecast.realtime.errors import InputFileError, UsageError
from stylecast.realtime.image_tags import exif_orientation, mark_tiff_alpha
from stylecast.realtime.images import NEUTRAL_GREY, list_images, read_image, read_picture, write_image

UPRIGHT = upright_scene()


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.mark.parametrize("byte_order", [b"II", b"MM"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_phone_jpeg_comes_out_upright(orientation: int, byte_order: bytes, tmp_path: Path) -> None:
    stored = stored_pixels(UPRIGHT, orientation)
    path = jpeg_with_exif(tmp_path / "phone.jpg", stored, orientation, byte_order)
    img = read_image(path)
    assert img.shape == UPRIGHT.shape  # the size the user saw, not the stored one
    assert _mad(img, UPRIGHT) < 4  # JPEG noise only
    if orientation in (2, 3, 4):  # the same size either way: the pixels show it was turned
        assert _mad(stored, UPRIGHT) > 40
    # OpenCV's own conversion (IMREAD_COLOR) applies the tag too: the same pixels exactly.
    assert np.array_equal(img, cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR))


@pytest.mark.parametrize("write", [png_with_exif, webp_with_exif])
@pytest.mark.parametrize("orientation", [3, 6, 7])
def test_png_and_webp_exif_orientation(write, orientation: int, tmp_path: Path) -> None:  # noqa: ANN001
    path = write(tmp_path / f"x{orientation}", stored_pixels(UPRIGHT, orientation), orientation)
    assert np.array_equal(read_image(path), UPRIGHT)  # lossless: exact


def test_tiff_orientation_is_applied_once(tmp_path: Path) -> None:
    path = tiff_with_orientation(tmp_path / "scan.tif", stored_pixels(UPRIGHT, 6), 6)
    assert np.array_equal(read_image(path), UPRIGHT)


def test_training_reads_photos_and_styles_upright(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from stylecast.export.data import ContentCrops, load_style_image

    photos = tmp_path / "photos"
    photos.mkdir()
    jpeg_with_exif(photos / "portrait.jpg", stored_pixels(UPRIGHT, 8), 8)
    crops = ContentCrops(photos, 16)
    assert tuple(crops.images[0].shape) == (3, *UPRIGHT.shape[:2])
    assert tuple(load_style_image(photos / "portrait.jpg", 40).shape) == (1, 3, 24, 40)


@pytest.mark.parametrize("damage", ["truncated", "bad_offset", "out_of_range", "huge_count", "not_tiff"])
def test_malformed_exif_is_ignored(damage: str, tmp_path: Path) -> None:
    good = jpeg_with_exif(tmp_path / "g.jpg", UPRIGHT, 1).read_bytes()
    exif = {
        "truncated": b"II*\0\x08\0\0\0\x05\0\x12\x01",
        "bad_offset": b"II*\0\xff\xff\0\0",
        "out_of_range": b"II*\0\x08\0\0\0\x01\0" + struct.pack("<HHIHH", 0x0112, 3, 1, 9, 0) + b"\0\0\0\0",
        "huge_count": b"MM\0*\0\0\0\x08\xff\xff" + b"\0" * 20,
        "not_tiff": b"hello world, no tiff here",
    }[damage]
    path = jpeg_with_exif(tmp_path / "bad.jpg", UPRIGHT, 1, exif=exif)
    assert np.array_equal(read_image(path), cv2.imdecode(np.frombuffer(good, np.uint8), cv2.IMREAD_COLOR))
    tagged = jpeg_with_exif(tmp_path / "t.jpg", UPRIGHT, 6).read_bytes()
    complete = tagged.index(struct.pack("<HHIH", 0x0112, 3, 1, 6)) + 12  # the whole entry is in the prefix
    for cut in range(0, 80, 3):  # any prefix of a tagged file: never an exception
        assert exif_orientation(tagged[:cut]) == (6 if cut >= complete else 1)


def test_transparent_sticker_is_composited_on_grey_and_keeps_its_alpha(tmp_path: Path) -> None:
    bgra = sticker()
    red, blue = tmp_path / "red.png", tmp_path / "blue.png"
    cv2.imwrite(str(red), bgra)
    other = bgra.copy()
    other[bgra[..., 3] == 0, :3] = (255, 0, 0)  # the same sticker, other colours hidden under alpha 0
    cv2.imwrite(str(blue), other)
    a, b = read_picture(red), read_picture(blue)
    assert np.array_equal(a.bgr, b.bgr)  # hidden pixels do not leak
    assert np.array_equal(a.alpha, bgra[..., 3]) and a.transparent
    assert (a.bgr[bgra[..., 3] == 0] == NEUTRAL_GREY).all()
    opaque = bgra[..., 3] == 255
    assert np.array_equal(a.bgr[opaque], bgra[..., :3][opaque])
    half = bgra[..., 3] == 128
    expect = np.rint(bgra[..., :3][half] * (128 / 255) + NEUTRAL_GREY * (127 / 255))
    assert np.abs(a.bgr[half] - expect).max() <= 1


@pytest.mark.parametrize("suffix", [".png", ".webp", ".tif"])
def test_alpha_is_written_where_the_format_holds_it(suffix: str, tmp_path: Path) -> None:
    bgra = sticker()
    out = write_image(tmp_path / f"out{suffix}", bgra[..., :3].copy(), overwrite=False, alpha=bgra[..., 3].copy())
    back = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert back.shape == bgra.shape
    assert np.array_equal(back[..., 3], bgra[..., 3])
    if suffix == ".png":
        assert np.array_equal(back, bgra)
    p = read_picture(out)  # read back as it was written (a TIFF's alpha is marked as straight alpha)
    assert np.array_equal(p.alpha, bgra[..., 3])
    assert np.abs(p.bgr.astype(int) - read_picture(write_image(tmp_path / "ref.png", bgra[..., :3].copy(), overwrite=False,
                                                              alpha=bgra[..., 3].copy())).bgr).max() <= (6 if suffix == ".webp" else 1)


def test_tiff_alpha_is_marked_as_alpha(tmp_path: Path) -> None:
    bgra = sticker()
    data = write_image(tmp_path / "o.tif", bgra[..., :3].copy(), overwrite=False, alpha=bgra[..., 3].copy()).read_bytes()
    offset = struct.unpack("<I", data[4:8])[0]
    count = struct.unpack("<H", data[offset:offset + 2])[0]
    tags = {struct.unpack("<HHIH", data[offset + 2 + 12 * i:offset + 12 + 12 * i]) for i in range(count)}
    assert (338, 3, 1, 2) in tags  # ExtraSamples = unassociated alpha
    tag_ids = [t[0] for t in sorted(tags)]
    ordered = [struct.unpack("<H", data[offset + 2 + 12 * i:offset + 4 + 12 * i])[0] for i in range(count)]
    assert ordered == tag_ids  # directory entries stay sorted
    assert mark_tiff_alpha(data) == data  # marked once
    plain = cv2.imencode(".tif", bgra[..., :3])[1].tobytes()
    assert mark_tiff_alpha(plain) == plain  # 3 samples: nothing to mark


def test_alpha_for_jpeg_is_refused(tmp_path: Path) -> None:
    bgra = sticker()
    with pytest.raises(UsageError, match="cannot hold an alpha channel"):
        write_image(tmp_path / "o.jpg", bgra[..., :3].copy(), overwrite=False, alpha=bgra[..., 3].copy())
    assert not list(tmp_path.iterdir())


def test_16_bit_colour_grey_and_alpha(tmp_path: Path) -> None:
    rgb16 = np.zeros((20, 30, 3), np.uint16)
    rgb16[..., 0], rgb16[..., 1], rgb16[..., 2] = 65535, 32896, 257 * 10  # B, G, R as OpenCV stores them
    cv2.imwrite(str(tmp_path / "c16.png"), rgb16)
    p = read_picture(tmp_path / "c16.png")
    assert p.bits == 16 and p.alpha is None and p.bgr.dtype == np.uint8
    assert (p.bgr == (255, 128, 10)).all()
    grey16 = np.full((20, 30), 257 * 77, np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), grey16)
    assert (read_image(tmp_path / "g16.png") == 77).all()
    rgba16 = np.dstack([rgb16, np.full((20, 30), 65535, np.uint16)])
    rgba16[:5, :, 3] = 0
    cv2.imwrite(str(tmp_path / "a16.tif"), rgba16)
    p = read_picture(tmp_path / "a16.tif")
    assert p.alpha is not None and (p.alpha[:5] == 0).all() and (p.alpha[5:] == 255).all()
    assert (p.bgr[:5] == NEUTRAL_GREY).all() and (p.bgr[5:] == (255, 128, 10)).all()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("extra_samples", [1, 2])
def test_tiff_with_marked_alpha_as_photo_editors_write_it(dtype: type, extra_samples: int, tmp_path: Path) -> None:
    """Straight (2) or premultiplied (1) alpha, 8 or 16 bits: the same picture on grey whichever
    way OpenCV decodes it."""
    top = np.iinfo(dtype).max
    colour, a = 0.8, 0.25  # a straight colour and its alpha
    stored = colour * a if extra_samples == 1 else colour
    px = np.zeros((4, 4, 4), dtype)
    px[..., :3], px[..., 3] = round(stored * top), round(a * top)
    (tmp_path / "t.tif").write_bytes(mark_tiff_alpha(cv2.imencode(".tif", px)[1].tobytes(), extra_samples))
    p = read_picture(tmp_path / "t.tif")
    assert p.alpha is not None and abs(int(p.alpha[0, 0]) - round(a * 255)) <= 1
    assert np.abs(p.bgr.astype(float) - (colour * a * 255 + NEUTRAL_GREY * (1 - a))).max() <= 1.5


def test_grey_and_grey_alpha_png(tmp_path: Path) -> None:
    (tmp_path / "g.png").write_bytes(png_bytes(np.full((6, 7, 1), 90, np.uint8), 0))
    assert read_image(tmp_path / "g.png").shape == (6, 7, 3) and (read_image(tmp_path / "g.png") == 90).all()
    ga = np.zeros((6, 7, 2), np.uint16)
    ga[..., 0], ga[..., 1] = 257 * 200, 65535
    ga[0, :, 1] = 0
    (tmp_path / "ga.png").write_bytes(png_bytes(ga, 4))
    p = read_picture(tmp_path / "ga.png")
    assert p.bits == 16 and p.alpha is not None and (p.alpha[0] == 0).all() and (p.alpha[1:] == 255).all()
    assert (p.bgr[1:] == 200).all() and (p.bgr[0] == NEUTRAL_GREY).all()


def test_unreadable_files_say_which(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="broken.jpg: not an image file"):
        read_image(corrupt_image(tmp_path / "broken.jpg"))
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputFileError, match="empty.png: the file is empty"):
        read_image(tmp_path / "empty.png")


def test_list_images_leaves_out_hidden_files(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), UPRIGHT)
    (tmp_path / "._a.png").write_bytes(b"\0\5\26\7 AppleDouble")
    (tmp_path / ".a.x1y2.tmp.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_images(tmp_path)] == ["a.png"]


def test_style_pictures_are_read_upright(tiny_predictor_model_dir: Path, tmp_path: Path) -> None:
    """--style-image, image: mixes, --style-dir and nst-style add all predict through predict_file."""
    from stylecast.realtime.model_folder import load_model_folder
    from stylecast.realtime.style_images import PredictorSession

    scene = cv2.resize(upright_scene(), (160, 96), interpolation=cv2.INTER_NEAREST)
    path = jpeg_with_exif(tmp_path / "painting.jpg", stored_pixels(scene, 5), 5)
    with PredictorSession(load_model_folder(tiny_predictor_model_dir)) as predictor:
        assert np.array_equal(predictor.predict_file(path), predictor.predict(cv2.imread(str(path))))
        assert cv2.imread(str(path)).shape == scene.shape
