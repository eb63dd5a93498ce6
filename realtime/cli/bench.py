"""``nst-bench``: measurements, not tests. Each subcommand prints a table (and can save JSON).

  speed    model-only ms/frame of the engine against a naive PyTorch reference (bench/speed.py)
  video    end-to-end nst-video fps against a naive one-thread loop, on generated clips (bench/video.py)
  flicker  warping error of the temporal blend on real clips, and what it costs (bench/flicker.py)
  peers    our styles beside another project's trained networks, with a style distance (bench/peers.py)
"""

from __future__ import annotations

import argparse
from types import ModuleType

from .common import entry_point, make_parser


def _subcommands() -> dict[str, ModuleType]:
    from ..bench import flicker, peers, speed, video

    return {"speed": speed, "video": video, "flicker": flicker, "peers": peers}


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(
        "nst-bench",
        "Benchmarks of the runtime, measured side by side with a reference in the same run, so\n"
        "the numbers are ratios that mean something on a shared or noisy machine.\n\n"
        "  speed    model-only milliseconds per frame of this engine (ONNX Runtime, the provider\n"
        "           that actually runs) against the same network in PyTorch eager fp32 with numpy\n"
        "           round trips (the way pytorch/examples runs it), at 640x360, 1280x720, 1920x1080\n"
        "  video    end-to-end nst-video frames per second (decode, stylise, blend, encode in threads,\n"
        "           audio copied) against a naive one-thread decode-stylise-encode loop, on clips it\n"
        "           generates at those sizes\n"
        "  flicker  the warping error (Lai et al. 2018) of stylised real clips with and without the\n"
        "           temporal blend, how far the blend moves from the per-frame output, and its cost\n"
        "  peers    our styles beside another project's trained networks on frames of real clips, on\n"
        "           one sheet, with a style distance to the painting (needs PyTorch)",
        epilog="examples:\n  nst-bench speed --model weights/default --sizes 640x360 1280x720\n"
        "  nst-bench flicker --model weights/default --clips ../shared/data/video/clips --temporal 0.5\n"
        "  nst-bench speed --help",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=type(p))
    for name, module in _subcommands().items():
        sp = sub.add_parser(name, help=module.HELP if hasattr(module, "HELP") else (module.__doc__ or "").splitlines()[0],
                            description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        # -v/-q work after the subcommand too; SUPPRESS keeps them from resetting the top-level value.
        sp.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logs, and tracebacks on errors")
        sp.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="only warnings and errors")
        module.add_arguments(sp)
        sp.set_defaults(_run=module.run)
    return p


def run(args: argparse.Namespace) -> int:
    return int(args._run(args))


main = entry_point(build_parser, run)
