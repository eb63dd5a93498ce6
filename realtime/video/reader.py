"""Decoding for ``nst-video`` (PyAV): frames and packets out of the input; video/writer.py puts them into the output.

Frames leave ``FrameReader`` as BGR uint8 [H, W, 3] (the Stylizer contract of stages.py) with
their presentation time as an integer ``pts`` on the input video stream's ``time_base``. The
writer gives the encoder that same time base and those same pts, so nothing is resampled or
re-timed: a variable-frame-rate input stays variable, and no frame is dropped or duplicated.

Matroska/WebM cannot store negative times: when a copied audio stream starts before 0 (the
AAC priming packet of an MP4), FFmpeg's muxer shifts every stream by the same amount (e.g.
64 ms), so sync and every interval are kept and the absolute times move by that constant.

What is kept, and how:
  size        exactly. 4:2:0 chroma needs even sides in H.264/HEVC, so an odd-sized video is
              encoded as 4:4:4 (yuv444p; High 4:4:4 profile) instead of being padded or cropped.
  chroma,     the input's subsampling (4:2:0, 4:2:2 or 4:4:4) and bit depth (8, 10, 12) are kept
  depth       where the encoder supports them (video/codecs.py); the network works on 8-bit BGR,
              whose output is converted to the 10-bit format for a 10-bit input.
  rotation    the display matrix of the first decoded frame is written on the output stream:
              frames are stylised as stored and players rotate them as they did the input.
              MPEG-TS cannot store it (a warning says so).
  colour      range, primaries, transfer and matrix tags are copied, and the RGB<->YUV
              conversions use the input's matrix and range, so colours do not shift.
  audio       every audio stream is remuxed packet for packet (byte-identical, no re-encode),
              unless the output container cannot hold its codec: then it is re-encoded with a
              notice (AAC, or Opus for .webm; video/audio.py).
  subtitles,  copied when the output container can hold them, else dropped with a warning
  data        (video/plan.py decides, by asking FFmpeg).
  metadata    container tags (title, creation time, ...) and stream tags (language, handler,
              title) and dispositions, as far as the output container stores them.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Generator, Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np
from av.video.reformatter import Interpolation

from .audio import DecodedAudio

log = logging.getLogger("stylecast.video")

_INTERLEAVE_SLACK_S = 3.0  # see FrameReader._far_past_end

# Accurate rounding and full-resolution chroma: a BGR -> YUV 4:2:0 -> BGR round trip then loses
# about 0.8 levels on average instead of 2.2 with swscale's defaults (sharp colour edges smear less).
# ENCODE_SCALING (video/writer.py) is the same for the way back.
DECODE_SCALING = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT


@dataclass
class DecodedFrame:
    """One decoded video frame: BGR uint8 [H, W, 3] and its pts on the input video time base."""

    image: np.ndarray
    pts: int
    index: int
    tags: FrameTags


@dataclass(frozen=True)
class FrameTags:
    """Per-stream properties read from the first decoded frame and carried to the output."""

    width: int
    height: int
    display_matrix: tuple[int, ...] | None  # 9 int32 in FFmpeg's AV_PKT_DATA_DISPLAYMATRIX layout
    rotation: int  # counter-clockwise degrees implied by display_matrix (0 when none)
    color_range: int
    color_primaries: int
    color_trc: int
    colorspace: int
    chroma: str  # "420", "422" or "444": the input's chroma subsampling
    bits: int = 8  # bits per sample of the input's pixel format (10 for yuv420p10le)

    @classmethod
    def of(cls, frame: av.VideoFrame) -> FrameTags:
        matrix = frame.side_data.get("DISPLAYMATRIX")
        values = tuple(int(v) for v in np.frombuffer(bytes(matrix), "<i4")) if matrix is not None else None
        return cls(frame.width, frame.height, values, int(frame.rotation) if values else 0,
                   int(frame.color_range), int(frame.color_primaries), int(frame.color_trc), int(frame.colorspace),
                   _chroma(frame.format), max(c.bits for c in frame.format.components))


def _chroma(fmt: av.VideoFormat) -> str:
    if fmt.name.startswith("gray"):
        return "420"  # no chroma to keep; the stylised picture gets the usual 4:2:0
    if fmt.is_rgb or fmt.name.startswith("gbr"):
        return "444"
    try:
        w, h = fmt.chroma_width(2), fmt.chroma_height(2)  # chroma plane size of a 2x2 image
    except (AttributeError, ValueError):
        return "420"
    return "444" if (w, h) == (2, 2) else "422" if (w, h) == (1, 2) else "420"


@dataclass
class CopiedPacket:
    """A packet of a stream that is remuxed unchanged; ``out_index`` is its output stream."""

    packet: av.Packet
    out_index: int


@dataclass
class ReadStats:
    """What the reader met: damage, and where the video really ended."""

    frames: int = 0
    decode_errors: int = 0
    audio_decode_errors: int = 0  # in re-encoded audio streams
    corrupt_frames: int = 0
    fixed_pts: int = 0
    stopped_early: str | None = None  # why demuxing ended before the end of the file
    first_pts_s: float | None = None
    last_pts_s: float | None = None
    # Holes in the timeline: frames a constant-rate stream skips (a demuxer that lost sync and
    # found it again). Only meaningful when most intervals are one frame period, see ``holes``.
    gap_frames: int = 0
    regular_intervals: int = 0
    other_intervals: int = 0
    warnings: list[str] = field(default_factory=list)

    def note_time(self, t: float, period: float) -> None:
        """Record a decoded frame at ``t`` seconds; ``period`` is the nominal frame interval."""
        if self.last_pts_s is not None:
            dt = t - self.last_pts_s
            if dt > 1.5 * period:
                self.gap_frames += round(dt / period) - 1
            elif abs(dt - period) <= max(0.002, 0.05 * period):  # container rounding (ms in Matroska)
                self.regular_intervals += 1
            else:
                self.other_intervals += 1
        self.first_pts_s = t if self.first_pts_s is None else self.first_pts_s
        self.last_pts_s = t

    @property
    def holes(self) -> int:
        """Frames missing inside the timeline, counted only for constant-rate video: in a
        variable-rate stream a long interval is normal and says nothing about loss."""
        steady = self.regular_intervals >= 2 and self.other_intervals <= 0.1 * self.regular_intervals
        return self.gap_frames if steady else 0


class FrameReader:
    """Demux the input in file order, yielding DecodedFrame (video), CopiedPacket (streams in
    ``copy``) and DecodedAudio (the audio streams among them in ``reencode``).

    ``copy`` maps input stream index -> output stream index. With ``start``/``duration`` (seconds)
    only frames and packets with start <= t < start + duration are kept and their timestamps are
    shifted by ``start`` so the output begins at 0. A packet the decoder rejects is skipped and
    counted; reading ends quietly at the end of the readable data (a file cut short).
    """

    def __init__(self, container: av.container.InputContainer, video: av.video.stream.VideoStream,
                 copy: dict[int, int], *, reencode: Collection[int] = (), start: float | None = None,
                 duration: float | None = None) -> None:
        self.container = container
        self.video = video
        self.copy = copy
        self.reencode = frozenset(reencode)
        self.start = start or 0.0
        self.end = self.start + duration if duration is not None else None
        self.stats = ReadStats()
        rate = video.average_rate or video.guessed_rate or Fraction(25)
        self.period_s = float(1 / rate)  # the nominal frame interval
        self._shift = round(self.start / video.time_base)  # --start in video pts units
        self._last_pts: int | None = None  # of the last frame given out, after the shift
        self._tags: FrameTags | None = None
        self.frame_ticks = max(1, round(1 / (rate * video.time_base)))  # the same, in pts units

    def __iter__(self) -> Generator[DecodedFrame | CopiedPacket | DecodedAudio, None, None]:
        if self.start > 0:
            # Back to the keyframe before start; frames before start are decoded and dropped.
            self.container.seek(int(self.start / self.video.time_base), stream=self.video, backward=True)
        video_done = False  # the first frame at or past the window's end was seen
        copy_done: set[int] = set()  # copied streams that reached the window's end
        for packet in self._packets():
            index = packet.stream.index
            if index == self.video.index:
                if not video_done:
                    for frame in self._decode(packet):
                        if frame is None:
                            video_done = True
                            break
                        yield frame
            elif index in self.reencode:
                if index not in copy_done:
                    for audio in self._decode_audio(packet):
                        if audio is None:
                            copy_done.add(index)
                            break
                        yield audio
            elif packet.size and index not in copy_done:
                t = float(packet.pts * packet.time_base) if packet.pts is not None else None
                if self.end is not None and t is not None and t >= self.end - 1e-9:
                    copy_done.add(index)
                elif self.start == 0 or (t is not None and t >= self.start - 1e-9):  # keeps priming (< 0)
                    yield self._copied(packet)
            if video_done and (len(copy_done) == len(self.copy) or self._far_past_end(packet)):
                break

    def _packets(self) -> Iterator[av.Packet]:
        """Demux the video and the copied streams; a read error ends the file (it is cut short)."""
        packets = self.container.demux([self.video] + [self.container.streams[i] for i in self.copy])
        while True:
            try:
                yield next(packets)
            except StopIteration:
                return
            except av.FFmpegError as exc:
                self.stats.stopped_early = f"reading stopped early: {exc.strerror or exc}"
                return

    def _decode(self, packet: av.Packet) -> Iterator[DecodedFrame | None]:
        """The frames of one packet inside the window; None once a frame is at or past its end."""
        self.stats.corrupt_frames += packet.is_corrupt
        try:
            frames = packet.decode()  # the final empty packet flushes the decoder's delayed frames
        except av.FFmpegError:
            self.stats.decode_errors += 1
            return
        tb = self.video.time_base
        for frame in frames:
            pts = frame.pts
            if pts is None:  # some raw streams have none: one nominal period after the last
                pts = self._last_pts + self._shift + self.frame_ticks if self._last_pts is not None else 0
            t = float(pts * tb)
            if t < self.start - 1e-9:
                continue
            if self.end is not None and t >= self.end - 1e-9:
                yield None
                return
            pts -= self._shift
            if self._last_pts is not None and pts <= self._last_pts:  # encoders need increasing pts
                pts = self._last_pts + 1
                self.stats.fixed_pts += 1
            self._last_pts = pts
            if self._tags is None:
                self._tags = FrameTags.of(frame)
            self.stats.corrupt_frames += frame.is_corrupt
            self.stats.note_time(t, self.period_s)
            image = frame.to_ndarray(format="bgr24", interpolation=DECODE_SCALING)  # matrix, range: the frame's tags
            yield DecodedFrame(image, pts, self.stats.frames, self._tags)
            self.stats.frames += 1

    def _decode_audio(self, packet: av.Packet) -> Iterator[DecodedAudio | None]:
        """The decoded frames of one packet of a re-encoded stream inside the window, shifted by
        --start; None once a frame is at or past its end. The final empty packet flushes."""
        try:
            frames = packet.decode()
        except av.FFmpegError:
            self.stats.audio_decode_errors += 1
            return
        for frame in frames:
            if frame.pts is None or frame.time_base is None:  # no time to place it at: the encoder counts on
                yield DecodedAudio(frame, self.copy[packet.stream.index])
                continue
            t = float(frame.pts * frame.time_base)
            if self.end is not None and t >= self.end - 1e-9:
                yield None
                return
            if self.start and t < self.start - 1e-9:
                continue
            frame.pts -= round(self.start / frame.time_base)
            yield DecodedAudio(frame, self.copy[packet.stream.index])

    def _copied(self, packet: av.Packet) -> CopiedPacket:
        if self.start:
            shift = round(self.start / packet.time_base)
            packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
        return CopiedPacket(packet, self.copy[packet.stream.index])

    def _far_past_end(self, packet: av.Packet) -> bool:
        """Demuxed well beyond the window: streams interleave more closely than this, so a copied
        stream that has not reached the end by now (sparse subtitles) never will."""
        return (self.end is not None and packet.pts is not None
                and float(packet.pts * packet.time_base) > self.end + _INTERLEAVE_SLACK_S)
