"""The live frame loop of ``nst-live`` and the state its hotkeys change.

``run_live`` reads top to bottom: newest captured frame -> stylise -> temporal blend -> sinks
(clean frames) -> snapshot -> preview window (with the HUD), timing each stage. ``LiveControls``
holds what the keys change (style, morph, picture of --style-dir, strength, temporal blend,
colour preservation, original view, key list) and applies it to the engine and the blender
between frames: a style is only the network's style vector, so a change shows on the next frame
and never rebuilds the session.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..colours import keep_colours
from ..errors import StylecastError
from ..stages import FrameSink, TemporalBlender
from .hotkeys import Command, KeyBuffer, StdinKeys, help_text
from .sinks import save_snapshot
from .source import LiveSource
from .stats import LiveStats
from .style_folder import ImageEvent, StyleImageCycler
from .window import Hud, PreviewWindow

log = logging.getLogger("stylecast.live")

MORPH_SECONDS = 1.0
STRENGTH_STEP = 0.1
MESSAGE_SECONDS = 2.5
POLL_SECONDS = 0.05  # how long the loop waits for a frame before it services the window again


class LiveEngine(Protocol):
    """What the loop needs of ``engine.StyleEngine``."""

    style_names: tuple[str, ...]
    provider: str
    strength: float
    style_label: str
    style_vector: np.ndarray

    def __call__(self, image: np.ndarray) -> np.ndarray: ...
    def set_style(self, key: str | int) -> None: ...
    def set_style_vector(self, vec: np.ndarray, label: str | None = None) -> None: ...


@dataclass
class _Morph:
    start_vec: np.ndarray  # float32 [S]
    target_vec: np.ndarray  # float32 [S]
    target: int
    started: float


def _smoothstep(x: float) -> float:
    x = min(1.0, max(0.0, x))
    return x * x * (3.0 - 2.0 * x)


class LiveControls:
    """The live state and what each hotkey does to it.

    ``blender_factory`` makes the temporal blender the first time ``t`` turns it on when the
    session started without one (--temporal 0). ``window`` (optional) is used for fullscreen.
    ``images`` (optional, --style-dir) gives ``i`` the pictures of a folder as styles.
    """

    def __init__(self, engine: LiveEngine, blender: TemporalBlender | None, *, snapshot_dir: Path | str = ".",
                 blender_factory: Callable[[], TemporalBlender] | None = None,
                 window: PreviewWindow | None = None, images: StyleImageCycler | None = None) -> None:
        self.engine = engine
        self.blender = blender
        self.blender_factory = blender_factory
        self.window = window
        self.images = images
        self.snapshot_dir = Path(snapshot_dir)
        names = engine.style_names
        self.index: int | None = names.index(engine.style_label) if engine.style_label in names else None
        self.label = engine.style_label
        self.morph: _Morph | None = None
        self.temporal = blender is not None
        self.colours = False
        self.original = False
        self.help = False
        self.quit = False
        self.snapshot_pending = False
        self.snapshots: list[Path] = []
        self.keys = KeyBuffer()
        self._message = ("press h for the keys", time.perf_counter() + MESSAGE_SECONDS)

    # -- keys

    def say(self, text: str, *, logged: bool = False) -> None:
        """A short message in the HUD (and the log, unless it is ``logged`` already)."""
        self._message = (text, time.perf_counter() + MESSAGE_SECONDS)
        if not logged:
            log.info("%s", text)

    @property
    def message(self) -> str:
        text, until = self._message
        return text if time.perf_counter() < until else ""

    def apply_keys(self) -> None:
        """Apply the waiting keys, up to the first snapshot (which needs the next frame)."""
        for cmd in self.keys.take():
            self.apply(cmd)

    def apply(self, cmd: Command) -> None:
        n = len(self.engine.style_names)
        if cmd.name == "style" and cmd.arg is not None:
            if cmd.arg < n:
                self.select(cmd.arg)
            else:
                self.say(f"no style {cmd.arg + 1}: this model has {n}")
        elif cmd.name in ("next", "previous"):
            step = 1 if cmd.name == "next" else -1
            current = self.morph.target if self.morph else self.index
            self.select((current + step) % n if current is not None else (0 if step > 0 else n - 1))
        elif cmd.name == "morph":
            current = self.morph.target if self.morph else self.index
            target = (current + 1) % n if current is not None else 0
            start = self.engine.style_vector.copy()
            self._forget_image()
            self.engine.set_style(target)  # to read its vector; the morph starts from ``start`` below
            self.morph = _Morph(start, self.engine.style_vector.copy(), target, time.perf_counter())
            self.engine.set_style_vector(start)
            self.say(f"morphing to {self.engine.style_names[target]}")
        elif cmd.name == "image":
            self.next_image()
        elif cmd.name in ("stronger", "weaker"):
            step = STRENGTH_STEP if cmd.name == "stronger" else -STRENGTH_STEP
            self.engine.strength = round(min(1.0, max(0.0, self.engine.strength + step)), 2)
            self.say(f"strength {self.engine.strength:.1f}")
        elif cmd.name == "temporal":
            self.toggle_temporal()
        elif cmd.name == "colours":
            self.colours = not self.colours
            self.reset_blend()
            self.say("original colours kept" if self.colours else "style colours")
        elif cmd.name == "original":
            self.original = not self.original
            self.reset_blend()
            self.say("showing the original" if self.original else "showing the style")
        elif cmd.name == "snapshot":
            self.snapshot_pending = True
        elif cmd.name == "fullscreen":
            if self.window is not None:
                self.window.toggle_fullscreen()
            else:
                self.say("no window (--no-window): nothing to make fullscreen")
        elif cmd.name == "help":
            self.help = not self.help
            if self.window is None:  # headless: the list goes to the log instead of the overlay
                log.info("keys:\n%s", help_text())
        elif cmd.name == "quit":
            self.quit = True

    def select(self, i: int) -> None:
        """Switch to style ``i`` (0-based) for the next frame."""
        self.morph = None
        self._forget_image()
        self.engine.set_style(i)
        self.index, self.label = i, self.engine.style_names[i]
        self.reset_blend()  # a crisp change, not a cross-fade through the blend
        self.say(f"style {i + 1}: {self.label}")

    # -- pictures of --style-dir

    def next_image(self) -> None:
        """Key i: the next picture of --style-dir, now or when its prediction arrives."""
        if self.images is None:
            self.say("no --style-dir: start nst-live with --style-dir DIR to use pictures as styles")
            return
        self._on_image(self.images.next())

    def update_images(self) -> None:
        """Once per loop turn: use a chosen picture whose prediction arrived, notice new pictures.
        Never waits: predictions run on the library's thread."""
        if self.images is not None:
            for event in self.images.update():
                self._on_image(event)

    def _on_image(self, event: ImageEvent) -> None:
        if event.vector is not None:
            self.morph = None
            self.engine.set_style_vector(event.vector, event.name)
            self.index, self.label = None, self.engine.style_label
            self.reset_blend()
        self.say(event.message, logged=event.logged)

    def _forget_image(self) -> None:
        if self.images is not None:
            self.images.forget()

    def toggle_temporal(self) -> None:
        if self.blender is None and self.blender_factory is not None:
            self.blender = self.blender_factory()
        if self.blender is None:
            self.say("temporal blend unavailable")
            return
        self.temporal = not self.temporal
        self.reset_blend()
        self.say(f"temporal blend {'on' if self.temporal else 'off'}")

    def reset_blend(self) -> None:
        """Forget the blender's previous frame (after a jump in style or view, or a lost source)."""
        if self.blender is not None:
            self.blender.reset()

    # -- per frame

    def _advance_morph(self) -> None:
        if self.morph is None:
            return
        m = self.morph
        x = (time.perf_counter() - m.started) / MORPH_SECONDS
        if x >= 1.0:
            self.morph = None
            self.engine.set_style(m.target)
            self.index, self.label = m.target, self.engine.style_names[m.target]
            return
        e = _smoothstep(x)
        self.engine.set_style_vector(((1.0 - e) * m.start_vec + e * m.target_vec).astype(np.float32))
        self.label = f"-> {self.engine.style_names[m.target]} {x:.0%}"

    def stylise(self, image: np.ndarray) -> np.ndarray:
        """Network (or the original with space), then colour preservation; BGR uint8 [H, W, 3]."""
        self._advance_morph()
        if self.original:
            return image
        out = self.engine(image)
        return keep_colours(image, out) if self.colours else out

    def blend(self, original: np.ndarray, stylized: np.ndarray) -> np.ndarray:
        if self.original or not self.temporal or self.blender is None:
            return stylized
        return self.blender(original, stylized)

    def take_snapshot(self, image: np.ndarray) -> None:
        if not self.snapshot_pending:
            return
        self.snapshot_pending = False
        try:
            path = save_snapshot(image, self.snapshot_dir)
        except StylecastError as exc:
            self.say(f"snapshot not saved: {exc}")
            return
        self.snapshots.append(path)
        self.say(f"saved {path}")

    def hud(self, stats: LiveStats, source: LiveSource, banner: str = "") -> Hud:
        flags = [f"strength {self.engine.strength:.1f}", f"temporal {'on' if self.temporal else 'off'}"]
        if self.colours:
            flags.append("original colours")
        if self.original:
            flags.append("ORIGINAL")
        if self.images is not None:
            flags.append(self.images.status())
        provider = self.engine.provider.replace("ExecutionProvider", "")
        lines = [f"{self.label}  [{provider}]", *stats.hud_lines(source.frames_dropped), "  ".join(flags)]
        return Hud(lines=lines, message=self.message, banner=banner, help=self.help)


def _gather_keys(controls: LiveControls, key: str | None, stdin: StdinKeys | None) -> None:
    controls.keys.push(key)
    if stdin is not None:
        for k in stdin.pending():
            controls.keys.push(k)


def run_live(source: LiveSource, controls: LiveControls, sinks: Sequence[FrameSink], *,
             window: PreviewWindow | None = None, stdin: StdinKeys | None = None,
             max_frames: int | None = None, stats: LiveStats | None = None) -> LiveStats:
    """Run until q/Esc, the window is closed, ``max_frames`` frames went out, or the source ends.

    Sinks get the clean frame; the window gets it with the HUD. While the source is lost, the
    window shows the last frame with a "lost" banner and ``live`` sinks keep getting that frame.
    """
    stats = stats or LiveStats()
    source.reset_counts()
    stats.started = time.perf_counter()
    last: np.ndarray | None = None
    was_lost = False
    key: str | None = None
    while not controls.quit and (max_frames is None or stats.frames < max_frames):
        _gather_keys(controls, key, stdin)
        key = None
        controls.apply_keys()
        controls.update_images()
        if window is not None and window.closed:
            break
        frame = source.poll(POLL_SECONDS)
        if frame is None:
            if source.ended:
                break
            if source.lost:
                if not was_lost:
                    stats.lost_events += 1
                    log.warning("%s lost: repeating the last frame until it is back", source.capture.name)
                was_lost = True
                key = _while_lost(source, controls, stats, sinks, window, last)
            continue
        if was_lost:
            was_lost = False
            controls.say(f"{source.capture.name} is back")
            controls.reset_blend()
        t0 = time.perf_counter()
        stylized = controls.stylise(frame.image)
        t1 = time.perf_counter()
        out = controls.blend(frame.image, stylized)
        t2 = time.perf_counter()
        for sink in sinks:
            sink.write(out, frame.pts)
        controls.take_snapshot(out)
        if window is not None:
            key = window.show(out, controls.hud(stats, source))
        t3 = time.perf_counter()
        last = out
        stages = {"capture": float(frame.info.get("capture_ms", 0.0)), "inference": (t1 - t0) * 1e3,
                  "blend": (t2 - t1) * 1e3, "output": (t3 - t2) * 1e3}
        stats.add(stages, (t3 - frame.captured_at) * 1e3, t3)
    stats.finish()
    return stats


def _while_lost(source: LiveSource, controls: LiveControls, stats: LiveStats, sinks: Sequence[FrameSink],
                window: PreviewWindow | None, last: np.ndarray | None) -> str | None:
    """One idle step while the source is lost: keep live sinks fed and the window responsive."""
    if last is not None:
        pts = time.perf_counter() - source.started_at
        for sink in sinks:
            if getattr(sink, "live", False):
                sink.write(last, pts)
    if window is None:
        return None
    image = last if last is not None else np.zeros((360, 640, 3), np.uint8)
    return window.show(image, controls.hud(stats, source, banner=f"{source.capture.name} lost - reconnecting"))
