"""nst-train: multi-style training, exact resume, add-style, stability, bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import TINY_ARCH  # noqa: E402

from stylecast.export.checkpoint import load_checkpoint  # noqa: E402
from stylecast.export.cli_train import main as train_main  # noqa: E402
from stylecast.export.train import StyleSpec, TrainSettings, add_style, parse_style_spec, train_styles  # noqa: E402
from stylecast.export.vgg import VGGFeatures  # noqa: E402
from stylecast.realtime.errors import InputFileError, UsageError  # noqa: E402

SETTINGS = TrainSettings(steps=3, size=32, batch=2, style_size=48, checkpoint_every=1, preview_every=2, arch_config=TINY_ARCH)


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, list[StyleSpec]]:
    """Generated content photos (a folder) and two generated style images."""
    rng = np.random.default_rng(1)
    content = tmp_path / "content"
    content.mkdir()
    for i in range(3):
        yy, xx = np.mgrid[0:40 + 4 * i, 0:48]
        img = np.stack([np.sin(xx / (3 + i)) * 120 + 128, np.cos(yy / 5) * 120 + 128, (xx * yy) % 256], -1)
        cv2.imwrite(str(content / f"photo{i}.png"), img.astype(np.uint8))
    styles = []
    for i in range(2):
        p = tmp_path / f"style{i}.png"
        cv2.imwrite(str(p), cv2.GaussianBlur(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8), (5, 5), 1 + i))
        styles.append(StyleSpec(p, 1.0 + i))
    return content, styles


@pytest.fixture(scope="module")
def vgg() -> VGGFeatures:
    return VGGFeatures.random("relu3_1", seed=0)  # explicit opt-in: the tests don't judge looks


def _tensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "checkpoint.safetensors"))


def test_parse_style_spec() -> None:
    assert parse_style_spec("a/b.jpg") == StyleSpec(Path("a/b.jpg"), 1.0)
    assert parse_style_spec("a/b.jpg:2.5") == StyleSpec(Path("a/b.jpg"), 2.5)
    assert parse_style_spec("C:/x/b.jpg").path == Path("C:/x/b.jpg")
    with pytest.raises(UsageError):
        parse_style_spec("b.jpg:0")


def test_three_steps_then_resume_equals_uninterrupted(data, vgg, tmp_path: Path) -> None:
    content, styles = data
    straight = train_styles(content, styles, tmp_path / "straight", vgg, SETTINGS, device="cpu", progress=False)
    two = train_styles(content, styles, tmp_path / "resumed", vgg, TrainSettings(**{**SETTINGS.__dict__, "steps": 2}), device="cpu", progress=False)
    assert load_checkpoint(two).step == 2
    resumed = train_styles(None, [], two, vgg, SETTINGS, device="cpu", resume=True, progress=False)
    a, b = _tensors(straight), _tensors(resumed)
    assert load_checkpoint(resumed).step == 3
    assert set(a) == set(b) and any(k.startswith("extra.optim.") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # training changed the network and each style vector away from the identity start
    ck = load_checkpoint(straight)
    assert not torch.equal(ck.styles[0], ck.styles[1])
    preview = cv2.imread(str(straight / "previews" / "step_000002.png"))
    side = preview.shape[1] // 3  # the crop and its 2 styles per row
    assert preview.shape[0] == (1 + 3) * side  # the style images' header row, then the 3 photos' rows
    assert ck.info["settings"]["size"] == 32 and ck.info["styles"][1]["weight"] == 2.0


def test_add_style_changes_only_the_new_vector(data, vgg, tmp_path: Path) -> None:
    content, styles = data
    base = train_styles(content, styles, tmp_path / "base", vgg, SETTINGS, device="cpu", progress=False)
    new_style = tmp_path / "mine.png"
    cv2.imwrite(str(new_style), np.random.default_rng(5).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    out = add_style(base, StyleSpec(new_style, 1.0, "mine"), content, tmp_path / "added", vgg,
                    TrainSettings(steps=3, size=32, batch=2, style_size=48, lr=1e-2, checkpoint_every=3, preview_every=3), device="cpu", progress=False)
    before, after = _tensors(base), _tensors(out)
    for k, v in before.items():
        if k.startswith("net."):
            assert torch.equal(v, after[k]), k
    assert torch.equal(after["styles"][:2], before["styles"])
    assert after["styles"].shape[0] == 3
    ck = load_checkpoint(out)
    assert ck.style_names == ["style0", "style1", "mine"]
    assert not torch.equal(after["styles"][2], before["styles"].mean(0))  # the new vector learned


def test_stability_term_trains(data, vgg, tmp_path: Path) -> None:
    content, styles = data
    s = TrainSettings(**{**SETTINGS.__dict__, "steps": 1, "stability": 10.0, "size": 48, "preview_every": 0})
    out = train_styles(content, styles[:1], tmp_path / "stab", vgg, s, device="cpu", progress=False)
    assert load_checkpoint(out).info["settings"]["stability"] == 10.0


def test_refuses_to_clobber_a_run(data, vgg, tmp_path: Path) -> None:
    content, styles = data
    s = TrainSettings(**{**SETTINGS.__dict__, "steps": 1, "preview_every": 0})
    out = train_styles(content, styles, tmp_path / "run", vgg, s, device="cpu", progress=False)
    before = _tensors(out)
    with pytest.raises(UsageError, match="--resume"):
        train_styles(content, styles, out, vgg, s, device="cpu", progress=False)
    assert all(torch.equal(v, _tensors(out)[k]) for k, v in before.items())


def test_empty_content_folder(tmp_path: Path, data, vgg) -> None:
    _, styles = data
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="no image files"):
        train_styles(tmp_path / "empty", styles, tmp_path / "o", vgg, SETTINGS, device="cpu", progress=False)


# ---------------------------------------------------------------- the command line


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = train_main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case", ["missing_style", "text_style", "tiny_style", "empty_content", "no_vgg", "bad_weight"])
def test_bad_input_exit_2(case: str, data, tmp_path: Path, capsys, monkeypatch) -> None:
    content, styles = data
    monkeypatch.delenv("NST_VGG", raising=False)
    style = str(styles[0].path)
    if case == "missing_style":
        style = str(tmp_path / "nope.jpg")
    elif case == "text_style":
        (tmp_path / "t.jpg").write_text("not an image")
        style = str(tmp_path / "t.jpg")
    elif case == "tiny_style":
        cv2.imwrite(str(tmp_path / "tiny.png"), np.zeros((8, 40, 3), np.uint8))
        style = str(tmp_path / "tiny.png")
    elif case == "empty_content":
        (tmp_path / "empty").mkdir()
        content = tmp_path / "empty"
    elif case == "bad_weight":
        style += ":-1"
    vgg_args = [] if case == "no_vgg" else ["--vgg", str(tmp_path / "no_vgg_needed_before_failure.pth")] if case != "empty_content" else []
    if case == "empty_content":
        pytest.importorskip("safetensors")
        from conftest import REAL_VGG

        if not REAL_VGG.is_file():
            pytest.skip("needs the real VGG file to get past the weights check")
        vgg_args = ["--vgg", str(REAL_VGG)]
    code, err = _run(["--content-dir", str(content), "--styles", style, "--out", str(tmp_path / "out"), *vgg_args, "--steps", "1", "--size", "32"], capsys)
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out" / "checkpoint.json").exists()


def test_cli_end_to_end_with_real_vgg(real_vgg_path: Path, data, tmp_path: Path, capsys) -> None:
    content, styles = data
    out = tmp_path / "run"
    code, err = _run(["--content-dir", str(content), "--styles", f"{styles[0].path}", f"{styles[1].path}:2", "--out", str(out),
                      "--vgg", str(real_vgg_path), "--steps", "2", "--size", "32", "--batch", "2", "--style-size", "48", "-q"], capsys)
    assert code == 0, err
    ck = load_checkpoint(out)
    assert ck.step == 2 and ck.style_names == ["style0", "style1"]
    assert "multi-scale" in ck.info["recipe"]


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version(flag: str) -> None:
    r = subprocess.run([sys.executable, "-c", "from stylecast.export.cli_train import main; main()", flag], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip()


def test_resume_refuses_a_checkpoint_of_another_kind(data, vgg, tmp_path: Path) -> None:
    from stylecast.realtime.errors import CheckpointError

    content, styles = data
    s = TrainSettings(**{**SETTINGS.__dict__, "steps": 1, "preview_every": 0})
    base = train_styles(content, styles, tmp_path / "base", vgg, s, device="cpu", progress=False)
    with pytest.raises(CheckpointError, match=r"not a --add-style checkpoint; resume it with nst-train --out"):
        add_style(base, styles[0], content, base, vgg, s, device="cpu", resume=True, progress=False)
