"""Temporal-consistency blend: keeps stylised video from flickering, one frame at a time.

A feed-forward style network sees each frame on its own, so tiny changes in the input (sensor
noise, compression, a one-pixel shift) become large changes in the painted texture: the output
flickers. ``FlowBlender`` fixes most of it after the fact, in the spirit of Ruder et al. 2016
("Artistic style transfer for videos": warp the previous output with optical flow, trust it only
where the flow is consistent) and Lai et al. 2018 ("Learning blind video temporal consistency":
the same warped-previous-output recurrence, measured with the warping error in ``bench/warping.py``):

1. Optical flow between the previous and the current *input* frames (inputs are what really
   moved; the stylised frames flicker, so their flow would be noise). OpenCV's DIS flow
   (Kroeger et al. 2016) on small grey frames (``flow_width`` px wide, 256 by default) costs
   about a millisecond per direction and is scaled back up to the frame size.
2. Backward warping: the flow from the current frame to the previous one says, for every
   current pixel, where it was; ``cv2.remap`` samples the previous *output* there. (Forward
   splatting would leave holes and collisions.)
3. A confidence mask in 0..1 that drops pixels the warp cannot explain: a forward-backward
   consistency check (Sundaram et al. 2010, as in Ruder et al.: ``|b + f(x+b)|^2 <= 0.01 (|b|^2 +
   |f|^2) + 0.5``) catches occlusions and unreliable flow, a photometric check (the warped previous
   input against the current input) catches what the flow got wrong anyway (new objects,
   lighting), and pixels whose source lies outside the frame are dropped. The mask is eroded by
   one flow pixel and blurred so that the blend has no hard seams and stays away from motion
   boundaries, where ghosting would show first.
4. ``out = stylized * (1 - s*mask) + warped_prev_out * (s*mask)`` in float32, rounded to uint8.
   The previous *output* (not the previous stylised frame) is warped, so the blend is an
   exponential moving average along motion trajectories with a memory of about 1/(1-s) frames.

Scene cuts and size changes reset the state (the next frame is the per-frame output): a cut is a
large mean absolute difference between tiny grey thumbnails of consecutive inputs, or a frame
where most pixels fail the mask. Strength 0 passes the stylised frame through untouched (the very
same array) and drops the state, so turning the blend back on never resurrects an old frame.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import cv2
import numpy as np

from .errors import UsageError
from .stages import check_frame

DEFAULT_TEMPORAL = 0.5
"""Default blend strength in 0..1 (0 = per-frame output unchanged)."""

DIS_PRESETS: dict[str, int] = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
"""DIS presets by name, fastest first. The blender uses "fast"; the flicker metric "medium"."""

# Forward-backward consistency (Sundaram et al. 2010): relative and absolute tolerance, in pixels
# of the grid the flow was computed on.
FB_RELATIVE = 0.01
FB_ABSOLUTE = 0.5

_THUMB_WIDTH = 32  # thumbnails for cut detection: small enough that motion barely changes them


def create_dis(preset: str) -> cv2.DISOpticalFlow:
    """A DIS optical-flow object for a preset name in ``DIS_PRESETS``."""
    if preset not in DIS_PRESETS:
        raise UsageError(f"unknown optical-flow preset {preset!r}; use one of {', '.join(DIS_PRESETS)}")
    return cv2.DISOpticalFlow_create(DIS_PRESETS[preset])


def pixel_grid(height: int, width: int) -> np.ndarray:
    """float32 [H, W, 2] holding (x, y) of every pixel: a flow added to it is a ``cv2.remap`` map."""
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return np.dstack([xs, ys])


def consistency_mask(flow_back: np.ndarray, flow_fwd: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Where the backward flow is trustworthy: bool [H, W].

    ``flow_back`` [H, W, 2] maps current pixels to the previous frame (cur(x) ~ prev(x + b(x))),
    ``flow_fwd`` [H, W, 2] maps previous pixels to the current frame, ``grid`` is
    ``pixel_grid(H, W)``. A pixel passes when following b then f comes back near where it started
    (Sundaram et al. 2010) and when x + b(x) lies inside the frame.
    """
    h, w = flow_back.shape[:2]
    maps = grid + flow_back
    fwd_there = cv2.remap(flow_fwd, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    round_trip = flow_back + fwd_there
    err = _sq_norm(round_trip)
    ok = err <= FB_RELATIVE * (_sq_norm(flow_back) + _sq_norm(fwd_there)) + FB_ABSOLUTE
    x, y = maps[..., 0], maps[..., 1]
    ok &= (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    return ok


@dataclass(frozen=True)
class BlendStats:
    """What the last call did, for logs, overlays and tests."""

    # Why this frame was not blended: "first frame", "size change", "scene cut" (the thumbnails
    # differ), "warp unreliable" (most pixels fail the mask), "strength 0"; None when it was.
    reset: str | None
    reliable: float  # mean confidence of the warp, 0..1 (0 when nothing was blended)
    ms: float  # time spent in the call, milliseconds


@dataclass
class _State:
    shape: tuple[int, ...]  # full frame shape [H, W, 3]
    grey: np.ndarray  # uint8 [h, w] the previous input, grey, at flow resolution
    thumb: np.ndarray  # float32 [th, tw] the previous input as a tiny grey thumbnail
    output: np.ndarray  # uint8 [H, W, 3] the previous output (our own copy)


class FlowBlender:
    """Optical-flow temporal blend with explicit state (satisfies ``stages.TemporalBlender``).

    ``blender(original, stylized) -> blended``: ``original`` is the camera/video frame and
    ``stylized`` the network's output for it, both BGR uint8 [H, W, 3] of the same size; the
    result is BGR uint8 [H, W, 3]. Call ``reset()`` when the stream jumps (seek, new source).

    Parameters:
      strength: 0..1, how much of the warped previous output to keep where the warp is reliable.
        0 returns ``stylized`` itself, bit-exact; 1 freezes reliable regions (not useful live).
      flow_width: width of the grey frames the flow is computed on (the height follows the
        aspect ratio); never more than the frame's own width. Lower is faster and coarser; on
        the real clips 320 px with "fast" removed nearly as much flicker as 480 px or "medium" at
        a third to half of their cost, and clearly more than "ultrafast" or 160 px; 256 px as
        much as 320 px (mean warping error 0.764e-3 against 0.768e-3 with the default network,
        0.855e-3 against 0.860e-3 with the fast one) for 1.2-3 ms less a 640x360 frame.
      cut_threshold: mean absolute difference of 32-px-wide grey thumbnails of consecutive inputs,
        as a fraction of 255, above which the frame counts as a scene cut (and no flow is
        computed). Within the test clips it peaks at 0.08 (handheld, fast motion); between
        them it is 0.13-0.36.
      min_reliable: a frame whose mean confidence falls below this is not blended either (a cut
        the thumbnails missed, or motion too fast to follow). Within the clips it stays above
        0.3; across a cut it is at most 0.01.
      photo_tolerance: grey levels (0..255, at flow resolution) by which the warped previous input
        may differ from the current input with full confidence; confidence falls linearly to 0 at
        three times this.
      preset: DIS preset name (``DIS_PRESETS``).
    """

    def __init__(
        self,
        strength: float = DEFAULT_TEMPORAL,
        flow_width: int = 256,
        cut_threshold: float = 0.15,
        min_reliable: float = 0.1,
        photo_tolerance: float = 8.0,
        preset: str = "fast",
    ) -> None:
        self.strength = strength  # validated by the setter
        if isinstance(flow_width, bool) or not isinstance(flow_width, int) or flow_width < 16:
            raise UsageError(f"flow width must be an integer of at least 16 pixels, got {flow_width!r}")
        self.flow_width = flow_width
        self.cut_threshold = _check_fraction("cut threshold", cut_threshold, allow_zero=False)
        self.min_reliable = _check_fraction("minimum reliable fraction", min_reliable, allow_zero=True)
        if not _is_number(photo_tolerance) or not photo_tolerance > 0:
            raise UsageError(f"photometric tolerance must be a positive number of grey levels, got {photo_tolerance!r}")
        self.photo_tolerance = float(photo_tolerance)
        self.preset = preset
        self._dis = create_dis(preset)
        self._state: _State | None = None
        self._grids: dict[tuple[int, int], np.ndarray] = {}  # pixel grids by (h, w): full and flow size
        self.last = BlendStats(reset=None, reliable=0.0, ms=0.0)

    # -- strength ---------------------------------------------------------------------------------
    @property
    def strength(self) -> float:
        """Blend strength in 0..1; may be changed between frames (e.g. from a live key binding)."""
        return self._strength

    @strength.setter
    def strength(self, value: float) -> None:
        if not _is_number(value) or not 0.0 <= float(value) <= 1.0:
            raise UsageError(f"temporal strength must be a number from 0 to 1, got {value!r}")
        self._strength = float(value)

    # -- state ------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the previous frame: the next output is the per-frame output."""
        self._state = None

    # -- the blend --------------------------------------------------------------------------------
    def __call__(self, original: np.ndarray, stylized: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        _check_frames(original, stylized)
        if self._strength == 0.0:
            self._state = None
            self.last = BlendStats(reset="strength 0", reliable=0.0, ms=_ms_since(start))
            return stylized

        height, width = original.shape[:2]
        grey = self._flow_grey(original)
        thumb = _thumbnail(grey)
        prev = self._state
        reason: str | None = None
        if prev is None:
            reason = "first frame"
        elif prev.shape != original.shape:
            reason = "size change"
        elif float(np.mean(np.abs(thumb - prev.thumb))) > self.cut_threshold * 255.0:
            reason = "scene cut"

        reliable = 0.0
        out = stylized
        if prev is not None and reason is None:
            flow_back = self._dis.calc(grey, prev.grey, None)  # current -> previous
            flow_fwd = self._dis.calc(prev.grey, grey, None)  # previous -> current
            conf = self._confidence(grey, prev.grey, flow_back, flow_fwd)
            reliable = float(conf.mean())
            if reliable < self.min_reliable:
                reason = "warp unreliable"  # most of the frame is new (a cut the thumbnails missed)
            else:
                out = self._blend(stylized, prev.output, flow_back, conf, (height, width))

        # Our own copy of the output: callers draw overlays on the frame they get back.
        self._state = _State(original.shape, grey, thumb, out.copy())
        self.last = BlendStats(reset=reason, reliable=reliable, ms=_ms_since(start))
        return out

    def _flow_grey(self, image: np.ndarray) -> np.ndarray:
        """The frame in grey at flow resolution, uint8 [h, w]."""
        height, width = image.shape[:2]
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        if width <= self.flow_width:
            return grey
        small_h = max(8, round(height * self.flow_width / width))
        return cv2.resize(grey, (self.flow_width, small_h), interpolation=cv2.INTER_AREA)

    def _grid(self, height: int, width: int) -> np.ndarray:
        grid = self._grids.get((height, width))
        if grid is None:
            if len(self._grids) > 4:  # sizes changed repeatedly: keep the cache small
                self._grids.clear()
            grid = self._grids[(height, width)] = pixel_grid(height, width)
        return grid

    def _confidence(
        self, grey: np.ndarray, prev_grey: np.ndarray, flow_back: np.ndarray, flow_fwd: np.ndarray
    ) -> np.ndarray:
        """Confidence of the warp at flow resolution, float32 [h, w] in 0..1."""
        h, w = grey.shape
        grid = self._grid(h, w)
        ok = consistency_mask(flow_back, flow_fwd, grid)
        warped_grey = cv2.remap(prev_grey, grid + flow_back, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        err = cv2.absdiff(warped_grey, grey).astype(np.float32)
        # Full trust up to the tolerance (noise, compression), none at three times it.
        conf = np.clip((3.0 * self.photo_tolerance - err) / (2.0 * self.photo_tolerance), 0.0, 1.0)
        conf *= ok
        # Erode then blur: pull the blend back from occlusion and motion boundaries and soften its edges.
        conf = cv2.erode(conf, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
        return cv2.GaussianBlur(conf, (0, 0), sigmaX=1.0, borderType=cv2.BORDER_REPLICATE)

    def _blend(
        self,
        stylized: np.ndarray,
        prev_output: np.ndarray,
        flow_back: np.ndarray,
        conf: np.ndarray,
        size: tuple[int, int],
    ) -> np.ndarray:
        height, width = size
        h, w = flow_back.shape[:2]
        if (h, w) != (height, width):
            # Flow vectors are in flow-resolution pixels: scale them before resizing the field
            # (cv2's per-channel scalar: the same floats as numpy's broadcast, at a quarter of its time).
            flow_back = cv2.multiply(flow_back, (width / w, height / h, 0.0, 0.0))
            flow_back = cv2.resize(flow_back, (width, height), interpolation=cv2.INTER_LINEAR)
            conf = cv2.resize(conf, (width, height), interpolation=cv2.INTER_LINEAR)
        maps = cv2.add(self._grid(height, width), flow_back)
        # Fixed-point maps (1/32 px) make the remap about twice as fast as float maps, and
        # 1/32 px is far below what the blend can show.
        map_xy, map_frac = cv2.convertMaps(maps, None, cv2.CV_16SC2)
        warped = cv2.remap(prev_output, map_xy, map_frac, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        keep = conf * np.float32(self._strength)  # weight of the warped previous output, 0..s
        # blendLinear computes (w1*a + w2*b) / (w1 + w2) per pixel in float32 and rounds to uint8:
        # the formula of the module docstring, multi-threaded, without float32 frame-sized temporaries.
        return cv2.blendLinear(warped, stylized, keep, np.float32(1.0) - keep)


def _check_frames(original: np.ndarray, stylized: np.ndarray) -> None:
    check_frame(original, "temporal blend: the original frame")
    check_frame(stylized, "temporal blend: the stylized frame", like=original)


def _sq_norm(vectors: np.ndarray) -> np.ndarray:
    """|v|^2 of float32 [H, W, 2] vectors, as [H, W]."""
    x, y = vectors[..., 0], vectors[..., 1]
    return x * x + y * y


def _thumbnail(grey: np.ndarray) -> np.ndarray:
    h, w = grey.shape
    tw = min(_THUMB_WIDTH, w)
    th = max(1, round(h * tw / w))
    return cv2.resize(grey, (tw, th), interpolation=cv2.INTER_AREA).astype(np.float32)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and math.isfinite(value)


def _check_fraction(name: str, value: float, *, allow_zero: bool) -> float:
    if not _is_number(value) or not (0.0 <= float(value) <= 1.0) or (not allow_zero and value == 0):
        low = "0" if allow_zero else "above 0"
        raise UsageError(f"{name} must be a number from {low} to 1, got {value!r}")
    return float(value)


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
