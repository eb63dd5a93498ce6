"""Small test clips generated with PyAV: moving content, exact timestamps, rotation, colour tags, audio.

Every clip is a few dozen KB: 64x48 .. 160x120 pixels, 10-30 frames, half a second of audio.
The picture changes every frame (a bright square moves 4 px right and the background gets
8 levels brighter per frame), so frame order and temporal blending are visible in the pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from stylecast.realtime.video.reader import DECODE_SCALING

VFR_STEPS_MS = (40, 40, 80, 20, 60, 33, 47)  # frame-to-frame gaps of a variable-frame-rate clip
AUDIO_RATES = {"aac": 16000, "libmp3lame": 16000, "libopus": 48000, "pcm_s16le": 16000, "flac": 16000}
BT709_TV = {"color_range": 1, "color_primaries": 1, "color_trc": 1, "colorspace": 1}
BT601_FULL = {"color_range": 2, "color_primaries": 6, "color_trc": 6, "colorspace": 6}


@dataclass
class Clip:
    """What was written, for the tests to compare against."""

    path: Path
    width: int
    height: int
    times: list[float]  # presentation time of every frame, seconds
    rotation: int = 0
    audio: tuple[str, ...] = ()
    color: dict[str, int] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return len(self.times)


def picture(index: int, width: int, height: int) -> np.ndarray:
    """Frame ``index`` of the synthetic content: BGR uint8 [height, width, 3]."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), np.uint8)
    base = (20 + 8 * index) % 200
    img[..., 0] = base + (x * 40 // max(1, width - 1))
    img[..., 1] = base + (y * 40 // max(1, height - 1))
    img[..., 2] = 60
    side = max(6, min(width, height) // 4)
    x0 = (4 * index) % max(1, width - side)
    y0 = (height - side) // 2
    img[y0:y0 + side, x0:x0 + side] = (230, 230, 240)
    return img


def _samples(fmt: str, wave: np.ndarray) -> np.ndarray:
    if fmt.startswith("flt"):
        return wave.astype(np.float32)
    if fmt.startswith("dbl"):
        return wave.astype(np.float64)
    if fmt.startswith("s16"):
        return (wave * 32767).astype(np.int16)
    if fmt.startswith("s32"):
        return (wave * 2147483000).astype(np.int32)
    raise ValueError(f"sample format {fmt} not handled by the clip generator")


def _write_audio(out: av.container.OutputContainer, stream: av.audio.stream.AudioStream, seconds: float,
                 hz: float, hole: tuple[float, float] | None = None) -> None:
    cc = stream.codec_context
    rate, size, fmt = cc.sample_rate, cc.frame_size or 1024, cc.format.name
    total = int(seconds * rate)
    for t in range(0, total, size):
        if hole and hole[0] * rate <= t < hole[1] * rate:
            continue  # no packets here: a gap in the stream's timeline
        wave = 0.3 * np.sin(2 * np.pi * hz * np.arange(t, t + size) / rate)
        frame = av.AudioFrame.from_ndarray(_samples(fmt, wave)[None], format=fmt, layout="mono")
        frame.sample_rate = rate
        frame.pts = t
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def make_clip(
    path: Path,
    *,
    size: tuple[int, int] = (64, 48),
    frames: int = 12,
    rate: int = 25,
    vfr: bool = False,
    rotation: int = 0,
    audio: tuple[str, ...] = (),
    color: dict[str, int] | None = None,
    subtitles: bool = False,
    codec: str = "libx264",
    muxer: str | None = None,
    pix_fmt: str | None = None,
    data: bool = False,
    metadata: dict[str, str] | None = None,
    audio_tags: dict[str, str] | None = None,
    audio_hole: tuple[float, float] | None = None,
) -> Clip:
    """Write a clip and describe it. ``audio`` lists encoders, one stream each (tones 440, 660, .. Hz);
    ``subtitles`` adds three SubRip captions, ``data`` a KLV metadata packet per frame (MPEG-TS).
    ``metadata`` are container tags, ``audio_tags`` tags of every audio stream (e.g. language);
    ``audio_hole`` (seconds from, to) leaves a gap in the audio (a frame-sized codec such as pcm)."""
    width, height = size
    out = av.open(str(path), "w", format=muxer)
    out.metadata.update(metadata or {})
    video = out.add_stream(codec, rate=rate)
    video.width, video.height = width, height
    video.pix_fmt = pix_fmt or ("yuv444p" if (width % 2 or height % 2) else "yuv420p")
    if vfr:
        video.codec_context.time_base = Fraction(1, 1000)
        ticks = [0]
        for i in range(1, frames):
            ticks.append(ticks[-1] + VFR_STEPS_MS[i % len(VFR_STEPS_MS)])
        times = [t / 1000 for t in ticks]
    else:
        video.codec_context.time_base = Fraction(1, rate)
        ticks = list(range(frames))
        times = [t / rate for t in ticks]
    if rotation:
        video.set_display_rotation(rotation)
    tags = dict(color or {})
    for name, value in tags.items():
        setattr(video.codec_context, name, value)
    audio_streams = []
    for codec_name in audio:
        stream = out.add_stream(codec_name, rate=AUDIO_RATES.get(codec_name, 16000))
        stream.layout = "mono"
        stream.metadata.update(audio_tags or {})
        audio_streams.append(stream)
    subs = out.add_mux_stream("subrip") if subtitles else None
    klv = out.add_data_stream("klv") if data else None
    seconds = times[-1] + (times[-1] - times[-2] if frames > 1 else 1 / rate)
    for k, stream in enumerate(audio_streams):
        _write_audio(out, stream, seconds, 440 + 220 * k, audio_hole)
    for i, tick in enumerate(ticks):
        frame = av.VideoFrame.from_ndarray(picture(i, width, height), format="bgr24")
        frame = frame.reformat(format=video.pix_fmt, dst_colorspace="ITU709" if tags.get("colorspace") == 1 else None,
                               dst_color_range=tags.get("color_range") or None)
        for name, value in tags.items():
            setattr(frame, name, value)
        frame.pts = tick
        frame.time_base = video.codec_context.time_base
        out.mux(video.encode(frame))
        if klv is not None:
            packet = av.Packet(bytes.fromhex("060e2b34020b01010e01030101000000") + bytes([3, 1, 2, i]))
            packet.stream = klv
            packet.time_base = video.codec_context.time_base
            packet.pts = packet.dts = tick
            out.mux(packet)
    out.mux(video.encode(None))
    if subs is not None:
        for k in range(3):
            packet = av.Packet(f"caption {k}".encode())
            packet.stream = subs
            packet.time_base = Fraction(1, 1000)
            packet.pts = packet.dts = 150 * k
            packet.duration = 100
            out.mux(packet)
    out.close()
    return Clip(path, width, height, times, rotation, tuple(audio), tags)


def make_audio_only(path: Path) -> Path:
    """An .m4a-like file: one AAC stream, no video."""
    out = av.open(str(path), "w", format="mp4")
    stream = out.add_stream("aac", rate=16000)
    stream.layout = "mono"
    _write_audio(out, stream, 0.3, 440)
    out.close()
    return path


def make_unknown_codec(clip: Path, path: Path) -> Path:
    """``clip`` (an H.264 mp4) with its sample-entry code 'avc1' changed to 'zzzz': a video stream
    whose codec no FFmpeg knows, as a file from an exotic camera would look."""
    path.write_bytes(clip.read_bytes().replace(b"avc1", b"zzzz"))
    return path


def truncate(clip: Path, path: Path, fraction: float) -> Path:
    """The first ``fraction`` of ``clip``'s bytes, as a download or recording cut short."""
    data = clip.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def corrupt(clip: Path, path: Path, at: float, length: int = 400, seed: int = 0) -> Path:
    """``clip`` with ``length`` bytes of seeded garbage written over it at ``at`` (fraction of the size)."""
    data = bytearray(clip.read_bytes())
    k = int(len(data) * at)
    data[k:k + length] = np.random.default_rng(seed).integers(0, 256, length, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def video_frames(path: Path) -> tuple[list[float], list[np.ndarray]]:
    """Decode every frame: (pts in seconds, BGR images), converted to BGR as the pipeline does."""
    with av.open(str(path)) as c:
        times, images = [], []
        for frame in c.decode(video=0):
            times.append(float(frame.pts * frame.time_base))
            images.append(frame.to_ndarray(format="bgr24", interpolation=DECODE_SCALING))
    return times, images


def stream_packets(path: Path, kind: str = "audio") -> list[list[tuple[float | None, bytes]]]:
    """Per stream of ``kind``: every non-empty packet as (pts seconds, bytes)."""
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        out: list[list[tuple[float | None, bytes]]] = [[] for _ in streams]
        where = {s.index: i for i, s in enumerate(streams)}
        for packet in c.demux(streams) if streams else ():  # demux([]) would read every stream
            if packet.size:
                t = float(packet.pts * packet.time_base) if packet.pts is not None else None
                out[where[packet.stream.index]].append((t, bytes(packet)))
    return out


def decode_audio(path: Path, index: int = 0) -> tuple[float, int, np.ndarray]:
    """Audio stream ``index`` decoded from the start: (time of its first sample in seconds, sample
    rate, mono float samples). A fresh open per stream: seeking would skip packets before 0."""
    with av.open(str(path)) as c:
        stream = c.streams.audio[index]
        first, rate, chunks = None, 0, []
        for frame in c.decode(stream):
            first = float(frame.pts * frame.time_base) if first is None else first
            rate = frame.sample_rate
            chunks.append(frame.to_ndarray().astype(np.float64).reshape(len(frame.layout.channels), -1)[0])
    if first is None:
        raise AssertionError(f"{path}: audio stream {index} decodes to nothing")
    samples = np.concatenate(chunks)
    if np.abs(samples).max() > 2:  # integer samples
        samples = samples / 32768
    return first, rate, samples


def tone_hz(samples: np.ndarray, rate: int) -> float:
    """The strongest frequency in ``samples``, in Hz."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


def assert_same_video(a: Path, b: Path) -> None:
    """The same frames (within 2 grey levels: float rounding of the network), timestamps and audio packets."""
    (ta, ia), (tb, ib) = video_frames(a), video_frames(b)
    assert ta == tb and len(ia) == len(ib)
    worst = max(int(np.abs(x.astype(int) - y).max()) for x, y in zip(ia, ib, strict=True))
    assert worst <= 2, f"frames differ by up to {worst} levels"
    assert stream_packets(a) == stream_packets(b)
