"""Shared test fixtures. Data under ../shared/data (beside the repository) is optional:
tests that need it skip cleanly when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
REAL_VGG = SHARED_DATA / "vgg" / "vgg19_normalised_to_conv3_1.safetensors"

TINY_ARCH = {"channels": [8, 16, 16], "residual_blocks": 1}
"""A random-weight Johnson network small enough to export and run in a second on a CPU."""


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or a clean skip when it is not there."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not available on this machine")
    return path


def named_vgg_state(vgg) -> dict:  # noqa: ANN001 - a VGGFeatures (needs torch, imported by the caller)
    """``vgg``'s weights under the normalised format's named keys (``preproc_1x1``, ``conv1_1``, ...),
    the layout ``load_vgg`` reads: for writing small random VGG files in tests."""
    state = {"preproc_1x1.weight": vgg.preproc.weight, "preproc_1x1.bias": vgg.preproc.bias}
    for name, conv in vgg.convs.items():
        state |= {f"{name}.weight": conv.weight, f"{name}.bias": conv.bias}
    return state


@pytest.fixture(scope="session")
def real_vgg_path() -> Path:
    """The truncated normalised VGG-19 in ../shared/data/vgg; skips the test when absent."""
    if not REAL_VGG.is_file():
        pytest.skip(f"{REAL_VGG} not present")
    return REAL_VGG


@pytest.fixture(scope="session")
def real_vgg(real_vgg_path: Path):  # noqa: ANN201 - VGGFeatures, imported lazily (needs torch)
    from stylecast.export.vgg import load_vgg

    return load_vgg(real_vgg_path)


@pytest.fixture
def tiny_images(tmp_path: Path) -> tuple[Path, Path]:
    """(content.png 40x30, style.png 36x36): small seeded random-ish pictures written with OpenCV."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:30, 0:40]
    content = np.stack([xx * 6, yy * 8, (xx + yy) * 3], axis=-1).astype(np.uint8)
    style = rng.integers(0, 256, size=(36, 36, 3), dtype=np.uint8)
    paths = tmp_path / "content.png", tmp_path / "style.png"
    cv2.imwrite(str(paths[0]), content)
    cv2.imwrite(str(paths[1]), style)
    return paths


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint folder of a tiny random-weight network with three distinct styles."""
    torch = pytest.importorskip("torch")
    from stylecast.export.checkpoint import save_checkpoint
    from stylecast.export.transformer import build_network

    torch.manual_seed(0)
    net = build_network("johnson", TINY_ARCH)
    styles = net.identity_style(3) + 0.5 * torch.randn(3, net.style_dim)
    folder = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_checkpoint(folder, net, styles, ["alpha", "beta", "gamma"], {"step": 0, "note": "random weights, for tests"})
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder (fp32 + fp16 graphs) exported from ``tiny_checkpoint``, styles alpha/beta/gamma.
    Treat it as read-only: copy it (shutil.copytree) before corrupting it in a test."""
    from stylecast.export.checkpoint import load_checkpoint
    from stylecast.export.onnx_export import export_model_folder

    out = tmp_path_factory.mktemp("models") / "tiny"
    export_model_folder(load_checkpoint(tiny_checkpoint), out, fp16=True, overwrite=False)
    return out


@pytest.fixture(scope="session")
def tiny_predictor_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of a tiny random-weight network with styles alpha/beta and a random-weight
    style predictor (its last layer randomised, so different pictures give different vectors).
    Read-only."""
    torch = pytest.importorskip("torch")
    from stylecast.export.checkpoint import save_checkpoint
    from stylecast.export.predictor import StylePredictor, predictor_tensors
    from stylecast.export.transformer import build_network
    from stylecast.export.vgg import VGGFeatures

    torch.manual_seed(0)
    net = build_network("johnson", TINY_ARCH)
    styles = net.identity_style(2) + 0.5 * torch.randn(2, net.style_dim)
    predictor = StylePredictor(VGGFeatures.random("relu3_1", seed=0), styles.mean(0), hidden=32)
    with torch.no_grad():
        predictor.head.weight.normal_(0.0, 0.2)
    folder = tmp_path_factory.mktemp("predictor_ckpt") / "tiny"
    save_checkpoint(folder, net, styles, ["alpha", "beta"], {"step": 0, "predictor": predictor.config()}, predictor_tensors(predictor))
    return folder


@pytest.fixture(scope="session")
def tiny_predictor_model_dir(tiny_predictor_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder (fp32 graph, styles alpha/beta, and predictor.onnx) exported from
    ``tiny_predictor_checkpoint``. Read-only: copy it before changing it."""
    from stylecast.export.checkpoint import load_checkpoint
    from stylecast.export.onnx_export import export_model_folder

    out = tmp_path_factory.mktemp("predictor_models") / "tiny"
    export_model_folder(load_checkpoint(tiny_predictor_checkpoint), out, fp16=False, overwrite=False)
    return out
