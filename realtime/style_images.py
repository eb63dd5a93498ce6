"""Style images at run time: a model's style-prediction graph turns any picture into a style vector.

    predictor = PredictorSession(model)               # ModelFolderError if the folder has none
    vec = predictor.predict_file("painting.jpg")      # float32 [S]; cached by the file's content
    engine.set_style_vector(vec)

    library = StyleImageLibrary(predictor, "paintings/")   # a watched folder, for nst-live
    library.request_all()          # predict every image on a background thread
    ...in the frame loop, which never waits:
    library.poll()                 # take in finished predictions (and their errors)
    library.refresh()              # now and then: images added, changed or removed show up
    vec = library.vector(i)        # None until image i is predicted

The graph contract is in ``contract.py``. Every image is scaled so its shorter side is the
side the predictor learned at (graph metadata ``stylecast.predictor.side``) before it runs:
the statistics it summarises depend on the scale of brush strokes, so a 4000 px scan and a
400 px thumbnail of one painting must look alike to it. This module never imports torch.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import re
import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from . import contract as C
from . import providers as P
from .atomic import atomic_dir
from .errors import InputFileError, ModelFolderError, StylecastError, UsageError
from .images import IMAGE_SUFFIXES, read_image
from .model_folder import (
    ModelFolder,
    load_model_folder,
    sha256_file,
    write_manifest,
    write_styles,
)
from .stages import check_frame

log = logging.getLogger("stylecast.style_images")

MAX_ASPECT = 4
"""The longer side is capped at MAX_ASPECT x the working side, so a panorama costs no more than that."""

NO_PREDICTOR = (
    "this model has no style-prediction network ({graph}), so it cannot take a style from a picture; "
    "train one with nst-train-predictor and export it with nst-export, or use --style NAME"
)


def predictor_input(image: np.ndarray, side: int) -> np.ndarray:
    """Scale a BGR uint8 image [H, W, 3] so its shorter side is ``side`` px (the longer side at
    most MAX_ASPECT * side, every side at least 64). Area filter down, cubic up.

    Raises InputFileError when a side is under ``contract.PREDICTOR_MIN_SIDE`` (64) px."""
    h, w = image.shape[:2]
    if min(h, w) < C.PREDICTOR_MIN_SIDE:
        raise InputFileError(f"the style image is {w}x{h} px; at least {C.PREDICTOR_MIN_SIDE} px on each side is needed")
    scale = min(side / min(h, w), MAX_ASPECT * side / max(h, w))
    nh, nw = max(C.PREDICTOR_MIN_SIDE, round(h * scale)), max(C.PREDICTOR_MIN_SIDE, round(w * scale))
    if (nh, nw) == (h, w):
        return np.ascontiguousarray(image)
    return cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class PredictorSession:
    """The style-prediction graph of a model folder on one CPU ONNX Runtime session.

    Predictions are cached by image content (sha256), and files by (path, size, mtime), so
    asking for the same picture again costs nothing. Thread-safe: the library below calls it
    from its worker thread while the owner may call it too.
    """

    def __init__(self, model: ModelFolder, *, threads: int | None = None) -> None:
        if model.predictor is None:
            raise ModelFolderError(f"{model.path}: " + NO_PREDICTOR.format(graph=C.PREDICTOR_GRAPH))
        P.check_onnxruntime_install()
        self.model = model
        self.style_dim = model.style_dim
        # Once per picture, so the CPU is plenty; it leaves the GPU to the frames.
        self.session: Any = P.create_session(model.predictor, P.CPU, threads=threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        self.side = int(meta[C.META_PREDICTOR_SIDE])  # validated by load_model_folder
        self._lock = threading.Lock()
        self._by_content: dict[str, np.ndarray] = {}
        self._by_file: dict[tuple[Path, int, int], str] = {}

    def predict(self, image: np.ndarray) -> np.ndarray:
        """A style vector float32 [S] (read-only) for a BGR uint8 image [H, W, 3], H, W >= 64."""
        check_frame(image, "a style picture")
        key = hashlib.sha256(np.ascontiguousarray(image).data).hexdigest() + f"{image.shape}"
        with self._lock:
            if key in self._by_content:
                return self._by_content[key]
        vec = self._run(predictor_input(image, self.side))
        with self._lock:
            self._by_content[key] = vec
        return vec

    def predict_file(self, path: Path | str) -> np.ndarray:
        """The style vector float32 [S] (read-only) of an image file. InputFileError when it is
        missing, unreadable or under 64 px a side."""
        path = Path(path)
        stamp = _stamp(path)
        file_key = (path.resolve(), *stamp) if stamp is not None else None
        with self._lock:
            content_key = self._by_file.get(file_key) if file_key is not None else None
            if content_key is not None and content_key in self._by_content:
                return self._by_content[content_key]
        image = read_image(path, min_side=C.PREDICTOR_MIN_SIDE, what="style image")
        content_key = hashlib.sha256(image.data).hexdigest() + f"{image.shape}"
        with self._lock:
            if file_key is not None:
                self._by_file[file_key] = content_key
            if content_key in self._by_content:
                return self._by_content[content_key]
        vec = self._run(predictor_input(image, self.side))
        with self._lock:
            self._by_content[content_key] = vec
        log.debug("predicted the style of %s", path)
        return vec

    def _run(self, image: np.ndarray) -> np.ndarray:
        if self.session is None:
            raise StylecastError("this PredictorSession is closed")
        out = self.session.run([C.OUTPUT_STYLE], {C.INPUT_STYLE_IMAGE: image[None]})[0]
        if out.shape != (1, self.style_dim) or not np.all(np.isfinite(out)):
            raise ModelFolderError(f"{self.model.predictor}: the style predictor gave {out.dtype} {out.shape} with NaN or infinity, "
                                   f"expected finite float32 [1, {self.style_dim}]; the graph is broken")
        vec = np.ascontiguousarray(out[0], dtype=np.float32)
        vec.flags.writeable = False
        return vec

    def close(self) -> None:
        self.session = None

    def __enter__(self) -> PredictorSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------- mixing predicted and named styles


# ---------------------------------------------------------------- a watched folder of style images


@dataclass(frozen=True)
class Prediction:
    """A finished background prediction: ``vector`` float32 [S], or ``error`` (a message)."""

    path: Path
    vector: np.ndarray | None
    error: str | None = None


class StyleImageLibrary:
    """The style images of a folder, predicted on a background thread so a frame loop never waits.

    ``names`` are the image files' names, sorted; ``refresh()`` rescans the folder (new,
    changed and removed images); ``request(i)`` queues a prediction; ``poll()`` takes in the
    finished ones; ``vector(i)`` is the vector, or None while it is pending or failed
    (``error(i)`` says why). Call every method from one thread (the frame loop's); only the
    predictions run on the worker. An empty folder is fine: images may be added later.
    """

    def __init__(self, predictor: PredictorSession, folder: Path | str) -> None:
        self.predictor = predictor
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InputFileError(f"{self.folder}: {'not a folder' if self.folder.exists() else 'no such folder'}")
        self._stamps: dict[Path, tuple[int, int]] = {}
        self._paths: list[Path] = []
        self._vectors: dict[Path, np.ndarray] = {}
        self._errors: dict[Path, str] = {}
        self._pending: set[Path] = set()
        self._todo: queue.Queue[Path | None] = queue.Queue()
        self._done: queue.Queue[tuple[Path, tuple[int, int] | None, Prediction]] = queue.Queue()
        self._worker: threading.Thread | None = None
        self.refresh()

    # -------------------------------------------------------- the folder

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(self._paths)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self._paths)

    def __len__(self) -> int:
        return len(self._paths)

    def refresh(self) -> bool:
        """Rescan the folder; return True when images were added, changed or removed. A
        changed image loses its vector and, if it had been requested, is predicted again."""
        try:
            found = {p: s for p in self.folder.iterdir()
                     if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and (s := _stamp(p)) is not None}
        except OSError as exc:
            log.warning("cannot read the style folder %s: %s", self.folder, exc)
            return False
        changed = [p for p, s in found.items() if self._stamps.get(p) not in (None, s)]
        gone = [p for p in self._stamps if p not in found]
        added = [p for p in found if p not in self._stamps]
        for p in changed + gone:
            had = p in self._vectors or p in self._errors
            self._vectors.pop(p, None)
            self._errors.pop(p, None)
            if had and p in found:
                self._stamps[p] = found[p]
                self.request(p)
        self._stamps = found
        self._paths = sorted(found, key=lambda p: p.name)
        return bool(changed or gone or added)

    def index(self, key: int | str | Path) -> int:
        """The index of an image given by index, file name or path (UsageError if unknown)."""
        if isinstance(key, int):
            if not 0 <= key < len(self._paths):
                raise UsageError(f"style image index {key} is out of range: the folder has {len(self._paths)} images")
            return key
        path = self._resolve(key)
        if path in self._paths:
            return self._paths.index(path)
        raise UsageError(f"{key}: not an image of the style folder {self.folder}")

    def _resolve(self, key: str | Path) -> Path:
        """A bare file name means the folder's file; anything else is a path."""
        p = Path(key)
        if p.parent == Path(".") and (self.folder / p.name) in self._stamps:
            return self.folder / p.name
        return self.folder / p.name if p.parent.resolve() == self.folder.resolve() else p

    # -------------------------------------------------------- predictions

    def request(self, key: int | str | Path) -> None:
        """Predict this image on the background thread, unless it is done or pending. A path
        outside the folder may be given too (e.g. --style-image); ask for it with ``vector_for``."""
        path = self._paths[self.index(key)] if isinstance(key, int) else self._resolve(key)
        if path in self._vectors or path in self._pending:
            return
        self._errors.pop(path, None)
        self._pending.add(path)
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="stylecast-style-images", daemon=True)
            self._worker.start()
        self._todo.put(path)

    def request_all(self) -> None:
        """Predict every image of the folder, in name order, in the background."""
        for p in self._paths:
            self.request(p)

    def _work(self) -> None:
        while (path := self._todo.get()) is not None:
            stamp = _stamp(path)
            try:
                result = Prediction(path, self.predictor.predict_file(path))
            except StylecastError as exc:
                result = Prediction(path, None, str(exc))
            except Exception as exc:  # noqa: BLE001 - one bad picture must not stop the worker (or the show)
                result = Prediction(path, None, f"{path}: internal error: {type(exc).__name__}: {exc}")
            self._done.put((path, stamp, result))

    def poll(self) -> list[Prediction]:
        """Take in the predictions finished since the last call (never blocks)."""
        finished = []
        while True:
            try:
                path, stamp, result = self._done.get_nowait()
            except queue.Empty:
                return finished
            self._pending.discard(path)
            if path in self._stamps and stamp != self._stamps[path]:
                self.request(path)  # the file changed while it was read: predict the new one
                continue
            if result.vector is not None:
                self._vectors[path] = result.vector
            else:
                self._errors[path] = result.error or "failed"
                log.warning("%s", result.error)
            finished.append(result)

    def wait(self, timeout: float | None = None) -> list[Prediction]:
        """Block until nothing is pending (or ``timeout`` seconds pass); return what finished."""
        import time

        end = None if timeout is None else time.monotonic() + timeout
        finished = self.poll()
        while self._pending and (end is None or time.monotonic() < end):
            time.sleep(0.01)
            finished += self.poll()
        return finished

    def vector(self, key: int | str | Path) -> np.ndarray | None:
        """The predicted vector float32 [S] of a folder image, or None while pending or failed."""
        return self._vectors.get(self._paths[self.index(key)])

    def vector_for(self, path: Path | str) -> np.ndarray | None:
        """The predicted vector of any requested path, or None while pending or failed."""
        return self._vectors.get(self._resolve(path))

    def error(self, key: int | str | Path) -> str | None:
        """Why the prediction of a folder image failed, or None."""
        return self._errors.get(self._paths[self.index(key)])

    def pending(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        """Stop the worker after the prediction in progress; safe to call twice."""
        if self._worker is not None:
            self._todo.put(None)
            self._worker.join()
            self._worker = None

    def __enter__(self) -> StyleImageLibrary:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------- saving a predicted style as a named one

STYLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_style_name(model: ModelFolder, name: str) -> str:
    """A new style's name: 1-64 letters, digits, '_', '-', '.', not only digits (those are
    indices), not one the model has. Raises UsageError."""
    if not STYLE_NAME.fullmatch(name) or name.isdigit():
        raise UsageError(f"style name {name!r}: use 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit, not only digits")
    if name in model.style_names:
        raise UsageError(f"the model already has a style named {name!r}; choose another --name")
    return name


def save_style(model: ModelFolder, name: str, vector: np.ndarray, out: Path | str, *,
               overwrite: bool = False, note: Mapping[str, Any] | None = None) -> ModelFolder:
    """Write the model folder ``model`` with one more style (``name``, float [S]) to ``out``.

    ``out`` may be ``model.path`` itself (an update in place). The new folder is assembled
    beside ``out`` (styles.npz and manifest.json rewritten with new hashes), validated, and
    then swapped in, so a reader never sees a half-written folder. ``note`` is recorded in
    the manifest's provenance under ``added_styles``. Returns the new folder, loaded.
    """
    check_style_name(model, name)
    vec = np.asarray(vector, dtype=np.float32).reshape(-1)
    if vec.shape != (model.style_dim,) or not np.all(np.isfinite(vec)):
        raise UsageError(f"a style vector must be finite float [{model.style_dim}], got {vec.shape}")
    out = Path(out)
    in_place = out.exists() and out.resolve() == model.path.resolve()
    manifest = model.manifest
    provenance = dict(manifest.get("provenance") or {})
    provenance["added_styles"] = [*provenance.get("added_styles", []), {"name": name, **dict(note or {})}]
    with atomic_dir(out, overwrite=overwrite or in_place, inputs=[] if in_place else [model.path]) as tmp:
        for fname, entry in manifest["files"].items():
            if fname != manifest.get("style_vectors", C.STYLES_NAME):
                shutil.copy2(model.path / fname, tmp / fname)
                # The new manifest hashes what is here, so check the copy against the old one first.
                if sha256_file(tmp / fname) != entry.get("sha256"):
                    raise ModelFolderError(f"{model.path / fname}: changed since the model was loaded; nothing was written")
        write_styles(tmp, [*model.style_names, name], np.vstack([model.style_vectors, vec[None]]))
        write_manifest(tmp, style_names=[*model.style_names, name], style_dim=model.style_dim, graphs=dict(manifest["graphs"]),
                       architecture=str(manifest.get("architecture", "")), provenance=provenance, predictor=manifest.get("predictor"))
        load_model_folder(tmp)  # the runtime's own checks, before the swap
    return load_model_folder(out)
