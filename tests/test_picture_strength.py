"""--strength and --keep-colours across commands: with a picture as the style, strength moves
between the content's own predicted style and the picture's; with a named style it fades
pixels; --keep-colours in nst-video and nst-live is nst-live's key c.

The model is conftest's ``tiny_predictor_model_dir`` (random network and predictor, so different
vectors give visibly different pictures)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_style_images import painting

from stylecast.realtime.cli.image import main as image_main
from stylecast.realtime.colors import keep_colors
from stylecast.realtime.engine import StyleEngine
from stylecast.realtime.model_folder import load_model_folder
from stylecast.realtime.style_images import PredictorSession


def _photo(path: Path, w: int = 96, h: int = 72, seed: int = 0) -> Path:
    """At least 64 px a side, so the predictor sees it as it is."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 2 + 20 * seed, yy * 3, (xx + yy) + 40], -1) % 256
    cv2.imwrite(str(path), img.astype(np.uint8))
    return path


def _run(model_dir: Path, vector: np.ndarray, image: np.ndarray) -> np.ndarray:
    with StyleEngine(load_model_folder(model_dir), device="cpu") as engine:
        engine.set_style_vector(np.asarray(vector, np.float32))
        return engine(image)


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


@pytest.fixture
def vectors(tiny_predictor_model_dir: Path, tmp_path: Path) -> dict[str, object]:
    src, art = _photo(tmp_path / "in.png"), painting(tmp_path / "art.png", seed=2)
    model = load_model_folder(tiny_predictor_model_dir)
    with PredictorSession(model) as predictor:
        return {"src": src, "art": art, "photo": cv2.imread(str(src)), "model": model,
                "own": predictor.predict(cv2.imread(str(src))), "picture": predictor.predict_file(art)}


@pytest.mark.parametrize("strength", [0.0, 0.4])
def test_style_image_strength_moves_from_the_photos_own_style(strength: float, vectors: dict, tiny_predictor_model_dir: Path,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    assert image_main([str(vectors["src"]), str(out), "--style-image", str(vectors["art"]), "--strength", str(strength),
                       "--model", str(tiny_predictor_model_dir)]) == 0
    got = cv2.imread(str(out))
    want = _run(tiny_predictor_model_dir, (1 - strength) * vectors["own"] + strength * vectors["picture"], vectors["photo"])
    assert _mad(got, want) < 0.5 and np.abs(got.astype(int) - want).max() <= 2  # float rounding only
    full = _run(tiny_predictor_model_dir, vectors["picture"], vectors["photo"])
    fade = cv2.addWeighted(full, strength, vectors["photo"], 1 - strength, 0.0)
    assert _mad(got, fade) > 5  # not a pixel fade: strength 0 is not the photo itself
    assert _mad(got, full) > 2


def test_mix_with_a_picture_at_a_strength(vectors: dict, tiny_predictor_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    assert image_main([str(vectors["src"]), "mix", str(out), "--mix", "beta=1", f"image:{vectors['art']}=1",
                       "--strength", "0.5", "--model", str(tiny_predictor_model_dir)]) == 0
    mix = 0.5 * vectors["model"].style_vectors[1] + 0.5 * vectors["picture"]
    want = _run(tiny_predictor_model_dir, 0.5 * vectors["own"] + 0.5 * mix, vectors["photo"])
    assert np.abs(cv2.imread(str(out)).astype(int) - want).max() <= 2


def test_named_style_strength_is_still_a_pixel_fade(vectors: dict, tiny_predictor_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    assert image_main([str(vectors["src"]), "alpha", str(out), "--strength", "0.3", "--model", str(tiny_predictor_model_dir)]) == 0
    full = _run(tiny_predictor_model_dir, vectors["model"].style_vectors[0], vectors["photo"])
    assert np.array_equal(cv2.imread(str(out)), cv2.addWeighted(full, 0.3, vectors["photo"], 0.7, 0.0))


def test_each_photo_of_a_folder_has_its_own_style(vectors: dict, tiny_predictor_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    _photo(folder / "a.png", seed=0)
    _photo(folder / "b.png", 80, 100, seed=3)
    args = ["--style-image", str(vectors["art"]), "--strength", "0.5", "--model", str(tiny_predictor_model_dir)]
    assert image_main([str(folder), str(tmp_path / "out"), *args]) == 0
    assert image_main([str(folder / "b.png"), str(tmp_path / "b_alone.png"), *args]) == 0
    assert np.array_equal(cv2.imread(str(tmp_path / "out" / "b.png")), cv2.imread(str(tmp_path / "b_alone.png")))
    with PredictorSession(vectors["model"]) as predictor:
        own_b = predictor.predict_file(folder / "b.png")
    b = cv2.imread(str(folder / "b.png"))
    want = _run(tiny_predictor_model_dir, 0.5 * own_b + 0.5 * vectors["picture"], b)
    assert np.abs(cv2.imread(str(tmp_path / "out" / "b.png")).astype(int) - want).max() <= 2


def test_small_photos_get_an_own_style_too(vectors: dict, tiny_predictor_model_dir: Path, tmp_path: Path) -> None:
    small = _photo(tmp_path / "small.png", 40, 24)
    out = tmp_path / "out.png"
    assert image_main([str(small), str(out), "--style-image", str(vectors["art"]), "--strength", "0.5",
                       "--model", str(tiny_predictor_model_dir)]) == 0
    assert cv2.imread(str(out)).shape == (24, 40, 3)


def test_help_says_what_strength_means(capsys: pytest.CaptureFixture[str]) -> None:
    from stylecast.realtime.cli.live import main as live_main
    from stylecast.realtime.cli.video import main as video_main

    texts = {}
    for name, main in (("image", image_main), ("video", video_main), ("live", live_main)):
        with pytest.raises(SystemExit):
            main(["--help"])
        texts[name] = " ".join(capsys.readouterr().out.split())
    assert "the photo's own predicted style (0) to the picture's (1)" in texts["image"]
    assert "the first frame's own predicted style (0) to the picture's (1)" in texts["video"]
    assert "a fade from the original pixels (0) to the full style (1), whatever the style" in texts["live"]
    for text in texts.values():
        assert "--keep-colours, --keep-colors" in text


def test_towards_picture_per_image_or_first_image_only(vectors: dict) -> None:
    from stylecast.realtime.styling import PictureStyle, TowardsPicture

    a = vectors["photo"]
    b = np.ascontiguousarray(a[::-1, ::-1] // 2)
    with PredictorSession(vectors["model"]) as predictor, StyleEngine(vectors["model"], device="cpu") as engine:
        own_a, own_b = predictor.predict(a), predictor.predict(b)
        assert float(np.abs(own_a - own_b).mean()) > 1e-3
        picture = PictureStyle(vectors["picture"], "art.png")
        for per_image, expect_b in ((True, own_b), (False, own_a)):
            look = TowardsPicture(engine, predictor, picture, 0.25, per_image=per_image)
            look(a)
            np.testing.assert_allclose(engine.style_vector, 0.75 * own_a + 0.25 * picture.vector, rtol=1e-5, atol=1e-6)
            look(b)  # a video's next frame keeps the first frame's style; a folder's next photo has its own
            np.testing.assert_allclose(engine.style_vector, 0.75 * expect_b + 0.25 * picture.vector, rtol=1e-5, atol=1e-6)
            assert engine.strength == 1.0


# ---------------------------------------------------------------- videos


def test_nst_video_picture_strength_from_the_first_frame_and_keep_colours(vectors: dict, tiny_predictor_model_dir: Path,
                                                                         tmp_path: Path) -> None:
    pytest.importorskip("av")
    from clips import make_clip, video_frames

    from stylecast.realtime.cli.video import main as video_main

    clip = make_clip(tmp_path / "in.mp4", size=(96, 72), frames=5)
    _, frames = video_frames(clip.path)
    common = ["--model", str(tiny_predictor_model_dir), "--temporal", "0", "-q", "--crf", "0"]
    out = tmp_path / "half.mp4"
    assert video_main([str(clip.path), str(out), "--style-image", str(vectors["art"]), "--strength", "0.5", *common]) == 0
    _, got = video_frames(out)
    with PredictorSession(vectors["model"]) as predictor:
        first = predictor.predict(frames[0])
    steady = (0.5 * first + 0.5 * vectors["picture"]).astype(np.float32)
    fade = [cv2.addWeighted(_run(tiny_predictor_model_dir, vectors["picture"], f), 0.5, f, 0.5, 0.0) for f in frames]
    for f, g, pixel_fade in zip(frames, got, fade, strict=True):
        want = _run(tiny_predictor_model_dir, steady, f)
        assert _mad(g, want) * 5 < _mad(g, pixel_fade)  # a move in style space, not a fade (4:2:0 blurs the rest)

    kept = tmp_path / "kept.mp4"
    assert video_main([str(clip.path), str(kept), "--style", "alpha", "--keep-colors", *common]) == 0
    _, got = video_frames(kept)
    with StyleEngine(vectors["model"], device="cpu") as engine:
        for f, g in zip(frames, got, strict=True):
            assert _mad(g, keep_colors(f, engine(f))) * 10 < _mad(g, engine(f))


# ---------------------------------------------------------------- nst-live


def test_nst_live_keep_colours_starts_on_and_key_c_turns_it_off(tiny_model_dir: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from stylecast.realtime.cli.live import main as live_main
    from stylecast.realtime.demo import demo_scene

    monkeypatch.setattr(sys, "stdin", io.StringIO("s\nc\ns\nq\n"))
    assert live_main(["--source", "demo", "--width", "160", "--height", "90", "--no-window", "--device", "cpu",
                      "--model", str(tiny_model_dir), "--temporal", "0", "--keep-colours", "--snapshot-dir", str(tmp_path),
                      "--max-frames", "600"]) == 0
    on, off = (cv2.imread(str(p)) for p in sorted(tmp_path.glob("stylecast-*.png")))
    chroma = lambda img: cv2.cvtColor(img, cv2.COLOR_BGR2YCrCb)[..., 1:].reshape(-1, 2).mean(0)  # noqa: E731
    scene = np.mean([chroma(demo_scene(160, 90, t)) for t in (0.0, 1.0, 2.0)], axis=0)
    assert np.abs(chroma(on) - scene).sum() < 4 < np.abs(chroma(off) - scene).sum()
