"""A picture as the style at run time: PredictorSession, --style-image, image: in --mix,
nst-style add, the watched-folder library for nst-live, and bad input.

The model folder here is conftest's ``tiny_predictor_model_dir``: a tiny random-weight network
plus a random-weight style predictor (its last layer randomised, so different pictures give
different vectors), exported once per session.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from stylecast.realtime import contract as C
from stylecast.realtime.cli.image import main as image_main
from stylecast.realtime.cli.style import main as style_main
from stylecast.realtime.engine import StyleEngine
from stylecast.realtime.errors import InputFileError, ModelFolderError, UsageError
from stylecast.realtime.model_folder import load_model_folder, sha256_file
from stylecast.realtime.style_images import (
    PredictorSession,
    StyleImageLibrary,
    predictor_input,
    save_style,
)
from stylecast.realtime.styles import mix_vectors


@pytest.fixture
def model_copy(tiny_predictor_model_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_predictor_model_dir, tmp_path / "model"))


def painting(path: Path, w: int = 96, h: int = 80, seed: int = 0) -> Path:
    """A generated 'painting': smooth colour waves plus seeded strokes of noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    f = 3 + seed % 5
    img = np.stack([np.sin(xx / f) * 100 + 128, np.cos(yy / (f + 2)) * 100 + 128, np.sin((xx + yy) / (2 * f)) * 60 + 100 + 40 * seed % 90], -1)
    img = cv2.GaussianBlur(img + rng.normal(0, 30 + 10 * seed, img.shape), (5, 5), 1.0)
    cv2.imwrite(str(path), np.clip(img, 0, 255).astype(np.uint8))
    return path


def photo(path: Path, w: int = 45, h: int = 31) -> Path:
    yy, xx = np.mgrid[0:h, 0:w]
    cv2.imwrite(str(path), np.stack([xx * 5, yy * 7, (xx + yy) * 3], -1).astype(np.uint8))
    return path


# ---------------------------------------------------------------- the session


def test_predictor_input_scales_to_the_working_side() -> None:
    img = np.zeros((384, 512, 3), np.uint8)
    assert predictor_input(img, 256).shape == (256, 341, 3)
    assert predictor_input(np.zeros((64, 80, 3), np.uint8), 256).shape == (256, 320, 3)
    assert predictor_input(np.zeros((70, 2000, 3), np.uint8), 256).shape == (64, 1024, 3)  # longer side capped at 4x
    with pytest.raises(InputFileError, match="at least 64"):
        predictor_input(np.zeros((63, 200, 3), np.uint8), 256)


def test_session_predicts_caches_and_tells_pictures_apart(tiny_predictor_model_dir: Path, tmp_path: Path) -> None:
    model = load_model_folder(tiny_predictor_model_dir)
    assert model.predictor == tiny_predictor_model_dir / C.PREDICTOR_GRAPH
    a, b = painting(tmp_path / "a.png", seed=1), painting(tmp_path / "b.png", seed=4)
    with PredictorSession(model) as predictor:
        assert predictor.side == 256
        va = predictor.predict_file(a)
        assert va.dtype == np.float32 and va.shape == (model.style_dim,) and np.all(np.isfinite(va))
        assert not va.flags.writeable
        calls = []
        run = predictor.session.run
        predictor.session.run = lambda *x, **k: calls.append(1) or run(*x, **k)  # count real runs
        assert predictor.predict_file(a) is va  # same file: no run
        shutil.copy(a, tmp_path / "copy_of_a.png")
        assert predictor.predict_file(tmp_path / "copy_of_a.png") is va  # same content, other name: no run
        assert calls == []
        vb = predictor.predict_file(b)
        assert calls == [1]
        assert np.abs(va - vb).max() > 1e-2
        # an in-memory image gives what its file gives
        assert np.array_equal(predictor.predict(cv2.imread(str(b))), vb)


def test_model_without_predictor_is_refused(tiny_model_dir: Path) -> None:
    model = load_model_folder(tiny_model_dir)
    assert model.predictor is None
    with pytest.raises(ModelFolderError, match="no style-prediction network"):
        PredictorSession(model)


def test_mix_vectors(tiny_predictor_model_dir: Path) -> None:
    model = load_model_folder(tiny_predictor_model_dir)
    picture = np.full(model.style_dim, 2.0, np.float32)
    got = mix_vectors(model, {"alpha": 3.0, "image:x.png": 1.0}, {"image:x.png": picture})
    assert np.allclose(got, 0.75 * model.style_vectors[0] + 0.25 * picture, atol=1e-6)
    with pytest.raises(UsageError):
        mix_vectors(model, {"alpha": 0.0}, {})


# ---------------------------------------------------------------- the commands


def _stylised_with(model_dir: Path, vector: np.ndarray, image: Path) -> np.ndarray:
    with StyleEngine(load_model_folder(model_dir), device="cpu") as engine:
        engine.set_style_vector(vector)
        return engine(cv2.imread(str(image)))


def test_nst_image_style_image_end_to_end(tiny_predictor_model_dir: Path, tmp_path: Path) -> None:
    src, art = photo(tmp_path / "in.png"), painting(tmp_path / "art.png", seed=2)
    out = tmp_path / "out.png"
    assert image_main([str(src), str(out), "--style-image", str(art), "--model", str(tiny_predictor_model_dir)]) == 0
    got = cv2.imread(str(out))
    assert got.shape == (31, 45, 3)
    with PredictorSession(load_model_folder(tiny_predictor_model_dir)) as predictor:
        vec = predictor.predict_file(art)
    assert np.array_equal(got, _stylised_with(tiny_predictor_model_dir, vec, src))
    named = tmp_path / "alpha.png"
    assert image_main([str(src), "alpha", str(named), "--model", str(tiny_predictor_model_dir)]) == 0
    assert np.abs(cv2.imread(str(named)).astype(int) - got.astype(int)).mean() > 1


def test_nst_image_mix_with_a_picture(tiny_predictor_model_dir: Path, tmp_path: Path) -> None:
    src, art = photo(tmp_path / "in.png"), painting(tmp_path / "art.png", seed=3)
    out = tmp_path / "out.png"
    args = [str(src), "mix", str(out), "--model", str(tiny_predictor_model_dir), "--mix", "beta=1", f"image:{art}=3"]
    assert image_main(args) == 0
    model = load_model_folder(tiny_predictor_model_dir)
    with PredictorSession(model) as predictor:
        picture = predictor.predict_file(art)
    want = _stylised_with(tiny_predictor_model_dir, (0.25 * model.style_vectors[1] + 0.75 * picture).astype(np.float32), src)
    got = cv2.imread(str(out)).astype(int)
    assert np.abs(got - want).max() <= 1  # float rounding of the mix may move a pixel by one level
    for other in (model.style_vectors[1], picture):  # and it is neither of its parts
        assert np.abs(got - _stylised_with(tiny_predictor_model_dir, other, src)).mean() > 1


def test_nst_video_style_image(tiny_predictor_model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("av")
    from clips import make_clip, video_frames

    from stylecast.realtime.cli.video import main as video_main

    clip = make_clip(tmp_path / "in.mp4", size=(64, 48), frames=6)
    art = painting(tmp_path / "art.png", seed=5)
    outs = {}
    for how, extra in (("picture", ["--style-image", str(art)]), ("alpha", ["--style", "alpha"])):
        out = tmp_path / f"{how}.mp4"
        assert video_main([str(clip.path), str(out), "--model", str(tiny_predictor_model_dir), "--temporal", "0", "-q", *extra]) == 0
        _, frames = video_frames(out)
        assert len(frames) == 6 and frames[0].shape == (48, 64, 3)
        outs[how] = np.stack(frames).astype(int)
    assert np.abs(outs["picture"] - outs["alpha"]).mean() > 1


@pytest.mark.parametrize("case", ["too_small", "missing", "no_predictor", "with_style", "text_file", "style_and_image"])
def test_bad_style_image_exit_2(case: str, tiny_predictor_model_dir: Path, tiny_model_dir: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    src, art = photo(tmp_path / "in.png"), painting(tmp_path / "art.png")
    model, extra, positional = tiny_predictor_model_dir, [], [str(src), str(tmp_path / "out.png")]
    expect = {"too_small": "at least 64", "missing": "no such file", "no_predictor": "no style-prediction network",
              "with_style": "--style-image is a style on its own", "text_file": "not an image",
              "style_and_image": "both give the style"}[case]
    if case == "too_small":
        art = painting(tmp_path / "small.png", w=200, h=50)
    elif case == "missing":
        art = tmp_path / "nope.jpg"
    elif case == "no_predictor":
        model = tiny_model_dir
    elif case == "with_style":
        extra = ["--mix", "alpha=1"]
        positional = [str(src), "mix", str(tmp_path / "out.png")]
    elif case == "text_file":
        art = tmp_path / "notes.jpg"
        art.write_text("not a picture")
    elif case == "style_and_image":
        positional = [str(src), "alpha", str(tmp_path / "out.png")]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert image_main([*positional, "--style-image", str(art), "--model", str(model), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and expect in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


# ---------------------------------------------------------------- nst-style add


def test_nst_style_add_then_style_name(model_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, art = photo(tmp_path / "in.png"), painting(tmp_path / "art.png", seed=6)
    assert style_main(["add", str(art), "--name", "mine", "--model", str(model_copy)]) == 0
    assert "mine" in capsys.readouterr().out
    model = load_model_folder(model_copy)  # hashes, styles and both graphs validate
    assert model.style_names == ("alpha", "beta", "mine") and model.predictor is not None
    manifest = json.loads((model_copy / C.MANIFEST_NAME).read_text())
    assert manifest["files"][C.STYLES_NAME]["sha256"] == sha256_file(model_copy / C.STYLES_NAME)
    assert manifest["provenance"]["added_styles"][-1] == {"name": "mine", "image": "art.png", "method": "predicted"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left
    by_name, by_image = tmp_path / "by_name.png", tmp_path / "by_image.png"
    assert image_main([str(src), "mine", str(by_name), "--model", str(model_copy)]) == 0
    assert image_main([str(src), str(by_image), "--style-image", str(art), "--model", str(model_copy)]) == 0
    assert np.array_equal(cv2.imread(str(by_name)), cv2.imread(str(by_image)))


def test_nst_style_add_to_a_copy_leaves_the_source(tiny_predictor_model_dir: Path, tmp_path: Path) -> None:
    before = sha256_file(tiny_predictor_model_dir / C.MANIFEST_NAME)
    out = tmp_path / "mine"
    assert style_main(["add", str(painting(tmp_path / "a.png")), "--name", "a",
                       "--model", str(tiny_predictor_model_dir), "--out", str(out)]) == 0
    assert load_model_folder(out).style_names == ("alpha", "beta", "a")
    assert sha256_file(tiny_predictor_model_dir / C.MANIFEST_NAME) == before
    assert style_main(["add", str(painting(tmp_path / "b.png")), "--name", "b",
                       "--model", str(tiny_predictor_model_dir), "--out", str(out)]) == 2


@pytest.mark.parametrize("case", ["existing_name", "bad_name", "digits", "bundled_without_out", "refine_without_checkpoint",
                                  "no_predictor", "wrong_checkpoint", "small_image"])
def test_nst_style_add_bad_input(case: str, model_copy: Path, tiny_model_dir: Path, tiny_checkpoint: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    art = painting(tmp_path / "art.png")
    name, args = "new", ["--model", str(model_copy)]
    if case == "existing_name":
        name = "alpha"
    elif case == "bad_name":
        name = "a b=c"
    elif case == "digits":
        name = "12"
    elif case == "bundled_without_out":
        args = []
    elif case == "refine_without_checkpoint":
        args += ["--refine"]
    elif case == "no_predictor":
        args = ["--model", str(tiny_model_dir), "--out", str(tmp_path / "x")]
    elif case == "wrong_checkpoint":  # refused before any VGG or training
        args += ["--refine", "--checkpoint", str(tiny_checkpoint), "--content-dir", str(tmp_path), "--vgg", str(tmp_path / "none")]
    elif case == "small_image":
        art = painting(tmp_path / "small.png", w=63, h=100)
    before = sha256_file(model_copy / C.MANIFEST_NAME)
    assert style_main(["add", str(art), "--name", name, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert sha256_file(model_copy / C.MANIFEST_NAME) == before
    assert not (tmp_path / "x").exists()


def test_save_style_refuses_a_changed_file(model_copy: Path) -> None:
    model = load_model_folder(model_copy)
    (model_copy / C.PREDICTOR_GRAPH).write_bytes(b"tampered after loading")
    with pytest.raises(ModelFolderError, match="changed since"):
        save_style(model, "x", model.style_vectors[0], model_copy)
    assert json.loads((model_copy / C.MANIFEST_NAME).read_text())["styles"] == ["alpha", "beta"]


def test_nst_style_refine_starts_from_the_prediction(model_copy: Path, tiny_predictor_checkpoint: Path, real_vgg_path: Path,
                                                      tmp_path: Path) -> None:
    content = tmp_path / "photos"
    content.mkdir()
    for i in range(2):
        photo(content / f"p{i}.png", 48 + i, 40)
    art = painting(tmp_path / "art.png", seed=7)
    with PredictorSession(load_model_folder(model_copy)) as predictor:
        predicted = predictor.predict_file(art)
    args = ["add", str(art), "--name", "refined", "--model", str(model_copy), "--refine", "--checkpoint", str(tiny_predictor_checkpoint),
            "--content-dir", str(content), "--vgg", str(real_vgg_path), "--steps", "2", "--size", "32", "--batch", "1",
            "--lr", "0.01", "--device", "cpu", "-q"]
    assert style_main(args) == 0
    model = load_model_folder(model_copy)
    refined = model.style_vectors[model.style_index("refined")]
    # Adam moves each value by about lr per step at most: the vector started at the prediction
    # (the default start, the mean of alpha and beta, is far from it).
    assert 0 < np.abs(refined - predicted).max() <= 2 * 0.01 * 1.05
    assert np.abs(predicted - model.style_vectors[:2].mean(0)).max() > 0.1
    assert model.manifest["provenance"]["added_styles"][-1]["method"] == "predicted, then refined"


# ---------------------------------------------------------------- validation


def test_predictor_with_a_wrong_hash_fails_validation(model_copy: Path) -> None:
    data = bytearray((model_copy / C.PREDICTOR_GRAPH).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (model_copy / C.PREDICTOR_GRAPH).write_bytes(bytes(data))
    with pytest.raises(ModelFolderError, match="predictor.onnx: sha256 does not match"):
        load_model_folder(model_copy)


def test_predictor_entry_checked_against_its_contract(model_copy: Path) -> None:
    manifest = json.loads((model_copy / C.MANIFEST_NAME).read_text())
    manifest["predictor"] = C.GRAPH_FP32  # a stylisation graph is not a predictor
    (model_copy / C.MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ModelFolderError, match="inputs are"):
        load_model_folder(model_copy)
    manifest["predictor"] = "missing.onnx"
    (model_copy / C.MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ModelFolderError, match="missing.onnx is used but has no sha256"):
        load_model_folder(model_copy)


# ---------------------------------------------------------------- the watched folder (nst-live)


def test_library_predicts_in_the_background_and_follows_the_folder(tiny_predictor_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "styles"
    folder.mkdir()
    painting(folder / "b.png", seed=1)
    painting(folder / "a.jpg", seed=2)
    (folder / "notes.txt").write_text("ignored")
    model = load_model_folder(tiny_predictor_model_dir)
    with PredictorSession(model) as predictor, StyleImageLibrary(predictor, folder) as library:
        assert library.names == ("a.jpg", "b.png")
        assert library.vector(0) is None
        t0 = time.perf_counter()
        library.request_all()
        library.poll()
        assert time.perf_counter() - t0 < 0.05  # requesting and polling never wait for a prediction
        library.wait(timeout=60)
        va, vb = library.vector("a.jpg"), library.vector(1)
        assert va is not None and vb is not None and np.abs(va - vb).max() > 1e-2
        assert np.array_equal(va, predictor.predict_file(folder / "a.jpg"))

        painting(folder / "c.png", seed=3)  # a new picture appears, no restart
        painting(folder / "tiny.png", w=40, h=40)
        assert library.refresh()
        assert library.names == ("a.jpg", "b.png", "c.png", "tiny.png")
        library.request("c.png")
        library.request(3)
        library.wait(timeout=60)
        assert library.vector(2) is not None
        assert library.vector(3) is None and "at least 64" in (library.error(3) or "")

        painting(folder / "a.jpg", seed=9, w=120)  # changed in place: predicted again
        assert library.refresh() and library.vector("a.jpg") is None
        library.wait(timeout=60)
        assert library.vector("a.jpg") is not None and not np.array_equal(library.vector("a.jpg"), va)

        (folder / "b.png").unlink()
        assert library.refresh() and "b.png" not in library.names
        assert not library.refresh()  # nothing changed since
        with pytest.raises(UsageError):
            library.index("b.png")
        outside = painting(tmp_path / "elsewhere.png", seed=4)  # e.g. --style-image: any path
        library.request(outside)
        library.wait(timeout=60)
        assert library.vector_for(outside) is not None
    library.close()  # twice is fine


def test_library_needs_a_folder(tiny_predictor_model_dir: Path, tmp_path: Path) -> None:
    with PredictorSession(load_model_folder(tiny_predictor_model_dir)) as predictor:
        with pytest.raises(InputFileError, match="no such folder"):
            StyleImageLibrary(predictor, tmp_path / "none")
        empty = tmp_path / "empty"
        empty.mkdir()
        with StyleImageLibrary(predictor, empty) as library:
            assert len(library) == 0 and library.wait(timeout=1) == []
