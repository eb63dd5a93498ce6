"""nst-train for long, bounded runs: schedules, mixed-style batches, time limit, SIGTERM,
precision, held-out photos, warm start from a model folder, nothing of the machine in what ships."""

from __future__ import annotations

import json
import math
import os
import signal
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import TINY_ARCH  # noqa: E402

from stylecast.export import schedule as S  # noqa: E402
from stylecast.export.checkpoint import load_checkpoint, load_network_source  # noqa: E402
from stylecast.export.cli_train import main as train_main  # noqa: E402
from stylecast.export.data import ContentCrops, held_out  # noqa: E402
from stylecast.export.onnx_export import export_model_folder  # noqa: E402
from stylecast.export.train import StyleSpec, TrainSettings, add_style, train_styles  # noqa: E402
from stylecast.export.transformer import JohnsonNet, build_network  # noqa: E402
from stylecast.export.vgg import VGGFeatures  # noqa: E402
from stylecast.realtime.errors import BackendUnavailableError, CheckpointError, UsageError  # noqa: E402

SETTINGS = TrainSettings(steps=4, size=32, batch=4, style_size=48, checkpoint_every=100, preview_every=0,
                         arch_config=TINY_ARCH, warmup=0, checkpoint_minutes=0)


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, list[StyleSpec]]:
    """Six generated content photos and three generated style images of distinct colours."""
    content = tmp_path / "content"
    content.mkdir()
    for i in range(6):
        yy, xx = np.mgrid[0:44, 0:52]
        img = np.stack([np.sin(xx / (3 + i)) * 120 + 128, np.cos(yy / (4 + i)) * 120 + 128, (xx * yy + 9 * i) % 256], -1)
        cv2.imwrite(str(content / f"photo{i}.png"), img.astype(np.uint8))
    styles = []
    for i, colour in enumerate([(40, 40, 220), (220, 60, 40), (40, 200, 60)]):
        p = tmp_path / f"style{i}.png"
        img = np.full((40, 40, 3), colour, np.uint8)
        img[::4] = 255 - img[::4]
        cv2.imwrite(str(p), img)
        styles.append(StyleSpec(p, 1.0))
    return content, styles


@pytest.fixture(scope="module")
def vgg() -> VGGFeatures:
    return VGGFeatures.random("relu3_1", seed=0)


# ----------------------------------------------------------------------------- schedules


def test_learning_rate_warms_up_holds_and_decays() -> None:
    lr = [S.learning_rate(k, 1000, 1e-3, 100, 0.7) for k in range(1001)]
    assert lr[0] == pytest.approx(1e-4) and lr[50] == pytest.approx(5.5e-4)
    assert lr[100] == lr[500] == lr[700] == 1e-3
    assert all(a >= b for a, b in zip(lr[700:], lr[701:], strict=False))  # decays monotonically
    assert lr[1000] == pytest.approx(S.LR_FLOOR * 1e-3)
    assert S.learning_rate(999, 1000, 1e-3, 0, 1.0) == 1e-3  # decay_from 1: no decay


def test_crop_size_changes_late() -> None:
    sizes = [S.crop_size(k, 100, 192, 256, 0.85) for k in range(100)]
    assert sizes[:85] == [192] * 85 and sizes[85:] == [256] * 15
    assert S.crop_size(99, 100, 192, None, 0.85) == 192


@pytest.mark.parametrize("text,seconds", [("2h15m", 8100), ("90m", 5400), ("45s", 45), ("1.5h", 5400), ("30", 30), ("1h30s", 3630)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert S.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "2x", "0", "0m", "h"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        S.parse_duration(text)


def test_precision_choice(monkeypatch) -> None:
    cpu = torch.device("cpu")
    assert S.resolve_precision("fp32", cpu) == "fp32"
    monkeypatch.setattr(S, "bf16_supported", lambda d: False)
    assert S.resolve_precision("auto", cpu) == "fp32"
    with pytest.raises(BackendUnavailableError):
        S.resolve_precision("bf16", cpu)
    monkeypatch.setattr(S, "bf16_supported", lambda d: True)
    assert S.resolve_precision("auto", cpu) == "bf16"


def test_wall_clock() -> None:
    now = [0.0]
    clock = S.WallClock(checkpoint_minutes=1, time_limit=150, clock=lambda: now[0])
    now[0] = 59
    assert not clock.save_due() and not clock.out_of_time()
    now[0] = 61
    assert clock.save_due()
    clock.saved()
    assert not clock.save_due()
    now[0] = 150
    assert clock.out_of_time()


# ----------------------------------------------------------------------------- the network's output layer


def test_sigmoid_output_is_a_colour_and_stored_in_the_config() -> None:
    net = JohnsonNet(**TINY_ARCH)
    with torch.no_grad():
        net.conv_out.conv.bias.fill_(50.0)  # a raw convolution would leave [0, 1] far behind
        y = net(torch.rand(1, 3, 20, 24), net.identity_style())
    assert y.shape == (1, 3, 20, 24) and float(y.min()) >= 0 and float(y.max()) <= 1
    assert net.config()["output"] == "sigmoid"
    linear = build_network("johnson", {**TINY_ARCH, "output": "linear"})
    linear.load_state_dict(net.state_dict())
    with torch.no_grad():
        assert float(linear(torch.rand(1, 3, 20, 24), linear.identity_style()).max()) > 40
    with pytest.raises(UsageError):
        build_network("johnson", {"output": "tanh"})


# ----------------------------------------------------------------------------- mixed-style batches


def test_one_step_trains_several_styles(data, vgg, tmp_path: Path) -> None:
    content, styles = data
    settings = replace(SETTINGS, steps=1, batch=6)
    train_styles(content, styles, tmp_path / "mixed", vgg, settings, device="cpu", progress=False)
    trained = load_checkpoint(tmp_path / "mixed").styles
    start = JohnsonNet(**TINY_ARCH).identity_style(3)
    moved = [bool((trained[i] - start[i]).abs().max() > 0) for i in range(3)]
    assert sum(moved) >= 2, moved  # one style per batch would move exactly one

    train_styles(content, styles, tmp_path / "single", vgg, replace(settings, mixed_styles=False), device="cpu", progress=False)
    single = load_checkpoint(tmp_path / "single").styles
    assert sum(bool((single[i] - start[i]).abs().max() > 0) for i in range(3)) == 1


# ----------------------------------------------------------------------------- bounded runs


def test_time_limit_stops_with_a_checkpoint_and_resume_finishes(data, vgg, tmp_path: Path) -> None:
    content, styles = data
    out = tmp_path / "run"
    train_styles(content, styles, out, vgg, SETTINGS, device="cpu", progress=False, time_limit=1e-9)
    first = load_checkpoint(out)
    assert first.step == 0 and first.info["precision"] in ("bf16", "fp32")
    train_styles(content, [], out, vgg, SETTINGS, device="cpu", resume=True, progress=False)
    assert load_checkpoint(out).step == SETTINGS.steps


def test_sigterm_saves_a_checkpoint(data, vgg, tmp_path: Path, monkeypatch) -> None:
    content, styles = data
    calls = {"n": 0}
    real_batch = ContentCrops.batch

    def batch(self, n, generator, size=None):  # the signal arrives while step 2 is being prepared
        calls["n"] += 1
        if calls["n"] == 4:  # 1: the preview crops, then one call per step
            os.kill(os.getpid(), signal.SIGTERM)
        return real_batch(self, n, generator, size)

    monkeypatch.setattr(ContentCrops, "batch", batch)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        train_styles(content, styles, tmp_path / "run", vgg, replace(SETTINGS, steps=10), device="cpu", progress=False)
    assert load_checkpoint(tmp_path / "run").step == 2
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is put back


def test_final_size_and_precision_are_stored(data, vgg, tmp_path: Path, monkeypatch) -> None:
    content, styles = data
    seen: list[int] = []
    real_batch = ContentCrops.batch
    monkeypatch.setattr(ContentCrops, "batch", lambda self, n, g, size=None: (seen.append(size), real_batch(self, n, g, size))[1])
    settings = replace(SETTINGS, final_size=40, final_size_from=0.5, precision="fp32")
    train_styles(content, styles, tmp_path / "run", vgg, settings, device="cpu", progress=False)
    assert seen[1:] == [32, 32, 40, 40]  # seen[0]: the preview crops
    info = load_checkpoint(tmp_path / "run").info
    assert info["precision"] == "fp32" and info["settings"]["final_size"] == 40


def test_held_out_photos_never_train(data, tmp_path: Path) -> None:
    content, _ = data
    files = sorted(content.iterdir())
    kept = held_out(files, 2)
    assert kept == held_out(list(reversed(files)), 2)  # by name, not by listing order
    crops = ContentCrops(content, 32, holdout=2)
    assert len(crops) == 4 and sorted(crops.held_out_names) == sorted(f.name for f in kept)
    assert not set(crops.held_out_names) & {f.name for f in crops.files}
    with pytest.raises(UsageError):
        held_out(files, 6)


# ----------------------------------------------------------------------------- warm start, shipping


def test_warm_start_and_add_style_from_a_model_folder(data, vgg, tmp_path: Path) -> None:
    content, styles = data
    settings = replace(SETTINGS, holdout=1)
    train_styles(content, styles[:2], tmp_path / "run", vgg, settings, device="cpu", progress=False)
    ckpt = load_checkpoint(tmp_path / "run")
    export_model_folder(ckpt, tmp_path / "model", fp16=False, overwrite=False)

    text = (tmp_path / "model" / "manifest.json").read_text()
    assert str(tmp_path) not in text and str(Path.home()) not in text  # nothing of this machine ships
    assert json.loads(text)["network"]["file"] == "network.safetensors"

    source = load_network_source(tmp_path / "model")
    assert source.style_names == ckpt.style_names
    for k, v in ckpt.net.state_dict().items():
        assert torch.equal(source.net.state_dict()[k], v)

    # a new run from the folder: known styles keep their vectors, a new one starts at the mean
    warm = replace(settings, steps=1, lr=1e-12)  # Adam moves each value by about lr: the start stays visible
    train_styles(content, [styles[1], styles[2]], tmp_path / "warm", vgg, warm, device="cpu", progress=False, base=tmp_path / "model")
    started = load_checkpoint(tmp_path / "warm")
    assert torch.allclose(started.styles[0], ckpt.styles[1], atol=1e-6)
    assert torch.allclose(started.styles[1], ckpt.styles.mean(0), atol=1e-6)
    assert not torch.allclose(started.styles[0], ckpt.styles[0], atol=1e-3)
    assert started.info["warm_start"]["from"] == "model"

    add_style(tmp_path / "model", styles[2], content, tmp_path / "added", vgg, replace(SETTINGS, steps=1), device="cpu", progress=False)
    added = load_checkpoint(tmp_path / "added")
    assert added.style_names == [*ckpt.style_names, "style2"]


def test_model_folder_without_network_weights(data, vgg, tmp_path: Path) -> None:
    content, styles = data
    train_styles(content, styles[:1], tmp_path / "run", vgg, SETTINGS, device="cpu", progress=False)
    export_model_folder(load_checkpoint(tmp_path / "run"), tmp_path / "model", fp16=False, overwrite=False)
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    del manifest["network"]
    (tmp_path / "model" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="no PyTorch weights"):
        load_network_source(tmp_path / "model")


@pytest.mark.parametrize("args,message", [
    (["--time-limit", "soon"], "duration"),
    (["--decay-from", "1.5"], "--decay-from"),
    (["--final-size", "8"], "--final-size"),
    (["--resume", "--from", "x"], "--from starts a new run"),
])
def test_bad_run_options_exit_2(args: list[str], message: str, data, tmp_path: Path, capsys) -> None:
    content, styles = data
    code = train_main(["--content-dir", str(content), "--styles", str(styles[0].path), "--out", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_progress_shows_seconds_per_step_and_whole_run_eta() -> None:
    import io

    from stylecast.realtime.progress import Progress

    now = [100.0]
    bar = Progress(1000, "training", unit="step", enabled=False, stream=io.StringIO(), initial=400)
    bar.start = now[0]
    bar.n = 410
    line = bar.line(now=now[0] + 13.0)  # 10 steps in 13 s, 590 to go
    assert "1.30 s/step" in line and "12:47" in line and "41%" in line
    assert math.isclose(590 * 1.3, 767)
