"""``nst-live --style-dir DIR``: the pictures of a folder as styles, one ``i`` press at a time.

``StyleImageCycler`` sits between the frame loop and a ``StyleImageLibrary`` (style_images.py),
whose worker thread runs the style-prediction network, so the loop never waits for a picture:

    cycler = StyleImageCycler(library)     # starts predicting every picture of the folder
    event = cycler.next()                  # key i: the next picture (ready now, or later)
    events = cycler.update()               # every loop turn: finished predictions, new pictures

Each ``ImageEvent`` says what to show (``message``) and, with ``vector``, which style to use now.
A picture chosen before its prediction is done is used the moment it arrives; a picture added
to the folder is found within ``refresh_seconds`` and predicted without a restart; a picture
changed on disk while it is the style is predicted again and the new style used.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..style_images import StyleImageLibrary

log = logging.getLogger("stylecast.live")

REFRESH_SECONDS = 1.0
"""How often the folder is rescanned: a directory listing and a stat per picture, cheap enough."""


@dataclass(frozen=True)
class ImageEvent:
    """What the live controls should do: show ``message``; with ``vector`` (float32 [S]) use that
    style now, called ``name``. ``logged`` is True when the library has logged the message already."""

    message: str
    vector: np.ndarray | None = None
    name: str = ""
    logged: bool = False


class StyleImageCycler:
    """Steps through the pictures of a ``StyleImageLibrary`` folder in name order, wrapping around.

    ``cursor`` is the picture ``i`` last chose; ``wanted`` is the picture whose style is in use
    or on its way (None once another style is chosen: see ``forget``). Call every method from
    the frame loop's thread (the library's rule); none of them waits for a prediction.
    ``clock`` is for tests.
    """

    def __init__(self, library: StyleImageLibrary, *, refresh_seconds: float = REFRESH_SECONDS,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.library = library
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._next_refresh = clock() + refresh_seconds
        self.cursor: Path | None = None
        self.wanted: Path | None = None
        library.request_all()  # predict them all up front, so that i is instant once they are done

    @property
    def folder(self) -> Path:
        return self.library.folder

    def next(self) -> ImageEvent:
        """Choose the picture after ``cursor``; its style now when it is predicted, else on arrival."""
        paths = self.library.paths
        if not paths:
            return ImageEvent(f"no images in {self.folder} yet")
        i = _after(self.cursor, paths)
        self.cursor = self.wanted = paths[i]
        where = f"style image {i + 1}/{len(paths)}: {paths[i].name}"
        vector = self.library.vector(i)
        if vector is not None:
            return ImageEvent(where, vector, paths[i].name)
        error = self.library.error(i)
        if error is not None:  # stays wanted: when the file is fixed it is predicted again and used
            return ImageEvent(self._failed(paths[i], error))
        self.library.request(i)  # nothing when it is already on its way
        return ImageEvent(f"{where} (predicting its style...)")

    def forget(self) -> None:
        """Another style was chosen (a number key, a morph): a late prediction must not replace it.
        The cursor stays, so the next ``i`` goes on from the last picture."""
        self.wanted = None

    def update(self) -> list[ImageEvent]:
        """Take in finished predictions and, every ``refresh_seconds``, rescan the folder."""
        events: list[ImageEvent] = []
        now = self._clock()
        if now >= self._next_refresh:
            self._next_refresh = now + self.refresh_seconds
            events += self._rescan()
        for done in self.library.poll():
            if done.path != self.wanted:
                continue  # predicted ahead of time (an error is logged by the library)
            if done.vector is not None:
                events.append(ImageEvent(self._where(done.path), done.vector, done.path.name))
            else:
                events.append(ImageEvent(self._failed(done.path, done.error or "failed"), logged=True))
        return events

    def _rescan(self) -> list[ImageEvent]:
        before = set(self.library.paths)
        if not self.library.refresh():
            return []
        self.library.request_all()  # new and changed pictures; done and pending ones are skipped
        if self.wanted is not None and self.wanted not in self.library.paths:
            self.wanted = None  # deleted: its style stays in use until another is chosen
        added = [p.name for p in self.library.paths if p not in before]
        if not added:
            return []
        return [ImageEvent(f"new style image{'s' if len(added) > 1 else ''} in {self.folder}: {', '.join(added)}")]

    def _where(self, path: Path) -> str:
        paths = self.library.paths
        return f"style image {paths.index(path) + 1}/{len(paths)}: {path.name}" if path in paths else path.name

    def _failed(self, path: Path, error: str) -> str:
        where = self._where(path)
        return f"{where.removesuffix(path.name)}{error}" if path.name in error else f"{where}: {error}"

    def status(self) -> str:
        """A short line for the HUD: how many pictures, how many still predicting."""
        pending = self.library.pending()
        n = len(self.library)
        return f"{n} picture{'' if n == 1 else 's'}" + (f" ({pending} predicting)" if pending else "")

    def close(self) -> None:
        """Stop the library's worker (after the prediction in progress)."""
        self.library.close()


def _after(cursor: Path | None, paths: Sequence[Path]) -> int:
    """The index of the picture after ``cursor`` in ``paths`` (sorted by name), wrapping around;
    when ``cursor`` was removed, the first name after it."""
    if cursor is None:
        return 0
    if cursor in paths:
        return (list(paths).index(cursor) + 1) % len(paths)
    return next((i for i, p in enumerate(paths) if p.name > cursor.name), 0)
