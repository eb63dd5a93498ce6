"""Folders of videos for nst-video: which files are videos, and what each output is called.

A file is a video by its container, not by its extension alone: FFmpeg is asked to open it,
and it counts when it has a real video stream (cover art does not count) in a container that
is not a still-image format (a JPEG opens in FFmpeg as a one-frame "video"). A file with a video
extension that FFmpeg cannot open is a video that cannot be read: it is named and skipped later
(batch.py), not quietly left out. Everything else (notes, photos, audio) is left out, and
counted.

Outputs keep the input's name where nst-video writes that container (.mp4 .m4v .mov .mkv
.webm .ts); any other (.avi, .mts, no extension) becomes Matroska (.mkv), which holds almost any
audio as it is. ``--out-ext`` gives every output one container. When two inputs would get the
same output name (clip.avi and clip.mkv), both keep their full name before the new extension
(clip.avi.mkv).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import av

from ..errors import InputFileError, UsageError
from .containers import CONTAINERS

VIDEO_SUFFIXES = frozenset({
    *CONTAINERS, ".avi", ".mts", ".m2ts", ".mpg", ".mpeg", ".m2v", ".vob", ".wmv", ".asf", ".flv", ".3gp", ".3g2",
    ".mxf", ".ogv", ".dv", ".y4m", ".264", ".h264", ".265", ".hevc", ".ivf", ".nut",
})
"""Extensions that say "video": such a file that FFmpeg cannot open is reported, not left out."""

FALLBACK_SUFFIX = ".mkv"  # for inputs whose container nst-video does not write

# FFmpeg demuxers that give a "video" stream from what is not a video: still pictures (a photo
# in a folder of videos) and text (tty renders a .txt or .nfo as ANSI art).
_NOT_VIDEO_FORMATS = frozenset({"image2", "gif", "apng", "webp", "ico", "jpegxl_anim", "tiff", "bmp", "png", "tty"})


@dataclass(frozen=True)
class FolderListing:
    """The files of a folder: ``videos`` (sorted by name; some may turn out unreadable) and
    ``left_out`` (not videos)."""

    videos: list[Path]
    left_out: list[Path]


def _not_video_format(name: str) -> bool:
    return any(part in _NOT_VIDEO_FORMATS or part.endswith("_pipe") for part in name.split(","))


def is_video_container(path: Path) -> bool:
    """Whether FFmpeg opens ``path`` as a container with a real video stream (not a still picture, not text)."""
    try:
        container = av.open(str(path), "r")
    except (av.FFmpegError, OSError, ValueError):
        return False
    with contextlib.closing(container):
        if _not_video_format(container.format.name):
            return False
        return any(not s.disposition & av.stream.Disposition.attached_pic for s in container.streams.video)


def list_videos(folder: Path | str) -> FolderListing:
    """The videos directly in ``folder`` (see the module notes); hidden files (a leading dot:
    ``._clip.mp4`` companions, temporary files being written) are left out. InputFileError
    when the folder holds no video."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(f"{folder}: no such folder" if not folder.exists() else f"{folder}: not a folder")
    videos, others = [], []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        (videos if path.suffix.lower() in VIDEO_SUFFIXES or is_video_container(path) else others).append(path)
    if not videos:
        raise InputFileError(f"{folder}: is a folder with no video files in it" + (f" ({len(others)} other files)" if others else ""))
    return FolderListing(videos, others)


def normal_suffix(text: str) -> str:
    """``mp4`` or ``.MP4`` -> ``.mp4``; UsageError for a container nst-video does not write."""
    suffix = "." + text.lower().lstrip(".")
    if suffix not in CONTAINERS:
        raise UsageError(f"--out-ext {text}: nst-video writes {', '.join(CONTAINERS)}")
    return suffix


def output_names(videos: list[Path], out_suffix: str | None = None) -> dict[Path, str]:
    """Input -> output file name (see the module notes); ``out_suffix`` (".mp4") for every output."""
    def wanted(path: Path) -> str:
        suffix = out_suffix or (path.suffix.lower() if path.suffix.lower() in CONTAINERS else FALLBACK_SUFFIX)
        return path.name if suffix == path.suffix.lower() and out_suffix is None else path.stem + suffix

    first = {path: wanted(path) for path in videos}
    clashes = {name for name, n in Counter(first.values()).items() if n > 1}
    names = {}
    for path, name in first.items():
        if name in clashes and name != path.name:
            name = path.name + Path(name).suffix  # clip.avi.mkv beside clip.mkv
        names[path] = name
    return names
