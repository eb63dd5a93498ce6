"""Video encoders for ``nst-video``: which ones can run here, and which pixel format the output gets.

FFmpeg lists an encoder whether or not it can run on this machine: h264_nvenc is built into
the PyAV wheels but needs an NVIDIA GPU and driver, and says so only when its context is
opened. So a hardware encoder is opened for real on a tiny frame among the checks made before
the model loads, and a high-bit-depth pixel format is tried the same way before it is chosen.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from fractions import Fraction

import av
import numpy as np

from ..errors import BackendUnavailableError

# Offered in the hint for an unknown --codec, when present in this build and able to run here.
KNOWN_ENCODERS = ("libx264", "libx265", "libvpx-vp9", "libsvtav1", "libaom-av1", "h264_nvenc", "hevc_nvenc",
                  "av1_nvenc")
# Name suffix of a hardware encoder -> what it needs, for the error message.
_HARDWARE_NEEDS = {
    "_nvenc": "an NVIDIA GPU with its driver (libnvidia-encode)",
    "_qsv": "an Intel GPU with the oneVPL runtime",
    "_vaapi": "a VA-API device (/dev/dri) and its driver",
    "_amf": "an AMD GPU with the AMF runtime",
    "_videotoolbox": "macOS VideoToolbox",
    "_mf": "Windows Media Foundation",
    "_v4l2m2m": "a V4L2 memory-to-memory encoder device",
}
_CHROMA_NAMES = {"420": "4:2:0", "422": "4:2:2", "444": "4:4:4"}
_TRIAL_SIZE = (256, 144)  # above every hardware encoder's minimum size, small enough to cost ~nothing


def muxer_takes_codec(muxer: str, codec: str) -> bool:
    """Whether FFmpeg's ``muxer`` accepts a stream of ``codec`` (asked of FFmpeg, in memory)."""
    with av.open(io.BytesIO(), "w", format=muxer) as probe:
        try:
            probe.add_stream(codec)
        except (ValueError, av.FFmpegError):
            return False
    return True


def is_hardware(codec: str) -> bool:
    """A hardware encoder: it may be listed by FFmpeg yet unable to open on this machine."""
    flagged = bool(av.Codec(codec, "w").capabilities & av.codec.Capabilities.hardware)
    return flagged or any(codec.endswith(suffix) for suffix in _HARDWARE_NEEDS)


def trial_encode(codec: str, pix_fmt: str, options: Mapping[str, str] | None = None,
                 size: tuple[int, int] = _TRIAL_SIZE) -> str | None:
    """Open ``codec`` for ``pix_fmt`` and encode one black frame: None when that works, else
    FFmpeg's reason (the encoder is missing its hardware, or refuses the format)."""
    width, height = size
    cc = av.CodecContext.create(codec, "w")
    cc.width, cc.height, cc.pix_fmt = width, height, pix_fmt
    cc.time_base, cc.framerate = Fraction(1, 25), Fraction(25)
    cc.options = dict(options or {})
    try:
        frame = av.VideoFrame.from_ndarray(np.zeros((height, width, 3), np.uint8), format="bgr24")
        frame = frame.reformat(format=pix_fmt)
        frame.pts = 0
        cc.encode(frame)
        cc.encode(None)  # flush: some encoders fail only once they really encode
    except (av.FFmpegError, ValueError, OSError) as exc:  # EPERM, ENOSYS, ... come as OSError subclasses
        return getattr(exc, "strerror", None) or str(exc)
    return None  # the context is freed with the object


def check_encoder_runs(codec: str, options: Mapping[str, str], fallback: str) -> None:
    """BackendUnavailableError, with what is missing and ``fallback`` to use instead, when
    ``codec`` is a hardware encoder that cannot open here. Software encoders are not tried
    (they always open, and some print a banner when they do)."""
    if not is_hardware(codec):
        return
    formats = [f.name for f in (av.Codec(codec, "w").video_formats or [])]
    why = trial_encode(codec, "yuv420p" if "yuv420p" in formats or not formats else formats[0], options)
    if why is not None:
        need = next((n for s, n in _HARDWARE_NEEDS.items() if codec.endswith(s)), "hardware this machine lacks")
        raise BackendUnavailableError(
            f"--codec {codec}: the encoder cannot be opened here ({why}); it needs {need}; "
            f"use --codec {fallback} (software) instead"
        )


def usable_encoders(muxer: str) -> list[str]:
    """KNOWN_ENCODERS in this FFmpeg build that ``muxer`` takes and (hardware ones) that open here."""
    out = []
    for name in KNOWN_ENCODERS:
        if name not in av.codecs_available or not muxer_takes_codec(muxer, name):
            continue
        if is_hardware(name) and trial_encode(name, "yuv420p") is not None:
            continue
        out.append(name)
    return out


def choose_pix_fmt(codec: str, width: int, height: int, chroma: str, bits: int,
                   options: Mapping[str, str] | None = None) -> tuple[str, str | None]:
    """The output pixel format: the input's chroma subsampling (``chroma`` "420"/"422"/"444") and
    bit depth where ``codec`` supports them, and a notice when the depth had to drop to 8 bits.

    4:2:0 and 4:2:2 need an even width (and 4:2:0 an even height) in H.264/HEVC, so odd sizes get
    4:4:4, never padding. A high-depth format is chosen only after the encoder has really
    encoded a frame in it (some builds list formats their library was not compiled for).
    """
    supported = [f.name for f in (av.Codec(codec, "w").video_formats or [])]
    if width % 2 or (height % 2 and chroma == "420"):
        chroma = "444"
    if bits > 8:
        # the depth matters more than the chroma: 4:2:2 10-bit that must become 4:2:0 stays 10-bit
        for layout in dict.fromkeys([chroma] + ([] if width % 2 or height % 2 else ["420"])):
            for name in _deep_formats(layout, bits):
                if name in supported and trial_encode(codec, name, options) is None:
                    return name, None
    eight = _eight_bit(chroma, supported, odd=bool(width % 2 or height % 2))
    if bits > 8:
        return eight, (f"the input is {bits}-bit but {codec} cannot encode {_CHROMA_NAMES[chroma]} video at more "
                       f"than 8 bits here; the output is 8-bit ({eight})")
    return eight, None


def _deep_formats(chroma: str, bits: int) -> list[str]:
    """High-depth formats to try, best first: the input's depth, then the nearest ones (10 and 12
    bits are what encoders offer); p010le is the 4:2:0 10-bit layout of hardware encoders."""
    depths = [bits] + sorted((d for d in (10, 12) if 8 < d < bits), reverse=True) + [d for d in (10, 12) if d > bits]
    names = [f"yuv{chroma}p{d}le" for d in depths]
    if chroma == "420" and bits <= 10:
        names.append("p010le")
    return names


def _eight_bit(chroma: str, supported: list[str], odd: bool) -> str:
    for name in (f"yuv{chroma}p", "yuv444p" if odd else "yuv420p", "yuv420p"):
        if not supported or name in supported:
            return name
    return supported[0]
