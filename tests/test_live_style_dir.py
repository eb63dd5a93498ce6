"""nst-live --style-dir: i steps through a folder's pictures as styles, pictures added while it
runs show up, and predicting never stalls the frames. Real engine, real predictor (conftest's
``tiny_predictor_model_dir``) and the real live loop on the demo source, on the CPU; a
deliberately slow stand-in predictor only where the test is about waiting."""

from __future__ import annotations

import logging
import math
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from test_style_images import painting

from stylecast.realtime.cli.live import main
from stylecast.realtime.demo import demo_scene
from stylecast.realtime.engine import StyleEngine, open_engine
from stylecast.realtime.images import read_image
from stylecast.realtime.live.captures import DemoCapture
from stylecast.realtime.live.controls import LiveControls
from stylecast.realtime.live.hotkeys import Command
from stylecast.realtime.live.loop import run_live
from stylecast.realtime.live.source import LiveSource
from stylecast.realtime.live.stats import LiveStats
from stylecast.realtime.live.style_folder import StyleImageCycler
from stylecast.realtime.model_folder import load_model_folder
from stylecast.realtime.style_images import PredictorSession, StyleImageLibrary
from stylecast.realtime.styling import engine_from_args

DEMO = ["--source", "demo", "--width", "160", "--height", "90", "--no-window", "--device", "cpu"]


class _LogSeen(logging.Handler):
    """Sets ``seen`` when stylecast logs exactly ``text``."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == self.text:
            self.seen.set()


def _keys(first: list[str], then: list[str], after: threading.Event) -> Iterator[str]:
    """Lines of stdin: ``first``, then ``then`` once ``after`` is set (read on nst-live's stdin thread)."""
    yield from (f"{k}\n" for k in first)
    after.wait(60)
    yield from (f"{k}\n" for k in then)


def _predicted(model_dir: Path, picture: Path) -> np.ndarray:
    with PredictorSession(load_model_folder(model_dir)) as predictor:
        return predictor.predict_file(picture)


# ---------------------------------------------------------------- the command


def test_i_switches_nst_live_to_the_predicted_style_of_a_picture(tiny_predictor_model_dir: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    pics, shots = tmp_path / "pics", tmp_path / "shots"
    pics.mkdir()
    shots.mkdir()
    a, b = painting(pics / "a.png", seed=1), painting(pics / "b.jpg", seed=4)
    arrived = _LogSeen("style image 1/2: a.png")  # said when a.png's style is in use (now or on arrival)
    live_log = logging.getLogger("stylecast.live")
    live_log.addHandler(arrived)
    monkeypatch.setattr(sys, "stdin", _keys(["i"], ["s", "q"], arrived.seen))
    started = time.perf_counter()
    try:
        code = main([*DEMO, "--model", str(tiny_predictor_model_dir), "--temporal", "0", "--style-dir", str(pics),
                     "--snapshot-dir", str(shots), "--max-frames", "1800"])
    finally:
        live_log.removeHandler(arrived)
    err = capsys.readouterr().err
    assert code == 0, err
    assert "style pictures: 2 in" in err and "frames: 1800" not in err  # q ended it
    (snap,) = shots.glob("stylecast-*.png")
    # Demo frame k shows the scene at k/30 s and is made no earlier than k/30 s after the demo
    # opened, so every frame it made is below this bound however slow the machine was. (The
    # summary's "captured" count is no bound: it starts with the loop, and the demo runs from
    # before the engine is built, which takes long on a busy machine.)
    produced = math.ceil(30 * (time.perf_counter() - started)) + 1

    # The snapshot is one demo frame stylised with a.png's predicted vector: find that frame,
    # then check the other styles give something else for it.
    shot = read_image(snap).astype(np.int16)
    vectors = {"a.png": _predicted(tiny_predictor_model_dir, a), "b.jpg": _predicted(tiny_predictor_model_dir, b)}
    with open_engine(tiny_predictor_model_dir, device="cpu") as engine:
        vectors.update({name: engine.model.style_vectors[i] for i, name in enumerate(engine.style_names)})

        def diff(k: int, style: str) -> float:
            engine.set_style_vector(vectors[style])
            return float(np.abs(engine(demo_scene(160, 90, k / 30.0)).astype(np.int16) - shot).mean())

        k = min(range(produced, -1, -1), key=lambda k: diff(k, "a.png"))
        assert diff(k, "a.png") < 0.5
        others = {style: diff(k, style) for style in ("alpha", "beta", "b.jpg")}
        assert min(others.values()) > 2.0, others


@pytest.mark.parametrize("case", ["no_predictor", "not_a_folder", "missing"])
def test_style_dir_errors_exit_2_before_the_camera(case: str, tiny_model_dir: Path, tiny_predictor_model_dir: Path,
                                                  tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder, model = tmp_path, tiny_predictor_model_dir
    expect = {"no_predictor": "no style-prediction network", "not_a_folder": "is not a folder", "missing": "no such folder"}[case]
    if case == "no_predictor":
        model = tiny_model_dir
    elif case == "not_a_folder":
        folder = painting(tmp_path / "a.png")
    else:
        folder = tmp_path / "none"
    # No --source: the default camera 0, absent here (exit 3), would be opened after these checks.
    code = main(["--no-window", "--model", str(model), "--style-dir", str(folder), "--camera", "7"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: --style-dir: ") and err.count("\n") == 1 and expect in err, err


def test_style_image_label_is_its_file_name(tiny_predictor_model_dir: Path, tmp_path: Path) -> None:
    from stylecast.realtime.cli.live import make_live_parser

    art = painting(tmp_path / "starry night.png", seed=2)
    args = make_live_parser().parse_args(["--model", str(tiny_predictor_model_dir), "--device", "cpu", "--style-image", str(art)])
    with engine_from_args(args) as engine:
        assert engine.style_label == "starry night.png"
        assert np.array_equal(engine.style_vector, _predicted(tiny_predictor_model_dir, art))
        controls = LiveControls(engine, None, snapshot_dir=tmp_path)
        assert controls.label == "starry night.png"  # what the HUD shows
        engine.set_style_vector(engine.model.style_vectors[1])
        assert engine.style_label == "custom"  # no label given: as before


# ---------------------------------------------------------------- the cycler in the controls


def _wait_for_label(controls: LiveControls, label: str, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while controls.engine.style_label != label and time.monotonic() < end:
        controls.update_images()
        time.sleep(0.01)
    assert controls.engine.style_label == label, controls.message


def test_pictures_added_while_running_are_reached_by_i(tiny_predictor_model_dir: Path, tmp_path: Path) -> None:
    pics = tmp_path / "pics"
    pics.mkdir()
    clock = [0.0]
    model = load_model_folder(tiny_predictor_model_dir)
    with PredictorSession(model, threads=1) as predictor, StyleEngine(model, device="cpu") as engine:
        cycler = StyleImageCycler(StyleImageLibrary(predictor, pics), clock=lambda: clock[0])
        controls = LiveControls(engine, None, snapshot_dir=tmp_path, images=cycler)
        try:
            controls.apply(Command("image"))
            assert controls.message == f"no images in {pics} yet" and engine.style_label == "alpha"

            shutil.copy(painting(tmp_path / "b.png", seed=4), pics / "b.png")  # copied in while running
            controls.update_images()
            assert cycler.library.names == ()  # not rescanned yet: about once a second
            clock[0] += 1.0
            controls.update_images()
            assert cycler.library.names == ("b.png",) and "new style image in" in controls.message
            controls.apply(Command("image"))
            _wait_for_label(controls, "b.png")
            assert np.array_equal(engine.style_vector, predictor.predict_file(pics / "b.png"))
            assert controls.label == "b.png" and controls.index is None

            painting(pics / "a.png", seed=1)  # sorts first
            painting(pics / "c.png", w=40, h=40)  # too small: its error is shown when i reaches it
            clock[0] += 1.0
            controls.update_images()
            assert cycler.library.names == ("a.png", "b.png", "c.png") and "a.png, c.png" in controls.message
            cycler.library.wait(timeout=60)
            controls.apply(Command("image"))  # after b.png: c.png, which failed
            assert "style image 3/3: " in controls.message and "at least 64 px" in controls.message
            assert engine.style_label == "b.png"  # the style stays
            controls.apply(Command("image"))  # wraps around to a.png, predicted already: at once
            assert engine.style_label == "a.png" and controls.message == "style image 1/3: a.png"
            assert np.array_equal(engine.style_vector, predictor.predict_file(pics / "a.png"))
            assert engine.sessions_created == 1  # a picture is a style vector, never a new session
        finally:
            cycler.close()


class SlowPredictor:
    """Stands in for PredictorSession: every prediction takes ``SECONDS`` (a slow CPU, a huge
    picture) and gives the vector listed for the file's name."""

    SECONDS = 0.5

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors

    def predict_file(self, path: Path | str) -> np.ndarray:
        time.sleep(self.SECONDS)
        return self.vectors[Path(path).name]


class _Recorder:
    """A sink that notes when each frame went out and with which style; quits a few frames
    after ``until`` is the style."""

    live = False

    def __init__(self, controls: LiveControls, until: str) -> None:
        self.controls, self.until = controls, until
        self.rows: list[tuple[float, str]] = []

    def write(self, image: np.ndarray, pts: float) -> None:
        self.rows.append((time.perf_counter(), self.controls.engine.style_label))
        if sum(label == self.until for _, label in self.rows) >= 3:
            self.controls.quit = True

    def close(self) -> None:
        pass


def test_a_slow_prediction_never_stalls_the_frames(tiny_model_dir: Path, tmp_path: Path) -> None:
    pics = tmp_path / "pics"
    pics.mkdir()
    (pics / "a.png").write_bytes(b"")  # the stand-in never reads it
    engine = open_engine(tiny_model_dir, device="cpu")
    vector = (0.5 * engine.model.style_vectors[2] + 0.25).astype(np.float32)
    cycler = StyleImageCycler(StyleImageLibrary(SlowPredictor({"a.png": vector}), pics))  # the 0.5 s starts now
    controls = LiveControls(engine, None, snapshot_dir=tmp_path, images=cycler)
    source = LiveSource(DemoCapture(96, 64, 60.0))
    sink = _Recorder(controls, until="a.png")
    try:
        source.start()
        started = time.perf_counter()
        controls.keys.push("i")  # wanted before it is predicted: used when it arrives
        run_live(source, controls, [sink], max_frames=600)
    finally:
        source.close()
        cycler.close()
        engine.close()
    times = [t for t, _ in sink.rows]
    waiting = [t for t, label in sink.rows if label == "alpha"]
    arrived = next(t for t, label in sink.rows if label == "a.png")
    assert arrived - started >= 0.9 * SlowPredictor.SECONDS  # it really was slow...
    assert len(waiting) >= 8, len(waiting)  # ...and frames kept going out meanwhile (60 fps source)
    assert max(np.diff([started, *times])) < 0.25  # never a gap like the prediction's 0.5 s
    assert np.array_equal(engine.style_vector, vector) and engine.style_label == "a.png"


def test_another_style_chosen_while_predicting_wins(tiny_model_dir: Path, tmp_path: Path) -> None:
    pics = tmp_path / "pics"
    pics.mkdir()
    (pics / "a.png").write_bytes(b"")
    source = LiveSource(DemoCapture(64, 48))  # for the HUD only; never started
    with open_engine(tiny_model_dir, device="cpu") as engine:
        cycler = StyleImageCycler(StyleImageLibrary(SlowPredictor({"a.png": engine.model.style_vectors[2]}), pics))
        controls = LiveControls(engine, None, snapshot_dir=tmp_path, images=cycler)
        try:
            controls.apply(Command("image"))
            assert controls.message == "style image 1/1: a.png (predicting its style...)"
            assert controls.hud(LiveStats(), source).lines[-1].endswith("1 picture (1 predicting)")
            controls.apply(Command("style", 1))  # the user moves on before the picture is ready
            cycler.library.wait(timeout=10)
            controls.update_images()
            assert engine.style_label == "beta" and controls.label == "beta"
            assert controls.hud(LiveStats(), source).lines[-1].endswith("1 picture")
            controls.apply(Command("image"))  # i again: now ready, used at once
            assert engine.style_label == "a.png"
        finally:
            cycler.close()


def test_i_without_style_dir_says_how(tiny_model_dir: Path, tmp_path: Path) -> None:
    with open_engine(tiny_model_dir, device="cpu") as engine:
        controls = LiveControls(engine, None, snapshot_dir=tmp_path)
        controls.apply(Command("image"))
        assert "--style-dir" in controls.message and engine.style_label == "alpha"

