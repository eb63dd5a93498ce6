"""Encoding for ``nst-video`` (PyAV): stylised frames, copied packets and re-encoded audio into the output.

The encoder gets the input video's time base and each frame's input pts, so nothing is
re-timed. What is kept, and how, is listed in video/reader.py.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import Interpolation

from ..errors import UsageError
from .audio import AudioEncoder, DecodedAudio
from .codecs import choose_pix_fmt
from .plan import OutputPlan, StreamPlan
from .reader import CopiedPacket, FrameTags

log = logging.getLogger("stylecast.video")

_NO_ROTATION_MUXERS = ("mpegts",)  # muxers with no way to store a display matrix
IDENTITY_MATRIX = (1 << 16, 0, 0, 0, 1 << 16, 0, 0, 0, 1 << 30)  # 16.16 and 2.30 fixed point
# Tags not carried over: the muxer writes its own (encoder, brands), or they describe the input's
# encoding and would be wrong for the output (durations and statistics, of a re-encoded or trimmed stream).
_STALE_TAGS = ("encoder", "major_brand", "minor_version", "compatible_brands", "duration", "vendor_id",
               "bps", "number_of_frames", "number_of_bytes")

# The counterpart of reader.DECODE_SCALING: accurate rounding, full-resolution chroma in.
ENCODE_SCALING = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INP

# AVColorSpace (frame tag) -> swscale matrix name used for RGB<->YUV. Unlisted -> swscale's default (BT.601).
_SWS_MATRIX = {1: "ITU709", 4: "FCC", 5: "ITU601", 6: "ITU601", 7: "SMPTE240M", 9: "BT2020", 10: "BT2020"}


def _sws_matrix(colorspace: int) -> str:
    return _SWS_MATRIX.get(colorspace, "ITU601")


class VideoWriter:
    """Encode BGR frames, remux copied packets and re-encode decoded audio into one output file
    (use from one thread).

    The output streams are the video, then ``streams.templates`` in order. The video stream is
    configured from the first frame (its size, pixel format, display matrix and colour tags);
    packets and audio that arrive before it are held back, because muxing one would write the
    header before the video encoder is configured.
    """

    def __init__(self, plan: OutputPlan, path: Path, video: av.video.stream.VideoStream,
                 streams: StreamPlan) -> None:
        self.plan = plan
        self.container = av.open(str(path), "w", format=plan.muxer, container_options=plan.container_options)
        self.container.metadata.update(_fresh_tags(video.container.metadata))
        self.warnings: list[str] = []
        rate = video.average_rate or video.guessed_rate or Fraction(25)
        self.stream = self.container.add_stream(plan.codec, rate=rate, options=dict(plan.options))
        self.stream.codec_context.time_base = video.time_base  # the input's pts are reused as they are
        self.stream.time_base = video.time_base
        sar = video.sample_aspect_ratio
        if sar:
            self.stream.codec_context.sample_aspect_ratio = sar
        self.outputs: list[av.stream.Stream] = []  # output streams 1.., as in streams.templates
        self.encoders: dict[int, AudioEncoder] = {}  # output position -> encoder, for re-encoded audio
        for position, template in enumerate(streams.templates):
            if template.index in streams.reencode:
                self.encoders[position] = AudioEncoder(self.container, streams.reencode[template.index])
                self.outputs.append(self.encoders[position].stream)
            else:
                self.outputs.append(self.container.add_stream_from_template(template))
        for source, out in zip([video, *streams.templates], [self.stream, *self.outputs], strict=True):
            out.metadata.update(_fresh_tags(source.metadata))
            out.disposition = source.disposition
        self._held: list[CopiedPacket | DecodedAudio] = []
        self._configured = False
        self._tags: FrameTags | None = None
        self.frames = 0

    def _configure(self, tags: FrameTags) -> None:
        s, cc = self.stream, self.stream.codec_context
        s.width, s.height = tags.width, tags.height
        s.pix_fmt, notice = choose_pix_fmt(self.plan.codec, tags.width, tags.height, tags.chroma, tags.bits,
                                           self.plan.options)
        if notice:
            self.warnings.append(notice)
        if tags.display_matrix is not None and tags.display_matrix != IDENTITY_MATRIX:
            if self.plan.muxer in _NO_ROTATION_MUXERS:
                self.warnings.append(
                    f"the input is rotated {tags.rotation} degrees but a {self.plan.path.suffix} file cannot store "
                    "rotation; the output will play unrotated"
                )
            else:
                s.set_display_matrix(list(tags.display_matrix))
        cc.color_range, cc.color_primaries = tags.color_range, tags.color_primaries
        cc.color_trc, cc.colorspace = tags.color_trc, tags.colorspace
        self._tags = tags
        self._configured = True

    def write_frame(self, image: np.ndarray, pts: int, tags: FrameTags) -> None:
        """Encode one BGR uint8 [H, W, 3] frame at ``pts`` (input video time base)."""
        if not self._configured:
            self._configure(tags)
            try:
                self.container.start_encoding()
            except av.FFmpegError as exc:
                raise UsageError(
                    f"{self.plan.path}: cannot encode {tags.width}x{tags.height} video with {self.plan.codec} "
                    f"into a {self.plan.path.suffix} file ({exc.strerror or exc}); try another --codec"
                ) from exc
            for held in self._held:
                self._write_now(held)
            self._held.clear()
        t = self._tags or tags
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        frame = frame.reformat(format=self.stream.pix_fmt, dst_colorspace=_sws_matrix(t.colorspace),
                               dst_color_range=t.color_range or None, interpolation=ENCODE_SCALING)
        frame.color_range, frame.colorspace = t.color_range, t.colorspace
        frame.color_primaries, frame.color_trc = t.color_primaries, t.color_trc
        frame.pts = pts
        frame.time_base = self.stream.codec_context.time_base
        self.container.mux(self.stream.encode(frame))
        self.frames += 1

    def write_packet(self, item: CopiedPacket | DecodedAudio) -> None:
        """Remux a copied packet, or encode a decoded audio frame of a re-encoded stream."""
        if not self._configured:
            self._held.append(item)
        else:
            self._write_now(item)

    def _write_now(self, item: CopiedPacket | DecodedAudio) -> None:
        if isinstance(item, DecodedAudio):
            self.container.mux(self.encoders[item.out_index].encode(item.frame))
        else:
            item.packet.stream = self.outputs[item.out_index]
            self.container.mux(item.packet)

    def finish(self) -> None:
        """Flush the encoders (delayed frames and samples) and write the trailer."""
        if self._configured:
            self.container.mux(self.stream.encode(None))
            for encoder in self.encoders.values():
                self.container.mux(encoder.flush())
        self.container.close()

    def abort(self) -> None:
        """Close without caring about the file (it is about to be deleted)."""
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - a half-written file is discarded anyway
            log.debug("closing the aborted output failed", exc_info=True)


def _fresh_tags(tags: dict[str, str]) -> dict[str, str]:
    """``tags`` without those that describe the input's encoding (see _STALE_TAGS)."""
    return {k: v for k, v in tags.items()
            if k.lower() not in _STALE_TAGS and not k.lower().startswith("_statistics_")}
