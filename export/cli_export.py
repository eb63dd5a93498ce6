"""``nst-export``: turn a training checkpoint into a model folder the runtime can run."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from stylecast.realtime.cli.common import entry_point, make_parser

log = logging.getLogger("stylecast.export")


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(
        "nst-export",
        "Export a checkpoint written by nst-train into a model folder: the fp32 ONNX graph\n"
        "(and the fp16 one with --fp16), the style vectors (styles.npz) and manifest.json with\n"
        "every file's sha256. Each graph is one self-contained file that follows the ONNX\n"
        "contract (uint8 BGR frame + float32 style vector in, uint8 BGR frame out; see README).\n\n"
        "After writing, every graph is run in ONNX Runtime on the CPU against the PyTorch\n"
        "network at two sizes (one odd) and the largest difference is printed. If the fp32 graph\n"
        "is off by more than 1 grey level or the fp16 graph by more than 2, the export fails and\n"
        "nothing is left at OUTDIR.",
        epilog="example:\n  nst-export runs/multi/ weights/mymodel --fp16",
    )
    p.add_argument("checkpoint", type=Path, metavar="CHECKPOINT", help="checkpoint folder written by nst-train (or its checkpoint.json)")
    p.add_argument("outdir", type=Path, metavar="OUTDIR", help="model folder to create")
    p.add_argument("--fp16", action="store_true", help="also write the float16 graph (used on CUDA)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTDIR if it exists")
    return p


def run(args: argparse.Namespace) -> int:
    from stylecast.realtime.atomic import check_output_path

    from .checkpoint import load_checkpoint
    from .onnx_export import TOLERANCE, export_model_folder

    check_output_path(args.outdir, overwrite=args.overwrite, inputs=[args.checkpoint], is_dir=True)
    ckpt = load_checkpoint(args.checkpoint)
    log.info("checkpoint: %s, %d style(s), step %d", ckpt.net.arch_name, len(ckpt.style_names), ckpt.step)
    report = export_model_folder(ckpt, args.outdir, fp16=args.fp16, overwrite=args.overwrite)
    for precision, diff in report.max_diff.items():
        print(f"{precision}: max difference from PyTorch {diff} grey level(s) (allowed {TOLERANCE[precision]})")
    print(f"wrote {report.folder}")
    return 0


main = entry_point(build_parser, run)
