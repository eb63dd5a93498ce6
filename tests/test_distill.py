"""nst-train --teacher: a fast student distilled from a trained model folder."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import named_vgg_state  # noqa: E402

from stylecast.export.checkpoint import load_checkpoint, load_network_source  # noqa: E402
from stylecast.export.cli_train import main as train_main  # noqa: E402
from stylecast.export.distill import distill  # noqa: E402
from stylecast.export.train_settings import TrainSettings  # noqa: E402

STUDENT = {"channels": 12, "residual_blocks": 1, "factor": 2}
SETTINGS = TrainSettings(steps=3, size=32, batch=3, lr=1e-2, warmup=0, checkpoint_every=100, preview_every=0,
                         arch="fast", arch_config=STUDENT, checkpoint_minutes=0, precision="fp32")


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(4):
        yy, xx = np.mgrid[0:40, 0:48]
        img = np.stack([np.sin(xx / (3 + i)) * 120 + 128, np.cos(yy / (2 + i)) * 120 + 128, (xx * 5 + yy * i) % 256], -1)
        cv2.imwrite(str(folder / f"p{i}.png"), img.astype(np.uint8))
    return folder


def _distance_to_teacher(student_dir: Path, teacher_dir: Path) -> float:
    student, teacher = load_checkpoint(student_dir), load_network_source(teacher_dir)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        return float(np.mean([(student.net(x, student.styles[i : i + 1]) - teacher.net(x, teacher.styles[i : i + 1])).abs().mean()
                              for i in range(len(teacher.style_names))]))


def test_student_learns_every_style_of_the_teacher(tiny_model_dir: Path, photos: Path, tmp_path: Path) -> None:
    distill(tiny_model_dir, photos, tmp_path / "s0", replace(SETTINGS, steps=1, lr=1e-9), device="cpu", progress=False)
    distill(tiny_model_dir, photos, tmp_path / "s", replace(SETTINGS, steps=60), device="cpu", progress=False)
    ckpt = load_checkpoint(tmp_path / "s")
    assert ckpt.style_names == ["alpha", "beta", "gamma"] and ckpt.net.arch_name == "fast"
    assert ckpt.info["mode"] == "distill" and ckpt.info["teacher"] == "tiny"
    before, after = _distance_to_teacher(tmp_path / "s0", tiny_model_dir), _distance_to_teacher(tmp_path / "s", tiny_model_dir)
    assert after < 0.6 * before, (before, after)
    vectors = ckpt.styles
    assert float((vectors[0] - vectors[1]).abs().max()) > 0  # each style its own vector


def test_distill_resume_is_exact(tiny_model_dir: Path, photos: Path, tmp_path: Path) -> None:
    distill(tiny_model_dir, photos, tmp_path / "whole", replace(SETTINGS, steps=4), device="cpu", progress=False)
    distill(tiny_model_dir, photos, tmp_path / "parts", replace(SETTINGS, steps=2), device="cpu", progress=False)
    distill(None, None, tmp_path / "parts", replace(SETTINGS, steps=4), device="cpu", resume=True, progress=False)
    a, b = load_checkpoint(tmp_path / "whole"), load_checkpoint(tmp_path / "parts")
    assert torch.equal(a.styles, b.styles)
    for k, v in a.net.state_dict().items():
        assert torch.equal(v, b.net.state_dict()[k]), k


def test_cli_resume_keeps_the_runs_own_step_target(tiny_model_dir: Path, photos: Path, tmp_path: Path) -> None:
    """--resume without --steps finishes the run at the target it was started with (it used to
    take the default target of a new run, 40,000, and store it in the checkpoint)."""
    out = tmp_path / "r"
    distill(tiny_model_dir, photos, out, replace(SETTINGS, steps=3), device="cpu", progress=False, time_limit=1e-9)
    assert load_checkpoint(out).step == 0
    # (the time limit only keeps a regression from running for hours: the run needs 3 tiny steps)
    assert train_main(["--resume", "--out", str(out), "--device", "cpu", "-q", "--time-limit", "30s"]) == 0
    ckpt = load_checkpoint(out)
    assert ckpt.step == 3 and ckpt.info["settings"]["steps"] == 3
    assert train_main(["--resume", "--out", str(out), "--device", "cpu", "-q", "--steps", "4"]) == 0  # --steps still raises it
    assert load_checkpoint(out).step == 4


def test_cli_styles_with_a_teacher_are_paintings_for_the_painting_weight(tiny_model_dir: Path, photos: Path, tmp_path: Path,
                                                                          capsys) -> None:
    teach = ["--teacher", str(tiny_model_dir), "--content-dir", str(photos), "--out", str(tmp_path / "o")]
    for extra in (["--styles", str(photos / "p0.png")], ["--painting-weight", "10"], ["--add-style", str(photos / "p0.png")]):
        code = train_main([*teach, *extra])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and ("--painting-weight" in err or "--add-style" in err), err
    code = train_main([*teach, "--styles", str(photos / "p0.png:2"), "--painting-weight", "10"])
    assert code == 2 and "--painting-weight sets the weight" in capsys.readouterr().err
    code = train_main(["--teacher", str(tiny_model_dir), "--content-dir", str(photos), "--out", str(tmp_path / "o"),
                       "--arch-config", '{"chanels": 8}'])
    assert code == 2 and "do not fit the fast architecture" in capsys.readouterr().err


def test_distill_previews_have_no_empty_style_row(tiny_model_dir: Path, photos: Path, tmp_path: Path) -> None:
    """Distillation has no style images, so its previews are only the rows of crops: 3 crops, each
    with its 3 styles beside it (a blank header row used to waste a quarter of the sheet)."""
    distill(tiny_model_dir, photos, tmp_path / "p", replace(SETTINGS, steps=2, preview_every=2), device="cpu", progress=False)
    sheet = cv2.imread(str(tmp_path / "p" / "previews" / "step_000002.png"))
    assert sheet.shape == (3 * 32, 4 * 32, 3)


def test_a_distillation_can_start_from_a_shipped_student(tiny_model_dir: Path, photos: Path, tmp_path: Path) -> None:
    """--teacher with --from: the student starts from a model folder's network and its vectors
    (the way to continue weights/fast when the run's checkpoint is gone)."""
    from stylecast.export.onnx_export import export_model_folder
    from stylecast.realtime.errors import UsageError

    distill(tiny_model_dir, photos, tmp_path / "s", replace(SETTINGS, steps=3), device="cpu", progress=False)
    export_model_folder(load_checkpoint(tmp_path / "s"), tmp_path / "student", fp16=False, overwrite=False)
    again = distill(tiny_model_dir, photos, tmp_path / "again", replace(SETTINGS, steps=1, lr=1e-12, arch="johnson"),
                    device="cpu", progress=False, base=tmp_path / "student")
    a, b = load_checkpoint(tmp_path / "s"), load_checkpoint(again)
    assert b.net.arch_name == "fast" and b.info["started_from"] == "student"  # the base's architecture, not --arch
    assert torch.allclose(a.styles, b.styles, atol=1e-6)
    for k, v in a.net.state_dict().items():
        assert torch.allclose(v, b.net.state_dict()[k], atol=1e-6), k
    with pytest.raises(UsageError, match="--resume"):
        distill(tiny_model_dir, photos, tmp_path / "again", replace(SETTINGS, steps=2), device="cpu", progress=False,
                resume=True, base=tmp_path / "student")
    # --arch-config with --from changes what keeps the weights' shapes (the padding), nothing else
    reflect = distill(tiny_model_dir, photos, tmp_path / "reflect", replace(SETTINGS, steps=1, lr=1e-12, arch_config={"reflect": True}),
                      device="cpu", progress=False, base=tmp_path / "student")
    c = load_checkpoint(reflect)
    assert c.net.config()["reflect"] is True and a.net.config()["reflect"] is False
    assert c.net.config() == {**a.net.config(), "reflect": True}
    for k, v in a.net.state_dict().items():
        assert torch.allclose(v, c.net.state_dict()[k], atol=1e-6), k
    with pytest.raises(UsageError, match="does not fit the weights of --from"):
        distill(tiny_model_dir, photos, tmp_path / "wider", replace(SETTINGS, steps=1, arch_config={"channels": 16}),
                device="cpu", progress=False, base=tmp_path / "student")


def test_a_run_from_another_keeps_its_held_out_photos(tiny_model_dir: Path, photos: Path, tmp_path: Path) -> None:
    """Without --holdout, a run --from a run that held photos out holds out the same ones (else
    the evaluation of the continued network would score photos it trained on); --holdout N
    still chooses."""
    first = distill(tiny_model_dir, photos, tmp_path / "a", replace(SETTINGS, steps=1, holdout=1), device="cpu", progress=False)
    kept = load_checkpoint(first).info["held_out_photos"]
    assert len(kept) == 1
    again = distill(tiny_model_dir, photos, tmp_path / "b", replace(SETTINGS, steps=1, holdout=None), device="cpu",
                    progress=False, base=first)
    b = load_checkpoint(again)
    assert b.info["held_out_photos"] == kept and b.info["settings"]["holdout"] == 1
    chosen = distill(tiny_model_dir, photos, tmp_path / "c", replace(SETTINGS, steps=1, holdout=2), device="cpu",
                     progress=False, base=first)
    assert len(load_checkpoint(chosen).info["held_out_photos"]) == 2
    fresh = distill(tiny_model_dir, photos, tmp_path / "d", replace(SETTINGS, steps=1, holdout=None), device="cpu", progress=False)
    assert load_checkpoint(fresh).info["held_out_photos"] == [] and load_checkpoint(fresh).info["settings"]["holdout"] == 0


@pytest.fixture
def vgg_file(tmp_path: Path) -> Path:
    """A random, normalised-format VGG to relu3_1 (the taps the training recipe needs), as a file."""
    from stylecast.export.vgg import VGGFeatures

    path = tmp_path / "vgg.pth"
    torch.save(named_vgg_state(VGGFeatures.random("relu3_1", seed=1)), path)
    return path


def test_texture_term_and_its_grid_guard(tiny_model_dir: Path) -> None:
    """The texture term is the Gram distance to the teacher's output (0 when the student matches
    it); the guard scores a checkerboard of the student's stride in the difference only."""
    from stylecast.export.distill import distill_objective, texture_loss
    from stylecast.export.vgg import VGGFeatures

    teacher = load_network_source(tiny_model_dir)
    objective = distill_objective(teacher, texture_loss(VGGFeatures.random("relu3_1", seed=1), TrainSettings()), 100.0, stride=2)
    x, idx = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2)), torch.tensor([0, 2])
    with torch.no_grad():
        same = teacher.net(x, teacher.styles[idx]).clamp(0, 1)
    _, terms = objective(x, idx, same, teacher.styles[idx], torch.Generator())
    assert float(terms["texture"]) < 1e-9 and float(terms["grid"]) < 1e-6 and float(terms["pixel"]) < 1e-6
    checker = (torch.arange(32) % 2).float().view(1, 1, 1, 32) * 0.1  # +0.1 on odd columns
    total, terms = objective(x, idx, same + checker, teacher.styles[idx], torch.Generator())
    assert float(terms["grid"]) == pytest.approx(0.05, rel=0.05)  # sub-pixel offsets of +-0.05
    assert float(terms["texture"]) > 0 and float(total) > float(terms["pixel"])


def test_distill_with_texture_records_and_resumes_it(tiny_model_dir: Path, photos: Path, tmp_path: Path, vgg_file: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from stylecast.realtime.errors import UsageError

    monkeypatch.delenv("NST_VGG", raising=False)
    with pytest.raises(UsageError, match="no VGG weights"):
        distill(tiny_model_dir, photos, tmp_path / "t", replace(SETTINGS, steps=1), device="cpu", progress=False, texture_weight=10.0)
    whole = distill(tiny_model_dir, photos, tmp_path / "whole", replace(SETTINGS, steps=4), vgg=str(vgg_file),
                    texture_weight=10.0, device="cpu", progress=False)
    ckpt = load_checkpoint(whole)
    assert ckpt.info["texture_weight"] == 10.0 and "texture" in ckpt.info["recipe"]
    distill(tiny_model_dir, photos, tmp_path / "parts", replace(SETTINGS, steps=2), vgg=str(vgg_file), texture_weight=10.0,
            device="cpu", progress=False)
    monkeypatch.setenv("NST_VGG", str(vgg_file))  # the resumed run keeps its texture weight; the VGG comes from $NST_VGG
    distill(None, None, tmp_path / "parts", replace(SETTINGS, steps=4), device="cpu", resume=True, progress=False)
    parts = load_checkpoint(tmp_path / "parts")
    assert torch.equal(ckpt.styles, parts.styles)
    for k, v in ckpt.net.state_dict().items():
        assert torch.equal(v, parts.net.state_dict()[k]), k


def test_focus_draws_the_named_styles_more_often(tiny_model_dir: Path, photos: Path, tmp_path: Path, capsys) -> None:
    """--focus NAME:W: NAME is drawn W times as often; a style never drawn keeps its vector. The
    focus is stored with the run's settings (a resumed run keeps it); a name the run does not
    train, or a weight that is not a positive number, is refused."""
    from stylecast.realtime.errors import UsageError

    out = distill(tiny_model_dir, photos, tmp_path / "f", replace(SETTINGS, steps=3, focus={"gamma": 1e9}), device="cpu",
                  progress=False)
    ckpt = load_checkpoint(out)
    assert ckpt.info["settings"]["focus"] == {"gamma": 1e9}
    ema = ckpt.info["style_loss_ema"]  # no average for a style never drawn: null, not NaN (strict JSON)
    assert ema[0] is None and ema[1] is None and ema[2] > 0
    assert "NaN" not in (out / "checkpoint.json").read_text(encoding="utf-8")
    start = ckpt.net.identity_style(3)  # every fresh vector starts as the identity
    moved = [float((ckpt.styles[i] - start[i]).abs().max()) for i in range(3)]
    assert moved[0] == 0 and moved[1] == 0 and moved[2] > 0, moved
    with pytest.raises(UsageError, match="no style 'delta'"):
        distill(tiny_model_dir, photos, tmp_path / "g", replace(SETTINGS, steps=1, focus={"delta": 2.0}), device="cpu", progress=False)
    capsys.readouterr()  # the library's own logs above (a CLI test before this one may have set them up)
    for bad in ("gamma", "gamma:0", "gamma:x", ":2"):
        code = train_main(["--teacher", str(tiny_model_dir), "--content-dir", str(photos), "--out", str(tmp_path / "o"), "--focus", bad])
        err = capsys.readouterr().err
        assert code == 2 and "--focus" in err and err.count("\n") == 1, err


def test_tune_vectors_moves_only_the_named_styles(tiny_model_dir: Path, photos: Path, tmp_path: Path, capsys) -> None:
    """--tune-vectors NAME: from a trained student, only NAME's vector trains, towards its teacher;
    the network and the other vectors stay bit-identical; a resumed run keeps the setting; it
    needs --from and --teacher."""
    from stylecast.export.onnx_export import export_model_folder
    from stylecast.realtime.errors import UsageError

    distill(tiny_model_dir, photos, tmp_path / "s", replace(SETTINGS, steps=3), device="cpu", progress=False)
    export_model_folder(load_checkpoint(tmp_path / "s"), tmp_path / "student", fp16=False, overwrite=False)
    tuned = replace(SETTINGS, steps=20, lr=5e-2, tune_vectors=["gamma"])
    distill(tiny_model_dir, photos, tmp_path / "t", replace(tuned, steps=10), device="cpu", progress=False, base=tmp_path / "student")
    out = distill(None, None, tmp_path / "t", tuned, device="cpu", progress=False, resume=True)
    a, b = load_checkpoint(tmp_path / "s"), load_checkpoint(out)
    assert b.info["settings"]["tune_vectors"] == ["gamma"] and b.step == 20
    for k, v in a.net.state_dict().items():
        assert torch.equal(v, b.net.state_dict()[k]), k
    assert torch.equal(a.styles[:2], b.styles[:2])
    assert float((a.styles[2] - b.styles[2]).abs().max()) > 0
    teacher = load_network_source(tiny_model_dir)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        target = teacher.net(x, teacher.styles[2:3])
        before, after = ((c.net(x, c.styles[2:3]) - target).abs().mean() for c in (a, b))
    assert after < before, (before, after)
    with pytest.raises(UsageError, match="needs --from"):
        distill(tiny_model_dir, photos, tmp_path / "u", tuned, device="cpu", progress=False)
    with pytest.raises(UsageError, match="no style 'delta'"):
        distill(tiny_model_dir, photos, tmp_path / "v", replace(tuned, tune_vectors=["delta"]), device="cpu", progress=False,
                base=tmp_path / "student")
    capsys.readouterr()
    code = train_main(["--content-dir", str(photos), "--styles", str(photos / "p0.png"), "--out", str(tmp_path / "o"),
                       "--tune-vectors", "gamma"])
    err = capsys.readouterr().err
    assert code == 2 and "--tune-vectors" in err and err.count("\n") == 1, err
    # --resume keeps the run's own choice: another one is refused, not silently dropped
    for flags in (["--tune-vectors", "beta"], ["--focus", "gamma:2"], ["--painting-weight", "5"]):
        code = train_main(["--out", str(tmp_path / "t"), "--resume", "--steps", "21", *flags])
        err = capsys.readouterr().err
        assert code == 2 and flags[0] in err and "--from" in err and err.count("\n") == 1, err
    assert load_checkpoint(tmp_path / "t").step == 20


def test_painting_term_asks_for_the_paintings_texture(tiny_model_dir: Path, photos: Path, tmp_path: Path, vgg_file: Path) -> None:
    """--painting-weight with --styles gamma.png: the student's output is also scored against the
    painting of its style (only the samples whose style has one); recorded, kept on --resume;
    a painting named after no style of the teacher is refused."""
    from stylecast.export.distill import distill_objective, texture_loss
    from stylecast.export.losses import stack_style_targets
    from stylecast.export.vgg import VGGFeatures
    from stylecast.realtime.errors import UsageError

    teacher = load_network_source(tiny_model_dir)
    texture = texture_loss(VGGFeatures.random("relu3_1", seed=1), TrainSettings())
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    painting = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(3))
    grams = stack_style_targets([texture.style_targets(painting)])
    objective = distill_objective(teacher, texture, 0.0, 1, (grams, torch.tensor([-1, -1, 0])), 1000.0)
    with torch.no_grad():
        same = teacher.net(x, teacher.styles[[0, 2]]).clamp(0, 1)
    total, terms = objective(x, torch.tensor([0, 2]), same, teacher.styles[[0, 2]], torch.Generator())
    assert float(terms["pixel"]) < 1e-6 and float(terms["painting"]) > 0 and float(total) > 0  # the teacher is not the painting
    only_gamma = float(terms["painting"]) * 2  # the batch mean: one sample of two has a painting
    _, terms = objective(x[1:], torch.tensor([2]), same[1:], teacher.styles[[2]], torch.Generator())
    assert float(terms["painting"]) == pytest.approx(only_gamma, rel=1e-4)
    _, terms = objective(x[:1], torch.tensor([0]), same[:1], teacher.styles[[0]], torch.Generator())
    assert float(terms["painting"]) == 0

    cv2.imwrite(str(tmp_path / "gamma.png"), (np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8))
    run = replace(SETTINGS, steps=2, tune_vectors=["gamma"])
    distill(tiny_model_dir, photos, tmp_path / "s", replace(SETTINGS, steps=1), device="cpu", progress=False)
    out = distill(tiny_model_dir, photos, tmp_path / "t", run, vgg=str(vgg_file), device="cpu", progress=False,
                  base=tmp_path / "s", paintings={"gamma": tmp_path / "gamma.png"}, painting_weight=1e3)
    info = load_checkpoint(out).info
    assert info["painting_weight"] == 1e3 and Path(info["paintings"]["gamma"]).name == "gamma.png"
    assert "painting of gamma" in info["recipe"]
    assert [s["name"] for s in info["styles"] if s["sha256"]] == ["gamma"]  # the painting is recorded with its hash
    distill(None, None, tmp_path / "t", replace(run, steps=3), vgg=str(vgg_file), device="cpu", progress=False, resume=True)
    assert load_checkpoint(out).info["painting_weight"] == 1e3
    with pytest.raises(UsageError, match="not a style of the teacher"):
        distill(tiny_model_dir, photos, tmp_path / "u", run, vgg=str(vgg_file), device="cpu", progress=False,
                base=tmp_path / "s", paintings={"delta": tmp_path / "gamma.png"}, painting_weight=1e3)
    with pytest.raises(UsageError, match="go together"):
        distill(tiny_model_dir, photos, tmp_path / "v", run, vgg=str(vgg_file), device="cpu", progress=False,
                base=tmp_path / "s", paintings={"gamma": tmp_path / "gamma.png"})
