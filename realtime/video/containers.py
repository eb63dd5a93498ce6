"""Which container and default video encoder each output extension means.

Its own module, free of PyAV, so that nst-live can check a --record path before the window
opens (importing av before the first cv2 window can hang it: opencv#29195).
"""

from __future__ import annotations

CONTAINERS: dict[str, tuple[str, str]] = {
    ".mp4": ("mp4", "libx264"),
    ".m4v": ("mp4", "libx264"),
    ".mov": ("mov", "libx264"),
    ".mkv": ("matroska", "libx264"),
    ".webm": ("webm", "libvpx-vp9"),
    ".ts": ("mpegts", "libx264"),
}
"""extension -> (FFmpeg muxer, default video encoder)."""
