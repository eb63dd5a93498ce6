"""A contact sheet: one photo in every style of a model (and in the style of each picture of a
folder), labelled, so the user can see which to pick.

    sheet = style_sheet(engine, photo, strength=1.0, keep_colours=False)
    write_image("sheet.png", sheet, overwrite=False)

Each tile is the photo stylised at the size a real run would use (full resolution, or
--max-side), then scaled down to the tile: what the tile shows is what ``nst-image PHOTO
NAME OUT`` gives, smaller. The original comes first; each tile has its name under it.

``compare_sheet`` puts models side by side (``nst-image PHOTO --sheet SHEET --compare DIR``):
one row per model, the same style in the same column.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .engine import StyleEngine
from .progress import Progress
from .style_images import PredictorSession
from .styling import PictureStyle, stylizer_for

DEFAULT_TILE = 320
"""Longer side of each tile, px."""

BACKGROUND = (32, 32, 32)
TEXT = (240, 240, 240)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
ORIGINAL = "original"


@dataclass(frozen=True)
class SheetLayout:
    """Where everything goes: ``n`` tiles of ``tile`` (h, w) px in ``columns``, each with a
    label strip ``label_h`` px high under it; ``margin`` around and between the tiles."""

    n: int
    tile: tuple[int, int]
    label_h: int
    columns: int
    margin: int

    @property
    def rows(self) -> int:
        return math.ceil(self.n / self.columns)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the whole sheet."""
        h, w = self.tile
        return (self.margin + self.rows * (h + self.label_h + self.margin),
                self.margin + self.columns * (w + self.margin))

    def origin(self, i: int) -> tuple[int, int]:
        """(y, x) of the top-left pixel of tile ``i`` (its label is right under it)."""
        h, w = self.tile
        row, col = divmod(i, self.columns)
        return self.margin + row * (h + self.label_h + self.margin), self.margin + col * (w + self.margin)


def _font_scale(tile_w: int) -> float:
    return min(1.0, max(0.4, tile_w / 400))


def plan_sheet(n: int, image_hw: tuple[int, int], tile_side: int = DEFAULT_TILE, columns: int | None = None) -> SheetLayout:
    """The layout for ``n`` tiles of an image of ``image_hw``: each scaled so its longer side is
    ``tile_side`` (never enlarged), in about as many columns as make the sheet a landscape page."""
    h, w = image_hw
    scale = min(1.0, tile_side / max(h, w))
    tile = (max(1, round(h * scale)), max(1, round(w * scale)))
    (_, text_h), base = cv2.getTextSize("Ag", _FONT, _font_scale(tile[1]), 1)
    label_h = text_h + base + 10
    margin = max(4, tile_side // 40)
    if columns is None:
        cell_ratio = (tile[0] + label_h) / tile[1]
        columns = math.ceil(math.sqrt(n * cell_ratio * 4 / 3))
    return SheetLayout(n, tile, label_h, max(1, min(n, columns)), margin)


def _label(text: str, width: int, scale: float) -> str:
    """``text`` as ASCII (OpenCV's font has nothing else), shortened with ... to fit ``width`` px."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    plain = plain.encode("ascii", "replace").decode("ascii")
    shown = plain
    while shown and cv2.getTextSize(shown, _FONT, scale, 1)[0][0] > width:
        plain = plain[:-1]
        shown = plain.rstrip() + "..."
    return shown


def contact_sheet(tiles: Sequence[tuple[str, np.ndarray]], *, tile_side: int = DEFAULT_TILE,
                  columns: int | None = None) -> np.ndarray:
    """Lay out (label, BGR uint8 [H, W, 3]) tiles, all of one size, as ``plan_sheet`` says:
    row by row, each labelled under it. Returns BGR uint8."""
    if not tiles:
        raise ValueError("a contact sheet needs at least one tile")
    layout = plan_sheet(len(tiles), tiles[0][1].shape[:2], tile_side, columns)
    sheet = np.empty((*layout.size, 3), np.uint8)
    sheet[:] = BACKGROUND
    th, tw = layout.tile
    scale = _font_scale(tw)
    for i, (name, image) in enumerate(tiles):
        y, x = layout.origin(i)
        shrink = image.shape[0] > th or image.shape[1] > tw
        sheet[y:y + th, x:x + tw] = cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        text = _label(name, tw - 8, scale)
        (_, text_h), _ = cv2.getTextSize(text or "A", _FONT, scale, 1)
        cv2.putText(sheet, text, (x + 4, y + th + 4 + text_h), _FONT, scale, TEXT, 1, cv2.LINE_AA)
    return sheet


def style_sheet(engine: StyleEngine, photo: np.ndarray, *, strength: float = 1.0, keep_colors: bool = False,
                pictures: Sequence[tuple[str, np.ndarray]] = (), predictor: PredictorSession | None = None,
                tile_side: int = DEFAULT_TILE, progress: bool | None = None) -> np.ndarray:
    """The contact sheet of ``photo`` (BGR uint8 [H, W, 3]): the original, then every style of
    the engine's model by name, then each (name, style vector float32 [S]) of ``pictures``.
    ``strength`` and ``keep_colours`` apply to every tile as ``styling.stylizer_for`` says (a
    picture below full strength needs ``predictor``)."""
    tiles = [(ORIGINAL, photo)]
    with Progress(len(engine.style_names) + len(pictures), "sheet", unit="style", enabled=progress) as bar:
        named = stylizer_for(engine, strength=strength, keep_colors=keep_colors)
        for i, name in enumerate(engine.style_names):
            engine.set_style(i)
            tiles.append((name, named(photo)))
            bar.update()
        for name, vector in pictures:
            look = stylizer_for(engine, strength=strength, keep_colors=keep_colors,
                                picture=PictureStyle(vector, name), predictor=predictor)
            tiles.append((name, look(photo)))
            bar.update()
    return contact_sheet(tiles, tile_side=tile_side)


def compare_sheet(engines: Sequence[tuple[str, StyleEngine]], photo: np.ndarray, styles: Sequence[str], *,
                  strength: float = 1.0, keep_colors: bool = False, tile_side: int = DEFAULT_TILE,
                  progress: bool | None = None) -> np.ndarray:
    """Models side by side: one row per (label, engine), the original first, then ``photo`` in each
    of ``styles`` (names every model has), labelled "style (label)"; the same style is in the
    same column of every row."""
    tiles: list[tuple[str, np.ndarray]] = []
    with Progress(len(engines) * len(styles), "sheet", unit="style", enabled=progress) as bar:
        for label, engine in engines:
            named = stylizer_for(engine, strength=strength, keep_colors=keep_colors)
            tiles.append((f"{ORIGINAL} ({label})", photo))
            for name in styles:
                engine.set_style(name)
                tiles.append((f"{name} ({label})", named(photo)))
                bar.update()
    return contact_sheet(tiles, tile_side=tile_side, columns=len(styles) + 1)
