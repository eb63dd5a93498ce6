"""``StyleEngine``: one ONNX Runtime session that turns BGR frames into stylised BGR frames.

    with open_engine("models/starry", device="auto") as engine:
        engine.set_mix({"starry": 0.7, "wave": 0.3})
        out = engine(frame)          # uint8 [H, W, 3] BGR in, the same size out

The session is built once. A style is only the ``style`` input (a float32 vector), so
switching, mixing and strength never rebuild anything. Around the network the engine does
what the graph does not: frames under 16 px or over ``max_side`` are resized for the network
and brought back to exactly the input size, and ``strength`` blends with the original pixels.

Runners (how a frame meets the session):
  ``PlainRunner``  CPU, DirectML, CoreML: ``session.run`` with numpy in and out, fp32 graph.
  ``BoundRunner``  CUDA and TensorRT: IO binding on device buffers allocated once per frame
                   size, the input updated in place; on CUDA, once one size has been steady
                   for ``FIXED_AFTER`` frames, a second session for exactly that size is built
                   in the background with CUDA graphs and replaces the first (a CUDA graph
                   needs fixed shapes and fixed buffer addresses, which a video has and a
                   dynamic-shape session cannot promise). If that session cannot be built
                   (some node not on CUDA, out of memory) the plain binding stays.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from . import contract as C
from . import providers as P
from .cpus import physical_cores
from .errors import BackendUnavailableError, ModelFolderError, StylecastError, UsageError
from .model_folder import ModelFolder, load_model_folder
from .stages import check_frame
from .styles import mix_label, mix_vectors

log = logging.getLogger("stylecast.engine")

FIXED_AFTER = 30
"""Frames of one size before the CUDA path builds a fixed-size session with CUDA graphs."""

NO_BUNDLED_MODEL = "no bundled model is installed yet; pass --model DIR (create one with nst-train and nst-export)"


# ---------------------------------------------------------------- runners


class PlainRunner:
    """``session.run`` with numpy arrays: the CPU path (also DirectML and CoreML)."""

    def __init__(self, session: Any, style: np.ndarray) -> None:
        self.session = session
        self._style = style

    def set_style(self, style: np.ndarray) -> None:
        self._style = style

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        out = self.session.run([C.OUTPUT_STYLIZED], {C.INPUT_FRAME: frame[None], C.INPUT_STYLE: self._style})[0]
        return out[0]

    def close(self) -> None:
        self.session = None


class _Binding:
    """Device buffers for one session at one frame size, bound once."""

    def __init__(self, session: Any, shape: tuple[int, ...], style: Any, device: str, device_id: int) -> None:
        import onnxruntime as ort

        self.session = session
        self.shape = shape
        self.frame = ort.OrtValue.ortvalue_from_shape_and_type(shape, np.uint8, device, device_id)
        self.out = ort.OrtValue.ortvalue_from_shape_and_type(shape, np.uint8, device, device_id)
        self.binding = session.io_binding()
        self.binding.bind_ortvalue_input(C.INPUT_FRAME, self.frame)
        self.binding.bind_ortvalue_input(C.INPUT_STYLE, style)
        self.binding.bind_ortvalue_output(C.OUTPUT_STYLIZED, self.out)

    def run(self, frame: np.ndarray) -> np.ndarray:
        self.frame.update_inplace(frame[None])  # host -> the same device buffer, every frame
        self.session.run_with_iobinding(self.binding)
        return self.binding.copy_outputs_to_cpu()[0][0]  # a new host array, never a view of the buffer


class BoundRunner:
    """IO binding on ``device`` buffers (the CUDA and TensorRT path).

    ``fixed_session`` (optional) builds a session for one exact input shape [1, H, W, 3]; it
    is called on a background thread once a size has been seen ``fixed_after`` times in a
    row, and its session replaces the dynamic one for that size. On CUDA that is the CUDA-graph
    session; the same logic runs on the CPU in the tests with a plain fixed-shape session.
    """

    def __init__(
        self,
        session: Any,
        style: np.ndarray,
        *,
        device: str = "cuda",
        device_id: int = 0,
        fixed_session: Callable[[tuple[int, ...]], Any] | None = None,
        fixed_after: int = FIXED_AFTER,
    ) -> None:
        import onnxruntime as ort

        self.session = session
        self._device, self._device_id = device, device_id
        # One style buffer for every session and binding: updating it in place is all a
        # style change costs, and a captured CUDA graph reads the new values at the old address.
        self._style = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(style, np.float32), device, device_id)
        self._dynamic: _Binding | None = None
        self._fixed: _Binding | None = None
        self._fixed_session = fixed_session
        self._fixed_after = fixed_after
        self._streak = 0
        self._failed_shapes: set[tuple[int, ...]] = set()
        self._builder: threading.Thread | None = None
        self._built: tuple[tuple[int, ...], Any] | None = None
        self.fixed_sessions_created = 0

    @property
    def fixed_shape(self) -> tuple[int, ...] | None:
        """The input shape the fixed-size (CUDA graph) session serves, when it is in use."""
        return self._fixed.shape if self._fixed is not None else None

    def set_style(self, style: np.ndarray) -> None:
        self._style.update_inplace(np.ascontiguousarray(style, np.float32))

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        shape = (1, *frame.shape)
        self._adopt_built_session()
        if self._fixed is not None and self._fixed.shape == shape:
            out = self._fixed.run(frame)
        else:
            if self._fixed is not None:  # the size changed: the fixed session is of no more use
                self._fixed = None
            if self._dynamic is None or self._dynamic.shape != shape:
                self._dynamic = _Binding(self.session, shape, self._style, self._device, self._device_id)
                self._streak = 0
            out = self._dynamic.run(frame)
            self._streak += 1
            if self._fixed_session is not None and self._streak == self._fixed_after:
                self._start_fixed_build(shape)
        return out

    def _start_fixed_build(self, shape: tuple[int, ...]) -> None:
        if shape in self._failed_shapes or self._builder is not None:
            return

        def build() -> None:
            try:
                self._built = (shape, self._fixed_session(shape))  # type: ignore[misc]
            except Exception as exc:  # noqa: BLE001 - an optional speed-up; the dynamic session stays
                log.info("CUDA graphs not used for %dx%d: %s", shape[2], shape[1], str(exc).splitlines()[0] if str(exc) else exc)
                self._failed_shapes.add(shape)

        self._builder = threading.Thread(target=build, name="stylecast-fixed-session", daemon=True)
        self._builder.start()

    def _adopt_built_session(self) -> None:
        if self._builder is None or self._builder.is_alive():
            return
        self._builder = None
        built, self._built = self._built, None
        if built is None or self._dynamic is None or built[0] != self._dynamic.shape:
            return  # failed, or the size changed while it was built
        shape, session = built
        try:
            self._fixed = _Binding(session, shape, self._style, self._device, self._device_id)
        except Exception as exc:  # noqa: BLE001 - see _start_fixed_build
            log.info("CUDA graphs not used for %dx%d: %s", shape[2], shape[1], exc)
            self._failed_shapes.add(shape)
            return
        self.fixed_sessions_created += 1
        log.debug("fixed-size session in use for %dx%d", shape[2], shape[1])

    def wait_for_builder(self) -> None:
        """Block until a background session build (if any) has finished."""
        builder = self._builder
        if builder is not None:
            builder.join()

    def close(self) -> None:
        self.wait_for_builder()
        self._fixed = self._dynamic = None
        self._built = None
        self.session = None


def fixed_shape_graph(graph: Path, shape: tuple[int, ...]) -> bytes:
    """The graph with its frame input and output pinned to ``shape`` [1, H, W, 3].

    With every shape static, ONNX Runtime folds the shape arithmetic into constants, so no
    node is left on the CPU: a CUDA graph can only capture a session that runs wholly on CUDA.
    """
    import onnx

    model = onnx.load(str(graph))
    for value in [*model.graph.input, *model.graph.output]:
        if value.name in (C.INPUT_FRAME, C.OUTPUT_STYLIZED):
            for dim, size in zip(value.type.tensor_type.shape.dim, shape, strict=False):
                dim.dim_value = int(size)
    del model.graph.value_info[:]  # symbolic intermediate shapes; ONNX Runtime infers the real ones
    return model.SerializeToString()


def _gpu_runner(session: Any, graph: Path, style: np.ndarray, device_id: int) -> BoundRunner:
    """The CUDA/TensorRT runner; on CUDA with a CUDA-graph session for a steady frame size."""

    def cuda_graph_session(shape: tuple[int, ...]) -> Any:
        return P.create_session(fixed_shape_graph(graph, shape), P.CUDA, device_id, cuda_graph=True)

    on_cuda = session.get_providers()[0] == P.CUDA  # TensorRT has its own graph capture; not used here
    return BoundRunner(session, style, device="cuda", device_id=device_id, fixed_session=cuda_graph_session if on_cuda else None)


# ---------------------------------------------------------------- the engine


def _network_size(h: int, w: int, max_side: int | None) -> tuple[int, int]:
    """(height, width) the network runs at: longer side capped at ``max_side``, each side >= 16."""
    if max_side is not None and max(h, w) > max_side:
        scale = max_side / max(h, w)
        h, w = max(1, round(h * scale)), max(1, round(w * scale))
    return max(h, C.MIN_SIDE), max(w, C.MIN_SIDE)


def _resize(image: np.ndarray, h: int, w: int) -> np.ndarray:
    """Area averaging when shrinking (no aliasing), bilinear when growing."""
    shrink = h <= image.shape[0] and w <= image.shape[1]
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


class StyleEngine:
    """Stylises BGR uint8 frames with one model folder's network on one ONNX Runtime session.

    Attributes: ``model`` (the ModelFolder), ``provider`` (the execution provider that really
    runs, from ``session.get_providers()``), ``precision`` ("fp16" on CUDA/TensorRT when the
    folder has the fp16 graph, "int8" on the CPU provider when it has the int8 graph, else
    "fp32"; ``precision="fp32"`` keeps the CPU on the fp32 graph), ``style_names``, ``threads`` (CPU intra-op
    threads), ``sessions_created`` (sessions this engine built for its model; style changes
    never add one). Not thread-safe: call it from one thread.

    ``threads``: the CPU provider's intra-op threads (default: one per physical core); several
    engines side by side on one machine (nst-video --workers) share the cores out with it.
    """

    def __init__(self, model: ModelFolder, device: str = "auto", max_side: int | None = None,
                 threads: int | None = None, precision: str = "auto") -> None:
        if precision not in ("auto", "fp32"):
            raise UsageError(f"precision must be 'auto' or 'fp32', got {precision!r}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise UsageError(f"threads must be a whole number of at least 1, got {threads!r}")
        if max_side is not None and (isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < C.MIN_SIDE):
            raise UsageError(f"--max-side must be an integer of at least {C.MIN_SIDE}, got {max_side!r}")
        request = P.parse_device(device)
        P.check_onnxruntime_install()
        self.model = model
        self.style_names: tuple[str, ...] = model.style_names
        self.max_side = max_side
        self.sessions_created = 0
        self._strength = 1.0
        self._style = np.ascontiguousarray(model.style_vectors[:1], dtype=np.float32)  # [1, S]
        self._label = model.style_names[0]
        self._runner: PlainRunner | BoundRunner | None = None

        provider, notes = P.choose_provider(request)
        gpu = provider in (P.CUDA, P.TENSORRT)
        self.precision = "fp16" if gpu and (provider == P.TENSORRT or "fp16" in model.graphs) else "fp32"
        graph = model.graphs["fp16"] if provider == P.CUDA and "fp16" in model.graphs else model.graphs["fp32"]
        if provider == P.CPU and "int8" in model.graphs and precision != "fp32":
            graph, self.precision = model.graphs["int8"], "int8"
        self.threads = threads or physical_cores()
        try:
            self.session = P.create_session(graph, provider, request.index, threads=self.threads)
        except BackendUnavailableError as exc:
            if graph == model.graphs["fp32"]:
                raise
            # An fp16 graph the GPU cannot take (old card, missing kernel): fp32 still runs on it.
            log.warning("the fp16 graph does not start on %s (%s); using the fp32 graph", provider, exc)
            graph, self.precision = model.graphs["fp32"], "fp32"
            self.session = P.create_session(graph, provider, request.index, threads=self.threads)
        self.sessions_created += 1
        self.provider: str = self.session.get_providers()[0]
        self._runner = (
            _gpu_runner(self.session, graph, self._style, request.index) if gpu else PlainRunner(self.session, self._style)
        )
        where = f"GPU {request.index}" if gpu else f"{self.threads} CPU threads" if self.provider == P.CPU else "default device"
        log.info("%s: running on %s (%s, %s, %s graph)", model.path, self.provider, where, self.precision, graph.name)
        for note in notes:
            log.info("  %s", note)

    # ------------------------------------------------------------ styles

    @property
    def style_vector(self) -> np.ndarray:
        """The current style vector, float32 [S] (a read-only copy)."""
        vec = self._style[0].copy()
        vec.flags.writeable = False
        return vec

    @property
    def style_label(self) -> str:
        """A short description of the current style: a name, a mix, a label given with the vector, or "custom"."""
        return self._label

    def _apply(self, style: np.ndarray, label: str) -> None:
        self._live()
        self._style = np.ascontiguousarray(style.reshape(1, -1), dtype=np.float32)
        self._label = label
        self._runner.set_style(self._style)  # type: ignore[union-attr]

    def set_style(self, key: str | int) -> None:
        """Use one of the model's styles, by name or 0-based index (ModelFolderError if unknown)."""
        i = self.model.style_index(key)
        self._apply(self.model.style_vectors[i], self.style_names[i])

    def set_mix(self, weights: Mapping[str | int, float]) -> None:
        """Interpolate style vectors: {name or index: weight >= 0}; weights are normalised to sum 1
        (``styles.py`` resolves the mix and its label)."""
        self._apply(mix_vectors(self.model, weights), mix_label(self.model, weights))

    def set_style_vector(self, vec: np.ndarray, label: str | None = None) -> None:
        """Use any style vector, float32 [S] (e.g. from a style-prediction network). ``label`` is
        what ``style_label`` says from now on (e.g. the picture's file name; default "custom")."""
        arr = np.asarray(vec)
        if arr.shape != (self.model.style_dim,) or arr.dtype.kind != "f":
            raise UsageError(f"a style vector must be float [{self.model.style_dim}], got {arr.dtype} {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise UsageError("the style vector contains NaN or infinity")
        self._apply(arr.astype(np.float32), label or "custom")

    @property
    def strength(self) -> float:
        """How much style, 0..1: 1 is the network's output, 0 the original pixels, between a blend."""
        return self._strength

    @strength.setter
    def strength(self, value: float) -> None:
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise UsageError(f"strength must be a number between 0 and 1, got {value!r}") from None
        if not 0.0 <= x <= 1.0:  # also false for NaN
            raise UsageError(f"strength must be between 0 and 1, got {value!r}")
        self._strength = x

    # ------------------------------------------------------------ frames

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Stylise a BGR uint8 image [H, W, 3] (any H, W >= 1); returns BGR uint8 of exactly that size."""
        runner = self._live()
        check_frame(image)
        h, w = image.shape[:2]
        if h < 1 or w < 1:
            raise UsageError(f"the image is empty ({w}x{h})")
        if self._strength == 0.0:
            return image.copy()
        nh, nw = _network_size(h, w, self.max_side)
        frame = np.ascontiguousarray(image) if (nh, nw) == (h, w) else _resize(image, nh, nw)
        out = runner(frame)
        if (nh, nw) != (h, w):
            out = _resize(out, h, w)
        if self._strength < 1.0:
            out = cv2.addWeighted(out, self._strength, image, 1.0 - self._strength, 0.0)
        return out

    # ------------------------------------------------------------ life cycle

    def _live(self) -> PlainRunner | BoundRunner:
        if self._runner is None:
            raise StylecastError("this StyleEngine is closed")
        return self._runner

    @property
    def closed(self) -> bool:
        return self._runner is None

    def close(self) -> None:
        """Release the session and any device memory; safe to call twice."""
        if self._runner is not None:
            self._runner.close()
        self._runner = None
        self.session = None

    def __enter__(self) -> StyleEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.provider}, {self.precision}"
        return f"StyleEngine({str(self.model.path)!r}, {state}, style={self._label!r})"


def load_model(model_dir: Path | str | None) -> ModelFolder:
    """Load and validate a model folder; ``None`` means the bundled default model."""
    if model_dir is None:
        from stylecast import (
            weights,  # looked up at call time: tests and packagers may point it elsewhere
        )

        bundled = weights.bundled_model_dir()
        if not (bundled / C.MANIFEST_NAME).is_file():
            raise ModelFolderError(NO_BUNDLED_MODEL)
        model_dir = bundled
    return load_model_folder(model_dir)


def open_engine(model_dir: Path | str | None, device: str = "auto", max_side: int | None = None,
                precision: str = "auto") -> StyleEngine:
    """Validate the model folder (before any session exists), then build a StyleEngine on ``device``
    (``precision``: see StyleEngine)."""
    P.parse_device(device)  # a typo in --device is reported before anything is loaded
    return StyleEngine(load_model(model_dir), device=device, max_side=max_side, precision=precision)
