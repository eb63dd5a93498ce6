"""ONNX Runtime set-up: a sane install, the device the user asked for, and the provider that really runs.

Device names (``--device``)
  ``auto``          CUDA, then DirectML, then CoreML, then the CPU: the first one that actually
                    starts. TensorRT is left out on purpose: it builds an engine for every new
                    input size, which takes minutes for large frames, and ``auto`` must not
                    spend them silently.
  ``cpu``           the CPU, one intra-op thread per physical core
  ``cuda``, ``cuda:N``
                    CUDA on GPU N (0 by default); an error (exit 3) when it cannot run
  ``tensorrt``, ``tensorrt:N``
                    opt-in TensorRT (fp16 kernels) on GPU N; engines are cached in
                    ``$XDG_CACHE_HOME/stylecast/tensorrt`` (``~/.cache/...``) so the wait is once
                    per input size

ONNX Runtime lists the providers it was *built* with, and falls back to the CPU without an
error when, say, the CUDA libraries are missing. So every accelerated provider is tried on a
tiny in-memory graph first, and what ``session.get_providers()`` says afterwards is what counts.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import platform
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from .cpus import logical_cpus, physical_cores  # noqa: F401 - both also read as P.logical_cpus / P.physical_cores
from .errors import BackendUnavailableError, ModelFolderError, UsageError

log = logging.getLogger("stylecast.engine")

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
DIRECTML = "DmlExecutionProvider"
COREML = "CoreMLExecutionProvider"

CPU_SPIN_KEY = "session.intra_op.allow_spinning"
"""ONNX Runtime session option: "0" lets idle CPU workers sleep (``create_session`` sets it)."""

PROVIDER_ORDER = (TENSORRT, CUDA, DIRECTML, COREML, CPU)
"""Every provider stylecast knows, fastest first."""

AUTO_ORDER = (CUDA, DIRECTML, COREML)
"""What ``--device auto`` tries, in order, before settling on the CPU."""

DEVICE_HELP = "auto (CUDA, DirectML, CoreML, else CPU), cpu, cuda, cuda:N, or tensorrt (opt-in; slow first start per frame size)"

# Distributions that ship the ``onnxruntime`` import package; two in one folder overwrite each other.
_NOT_RUNTIMES = ("onnxruntime-extensions", "onnxruntime-genai", "onnxruntime-tools")


# ---------------------------------------------------------------- is the install sane?


def _gpu_wheel_platform() -> bool:
    """True where NVIDIA publishes onnxruntime-gpu wheels: Linux and Windows on x86-64."""
    return sys.platform in ("linux", "win32") and platform.machine().lower() in ("x86_64", "amd64")


def install_fix(installed: list[str] | None = None) -> str:
    """The one command that leaves exactly the right onnxruntime distribution installed."""
    wanted = "onnxruntime-gpu" if _gpu_wheel_platform() else "onnxruntime"
    remove = sorted(set(installed or []) | {"onnxruntime", "onnxruntime-gpu"})
    return f"pip uninstall -y {' '.join(remove)} && pip install {wanted}"


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_distributions(folder: Path | None = None) -> dict[Path, list[str]]:
    """Installed distributions that provide the ``onnxruntime`` package, by the folder they are in.

    ``folder`` limits the search to one site-packages folder (much faster than all of sys.path).
    """
    found: dict[Path, set[str]] = {}
    dists = metadata.distributions(path=[str(folder)]) if folder is not None else metadata.distributions()
    for dist in dists:
        name = _normalise(dist.metadata["Name"] or "")
        is_runtime = name == "onnxruntime" or name.startswith(("onnxruntime-", "ort-nightly"))
        if not is_runtime or name.startswith(_NOT_RUNTIMES):
            continue
        where = Path(str(dist.locate_file(""))).resolve()
        found.setdefault(where, set()).add(name)
    return {folder: sorted(names) for folder, names in found.items()}


def check_onnxruntime_install() -> None:
    """Raise BackendUnavailableError, with the command that fixes it, if onnxruntime is broken.

    Judged by what actually imports and what it offers: a missing or unimportable package,
    two runtime distributions in the folder it imports from (``onnxruntime`` and
    ``onnxruntime-gpu`` overwrite each other's files, so the result depends on install order),
    or a package whose core names are gone (half uninstalled). Two distributions in
    *different* folders are fine: the first on ``sys.path`` wins whole.
    """
    try:
        import onnxruntime as ort
    except Exception as exc:  # ImportError, or OSError from a missing shared library
        names = sorted({n for group in runtime_distributions().values() for n in group})
        what = f"installed: {', '.join(names)}" if names else "not installed"
        raise BackendUnavailableError(
            f"onnxruntime cannot be imported ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}; {what}); fix: {install_fix(names)}"
        ) from exc
    origin = getattr(ort, "__file__", None)
    here = Path(origin).resolve().parent.parent if origin else None
    clash = runtime_distributions(here).get(here, []) if here is not None else []
    if len(clash) > 1:
        raise BackendUnavailableError(
            f"{' and '.join(clash)} are both installed in {here}; they overwrite each other's files, "
            f"so which one runs is an accident; fix: {install_fix(clash)}"
        )
    missing = [n for n in ("InferenceSession", "get_available_providers", "SessionOptions") if not hasattr(ort, n)]
    if missing:
        raise BackendUnavailableError(
            f"onnxruntime at {origin} is incomplete (no {', '.join(missing)}): probably half uninstalled; fix: {install_fix(clash)}"
        )


# ---------------------------------------------------------------- what the user asked for


@dataclass(frozen=True)
class DeviceRequest:
    """A parsed ``--device``: kind is "auto", "cpu", "cuda" or "tensorrt"; index is the GPU."""

    kind: str
    index: int = 0

    def __str__(self) -> str:
        return f"{self.kind}:{self.index}" if self.kind in ("cuda", "tensorrt") and self.index else self.kind


_DEVICE_RE = re.compile(r"^(auto|cpu|cuda|tensorrt)(?::(\d+))?$")


def parse_device(text: str) -> DeviceRequest:
    """Parse auto | cpu | cuda | cuda:N | tensorrt | tensorrt:N; UsageError otherwise."""
    m = _DEVICE_RE.match(text.strip().lower()) if isinstance(text, str) else None
    if not m or (m.group(2) is not None and m.group(1) in ("auto", "cpu")):
        raise UsageError(f"unknown device {text!r}; use auto, cpu, cuda, cuda:N or tensorrt")
    return DeviceRequest(m.group(1), int(m.group(2) or 0))


# ---------------------------------------------------------------- which provider really runs


@dataclass(frozen=True)
class ProbeResult:
    """Whether ``provider`` started on a tiny graph; ``detail`` says why not (or on what)."""

    provider: str
    runs: bool
    detail: str = ""


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@contextlib.contextmanager
def _native_output_captured() -> Iterator[list[str]]:
    """Collect what ONNX Runtime writes while probing: C++ logs on file descriptor 2, Python prints on stdout.

    The lines are returned to the caller (for a one-line reason and a debug log) instead of
    reaching the terminal as a wall of red text for a fallback that is expected and handled.
    """
    lines: list[str] = []
    printed = io.StringIO()
    with tempfile.TemporaryFile() as tmp:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        try:
            saved: int | None = os.dup(2)
        except OSError:  # no file descriptor 2 (e.g. a windowed app): nothing to hide
            saved = None
        try:
            if saved is not None:
                os.dup2(tmp.fileno(), 2)
            with contextlib.redirect_stdout(printed):
                yield lines
        finally:
            if saved is not None:
                os.dup2(saved, 2)
                os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", errors="replace") + "\n" + printed.getvalue()
            lines.extend(_ANSI.sub("", line).strip() for line in text.splitlines() if line.strip())


def _failure_reason(lines: list[str]) -> str:
    """The informative part of ONNX Runtime's complaint, e.g. 'libcublasLt.so.13: cannot open shared object file'."""
    for line in lines:
        m = re.search(r"with error: (.+)$", line)
        if m:
            return m.group(1).strip()
    for line in lines:
        if "Require" in line or "Please install" in line:
            return re.sub(r"^.*?\] ", "", line).strip()[:300]
    return lines[-1][:300] if lines else ""


def _identity_model() -> bytes:
    """A one-node float graph: enough for an execution provider to start or fail."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # old enough for every onnxruntime stylecast supports
    return model.SerializeToString()


def _tensorrt_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stylecast" / "tensorrt"


def provider_options(provider: str, device_id: int = 0, *, cuda_graph: bool = False) -> dict[str, Any]:
    """Options for one provider (strings, as ONNX Runtime wants them)."""
    if provider == CUDA:
        opts: dict[str, Any] = {"device_id": str(device_id), "cudnn_conv_algo_search": "EXHAUSTIVE"}
        if cuda_graph:
            opts["enable_cuda_graph"] = "1"
        return opts
    if provider == TENSORRT:
        cache = _tensorrt_cache_dir()
        return {
            "device_id": str(device_id),
            "trt_fp16_enable": "True",
            "trt_engine_cache_enable": "True",
            "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": "True",
            "trt_timing_cache_path": str(cache),
        }
    if provider == DIRECTML:
        return {"device_id": str(device_id)}
    return {}


def preload_cuda_libraries() -> list[str]:
    """Let onnxruntime-gpu find CUDA/cuDNN from pip's nvidia-* packages (a CUDA PyTorch installs them).

    Best effort and quiet: returns what onnxruntime printed, for the debug log.
    """
    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)
    if preload is None:  # onnxruntime < 1.21
        return []
    with _native_output_captured() as lines:
        try:
            preload()
        except Exception as exc:  # noqa: BLE001 - a failed preload only means the probe decides
            print(f"preload_dlls failed: {exc}")
    return lines


def probe_provider(provider: str, device_id: int = 0) -> ProbeResult:
    """Start ``provider`` on a tiny graph and report whether it really runs (not just whether it is listed)."""
    import onnxruntime as ort

    if provider not in ort.get_available_providers():
        return ProbeResult(provider, False, "not in this onnxruntime build")
    if provider == CPU:
        return ProbeResult(provider, True)
    if provider in (CUDA, TENSORRT):
        for line in preload_cuda_libraries():
            log.debug("preload: %s", line)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    providers: list[Any] = [(provider, provider_options(provider, device_id)), CPU]
    if provider == TENSORRT:  # ORT needs the CUDA provider registered beside TensorRT for its copies
        providers.insert(1, (CUDA, provider_options(CUDA, device_id)))
    session = None
    error = ""
    with _native_output_captured() as lines:
        try:
            session = ort.InferenceSession(_identity_model(), opts, providers=providers)
            if session.get_providers()[0] == provider:
                session.run(None, {"x": [[0.0, 1.0, 2.0, 3.0]]})
        except Exception as exc:  # noqa: BLE001 - any failure means "does not run here"
            error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    for line in lines:
        log.debug("onnxruntime (%s probe): %s", provider, line)
    if session is not None and not error and session.get_providers()[0] == provider:
        return ProbeResult(provider, True, f"device {device_id}" if provider != COREML else "")
    reason = error or _failure_reason(lines) or "onnxruntime fell back to the CPU"
    return ProbeResult(provider, False, reason)


def _cuda_hint() -> str:
    import onnxruntime as ort

    cuda = getattr(ort, "cuda_version", "") or ""
    major = cuda.split(".")[0] if cuda else "12/13"
    built = f"onnxruntime-gpu {ort.__version__} is built for CUDA {cuda}; " if cuda else ""
    return (
        f"{built}it needs an NVIDIA GPU and driver with CUDA {major} and cuDNN 9 libraries: "
        '`pip install "onnxruntime-gpu[cuda,cudnn]"` brings them (a CUDA build of PyTorch does too; '
        "stylecast preloads them with onnxruntime.preload_dlls()); or use --device cpu. nst-doctor shows details"
    )


def choose_provider(request: DeviceRequest) -> tuple[str, list[str]]:
    """The provider to build the real session on, and notes on what was tried and did not run.

    ``auto`` settles on the CPU when nothing else starts; ``cuda`` or ``tensorrt`` that cannot
    start raise BackendUnavailableError with one line naming what to install.
    """
    import onnxruntime as ort

    available = ort.get_available_providers()
    if request.kind == "cpu":
        return CPU, []
    if request.kind == "auto":
        notes = []
        for provider in AUTO_ORDER:
            if provider not in available:
                continue
            result = probe_provider(provider, request.index)
            if result.runs:
                return provider, notes
            notes.append(f"{provider} is offered but cannot run here ({result.detail})")
        return CPU, notes
    provider = CUDA if request.kind == "cuda" else TENSORRT
    if provider not in available:
        raise BackendUnavailableError(
            f"--device {request}: this onnxruntime ({ort.__version__}) has no {provider} "
            f"(offers {', '.join(available)}); install the GPU build: {install_fix()}"
        )
    result = probe_provider(provider, request.index)
    if not result.runs:
        if provider == TENSORRT:
            raise BackendUnavailableError(
                f"--device {request}: TensorRT cannot run here ({result.detail}); install TensorRT 10 "
                f"(pip install tensorrt) beside onnxruntime-gpu, or use --device cuda"
            )
        raise BackendUnavailableError(f"--device {request}: CUDA cannot run here ({result.detail}); {_cuda_hint()}")
    return provider, []


def create_session(
    graph: Path | bytes,
    provider: str,
    device_id: int = 0,
    *,
    threads: int | None = None,
    cuda_graph: bool = False,
) -> Any:
    """An InferenceSession on ``provider``; BackendUnavailableError if it ends up on anything else.

    ``graph`` is a file or a serialised model. ``threads`` sets the CPU provider's intra-op
    threads (default: physical cores). Fallback to the CPU is allowed only for nodes the
    accelerator has no kernel for; the session's first provider must be the one asked for.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # ORT warns about shape nodes it keeps on the CPU on purpose; only errors are news.
    opts.log_severity_level = 2 if log.isEnabledFor(logging.DEBUG) else 3
    opts.intra_op_num_threads = threads or physical_cores()
    opts.inter_op_num_threads = 1
    if provider == CPU:
        # Idle workers sleep instead of spinning: every caller does CPU work between runs (the
        # temporal blend, capture, decoding, encoding), and spinning workers took its cores
        # (PERFORMANCE.md: nst-live and nst-video gain, back-to-back runs alone lose a little).
        opts.add_session_config_entry(CPU_SPIN_KEY, "0")
    if provider == DIRECTML:  # DirectML cannot use memory patterns or parallel execution
        opts.enable_mem_pattern = False
    providers: list[Any] = [(provider, provider_options(provider, device_id, cuda_graph=cuda_graph))]
    if provider == TENSORRT:
        providers.append((CUDA, provider_options(CUDA, device_id)))
    if provider != CPU:
        providers.append(CPU)
    what = graph.name if isinstance(graph, Path) else "graph"
    try:
        session = ort.InferenceSession(str(graph) if isinstance(graph, Path) else graph, opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own unrelated types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if cuda_graph or provider != CPU:
            raise BackendUnavailableError(f"{what}: onnxruntime could not start it on {provider}: {first}") from exc
        raise ModelFolderError(
            f"{what}: onnxruntime {ort.__version__} cannot load this graph ({first}); upgrade onnxruntime or re-export the model"
        ) from exc
    actual = session.get_providers()[0]
    if actual != provider:
        raise BackendUnavailableError(f"{what}: asked onnxruntime for {provider} but it runs on {actual}")
    return session
