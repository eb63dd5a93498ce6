"""``nst-doctor``: what is installed, which execution providers really run, and what to fix.

Exit 0 when stylecast can run (on the CPU at least), 3 when onnxruntime is broken (the last
line says the command that fixes it), 2 for a bad ``--model``.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
import time
from importlib import metadata
from importlib.util import find_spec

import numpy as np

from .. import providers as P
from ..cpus import logical_cpus, physical_cores
from ..errors import BackendUnavailableError
from .common import entry_point, make_parser, package_version
from .options import add_device_options, add_model_dir_option

DESCRIPTION = """\
Check the installation: versions of stylecast and its dependencies, the onnxruntime
distribution(s) installed, the execution providers onnxruntime offers and which of them
actually start here (each is tried on a tiny in-memory graph: onnxruntime lists CUDA even
when its libraries are missing, and then silently runs on the CPU), CPU cores and threads,
and the bundled models. With --model DIR it also validates that model folder and times one
frame on --device."""

EPILOG = """\
examples:
  nst-doctor
  nst-doctor --model models/starry --device cuda"""


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _importable(module: str, dist: str) -> str:
    """The version if ``module`` imports, else why not."""
    if find_spec(module) is None:
        return "not installed"
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - a broken optional package is a finding, not a crash
        return f"installed but does not import ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    return str(getattr(mod, "__version__", None) or _version(dist) or "unknown version")


def _row(name: str, value: str) -> None:
    print(f"{name:<14}{value}")


def _print_versions() -> None:
    import cv2

    _row("stylecast", package_version())
    _row("python", f"{platform.python_version()} ({platform.python_implementation()}, {platform.system()} {platform.machine()})")
    _row("numpy", np.__version__)
    cv_dists = [d for d in ("opencv-python", "opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless") if _version(d)]
    _row("opencv", f"{cv2.__version__} ({', '.join(cv_dists) or 'distribution unknown'})")
    _row("av", _importable("av", "av"))
    _row("onnx", _importable("onnx", "onnx"))
    dists = sorted({n for names in P.runtime_distributions().values() for n in names})
    try:
        import onnxruntime as ort

        cuda = getattr(ort, "cuda_version", "") or ""
        built = f"; built for CUDA {cuda}" if cuda else ""
        _row("onnxruntime", f"{ort.__version__} (installed: {', '.join(dists) or 'none found'}{built}) at {ort.__file__}")
    except Exception as exc:  # noqa: BLE001 - reported, and check_onnxruntime_install explains
        _row("onnxruntime", f"does not import ({type(exc).__name__}); installed: {', '.join(dists) or 'none'}")
    _row("pyvirtualcam", _importable("pyvirtualcam", "pyvirtualcam"))
    # torch is only named, not imported: importing it loads its CUDA libraries, which would
    # make the provider check below look better than what nst-live (without torch) gets.
    torch = _version("torch")
    _row("torch", f"{torch} (not imported)" if torch else "not installed (only nst-train, nst-export need it)")


def _print_providers() -> None:
    import onnxruntime as ort

    offered = ort.get_available_providers()
    print(f"\nexecution providers offered by onnxruntime: {', '.join(offered)}")
    runs = set()
    for provider in P.PROVIDER_ORDER:
        if provider not in offered:
            continue
        result = P.probe_provider(provider)
        verdict = f"runs{f' ({result.detail})' if result.detail else ''}" if result.runs else f"does not run: {result.detail}"
        print(f"  {provider:<28}{verdict}")
        if result.runs:
            runs.add(provider)
    auto = next((p for p in P.AUTO_ORDER if p in runs), P.CPU)
    print(f"--device auto uses: {auto}{'' if P.TENSORRT not in runs else ' (TensorRT only with --device tensorrt)'}")
    cores = physical_cores()
    print(f"\nCPU: {cores} physical cores usable, {logical_cpus()} logical; the CPU provider runs {cores} intra-op threads")


def _print_models() -> None:
    from stylecast import weights

    names = weights.bundled_models()
    if names:
        print(f"bundled models: {', '.join(names)} (in {weights.weights_dir()})")
    else:
        print("bundled models: none yet; pass --model DIR (create one with nst-train and nst-export)")


def _check_model(args: argparse.Namespace) -> None:
    from ..engine import open_engine

    with open_engine(args.model, device=args.device, max_side=args.max_side) as engine:
        model = engine.model
        print(f"\nmodel {model.path}: valid (contract {model.contract_version}, S={model.style_dim}, graphs {', '.join(sorted(model.graphs))})")
        print(f"  styles: {', '.join(f'{i} {n}' for i, n in enumerate(model.style_names))}")
        frame = np.random.default_rng(0).integers(0, 256, (180, 320, 3), dtype=np.uint8)
        engine(frame)  # the first call pays for allocations and kernel selection
        start = time.perf_counter()
        out = engine(frame)
        ms = (time.perf_counter() - start) * 1000
        print(f"  runs on {engine.provider} ({engine.precision}): 320x180 -> {out.shape[1]}x{out.shape[0]} in {ms:.1f} ms")


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("nst-doctor", DESCRIPTION, EPILOG)
    add_model_dir_option(parser)
    add_device_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    _print_versions()
    try:
        P.check_onnxruntime_install()
    except BackendUnavailableError:
        print("\nonnxruntime is not usable; see the error below", file=sys.stdout)
        raise
    _print_providers()
    _print_models()
    if args.model is not None:
        _check_model(args)
    print("\nok: stylecast can run here")
    return 0


main = entry_point(build_parser, run)
