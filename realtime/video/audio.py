"""Audio streams the output container cannot hold as they are: decoded and encoded again.

An audio stream is copied packet for packet whenever the output container can hold its codec
(video/plan.py asks FFmpeg). Only when it cannot is the stream re-encoded, with a notice: to
AAC for .mp4 .m4v .mov .mkv .ts, to Opus for .webm (WebM holds only Opus and Vorbis).

Timing: the reader (video/reader.py) decodes the stream's packets in file order and hands over
frames with their presentation time; here they are resampled to what the encoder takes and cut
into its frame size. Output timestamps count samples from the first frame's time, so the
stream starts where it started and lasts as long; a hole in the input (a jump forward of more
than ``_GAP_S``) is kept as a jump, so sync with the video holds after it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import av

from ..errors import UsageError
from .codecs import muxer_takes_codec

# muxer -> encoders to re-encode into, best first
_TARGETS = {"webm": ("libopus", "opus")}
_DEFAULT_TARGETS = ("aac",)
_LABELS = {"aac": "AAC", "libopus": "Opus", "opus": "Opus"}
# Per channel: what keeps a re-encode transparent for each (FFmpeg's native AAC needs more than Opus).
_BIT_RATE_PER_CHANNEL = {"aac": 96_000, "libopus": 64_000, "opus": 64_000}
_MAX_BIT_RATE = 512_000
_GAP_S = 0.1  # a forward jump in the input's audio timestamps larger than this is a hole, kept as one


@dataclass(frozen=True)
class AudioTarget:
    """How one input audio stream is re-encoded."""

    index: int  # the input stream
    codec: str  # encoder: "aac", "libopus" or "opus"
    rate: int  # samples per second
    layout: str  # channel layout name, e.g. "stereo"
    sample_format: str  # what the encoder takes, e.g. "fltp"
    bit_rate: int
    options: dict[str, str] = field(default_factory=dict)
    notice: str = ""


@dataclass
class DecodedAudio:
    """A decoded frame of a re-encoded audio stream; pts on ``frame.time_base``, --start already
    taken off. ``out_index`` is its output stream, as for CopiedPacket."""

    frame: av.AudioFrame
    out_index: int


def plan_reencode(stream: av.audio.stream.AudioStream, muxer: str, suffix: str) -> AudioTarget:
    """The encoder and settings for ``stream`` in a ``muxer`` output, tried by opening the encoder;
    UsageError when none works (the stream cannot be kept at all)."""
    cc = stream.codec_context
    name = cc.codec.canonical_name if cc is not None else "unknown codec"  # "mp3", not "mp3float"
    if cc is None or not cc.sample_rate:
        raise UsageError(f"audio stream #{stream.index} ({name}) cannot be decoded, and a {suffix} file cannot hold "
                         "it as it is; choose .mkv (which holds almost any audio)")
    layout = cc.layout.name if cc.layout is not None and cc.layout.nb_channels else "stereo"
    why = "no encoder"
    for codec in _TARGETS.get(muxer, _DEFAULT_TARGETS):
        if codec not in av.codecs_available or not muxer_takes_codec(muxer, codec):
            continue
        encoder = av.Codec(codec, "w")
        rate = _pick_rate(cc.sample_rate, encoder.audio_rates, opus=codec.endswith("opus"))
        formats = [f.name for f in encoder.audio_formats or []]
        sample_format = "flt" if "flt" in formats else formats[0] if formats else "fltp"
        options = {"strict": "experimental"} if codec == "opus" else {}  # FFmpeg's own Opus encoder
        for chosen in dict.fromkeys([layout, "stereo"]):  # a layout the encoder refuses is downmixed
            bit_rate = min(_MAX_BIT_RATE, _BIT_RATE_PER_CHANNEL[codec] * av.AudioLayout(chosen).nb_channels)
            why = _trial_open(codec, rate, chosen, sample_format, bit_rate, options)
            if why is None:
                notice = (f"audio stream #{stream.index} ({name}) re-encoded to {_LABELS.get(codec, codec)} "
                          f"({codec}, {bit_rate // 1000} kb/s): a {suffix} file cannot hold {name}"
                          + (f"; downmixed from {layout} to {chosen}" if chosen != layout else ""))
                return AudioTarget(stream.index, codec, rate, chosen, sample_format, bit_rate, options, notice)
    raise UsageError(f"audio stream #{stream.index} ({name}) cannot be stored in a {suffix} file and cannot be "
                     f"re-encoded for it here ({why}); choose .mkv (which holds almost any audio)")


def _pick_rate(rate: int, supported: tuple[int, ...] | list[int] | None, opus: bool) -> int:
    """The input's rate when the encoder takes it, else the next higher one it takes. Opus is
    always 48 kHz: every Opus decoder outputs 48 kHz whatever the encoder was given."""
    if opus:
        return 48000
    if not supported or rate in supported:
        return rate
    higher = sorted(r for r in supported if r > rate)
    return higher[0] if higher else max(supported)


def _trial_open(codec: str, rate: int, layout: str, sample_format: str, bit_rate: int,
                options: dict[str, str]) -> str | None:
    cc = av.CodecContext.create(codec, "w")
    try:
        cc.sample_rate, cc.layout, cc.format, cc.bit_rate = rate, layout, sample_format, bit_rate
        cc.time_base = Fraction(1, rate)
        cc.options = dict(options)
        cc.open()
    except (av.FFmpegError, ValueError, OSError) as exc:
        return getattr(exc, "strerror", None) or str(exc)
    return None


class AudioEncoder:
    """One re-encoded output stream: resample, cut to the encoder's frame size, time, encode.

    Create it before the output's header is written; give it frames in order with ``encode``
    and call ``flush`` once at the end. Used from the muxing thread only.
    """

    def __init__(self, container: av.container.OutputContainer, target: AudioTarget) -> None:
        self.target = target
        self.stream = container.add_stream(target.codec, rate=target.rate, options=dict(target.options))
        cc = self.stream.codec_context
        cc.layout, cc.format, cc.bit_rate = target.layout, target.sample_format, target.bit_rate
        cc.time_base = self.stream.time_base = Fraction(1, target.rate)
        self._resampler: av.AudioResampler | None = None
        self._source: tuple[str, str, int] | None = None  # format, layout, rate the resampler was set up for
        self._origin: int | None = None  # pts of the first sample, in 1/rate
        self._fed = 0  # samples given to the resampler so far, counted at the output rate
        self._emitted = 0  # samples given to the encoder so far

    def encode(self, frame: av.AudioFrame) -> list[av.Packet]:
        """Packets for one decoded input frame (often none: the encoder buffers)."""
        rate = self.target.rate
        packets: list[av.Packet] = []
        if frame.pts is not None and frame.time_base is not None:
            start = round(frame.pts * frame.time_base * rate)
            if self._origin is None:
                self._origin = start
            elif start - (self._origin + self._fed) > _GAP_S * rate:  # a hole: silence keeps the sync
                packets += self._feed(_silence(frame, (start - self._origin - self._fed) / rate))
        elif self._origin is None:
            self._origin = 0
        return packets + self._feed(frame)

    def flush(self) -> list[av.Packet]:
        """The samples still buffered, then the encoder's delayed packets."""
        packets = self._encode_all(self._resampler.resample(None)) if self._resampler is not None else []
        return packets + list(self.stream.encode(None))

    def _feed(self, frame: av.AudioFrame) -> list[av.Packet]:
        source = (frame.format.name, frame.layout.name, frame.sample_rate)
        packets: list[av.Packet] = []
        if self._resampler is not None and source != self._source:  # the input changed mid-stream
            packets += self._encode_all(self._resampler.resample(None))
            self._resampler = None
        if self._resampler is None:
            # frame_size is known once the encoder is open, that is after the header was written
            self._resampler = av.AudioResampler(format=self.target.sample_format, layout=self.target.layout,
                                                rate=self.target.rate,
                                                frame_size=self.stream.codec_context.frame_size or None)
            self._source = source
        self._fed += round(frame.samples * self.target.rate / frame.sample_rate)
        return packets + self._encode_all(self._resampler.resample(frame))

    def _encode_all(self, frames: list[av.AudioFrame]) -> list[av.Packet]:
        packets: list[av.Packet] = []
        for out in frames:
            # counted, not taken from the resampler: the input's times are often rounded (1 ms in
            # Matroska), and the encoder wants frames that follow each other exactly
            out.pts = (self._origin or 0) + self._emitted
            out.time_base = self.stream.codec_context.time_base
            self._emitted += out.samples
            packets += self.stream.encode(out)
        return packets


def _silence(like: av.AudioFrame, seconds: float) -> av.AudioFrame:
    """``seconds`` of silence in ``like``'s sample format, layout and rate."""
    frame = av.AudioFrame(format=like.format.name, layout=like.layout.name, samples=max(1, round(seconds * like.sample_rate)))
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    frame.sample_rate = like.sample_rate
    return frame
