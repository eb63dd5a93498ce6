"""What goes where, decided before any frame is decoded: the output's muxer and encoder, the
input's video stream, and which other streams are copied or (audio) re-encoded.

Every check here is cheap and raises a typed error with one clear sentence, so a command line
can run them all before it loads a model. A hardware encoder (--codec h264_nvenc) is opened
for real here, on a tiny frame: that is the only way to learn that it cannot run.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import av

from ..errors import InputFileError, UsageError
from .audio import AudioTarget, plan_reencode
from .codecs import check_encoder_runs, muxer_takes_codec, usable_encoders
from .containers import CONTAINERS

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")
CRF_RANGES = {"libx264": (0, 51), "libx265": (0, 51), "libvpx-vp9": (0, 63), "libvpx": (4, 63), "libsvtav1": (0, 63),
              "h264_nvenc": (1, 51), "hevc_nvenc": (1, 51), "av1_nvenc": (1, 51)}  # nvenc: --crf is -cq, 0 = auto
# x264's preset names -> NVENC's p1 (fastest) .. p7 (best)
NVENC_PRESETS = dict(zip(X264_PRESETS, ("p1", "p1", "p2", "p3", "p3", "p4", "p5", "p6", "p7", "p7"), strict=True))


@dataclass(frozen=True)
class OutputPlan:
    """How the output will be written: FFmpeg muxer, video encoder and its private options."""

    path: Path
    muxer: str
    codec: str
    options: dict[str, str]
    container_options: dict[str, str]


def plan_output(dst: Path | str, *, codec: str | None = None, crf: int = 18, preset: str = "medium") -> OutputPlan:
    """Choose muxer and encoder from ``dst``'s extension and the options; UsageError when they cannot work.

    Cheap (no file is opened), so a command line can call it before loading a model.
    """
    dst = Path(dst)
    suffix = dst.suffix.lower()
    if suffix not in CONTAINERS:
        raise UsageError(f"{dst}: unsupported video extension {dst.suffix!r}; use one of {', '.join(CONTAINERS)}")
    muxer, default_codec = CONTAINERS[suffix]
    codec = codec or default_codec
    try:
        av_codec = av.Codec(codec, "w")
    except (ValueError, av.FFmpegError) as exc:  # UnknownCodecError is a ValueError
        raise UsageError(f"--codec {codec}: no such video encoder in this FFmpeg build; "
                         f"for {suffix} use one of {', '.join(usable_encoders(muxer))}") from exc
    if av_codec.type != "video":
        article = "an" if av_codec.type[0] in "aeiou" else "a"
        raise UsageError(f"--codec {codec}: is {article} {av_codec.type} encoder, not a video encoder")
    if not muxer_takes_codec(muxer, codec):  # FFmpeg's own answer
        raise UsageError(f"{dst}: a {suffix} file cannot hold {codec} video; choose another --codec or extension")
    options = _encoder_options(codec, crf, preset)
    check_encoder_runs(codec, options, fallback=default_codec)  # BackendUnavailableError (exit 3)
    container_options = {"movflags": "+faststart"} if muxer in ("mp4", "mov") else {}
    return OutputPlan(dst, muxer, codec, options, container_options)


def _encoder_options(codec: str, crf: int, preset: str) -> dict[str, str]:
    """--crf and --preset in the encoder's own terms; UsageError for values it cannot take."""
    private = {o.name for o in av.CodecContext.create(codec, "w").supported_options.private}
    options: dict[str, str] = {}
    lo, hi = CRF_RANGES.get(codec, (0, 63))
    quality = "crf" if "crf" in private else "cq" if "cq" in private else None
    if quality is not None:
        if not lo <= crf <= hi:
            raise UsageError(f"--crf {crf}: {codec} takes {lo}..{hi} (lower is better quality)")
        options[quality] = str(crf)
        if codec.startswith("libvpx"):
            options["b"] = "0"  # constant quality needs the bitrate target off
        if quality == "cq":  # NVENC: constant quality is variable bitrate with no bitrate target
            options.update(rc="vbr", b="0")
    if codec in ("libx264", "libx265") or codec.endswith("_nvenc"):
        if preset not in X264_PRESETS:
            raise UsageError(f"--preset {preset}: use one of {', '.join(X264_PRESETS)}")
        options["preset"] = NVENC_PRESETS[preset] if codec.endswith("_nvenc") else preset
    elif "preset" in private and preset.isdigit():  # e.g. libsvtav1 takes a number
        options["preset"] = preset
    if codec == "libx265":
        options["x265-params"] = "log-level=error"  # x265 prints a banner of its own otherwise
    return options


def open_input(src: Path | str) -> av.container.InputContainer:
    """Open a media file for reading; InputFileError with one clear sentence when that fails."""
    src = Path(src)
    if not src.exists():
        raise InputFileError(f"{src}: no such file")
    if src.is_dir():
        raise InputFileError(f"{src}: is a folder, expected a video file")
    try:
        size = src.stat().st_size
        with open(src, "rb") as fh:
            head = fh.read(12)
    except OSError as exc:
        raise InputFileError(f"{src}: cannot read ({exc.strerror or exc})") from exc
    if size == 0:
        raise InputFileError(f"{src}: the file is empty")
    try:
        return av.open(str(src), "r")
    except av.FFmpegError as exc:
        if head[4:8] == b"ftyp":
            raise InputFileError(
                f"{src}: an MP4/MOV file without a readable index (moov atom); it was probably cut short "
                "while being written, or is damaged"
            ) from exc
        raise InputFileError(f"{src}: not a video file FFmpeg can read") from exc


def pick_video_stream(container: av.container.InputContainer, src: Path | str) -> av.video.stream.VideoStream:
    """The first real video stream (cover art does not count); InputFileError when none can be decoded."""
    videos = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not videos:
        others = ", ".join(f"{len(g)} {k}" for k, g in (("audio", container.streams.audio),
                           ("subtitle", container.streams.subtitles), ("data", container.streams.data)) if g)
        raise InputFileError(f"{src}: has no video stream" + (f" (it has {others} stream(s))" if others else ""))
    stream = videos[0]
    if stream.codec_context is None:
        raise InputFileError(f"{src}: video stream #{stream.index} uses a codec this FFmpeg build cannot decode")
    stream.codec_context.thread_type = "AUTO"
    return stream


def declared_video_end(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    """Where the file says the video stream ends, in seconds, or None when it does not say."""
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    if stream.duration:
        return start + float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")  # Matroska per-track tag
    if tag:
        try:
            h, m, s = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(s)
        except ValueError:
            pass
    if container.duration and len(container.streams) == 1:
        return float(container.duration) / av.time_base
    return None


@dataclass
class StreamPlan:
    """Which input streams go to the output besides the video, and how.

    ``templates`` (input streams, in file order) become output streams 1.. (the video is 0);
    ``copy`` maps an input stream index to its position in ``templates`` for every stream whose
    packets are read: remuxed as they are, or, for the audio streams in ``reencode``, decoded
    and encoded again. ``warnings`` says what was dropped or re-encoded, one line each.
    """

    templates: list[av.stream.Stream]
    copy: dict[int, int]
    audio: int  # audio streams copied as they are
    warnings: list[str]
    reencode: dict[int, AudioTarget] = field(default_factory=dict)


def plan_streams(container: av.container.InputContainer, video: av.video.stream.VideoStream,
                 plan: OutputPlan, src: Path | str) -> StreamPlan:
    """Decide stream by stream what is copied, re-encoded (audio the output cannot hold) or
    dropped (other streams it cannot hold); UsageError when an audio stream cannot be kept.

    Whether a muxer takes a codec is asked of FFmpeg itself, by adding the stream to an
    in-memory output of the same format.
    """
    templates: list[av.stream.Stream] = []
    copy: dict[int, int] = {}
    reencode: dict[int, AudioTarget] = {}
    warnings: list[str] = []
    audio = 0
    suffix = plan.path.suffix.lower()
    for stream in container.streams:
        if stream.index == video.index:
            continue
        kind = stream.type
        name = _codec_name(stream)
        if kind == "video":
            warnings.append(f"video stream #{stream.index}{name} dropped: only the first video stream is stylised")
            continue
        if not _muxer_takes(plan.muxer, stream):
            if kind != "audio":
                warnings.append(f"{kind} stream #{stream.index}{name} dropped: a {suffix} file cannot hold it")
                continue
            try:
                reencode[stream.index] = plan_reencode(stream, plan.muxer, suffix)
            except UsageError as exc:
                raise UsageError(f"{src}: {exc}") from None
            warnings.append(reencode[stream.index].notice)
        if kind != "attachment":  # attachments have no packets: their data travels with the stream
            copy[stream.index] = len(templates)
        templates.append(stream)
        audio += kind == "audio" and stream.index not in reencode
    return StreamPlan(templates, copy, audio, warnings, reencode)


def _muxer_takes(muxer: str, stream: av.stream.Stream) -> bool:
    """Whether ``muxer`` can store ``stream``'s packets as they are: FFmpeg is asked by writing a
    header into memory (its codec table alone is not enough: e.g. .mov lists Opus, then refuses it)."""
    with av.open(io.BytesIO(), "w", format=muxer) as probe:
        try:
            probe.add_stream_from_template(stream)
            probe.start_encoding()
        except (ValueError, av.FFmpegError):
            return False
    return True


def _codec_name(stream: av.stream.Stream) -> str:
    """" (aac)" for messages; empty for streams FFmpeg has no decoder for (e.g. KLV data)."""
    cc = stream.codec_context
    return f" ({cc.codec.canonical_name})" if cc is not None else ""  # "mp3", not the decoder's "mp3float"
