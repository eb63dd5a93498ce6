"""nst-video on broken, wrong or hostile input: one ``error:`` line, exit 2, nothing left behind.

Damage that the decoder survives (a stream container cut short, garbage in the middle of the
data) is not an error: every frame that can be read is stylised and a warning says what is
missing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from clips import corrupt, make_audio_only, make_clip, make_unknown_codec, truncate, video_frames

from stylecast.realtime.cli.video import main
from stylecast.realtime.video.codecs import trial_encode
from stylecast.realtime.video.pipeline import transcode


def identity(image: np.ndarray) -> np.ndarray:
    return image.copy()


@pytest.fixture(scope="module")
def good_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 30-frame H.264 + AAC mp4 with the index (moov) at the end, as muxers write it by default."""
    clip = make_clip(tmp_path_factory.mktemp("src") / "good.mp4", frames=30, audio=("aac",))
    data = clip.path.read_bytes()
    assert data.index(b"moov") > data.index(b"mdat")
    return clip.path


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def assert_one_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in err


def cut_at_first_cluster(mkv: Path, path: Path) -> Path:
    """A Matroska file whose header is whole but which ends as its first cluster (of frames) begins."""
    data = mkv.read_bytes()
    path.write_bytes(data[: data.index(bytes.fromhex("1F43B675")) + 8])
    return path


def bad_inputs(folder: Path, good: Path) -> dict[str, tuple[Path, str]]:
    """name -> (input path, a phrase the error must contain)."""
    folder.mkdir()
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("this is a text file, not a video\n" * 20)
    (folder / "a_folder.mp4").mkdir()
    clip_mkv = make_clip(folder / "src.mkv", frames=10).path
    return {
        "missing": (folder / "nope.mp4", "no such file"),
        "directory": (folder / "a_folder.mp4", "is a folder"),
        "zero-bytes": (folder / "empty.mp4", "empty"),
        "text": (folder / "notes.mp4", "not a video file"),
        "mp4-cut-at-10%": (truncate(good, folder / "cut10.mp4", 0.10), "cut short"),
        "mp4-cut-at-50%": (truncate(good, folder / "cut50.mp4", 0.50), "cut short"),
        "mkv-cut-before-first-frame": (cut_at_first_cluster(clip_mkv, folder / "nocluster.mkv"), "no video frame could be decoded"),
        "mp4-index-corrupt": (corrupt(good, folder / "badindex.mp4", at=good.read_bytes().index(b"moov") / good.stat().st_size - 0.001, length=64), "index"),
        "mkv-header-garbage": (corrupt(clip_mkv, folder / "badhead.mkv", at=0.0, length=300), "not a video file"),
        "audio-only": (make_audio_only(folder / "song.m4a"), "no video stream (it has 1 audio"),
        "unknown-codec": (make_unknown_codec(good, folder / "alien.mp4"), "cannot decode"),
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, good_mp4: Path) -> dict[str, tuple[Path, str]]:
    return bad_inputs(tmp_path_factory.mktemp("bad") / "in", good_mp4)


@pytest.mark.parametrize("name", ["missing", "directory", "zero-bytes", "text", "mp4-cut-at-10%", "mp4-cut-at-50%",
                                  "mkv-cut-before-first-frame", "mp4-index-corrupt", "mkv-header-garbage",
                                  "audio-only", "unknown-codec"])
def test_bad_input_is_one_error_line_exit_2_and_leaves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], corpus: dict[str, tuple[Path, str]], name: str
) -> None:
    src, phrase = corpus[name]
    out = tmp_path / "out.mp4"
    # No --model: input checks come before the model is looked for, so none is needed.
    code, err = run_cli(capsys, str(src), str(out))
    assert_one_error(code, err, phrase, str(src))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["--crf", "99"], "--crf 99"),
        (["--preset", "warp"], "--preset warp"),
        (["--codec", "nosuchcodec"], "no such video encoder in this FFmpeg build; for .mp4 use one of libx264, "),
        (["--codec", "aac"], "not a video encoder"),
        (["--start", "9"], "past the end"),
        (["--duration", "0"], "--duration"),
    ],
)
def test_bad_options_are_refused_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 good_mp4: Path, args: list[str], phrase: str) -> None:
    code, err = run_cli(capsys, str(good_mp4), str(tmp_path / "out.mp4"), *args)
    assert_one_error(code, err, phrase)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("codec", "ext", "fallback"), [
    ("h264_nvenc", ".mp4", "libx264"), ("hevc_nvenc", ".mkv", "libx264"), ("av1_nvenc", ".webm", "libvpx-vp9"),
])
def test_nvenc_without_an_nvidia_gpu_is_exit_3_before_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], good_mp4: Path, codec: str, ext: str, fallback: str
) -> None:
    if trial_encode(codec, "yuv420p") is None:
        pytest.skip(f"{codec} opens on this machine: it has an NVIDIA GPU")
    # No --model: were the model looked for first, this would be exit 2 (no model), not 3.
    code, err = run_cli(capsys, str(good_mp4), str(tmp_path / f"out{ext}"), "--codec", codec)
    assert code == 3, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --codec {codec}: the encoder cannot be opened here"), err
    assert "NVIDIA GPU" in lines[0] and f"use --codec {fallback}" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_output_problems_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], good_mp4: Path) -> None:
    code, err = run_cli(capsys, str(good_mp4), str(tmp_path / "out.avi"))
    assert_one_error(code, err, "unsupported video extension")
    code, err = run_cli(capsys, str(good_mp4), str(tmp_path / "no" / "such" / "folder.mp4"))
    assert_one_error(code, err, "does not exist")
    existing = tmp_path / "exists.mp4"
    existing.write_bytes(b"x")
    code, err = run_cli(capsys, str(good_mp4), str(existing))
    assert_one_error(code, err, "--overwrite")
    assert existing.read_bytes() == b"x"
    code, err = run_cli(capsys, str(good_mp4), str(good_mp4), "--overwrite")
    assert_one_error(code, err, "overwrite the input")
    code, err = run_cli(capsys, str(good_mp4))
    assert_one_error(code, err, "IN and OUT")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.mp4"]


def test_stream_container_cut_short_keeps_every_frame_it_has_and_warns(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "full.mkv", frames=30, audio=("aac",))
    cut = truncate(clip.path, tmp_path / "cut.mkv", 0.8)
    readable = len(video_frames(cut)[0])
    assert 10 < readable < 30
    report = transcode(cut, tmp_path / "out.mkv", identity, progress=False)
    assert report.frames == readable and report.expected == 30
    assert report.missing == 30 - readable
    assert any(f"{30 - readable} of 30 frame(s) are missing" in w for w in report.warnings)
    assert len(video_frames(tmp_path / "out.mkv")[0]) == readable


def test_mpegts_cut_short_keeps_every_frame_it_has(tmp_path: Path) -> None:
    # MPEG-TS has no index or duration field: FFmpeg estimates the length from what is there,
    # so the loss cannot be counted, but every readable frame is still written.
    clip = make_clip(tmp_path / "full.ts", frames=30, muxer="mpegts")
    cut = truncate(clip.path, tmp_path / "cut.ts", 0.6)
    readable = len(video_frames(cut)[0])
    report = transcode(cut, tmp_path / "out.mp4", identity, progress=False)
    assert 5 < report.frames == readable < 30


def test_garbage_in_the_middle_of_the_data_is_survived(tmp_path: Path, good_mp4: Path) -> None:
    # The index is intact, so the file opens; the decoder conceals or skips the damaged frames.
    damaged = corrupt(good_mp4, tmp_path / "damaged.mp4", at=0.5, length=400)
    report = transcode(damaged, tmp_path / "out.mp4", identity, progress=False)
    assert report.expected == 30
    assert report.frames + report.missing == 30 and report.frames >= 25
    assert (report.missing == 0) == (not any("missing" in w for w in report.warnings))


def test_garbage_that_costs_frames_is_reported(tmp_path: Path) -> None:
    # In Matroska, garbage over a cluster header makes the demuxer lose the rest of the file.
    clip = make_clip(tmp_path / "in.mkv", frames=30, audio=("aac",))
    damaged = corrupt(clip.path, tmp_path / "damaged.mkv", at=0.2)
    readable = len(video_frames(damaged)[0])
    assert readable < 30
    report = transcode(damaged, tmp_path / "out.mkv", identity, progress=False)
    assert report.frames == readable and report.missing == 30 - readable and report.warnings


def test_cli_cut_short_clip_exits_0_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  tiny_model_dir: Path) -> None:
    clip = make_clip(tmp_path / "full.mkv", frames=30, audio=("aac",))
    cut = truncate(clip.path, tmp_path / "cut.mkv", 0.7)
    code, err = run_cli(capsys, str(cut), str(tmp_path / "out.mp4"), "--model", str(tiny_model_dir), "--device", "cpu")
    assert code == 0, err
    assert "warning:" in err and "frame(s) are missing" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.mkv", "full.mkv", "out.mp4"]


def test_real_subprocess_exit_code_and_no_traceback(tmp_path: Path) -> None:
    text = tmp_path / "notes.mkv"
    text.write_text("not a video\n")
    proc = subprocess.run(
        [sys.executable, "-c", "from stylecast.realtime.cli.video import main; main()", str(text), str(tmp_path / "o.mp4")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.mkv"]
