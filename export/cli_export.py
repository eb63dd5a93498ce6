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
        "nothing is left at OUTDIR.\n\n"
        "--int8 adds model.int8.onnx, which the CPU runs when it is there: the convolutions\n"
        "quantised to 8 bits (ONNX Runtime static quantisation), calibrated on --calibration-dir\n"
        "photos (or generated scenes) with every style. It is checked against the fp32 graph on\n"
        "frames it was not calibrated on, with every style (PSNR at least 32 dB, mean difference\n"
        "at most 4 grey levels), or the export fails.",
        epilog="examples:\n  nst-export runs/multi/ weights/mymodel --fp16\n"
               "  nst-export runs/fast/ weights/fast --fp16 --int8 --calibration-dir photos/",
    )
    p.add_argument("checkpoint", type=Path, metavar="CHECKPOINT", help="checkpoint folder written by nst-train (or its checkpoint.json)")
    p.add_argument("outdir", type=Path, metavar="OUTDIR", help="model folder to create")
    p.add_argument("--fp16", action="store_true", help="also write the float16 graph (used on CUDA)")
    p.add_argument("--int8", action="store_true", help="also write the int8 graph (run on CPUs; fastest for the fast network)")
    p.add_argument("--calibration-dir", type=Path, metavar="DIR",
                   help="photos to calibrate the int8 graph on (a few, spread over the folder, are used; "
                        "default: generated scenes)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTDIR if it exists")
    return p


def run(args: argparse.Namespace) -> int:
    from stylecast.realtime.atomic import check_output_path
    from stylecast.realtime.errors import UsageError

    from .checkpoint import load_checkpoint
    from .onnx_export import TOLERANCE, export_model_folder
    from .quantize import INT8_MAX_MEAN_DIFF, INT8_MIN_PSNR, calibration_frames

    check_output_path(args.outdir, overwrite=args.overwrite, inputs=[args.checkpoint], is_dir=True)
    ckpt = load_checkpoint(args.checkpoint)
    log.info("checkpoint: %s, %d style(s), step %d", ckpt.net.arch_name, len(ckpt.style_names), ckpt.step)
    if args.calibration_dir is not None and not args.int8:
        raise UsageError("--calibration-dir is only used with --int8")
    calibration = calibration_frames(args.calibration_dir) if args.calibration_dir is not None else None
    report = export_model_folder(ckpt, args.outdir, fp16=args.fp16, overwrite=args.overwrite, int8=args.int8,
                                 calibration=calibration)
    for precision, diff in report.max_diff.items():
        print(f"{precision}: max difference from PyTorch {diff} grey level(s) (allowed {TOLERANCE[precision]})")
    if report.int8 is not None:
        print(f"int8: PSNR {report.int8.psnr:.1f} dB against the fp32 graph, mean difference "
              f"{report.int8.mean_diff:.2f} grey levels (worst style; at least {INT8_MIN_PSNR:g} dB, "
              f"at most {INT8_MAX_MEAN_DIFF:g} levels)")
    print(f"wrote {report.folder}")
    return 0


main = entry_point(build_parser, run)
