"""Measuring flicker: the warping error of Lai et al. 2018, and how far a blend strays from per-frame output.

Warping error (Lai et al., "Learning blind video temporal consistency", ECCV 2018)::

    E_warp = mean over pairs t of  sum_x M_t(x) ||O_t(x) - O_{t+1}(x + F_t(x))||^2 / (3 sum_x M_t(x))

``O`` are the output frames with colours scaled to [0, 1], ``F_t`` is the optical flow from input
frame t to input frame t+1 (so ``O_{t+1}`` is backward-warped onto frame t) and ``M_t`` marks the
pixels of frame t that are visible in frame t+1. The squared difference is averaged over the three
colour channels too (the /3), so the number reads as a per-channel mean squared error; a
stable video of a static scene scores 0, and independent noise of standard deviation sigma (in
[0, 1] units) on every output frame adds about 2 sigma^2.

The flow is computed on the *inputs*, never on the outputs: the outputs are what is being judged.
It is a more accurate flow than the live blender's (``temporal.FlowBlender``) and independent of
it as far as practical: DIS with the "medium" preset (variational refinement, finer patches) on
full-resolution grey frames, where the blender uses the "fast" preset on 320-px-wide frames. Lai et
al. used FlowNet2; DIS-medium is what OpenCV offers without a network. On the Middlebury pairs and
Sintel alley_1 its end-point error is 0.16-0.27 px (Farneback: 0.4-1.2 px); on Sintel market_5
(motion up to 125 px) it loses the fastest parts, and the occlusion check drops about half the
frame there. ``tests/test_flicker.py`` checks that the warping error with this flow stays close
to the one with the ground-truth flow and occlusions.

The occlusion mask follows Ruder et al. 2016: forward-backward consistency (Sundaram et al. 2010)
plus motion boundaries (large flow gradients), and pixels whose match lies outside the frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import UsageError
from ..stages import check_frame
from ..temporal import consistency_mask, create_dis, pixel_grid

METRIC_PRESET = "medium"
"""DIS preset of the metric's flow: more accurate than the blender's "fast"."""

# Motion boundaries (Ruder et al. 2016): |grad u|^2 + |grad v|^2 > 0.01 |w|^2 + 0.002.
_BOUNDARY_RELATIVE = 0.01
_BOUNDARY_ABSOLUTE = 0.002


@dataclass(frozen=True)
class PairWarp:
    """How frame t+1 maps back onto frame t, computed once per input pair and reusable for any
    number of output sequences of the same inputs (the benchmark compares several blends)."""

    maps: np.ndarray  # float32 [H, W, 2]: where each pixel of frame t lies in frame t+1 (x, y)
    mask: np.ndarray  # bool [H, W]: pixels of frame t visible in frame t+1 (non-occluded, in frame)

    @classmethod
    def from_flow(cls, flow: np.ndarray, mask: np.ndarray) -> PairWarp:
        """From a flow t -> t+1 (float32 [H, W, 2], pixels) and a validity mask (bool [H, W]),
        e.g. a ground-truth flow and its occlusion mask."""
        flow = np.asarray(flow, np.float32)
        h, w = flow.shape[:2]
        maps = pixel_grid(h, w) + flow
        inside = (maps[..., 0] >= 0) & (maps[..., 0] <= w - 1) & (maps[..., 1] >= 0) & (maps[..., 1] <= h - 1)
        return cls(maps=maps, mask=np.asarray(mask, bool) & inside)

    @property
    def coverage(self) -> float:
        """Fraction of frame t's pixels that take part in the error, 0..1."""
        return float(self.mask.mean())

    def squared_error(self, out_t: np.ndarray, out_next: np.ndarray) -> float:
        """Mean over masked pixels and the 3 channels of (O_t - warp(O_{t+1}))^2, colours in [0, 1].
        NaN when no pixel is visible in both frames."""
        _check_pair(out_t, out_next, self.mask.shape)
        count = int(self.mask.sum())
        if count == 0:
            return float("nan")
        warped = cv2.remap(out_next, self.maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        diff = (out_t.astype(np.float32) - warped.astype(np.float32))[self.mask] / 255.0
        return float(np.mean(np.square(diff)))


class MetricFlow:
    """Computes ``PairWarp``s from pairs of input frames (BGR uint8 [H, W, 3]) with DIS-medium.

    ``max_width``: compute the flow on frames at most this wide (then scale it up); None = full
    resolution, the accurate default. Holds one DIS object, so reuse it across pairs.
    """

    def __init__(self, preset: str = METRIC_PRESET, max_width: int | None = None) -> None:
        if max_width is not None and (isinstance(max_width, bool) or not isinstance(max_width, int) or max_width < 16):
            raise UsageError(f"metric flow width must be an integer of at least 16 pixels, got {max_width!r}")
        self._dis = create_dis(preset)
        self.max_width = max_width

    def pair(self, input_t: np.ndarray, input_next: np.ndarray) -> PairWarp:
        """The warp of frame t+1 onto frame t, with the occlusion mask of frame t."""
        _check_pair(input_t, input_next, input_t.shape[:2] if isinstance(input_t, np.ndarray) else (0, 0))
        h, w = input_t.shape[:2]
        grey_t, grey_next = self._grey(input_t), self._grey(input_next)
        fwd = self._dis.calc(grey_t, grey_next, None)  # t -> t+1: O_t(x) ~ O_{t+1}(x + fwd(x))
        back = self._dis.calc(grey_next, grey_t, None)  # t+1 -> t, for the consistency check
        fh, fw = fwd.shape[:2]
        if (fh, fw) != (h, w):
            scale = np.array([w / fw, h / fh], np.float32)
            fwd = cv2.resize(fwd * scale, (w, h), interpolation=cv2.INTER_LINEAR)
            back = cv2.resize(back * scale, (w, h), interpolation=cv2.INTER_LINEAR)
        grid = pixel_grid(h, w)
        mask = consistency_mask(fwd, back, grid) & ~_motion_boundaries(fwd)
        return PairWarp(maps=grid + fwd, mask=mask)

    def _grey(self, image: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        h, w = grey.shape
        if self.max_width is None or w <= self.max_width:
            return grey
        return cv2.resize(grey, (self.max_width, max(8, round(h * self.max_width / w))), interpolation=cv2.INTER_AREA)


def warping_error(
    outputs: Sequence[np.ndarray], inputs: Sequence[np.ndarray], *, flow: MetricFlow | None = None
) -> float:
    """Lai et al.'s warping error of ``outputs`` (see the module docstring), with the flow and
    occlusions computed on ``inputs``. Both are sequences of BGR uint8 [H, W, 3] frames of one
    size, at least two, the same count. Returns the mean over consecutive pairs (pairs with no
    visible pixel are skipped; NaN if all are), in [0, 1]-colour squared units; multiply by 1000
    for a readable number."""
    if len(outputs) != len(inputs):
        raise UsageError(f"warping error: {len(outputs)} output frames for {len(inputs)} input frames")
    if len(inputs) < 2:
        raise UsageError("warping error: at least two frames are needed")
    flow = flow or MetricFlow()
    errors = []
    for t in range(len(inputs) - 1):
        pair = flow.pair(inputs[t], inputs[t + 1])
        _check_pair(outputs[t], inputs[t], pair.mask.shape)
        err = pair.squared_error(outputs[t], outputs[t + 1])
        if not np.isnan(err):
            errors.append(err)
    return float(np.mean(errors)) if errors else float("nan")


def distance_from_per_frame(
    blended: Sequence[np.ndarray] | np.ndarray, per_frame: Sequence[np.ndarray] | np.ndarray
) -> float:
    """How far a blended output has moved from the per-frame stylised output: the mean absolute
    difference in grey levels (0..255) over all pixels, channels and frames.

    Accepts two frames (uint8 [H, W, 3]) or two sequences of frames. 0 means the blend changed
    nothing; a few levels is typical of a stable blend; tens of levels means the output lags
    behind or ghosts. Mean absolute difference rather than PSNR because it stays linear and
    readable next to the warping error (PSNR is infinite for the unchanged output)."""
    a_frames = [blended] if isinstance(blended, np.ndarray) and blended.ndim == 3 else list(blended)
    b_frames = [per_frame] if isinstance(per_frame, np.ndarray) and per_frame.ndim == 3 else list(per_frame)
    if len(a_frames) != len(b_frames) or not a_frames:
        raise UsageError(f"distance: {len(a_frames)} blended frames for {len(b_frames)} per-frame outputs")
    total = 0.0
    for a, b in zip(a_frames, b_frames, strict=True):
        _check_pair(a, b, a.shape[:2] if isinstance(a, np.ndarray) else (0, 0))
        total += float(cv2.norm(a, b, cv2.NORM_L1)) / a.size
    return total / len(a_frames)


def _motion_boundaries(flow: np.ndarray) -> np.ndarray:
    """bool [H, W]: pixels on motion boundaries, where flow is unreliable (Ruder et al. 2016)."""
    grad = np.zeros(flow.shape[:2], np.float32)
    for c in range(2):
        gx = cv2.Sobel(flow[..., c], cv2.CV_32F, 1, 0, ksize=1)  # central differences / 2
        gy = cv2.Sobel(flow[..., c], cv2.CV_32F, 0, 1, ksize=1)
        grad += (gx * gx + gy * gy) * 0.25
    mag = np.einsum("hwc,hwc->hw", flow, flow)
    return grad > _BOUNDARY_RELATIVE * mag + _BOUNDARY_ABSOLUTE


def _check_pair(a: np.ndarray, b: np.ndarray, size: tuple[int, ...]) -> None:
    for img in (a, b):
        check_frame(img, "warping error: a frame", like=tuple(size))
