"""Live hotkeys: one key map for the preview window and for stdin (headless), and the stdin reader.

Keys are short names: a printable character ("2", "s", "+") or "space", "esc", "enter".
``key_from_code`` turns an OpenCV ``waitKey`` code into one, ``key_from_line`` a line of stdin
(one key per line: "2", "s", "space", "esc", "q"), and ``command_for`` a key into a ``Command``
the live loop applies. Nothing here touches a window, a model or a thread's state but its own.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
from collections import deque
from dataclasses import dataclass
from typing import TextIO

log = logging.getLogger("stylecast.live")


@dataclass(frozen=True)
class Command:
    """What a key asks for. ``name`` is one of COMMANDS; ``arg`` the style number for "style" (0-based)."""

    name: str
    arg: int | None = None


KEYS: tuple[tuple[str, str, dict[str, str]], ...] = (
    # (the keys as the key list shows them, what they do, {key: command})
    ("1-9", "select style 1..9", {str(n): "style" for n in range(1, 10)}),
    ("n / p", "next / previous style", {"n": "next", "p": "previous"}),
    ("m", "morph smoothly to the next style (about 1 s)", {"m": "morph"}),
    ("i", "next picture of --style-dir as the style", {"i": "image"}),
    # "=" is "+" without Shift on most layouts, "_" is "-" with it
    ("+ / -", "more / less style (strength)", {"+": "stronger", "=": "stronger", "-": "weaker", "_": "weaker"}),
    ("t", "temporal blend on/off (less flicker)", {"t": "temporal"}),
    ("c", "keep the original colours on/off", {"c": "colors"}),
    ("space", "show the original on/off", {"space": "original"}),
    ("s", "save a PNG snapshot of the output", {"s": "snapshot"}),
    ("f", "fullscreen on/off", {"f": "fullscreen"}),
    ("h", "show / hide this key list", {"h": "help"}),
    ("q, Esc", "quit", {"q": "quit", "esc": "quit"}),
)
"""The one key table: every binding, and the key list of --help, the window and ``h`` on stdin."""

_BINDINGS: dict[str, str] = {key: command for _, _, keys in KEYS for key, command in keys.items()}
COMMANDS: tuple[str, ...] = tuple(dict.fromkeys(_BINDINGS.values()))
KEY_HELP: tuple[tuple[str, str], ...] = tuple((keys, what) for keys, what, _ in KEYS)
"""(keys, what they do), as the key list shows them."""

_NAMED_CODES = {27: "esc", 32: "space", 13: "enter", 10: "enter"}
_LINE_NAMES = {"space": "space", "esc": "esc", "escape": "esc", "enter": "enter", "quit": "q", "help": "h"}


def help_text(indent: str = "  ") -> str:
    """The key list as aligned lines."""
    width = max(len(k) for k, _ in KEY_HELP)
    return "\n".join(f"{indent}{keys:<{width}}  {what}" for keys, what in KEY_HELP)


def key_from_code(code: int) -> str | None:
    """An OpenCV ``waitKey`` code -> key name; None for no key (-1) or keys we do not use.

    GTK builds may add modifier bits above the character (NumLock: 0x100000); Qt builds give
    special keys codes from 0x01000000 (F3 is 0x01000032, whose low byte reads "2").
    """
    if code < 0 or (code >> 16) & 0x100:
        return None
    code &= 0xFFFF
    if code in _NAMED_CODES:
        return _NAMED_CODES[code]
    if 33 <= code < 127:
        return chr(code).lower()  # Caps Lock or Shift+letter means the same letter
    return None


def key_from_line(line: str) -> str | None:
    """A line of stdin -> key name: "2", "s", "space" (or a lone " "), "esc", ...; None if not a key."""
    text = line.rstrip("\r\n")
    if text == " ":
        return "space"
    text = text.strip().lower()
    if text in _LINE_NAMES:
        return _LINE_NAMES[text]
    return text if len(text) == 1 else None


def command_for(key: str) -> Command | None:
    """The command bound to ``key``, or None when the key does nothing."""
    name = _BINDINGS.get(key)
    if name == "style":
        return Command(name, int(key) - 1)
    return Command(name) if name else None


class KeyBuffer:
    """Keys waiting to be applied, in order. ``take()`` hands out the commands up to and including
    the first snapshot: the keys after it wait for the next frame, so "2, s, 1, s" saves one
    snapshot in style 2 and one in style 1 even when the four keys arrive at once."""

    def __init__(self) -> None:
        self._keys: deque[str] = deque()

    def push(self, key: str | None) -> None:
        if key is None:
            return
        if command_for(key) is None:
            log.info("key %r does nothing (h lists the keys)", key)
            return
        self._keys.append(key)

    def take(self) -> list[Command]:
        out: list[Command] = []
        while self._keys:
            cmd = command_for(self._keys.popleft())
            if cmd is None:
                continue
            out.append(cmd)
            if cmd.name == "snapshot":
                break
        return out

    def __len__(self) -> int:
        return len(self._keys)


def stdin_usable(stream: TextIO) -> bool:
    """Whether reading keys from ``stream`` is safe: not when it is the terminal of a background
    job (``nst-live ... &``), where a read would stop the whole process with SIGTTIN."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return True  # not a real file (a test's StringIO): readable
    try:
        if not os.isatty(fd):
            return True
        return os.tcgetpgrp(fd) == os.getpgrp()
    except (AttributeError, OSError):  # no job control (Windows): a console read is fine
        return True


class StdinKeys:
    """Reads keys from ``stream`` (default: sys.stdin), one per line, on a daemon thread.

    The end of the stream only ends the reading, never the session: a service started with
    stdin closed keeps running. Unknown lines are reported once each and ignored.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdin
        self._queue: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Start reading; False (and nothing started) when stdin cannot be read safely."""
        if self.stream is None or not stdin_usable(self.stream):
            return False
        self._thread = threading.Thread(target=self._run, name="stylecast-stdin-keys", daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        try:
            for line in self.stream:
                key = key_from_line(line)
                if key is None or command_for(key) is None:
                    if line.strip():
                        log.warning("stdin: %r is not a key (one key per line; h lists them)", line.strip()[:40])
                    continue
                self._queue.put(key)
        except (OSError, ValueError):  # stdin closed under us
            return

    def pending(self) -> list[str]:
        """The keys read since the last call, in order."""
        out: list[str] = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out
