"""The runtime's layering and its front door.

Only ``cli/`` and ``bench/`` may import PyTorch or ``stylecast.export`` (lazily, inside the
function that needs them); every other runtime module must import without them, so that
``pip install stylecast`` (no torch) runs nst-live and nst-video.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

import stylecast.realtime as realtime

REALTIME = Path(realtime.__file__).resolve().parent
EXPORT = REALTIME.parent / "export"
TOOL_ROOMS = ("cli", "bench")  # may import torch and stylecast.export


def _module_name(path: Path) -> str:
    parts = path.relative_to(REALTIME).with_suffix("").parts
    return ".".join(("stylecast.realtime", *parts)).removesuffix(".__init__")


def _runtime_modules() -> list[Path]:
    return sorted(p for p in REALTIME.rglob("*.py") if p.relative_to(REALTIME).parts[0] not in TOOL_ROOMS)


def _imported_names(path: Path) -> set[str]:
    """Every absolute module name ``path`` imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_no_runtime_module_outside_cli_and_bench_imports_torch_or_export() -> None:
    offenders = {
        str(p.relative_to(REALTIME)): sorted(n for n in _imported_names(p) if n.split(".")[0] == "torch" or n.startswith("stylecast.export"))
        for p in _runtime_modules()
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_every_other_runtime_module_imports_without_torch_in_a_fresh_interpreter() -> None:
    modules = [_module_name(p) for p in _runtime_modules()]
    assert "stylecast.realtime.live.loop" in modules and "stylecast.realtime.video.pipeline" in modules
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'stylecast.export')))))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    assert json.loads(out.stdout) == []


def test_export_provenance_needs_no_command_line_module() -> None:
    assert not any(n.startswith("stylecast.realtime.cli") for n in _imported_names(EXPORT / "provenance.py"))


def test_the_front_door_names_the_public_api_and_imports_it_only_when_used() -> None:
    assert sorted(realtime.__all__) == sorted([*realtime._EXPORTS, "package_version"])
    for name in realtime.__all__:
        assert getattr(realtime, name) is not None, name
    script = "import sys, stylecast.realtime; print(sorted(m for m in ('numpy', 'cv2', 'av', 'onnxruntime') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_the_readme_example_stylizes_a_frame_and_a_video(tiny_model_dir: Path, tmp_path: Path) -> None:
    from clips import make_clip

    from stylecast.realtime import FlowBlender, open_engine, read_image, transcode, write_image

    write_image(tmp_path / "photo.png", np.random.default_rng(0).integers(0, 256, (40, 56, 3), np.uint8), overwrite=False)
    clip = make_clip(tmp_path / "in.mp4", frames=4)
    with open_engine(tiny_model_dir, device="cpu") as engine:
        engine.set_style("beta")
        frame = read_image(tmp_path / "photo.png")
        write_image(tmp_path / "out.png", engine(frame), overwrite=True)
        report = transcode(clip.path, tmp_path / "out.mp4", engine, FlowBlender(), progress=False)
    assert read_image(tmp_path / "out.png").shape == frame.shape
    assert report.frames == 4 and (tmp_path / "out.mp4").is_file()
