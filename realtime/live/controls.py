"""What the hotkeys of ``nst-live`` change, and how: ``LiveControls`` and its command table.

``LiveControls`` holds the live state (style, morph, picture of --style-dir, strength, temporal
blend, colour preservation, original view, key list) and applies it to the engine and the
blender between frames: a style is only the network's style vector, so a change shows on the
next frame and never rebuilds the session. ``ACTIONS`` maps each command of the key table
(``hotkeys.KEYS``) to what it does; the loop (``loop.py``) calls ``apply_keys`` once a turn,
then ``stylize`` and ``blend`` on each frame.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..colors import keep_colors
from ..errors import StylecastError
from ..stages import FrameSource, TemporalBlender
from .hotkeys import Command, KeyBuffer, help_text
from .sinks import save_snapshot
from .stats import LiveStats
from .style_folder import ImageEvent, StyleImageCycler
from .window import Hud, PreviewWindow

log = logging.getLogger("stylecast.live")

MORPH_SECONDS = 1.0
STRENGTH_STEP = 0.1
MESSAGE_SECONDS = 2.5


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
        self.colors = False
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
        """Do what ``cmd`` asks: ``ACTIONS`` maps each command of the key table to its method."""
        ACTIONS[cmd.name](self, cmd)

    # -- styles

    def select_number(self, i: int) -> None:
        """Keys 1-9: style ``i`` (0-based), or say that this model has fewer."""
        n = len(self.engine.style_names)
        if i < n:
            self.select(i)
        else:
            self.say(f"no style {i + 1}: this model has {n}")

    def step(self, step: int) -> None:
        """Keys n and p: the next (``step`` 1) or previous (-1) style, from where a morph is heading."""
        n = len(self.engine.style_names)
        current = self.morph.target if self.morph else self.index
        self.select((current + step) % n if current is not None else (0 if step > 0 else n - 1))

    def start_morph(self) -> None:
        """Key m: move smoothly to the next style over MORPH_SECONDS (``stylize`` advances it)."""
        current = self.morph.target if self.morph else self.index
        target = (current + 1) % len(self.engine.style_names) if current is not None else 0
        start = self.engine.style_vector.copy()
        self._forget_image()
        self.engine.set_style(target)  # to read its vector; the morph starts from ``start`` below
        self.morph = _Morph(start, self.engine.style_vector.copy(), target, time.perf_counter())
        self.engine.set_style_vector(start)
        self.say(f"morphing to {self.engine.style_names[target]}")

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

    def change_strength(self, step: float) -> None:
        """Keys + and -: more or less style, in 0..1."""
        self.engine.strength = round(min(1.0, max(0.0, self.engine.strength + step)), 2)
        self.say(f"strength {self.engine.strength:.1f}")

    def toggle_colors(self) -> None:
        """Key c: keep the original colours, or not."""
        self.colors = not self.colors
        self.reset_blend()
        self.say("original colours kept" if self.colors else "style colours")

    def toggle_original(self) -> None:
        """Key space: show the original, or the style."""
        self.original = not self.original
        self.reset_blend()
        self.say("showing the original" if self.original else "showing the style")

    def toggle_fullscreen(self) -> None:
        if self.window is not None:
            self.window.toggle_fullscreen()
        else:
            self.say("no window (--no-window): nothing to make fullscreen")

    def toggle_help(self) -> None:
        self.help = not self.help
        if self.window is None:  # headless: the list goes to the log instead of the overlay
            log.info("keys:\n%s", help_text())

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

    def stylize(self, image: np.ndarray) -> np.ndarray:
        """Network (or the original with space), then colour preservation; BGR uint8 [H, W, 3]."""
        self._advance_morph()
        if self.original:
            return image
        out = self.engine(image)
        return keep_colors(image, out) if self.colors else out

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

    def hud(self, stats: LiveStats, source: FrameSource, banner: str = "") -> Hud:
        flags = [f"strength {self.engine.strength:.1f}", f"temporal {'on' if self.temporal else 'off'}"]
        if self.colors:
            flags.append("original colours")
        if self.original:
            flags.append("ORIGINAL")
        if self.images is not None:
            flags.append(self.images.status())
        provider = self.engine.provider.replace("ExecutionProvider", "")
        lines = [f"{self.label}  [{provider}]", *stats.hud_lines(source.frames_dropped), "  ".join(flags)]
        return Hud(lines=lines, message=self.message, banner=banner, help=self.help)


ACTIONS: dict[str, Callable[[LiveControls, Command], None]] = {
    "style": lambda c, cmd: c.select_number(cmd.arg or 0),
    "next": lambda c, cmd: c.step(1),
    "previous": lambda c, cmd: c.step(-1),
    "morph": lambda c, cmd: c.start_morph(),
    "image": lambda c, cmd: c.next_image(),
    "stronger": lambda c, cmd: c.change_strength(STRENGTH_STEP),
    "weaker": lambda c, cmd: c.change_strength(-STRENGTH_STEP),
    "temporal": lambda c, cmd: c.toggle_temporal(),
    "colors": lambda c, cmd: c.toggle_colors(),
    "original": lambda c, cmd: c.toggle_original(),
    "snapshot": lambda c, cmd: setattr(c, "snapshot_pending", True),  # taken on the next frame
    "fullscreen": lambda c, cmd: c.toggle_fullscreen(),
    "help": lambda c, cmd: c.toggle_help(),
    "quit": lambda c, cmd: setattr(c, "quit", True),
}
"""What each command of ``hotkeys.KEYS`` does: command name -> action on the controls."""
