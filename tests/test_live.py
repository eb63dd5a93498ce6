"""nst-live: the command headless on the CPU with the real engine on the tiny model, keys on stdin,
the live controls (styles, morph, strength, colours, original, temporal), hotkey parsing, and
the errors a user meets first (no camera, bad options)."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from stylecast.realtime.cli.live import main
from stylecast.realtime.demo import demo_scene
from stylecast.realtime.engine import open_engine
from stylecast.realtime.images import read_image
from stylecast.realtime.live import controls as live
from stylecast.realtime.live.controls import LiveControls, keep_colors
from stylecast.realtime.live.hotkeys import Command, KeyBuffer, command_for, key_from_code, key_from_line
from stylecast.realtime.live.window import Hud, draw_hud
from stylecast.realtime.temporal import FlowBlender

DEMO = ["--source", "demo", "--width", "160", "--height", "90", "--no-window", "--device", "cpu"]
CLI = [sys.executable, "-c", "from stylecast.realtime.cli.live import main; main()"]


@pytest.fixture(scope="module")
def style_colours(tiny_model_dir: Path) -> dict[str, np.ndarray]:
    """Mean BGR colour of each style's output on the demo scene: the random styles differ by tens
    of levels, the scene's motion changes it by a few, so it tells which style a snapshot has."""
    with open_engine(tiny_model_dir, device="cpu") as engine:
        out = {}
        for name in engine.style_names:
            engine.set_style(name)
            out[name] = np.mean([engine(demo_scene(160, 90, t)).reshape(-1, 3).mean(0) for t in (0.0, 2.0, 4.0)], axis=0)
        return out


def style_of(path: Path, colours: dict[str, np.ndarray]) -> str:
    mean = read_image(path).reshape(-1, 3).mean(0)
    dist = {name: float(np.abs(mean - c).sum()) for name, c in colours.items()}
    best = min(dist, key=dist.__getitem__)
    assert sorted(dist.values())[1] > 2 * dist[best] + 3, dist  # clearly one style, not in between
    return best


# ---------------------------------------------------------------- the command


def test_help_explains_keys_sinks_and_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for needle in ("--virtual-cam", "--udp PORT", "--record FILE", "--source demo", "space", "morph", "fullscreen",
                   "one per line", "examples:", "nst-live --camera 0 --style starry", "--temporal", "--max-side",
                   "--style-dir DIR", "next picture of --style-dir"):
        assert needle in text, needle


def test_demo_headless_on_cpu_prints_stats(tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main([*DEMO, "--model", str(tiny_model_dir), "--max-frames", "6", "--temporal", "0.5", "--style", "gamma"])
    assert code == 0
    err = capsys.readouterr().err
    assert "demo: 160x90 @ 30 fps" in err
    assert "frames: 6 out" in err and "dropped" in err
    assert "latency capture->output: p50" in err
    assert all(stage in err for stage in ("capture", "inference", "blend", "output"))


def test_a_loop_slower_than_its_source_says_what_helps(tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A demo asked for 1,000 fps: the network and the blend take longer than the 1 ms between
    its frames, and the exit says so, with the options that shorten the loop."""
    code = main([*DEMO, "--model", str(tiny_model_dir), "--max-frames", "5", "--fps", "1000", "--temporal", "0.5"])
    assert code == 0
    err = capsys.readouterr().err
    assert "more than the 1.0 ms between the source's frames" in err, err
    assert "--max-side N" in err and "--temporal 0 (no blend:" in err


def test_the_budget_hint_appears_only_over_budget() -> None:
    from stylecast.realtime.live.stats import LiveStats

    stats = LiveStats()
    assert stats.budget_hint(30.0) is None  # no frames yet
    for _ in range(10):
        stats.add({"capture": 9.0, "inference": 25.0, "blend": 9.0, "output": 0.5}, 60.0)
    hint = stats.budget_hint(30.0)
    assert hint is not None and "34.5 ms a frame (network 25.0, blend 9.0, output 0.5)" in hint and "33.3 ms" in hint
    assert "--temporal 0 (no blend: 9.0 ms less)" in hint
    assert stats.budget_hint(25.0) is None  # 40 ms between frames: it keeps up (capture runs on its own thread)
    assert stats.budget_hint(0.0) is None  # the source's rate unknown
    no_blend = LiveStats()
    no_blend.add({"capture": 1.0, "inference": 50.0, "blend": 0.0, "output": 1.0}, 60.0)
    hint = no_blend.budget_hint(30.0)
    assert hint is not None and "--temporal" not in hint and "blend" not in hint


def test_keys_on_stdin_in_a_real_process(tiny_model_dir: Path, tmp_path: Path, style_colours: dict[str, np.ndarray]) -> None:
    run = subprocess.run([*CLI, *DEMO, "--model", str(tiny_model_dir), "--temporal", "0", "--snapshot-dir", str(tmp_path),
                          "--max-frames", "600"], input="2\ns\nq\n", capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    (snap,) = tmp_path.glob("stylecast-*.png")
    assert style_of(snap, style_colours) == "beta"
    assert "frames:" in run.stderr and "frames: 600" not in run.stderr  # q ended it, not --max-frames


def test_keys_apply_in_order_around_snapshots(tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              style_colours: dict[str, np.ndarray]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("3\ns\n1\ns\nn\ns\nhello\nq\n"))
    code = main([*DEMO, "--model", str(tiny_model_dir), "--temporal", "0.5", "--snapshot-dir", str(tmp_path),
                 "--max-frames", "600"])
    assert code == 0
    snaps = sorted(tmp_path.glob("stylecast-*.png"))
    assert [style_of(p, style_colours) for p in snaps] == ["gamma", "alpha", "beta"]


def test_no_camera_exits_3_quickly_with_one_error_line(tiny_model_dir: Path) -> None:
    if Path("/dev/video7").exists():
        pytest.skip("this machine has a /dev/video7")
    # A real process: OpenCV writes its own warnings straight to file descriptor 2.
    start = time.perf_counter()
    run = subprocess.run([*CLI, "--camera", "7", "--no-window", "--model", str(tiny_model_dir)],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False)
    assert time.perf_counter() - start < 15.0  # includes starting Python; the open itself is immediate
    assert run.returncode == 3
    err = run.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no camera 7") and "--source demo" in err[0], err


@pytest.mark.parametrize(("args", "message"), [
    (["--record", "out.avi"], "--record"),
    (["--snapshot-dir", "/nonexistent/folder"], "--snapshot-dir"),
    (["--source", "/nonexistent/clip.mp4"], "no such file"),
    (["--max-frames", "0"], "--max-frames"),
    (["--camera", "0", "--source", "demo"], "not allowed with"),
    (["--style", "alpha", "--mix", "beta=1"], "cannot be used together"),
    (["--strength", "1.5"], "--strength must be between 0 and 1"),
    (["--mix", "alpha"], "is not NAME=WEIGHT"),
    (["--style-image", "art.png", "--style", "beta"], "--style-image is a style on its own"),
    (["--style-dir", "/nonexistent/folder"], "--style-dir"),
])
def test_bad_options_exit_2(args: list[str], message: str, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--no-window", "--model", str(tiny_model_dir)]
    try:
        code = main([*base, *args])
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    assert code == 2
    assert message in capsys.readouterr().err


def test_list_styles(tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list-styles", "--model", str(tiny_model_dir)]) == 0
    assert capsys.readouterr().out.split() == ["0", "alpha", "1", "beta", "2", "gamma"]


# ---------------------------------------------------------------- the controls


@pytest.fixture
def controls(tiny_model_dir: Path, tmp_path: Path):
    engine = open_engine(tiny_model_dir, device="cpu")
    yield LiveControls(engine, None, snapshot_dir=tmp_path, blender_factory=FlowBlender)
    engine.close()


def test_style_keys_switch_on_the_next_frame(controls: LiveControls) -> None:
    img = demo_scene(96, 64, 1.0)
    before = controls.stylize(img)
    controls.keys.push("2")
    controls.apply_keys()
    assert controls.label == "beta" and controls.engine.sessions_created == 1  # no new session
    assert np.abs(controls.stylize(img).astype(int) - before).mean() > 5
    controls.apply(Command("previous"))
    controls.apply(Command("previous"))
    assert controls.label == "gamma"  # wraps around
    controls.apply(Command("next"))
    assert controls.label == "alpha"
    controls.apply(Command("style", 6))
    assert controls.label == "alpha" and "no style 7" in controls.message


def test_morph_moves_smoothly_to_the_next_style(controls: LiveControls, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = controls.engine
    vectors = {}
    for name in engine.style_names:
        engine.set_style(name)
        vectors[name] = engine.style_vector.copy()
    engine.set_style("alpha")
    img = demo_scene(64, 48, 0.0)
    clock = [100.0]
    monkeypatch.setattr(live.time, "perf_counter", lambda: clock[0])
    controls.apply(Command("morph"))
    controls.stylize(img)
    assert np.allclose(engine.style_vector, vectors["alpha"])
    clock[0] += live.MORPH_SECONDS / 2
    controls.stylize(img)
    mid = engine.style_vector
    expected = (vectors["alpha"] + vectors["beta"]) / 2  # smoothstep(0.5) = 0.5
    assert np.allclose(mid, expected, atol=1e-5)
    clock[0] += live.MORPH_SECONDS
    controls.stylize(img)
    assert controls.morph is None and controls.label == "beta" and engine.style_label == "beta"


def test_strength_colours_original_and_temporal(controls: LiveControls) -> None:
    img = demo_scene(96, 64, 1.0)
    for _ in range(3):
        controls.apply(Command("weaker"))
    assert controls.engine.strength == pytest.approx(0.7)
    for _ in range(5):
        controls.apply(Command("stronger"))
    assert controls.engine.strength == 1.0  # clamped
    styled = controls.stylize(img)
    controls.apply(Command("colors"))
    kept = controls.stylize(img)
    chroma = lambda im: cv2.cvtColor(im, cv2.COLOR_BGR2YCrCb)[..., 1:].astype(int)
    # The original's colours, up to clipping where dark luma meets saturated chroma.
    assert np.abs(chroma(kept) - chroma(img)).mean() < 0.5 * np.abs(chroma(styled) - chroma(img)).mean()
    controls.apply(Command("original"))
    assert controls.stylize(img) is img and controls.blend(img, img) is img
    controls.apply(Command("original"))
    assert controls.blender is None and not controls.temporal
    controls.apply(Command("temporal"))
    assert isinstance(controls.blender, FlowBlender) and controls.temporal
    first = controls.blend(img, controls.stylize(img))
    assert controls.blend(img, first).shape == img.shape
    controls.apply(Command("temporal"))
    stylized = controls.stylize(img)
    assert controls.blend(img, stylized) is stylized


def test_snapshot_waits_for_a_frame(controls: LiveControls, tmp_path: Path) -> None:
    controls.apply(Command("snapshot"))
    assert controls.snapshot_pending and not list(tmp_path.glob("*.png"))
    frame = np.full((30, 40, 3), 99, np.uint8)
    controls.take_snapshot(frame)
    (path,) = controls.snapshots
    assert np.array_equal(read_image(path), frame) and not controls.snapshot_pending


def test_keep_colours_is_luma_from_style_chroma_from_original() -> None:
    rng = np.random.default_rng(1)
    original = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    stylized = cv2.GaussianBlur(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8), (5, 5), 0)
    out = keep_colors(original, stylized)
    y = lambda im: cv2.cvtColor(im, cv2.COLOR_BGR2YCrCb)
    assert np.abs(y(out)[..., 0].astype(int) - y(stylized)[..., 0]).mean() < 3  # clipping at gamut edges only
    grey = np.full_like(original, 128)
    assert np.abs(keep_colors(grey, stylized).astype(int) - y(stylized)[..., :1]).max() <= 1  # grey original: grey out


def test_hud_is_drawn_on_an_enlarged_copy() -> None:
    frame = demo_scene(160, 90, 0.0)
    before = frame.copy()
    view = draw_hud(frame, Hud(lines=["alpha  [CPU]", "30.0 fps"], message="saved x.png", help=True))
    assert np.array_equal(frame, before)  # the clean frame is untouched
    assert view.shape == (360, 640, 3)  # enlarged 4x so that the HUD can be read
    plain = cv2.resize(frame, (640, 360), interpolation=cv2.INTER_NEAREST)
    assert np.abs(view[:40, :200].astype(int) - plain[:40, :200]).mean() > 20  # the HUD is there
    lost = draw_hud(frame, Hud(banner="camera 0 lost - reconnecting"))
    assert lost.mean() < 0.7 * plain.mean()  # a stale frame is dimmed under the banner


# ---------------------------------------------------------------- hotkeys


def test_key_codes_and_stdin_lines() -> None:
    assert key_from_code(-1) is None and key_from_code(27) == "esc" and key_from_code(32) == "space"
    assert key_from_code(ord("S")) == "s" and key_from_code(ord("+")) == "+" and key_from_code(0x01000032) is None  # Qt's F3
    assert key_from_code(0x100000 | ord("q")) == "q"  # GTK with NumLock on
    assert key_from_line("2\n") == "2" and key_from_line(" \n") == "space" and key_from_line("Esc\r\n") == "esc"
    assert key_from_line("space\n") == "space" and key_from_line("hello\n") is None and key_from_line("\n") is None
    assert command_for("5") == Command("style", 4) and command_for("=") == Command("stronger")
    assert command_for("esc") == command_for("q") == Command("quit") and command_for("x") is None
    assert command_for("i") == Command("image") and key_from_code(ord("I")) == "i"


def test_key_buffer_holds_keys_after_a_snapshot() -> None:
    keys = KeyBuffer()
    for k in ["2", "s", "1", "x", "s", "q"]:
        keys.push(k)
    assert len(keys) == 5  # "x" does nothing and is not kept
    assert keys.take() == [Command("style", 1), Command("snapshot")]
    assert keys.take() == [Command("style", 0), Command("snapshot")]
    assert keys.take() == [Command("quit")] and keys.take() == []


def test_without_a_gpu_the_bundled_fast_model_is_picked(tiny_model_dir, tmp_path, monkeypatch, capsys) -> None:
    """No --model and no GPU: nst-live takes the bundled `fast` model folder when one is installed."""
    from stylecast import weights
    from stylecast.realtime.cli.live import main as live_main

    folders = {weights.FAST_MODEL: tiny_model_dir, weights.DEFAULT_MODEL: tmp_path / "no-default-model"}
    monkeypatch.setattr(weights, "bundled_model_dir", lambda name=weights.DEFAULT_MODEL: folders[name])
    code = live_main(["--source", "demo", "--width", "64", "--height", "36", "--no-window", "--max-frames", "2", "--device", "auto",
                      "--snapshot-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "using the bundled fast model" in err


def test_every_command_of_the_key_table_has_an_action() -> None:
    from stylecast.realtime.live.controls import ACTIONS
    from stylecast.realtime.live.hotkeys import COMMANDS, KEY_HELP

    assert set(ACTIONS) == set(COMMANDS)
    assert len(KEY_HELP) == 12 and command_for("=") == Command("stronger") and command_for("9") == Command("style", 8)


def test_demo_scene_keeps_its_still_parts_and_moves() -> None:
    """A DemoScene draws its still parts once: frames from one scene, in any order, equal frames
    from fresh scenes (no cloud or ball left behind), and the clouds and ball move with time."""
    from stylecast.realtime.demo import DemoScene

    for w, h in ((160, 90), (90, 160), (300, 60)):
        scene = DemoScene(w, h)
        times = (3.0, 0.0, 7.5, 0.0)
        frames = [scene.frame(t) for t in times]
        for t, frame in zip(times, frames, strict=True):
            assert frame.shape == (h, w, 3) and frame.dtype == np.uint8
            assert np.array_equal(frame, demo_scene(w, h, t)), (w, h, t)
        moved = np.any(frames[0] != frames[1], axis=2)
        assert 0.005 < moved.mean() < 0.3, moved.mean()  # clouds and ball, not the landscape
        assert moved[: h // 2].any() and moved[h // 2 :].any()  # clouds up top, the ball below
