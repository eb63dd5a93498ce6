"""Shared test fixtures. Data under ../shared/data (beside the repository) is optional."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_VGG = SHARED_DATA / "vgg" / "vgg19_normalised_to_conv3_1.safetensors"


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


REAL_VGG = SHARED_DATA / "vgg" / "vgg19_normalised_to_conv3_1.safetensors"


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
