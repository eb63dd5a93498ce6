"""The flicker metric (Lai et al. warping error), its validation on ground-truth flow, and nst-bench flicker."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import shared_data

from stylecast.realtime.bench.flicker import find_clips, format_table, measure, run
from stylecast.realtime.bench.warping import (
    MetricFlow,
    PairWarp,
    distance_from_per_frame,
    warping_error,
)
from stylecast.realtime.errors import UsageError

W, H = 128, 96


def texture(seed: int, width: int = W, height: int = H) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = cv2.GaussianBlur(rng.random((height, width, 3)).astype(np.float32), (0, 0), 2.0)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return (smooth * 255).round().astype(np.uint8)


def sliding(seed: int, frames: int, dx: int, dy: int) -> list[np.ndarray]:
    """A window moving over a larger texture by (dx, dy) >= 0 px per frame."""
    big = texture(seed, W + dx * frames + 1, H + dy * frames + 1)
    return [np.ascontiguousarray(big[t * dy : t * dy + H, t * dx : t * dx + W]) for t in range(frames)]


def add_noise(frames: list[np.ndarray], sigma: float, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(f + rng.normal(0, sigma, f.shape), 0, 255).round().astype(np.uint8) for f in frames]


# -- the metric --------------------------------------------------------------------------------------


def test_zero_for_identical_frames() -> None:
    scene = texture(1)
    assert warping_error([scene] * 4, [scene] * 4) == 0.0


def test_zero_for_exact_translation_with_exact_flow() -> None:
    a = texture(2)
    b = np.roll(a, (1, 3), axis=(0, 1))  # content moves 3 right, 1 down: a(x) = b(x + (3, 1))
    flow = np.zeros((H, W, 2), np.float32)
    flow[...] = (3, 1)
    pair = PairWarp.from_flow(flow, np.ones((H, W), bool))
    assert pair.squared_error(a, b) == 0.0
    assert 0.9 < pair.coverage < 1.0  # the columns/rows whose match falls outside are left out
    # The estimated flow finds the motion too (near-zero error, most pixels kept).
    est = MetricFlow().pair(a, b)
    assert est.squared_error(a, b) < 2e-4 and est.coverage > 0.85


def test_grows_with_flicker() -> None:
    inputs = sliding(3, 6, 2, 1)
    errors = [warping_error(add_noise(inputs, sigma, seed=4), inputs) for sigma in (0.0, 4.0, 8.0, 16.0)]
    assert errors[0] < 1e-4
    assert errors == sorted(errors) and errors[1] > 2 * errors[0]
    # Independent noise of std sigma on each frame adds ~2 sigma^2 (colours in [0, 1]).
    expected = 2 * (16.0 / 255) ** 2
    assert 0.8 * expected < errors[3] - errors[0] < 1.2 * expected


def test_metric_input_errors() -> None:
    scene = texture(5)
    with pytest.raises(UsageError, match="two frames"):
        warping_error([scene], [scene])
    with pytest.raises(UsageError, match="output frames"):
        warping_error([scene] * 3, [scene] * 2)
    with pytest.raises(UsageError, match="differ in size"):
        warping_error([scene, scene], [texture(6, 64, 48)] * 2)
    with pytest.raises(UsageError, match="uint8"):
        warping_error([scene.astype(np.float32)] * 2, [scene] * 2)


def test_distance_from_per_frame() -> None:
    a = texture(7)
    b = cv2.add(a, np.full_like(a, 10))
    assert distance_from_per_frame(a, a) == 0.0
    expected = float(np.mean(b.astype(np.float32) - a))  # 10 except where 255 clipped it
    assert distance_from_per_frame(b, a) == pytest.approx(expected)
    assert distance_from_per_frame([a, b], [a, a]) == pytest.approx(expected / 2)
    with pytest.raises(UsageError):
        distance_from_per_frame([a, b], [a])


# -- validation against ground-truth flow ------------------------------------------------------------


def read_flo(path: Path) -> np.ndarray:
    """Middlebury .flo: float32 tag 202021.25, int32 width, int32 height, then [H, W, 2] float32."""
    raw = path.read_bytes()
    assert np.frombuffer(raw, np.float32, 1)[0] == np.float32(202021.25), path
    width, height = np.frombuffer(raw, np.int32, 2, offset=4)
    return np.frombuffer(raw, np.float32, int(width) * int(height) * 2, offset=12).reshape(height, width, 2).copy()


def gt_pairs() -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(name, frame t, frame t+1, GT flow t->t+1, valid mask) for every pair with ground truth."""
    root = shared_data("video", "flow")
    pairs = []
    for folder in sorted((root / "middlebury").iterdir()):
        flow = read_flo(folder / "flow10.flo")
        valid = (np.abs(flow) < 1e9).all(axis=-1)
        pairs.append((folder.name, cv2.imread(str(folder / "frame10.png")), cv2.imread(str(folder / "frame11.png")), flow, valid))
    for folder in sorted((root / "sintel_final").iterdir()):
        flow = read_flo(folder / "gt" / "frame_0002.flo")
        occluded = cv2.imread(str(folder / "gt" / "occlusions" / "frame_0002.png"), cv2.IMREAD_GRAYSCALE) > 127
        invalid = cv2.imread(str(folder / "gt" / "invalid" / "frame_0002.png"), cv2.IMREAD_GRAYSCALE) > 127
        pairs.append((folder.name, cv2.imread(str(folder / "frame_0002.png")), cv2.imread(str(folder / "frame_0003.png")), flow, ~occluded & ~invalid))
    return pairs


def test_estimated_flow_warping_error_matches_ground_truth() -> None:
    pairs = gt_pairs()
    assert len(pairs) >= 2
    metric = MetricFlow()
    rng = np.random.default_rng(0)
    for name, a, b, flow, valid in pairs:
        gt = PairWarp.from_flow(np.where(valid[..., None], flow, 0), valid)
        est = metric.pair(a, b)
        unwarped = PairWarp.from_flow(np.zeros_like(flow), np.ones(valid.shape, bool)).squared_error(a, b)
        err_gt, err_est = gt.squared_error(a, b), est.squared_error(a, b)
        # The metric is about warping, not about doing without it: both are far below no warp.
        assert err_gt < 0.3 * unwarped and err_est < 0.3 * unwarped, (name, err_gt, err_est, unwarped)
        # Flickering outputs over these inputs (noise of std 8 levels on every frame): the metric
        # with estimated flow must report what the ground truth reports.
        na = np.clip(a + rng.normal(0, 8, a.shape), 0, 255).astype(np.uint8)
        nb = np.clip(b + rng.normal(0, 8, b.shape), 0, 255).astype(np.uint8)
        noisy_gt, noisy_est = gt.squared_error(na, nb), est.squared_error(na, nb)
        if name == "market_5":
            # Motion of up to 125 px: DIS loses the fastest parts, the occlusion check drops them
            # (about half the frame), so only the order of magnitude is comparable.
            assert est.coverage > 0.4 and 0.3 < err_est / err_gt < 3.0, (name, err_gt, err_est, est.coverage)
            continue
        assert 0.5 < err_est / err_gt < 2.0, (name, err_gt, err_est)
        assert 0.75 < noisy_est / noisy_gt < 1.33, (name, noisy_gt, noisy_est)
        assert est.coverage > 0.85 * gt.coverage and (est.mask & gt.mask).mean() > 0.8 * gt.coverage, name


# -- nst-bench flicker -------------------------------------------------------------------------------


class FlickeringStylizer:
    """Stand-in for a style network: a fixed colour map plus fresh noise on every frame."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)
        self.lut = np.dstack([255 - np.arange(256), (np.arange(256) * 3) % 256, np.arange(256) // 2]).astype(np.uint8)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        mapped = cv2.LUT(image, self.lut)
        noise = self.rng.normal(0, 10, image.shape)
        return np.clip(mapped + noise, 0, 255).astype(np.uint8)


@pytest.fixture
def clip_dir(tmp_path: Path) -> Path:
    """A folder with one generated 18-frame MJPEG clip of a moving texture, and a non-video file."""
    folder = tmp_path / "clips"
    folder.mkdir()
    writer = cv2.VideoWriter(str(folder / "moving.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (W, H))
    assert writer.isOpened()
    for frame in sliding(8, 18, 2, 1):
        writer.write(frame)
    writer.release()
    (folder / "notes.txt").write_text("not a clip")
    return folder


def test_measure_blend_reduces_flicker(clip_dir: Path) -> None:
    clips = find_clips(clip_dir)
    assert [c.name for c in clips] == ["moving.avi"]
    rows = measure(clips, FlickeringStylizer(), [0.0, 0.5, 0.8], frames=16, max_side=None)
    by_series = {r.series: r for r in rows}
    assert list(by_series) == ["input", "per-frame", "0.5", "0.8"]  # strength 0 is the per-frame row
    assert all(r.frames == 16 and (r.width, r.height) == (W, H) for r in rows)
    inp, per_frame, half, strong = (by_series[k] for k in ("input", "per-frame", "0.5", "0.8"))
    assert inp.warping_error < per_frame.warping_error
    assert strong.warping_error < half.warping_error < 0.7 * per_frame.warping_error
    assert 0 < half.distance < strong.distance < 15  # the price: moving away from the per-frame output
    assert half.blend_ms is not None and half.blend_ms > 0 and half.resets == 0
    table = format_table(rows)
    assert "moving.avi" in table and "warp err x1000" in table and len(table.splitlines()) == 2 + len(rows)


def test_measure_downscales(clip_dir: Path) -> None:
    rows = measure(find_clips(clip_dir), FlickeringStylizer(), [0.5], frames=3, max_side=64)
    assert (rows[0].width, rows[0].height) == (64, 48) and rows[0].frames == 3


def _args(**overrides: object) -> argparse.Namespace:
    base: dict[str, object] = {
        "clips": Path("missing"), "frames": 60, "frame_side": 640, "temporal": [0.5],
        "json": None, "overwrite": False, "quiet": True, "list_styles": False,
    }
    base.update(overrides)
    return argparse.Namespace(**base)


def test_run_rejects_bad_options_before_loading_a_model(tmp_path: Path, clip_dir: Path) -> None:
    with pytest.raises(UsageError, match="does not exist; pass --clips"):
        run(_args(clips=tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no video files"):
        run(_args(clips=tmp_path / "empty"))
    with pytest.raises(UsageError, match="--frames"):
        run(_args(clips=clip_dir, frames=1))
    with pytest.raises(UsageError, match="--temporal"):
        run(_args(clips=clip_dir, temporal=[1.5]))
    existing = tmp_path / "out.json"
    existing.write_text("{}")
    with pytest.raises(UsageError, match="--overwrite"):
        run(_args(clips=clip_dir, json=existing))


def test_cli_with_tiny_model(tiny_model_dir: Path, clip_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The whole subcommand as a user runs it, on the random-weight model (needs cli_options)."""
    pytest.importorskip("stylecast.realtime.cli.options")
    from stylecast.realtime.bench.flicker import add_arguments

    parser = argparse.ArgumentParser()
    parser.add_argument("-q", "--quiet", action="store_true")
    add_arguments(parser)
    out = tmp_path / "rows.json"
    args = parser.parse_args(
        ["--model", str(tiny_model_dir), "--style", "beta", "--device", "cpu", "--clips", str(clip_dir), "--frames", "6", "--temporal", "0.5", "--json", str(out), "-q"]
    )
    assert run(args) == 0
    assert "moving.avi" in capsys.readouterr().out
    rows = json.loads(out.read_text())
    assert [r["series"] for r in rows] == ["input", "per-frame", "0.5"]
