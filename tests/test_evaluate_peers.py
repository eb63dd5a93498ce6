"""nst-train --evaluate (loss per style on held-out photos) and nst-bench peers (another
project's networks beside ours)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from stylecast.export.checkpoint import load_checkpoint  # noqa: E402
from stylecast.export.evaluate import centre_crops, evaluate_styles, held_out_files  # noqa: E402
from stylecast.export.peers import EngstromNet  # noqa: E402
from stylecast.export.train import StyleSpec  # noqa: E402
from stylecast.export.vgg import VGGFeatures  # noqa: E402
from stylecast.realtime.errors import InputFileError, UsageError  # noqa: E402


def _photos(folder: Path, n: int = 3) -> list[Path]:
    folder.mkdir()
    out = []
    for i in range(n):
        yy, xx = np.mgrid[0:40, 0:56]
        img = np.stack([np.sin(xx / (2 + i)) * 120 + 128, yy * 6, (xx + 3 * i) * 4 % 256], -1).astype(np.uint8)
        out.append(folder / f"p{i}.png")
        cv2.imwrite(str(out[-1]), img)
    return out


def _painting(path: Path, colour: tuple[int, int, int]) -> Path:
    img = np.full((48, 48, 3), colour, np.uint8)
    img[::3] //= 2
    cv2.imwrite(str(path), img)
    return path


def test_evaluate_scores_each_named_style_against_its_painting(tiny_checkpoint: Path, tmp_path: Path) -> None:
    files = _photos(tmp_path / "photos")
    assert held_out_files(tmp_path / "photos", ["p2.png", "p0.png"]) == [files[2], files[0]]
    with pytest.raises(UsageError, match="missing"):
        held_out_files(tmp_path / "photos", ["nope.png"])
    photos = centre_crops(files, 32)
    assert photos.shape == (3, 3, 32, 32)
    source = load_checkpoint(tiny_checkpoint)
    vgg = VGGFeatures.random("relu3_1", seed=0)
    blue = _painting(tmp_path / "alpha.png", (200, 30, 30))
    scores = evaluate_styles(source, photos, [StyleSpec(blue), StyleSpec(_painting(tmp_path / "gamma.png", (20, 200, 20)))], vgg, style_size=48)
    assert [s.name for s in scores] == ["alpha", "gamma"]  # model order, only the styles given
    for s in scores:
        assert s.content > 0 and s.style > 0 and s.style_of_input > 0 and np.isfinite(s.style_ratio)
    # the same network and painting, scored against another painting, gives another number
    (tmp_path / "other").mkdir()
    green = _painting(tmp_path / "other" / "alpha.png", (20, 200, 20))
    other = evaluate_styles(source, photos, [StyleSpec(green)], vgg, style_size=48)
    assert other[0].name == "alpha" and other[0].style != scores[0].style
    with pytest.raises(UsageError, match="no style named"):
        evaluate_styles(source, photos, [StyleSpec(blue, name="delta")], vgg)


def test_evaluate_cli_writes_json(tiny_checkpoint: Path, real_vgg_path: Path, tmp_path: Path, capsys) -> None:
    from stylecast.export.cli_train import main

    _photos(tmp_path / "photos", 4)
    painting = _painting(tmp_path / "beta.png", (30, 30, 200))
    code = main(["--evaluate", "--from", str(tiny_checkpoint), "--content-dir", str(tmp_path / "photos"), "--holdout", "2",
                 "--styles", str(painting), "--size", "48", "--out", str(tmp_path / "eval"), "--vgg", str(real_vgg_path)])
    assert code == 0
    record = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert len(record["photos"]) == 2 and [s["name"] for s in record["styles"]] == ["beta"]
    assert "beta" in capsys.readouterr().out
    # no recorded held-out photos and no --holdout: one clear error
    code = main(["--evaluate", "--from", str(tiny_checkpoint), "--content-dir", str(tmp_path / "photos"),
                 "--styles", str(painting), "--out", str(tmp_path / "eval2"), "--vgg", str(real_vgg_path)])
    assert code == 2 and "--holdout" in capsys.readouterr().err
    # a run that recorded its own held-out photos: scored on those, or on --holdout N of another folder
    from stylecast.export.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(tiny_checkpoint)
    save_checkpoint(tmp_path / "recorded", ckpt.net, ckpt.styles, ckpt.style_names, {"step": 0, "held_out_photos": ["gone.jpg"]})
    argv = ["--evaluate", "--from", str(tmp_path / "recorded"), "--content-dir", str(tmp_path / "photos"), "--styles", str(painting),
            "--size", "48", "--vgg", str(real_vgg_path)]
    assert main([*argv, "--out", str(tmp_path / "eval3")]) == 2 and "gone.jpg" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "eval4"), "--holdout", "3"]) == 0
    assert len(json.loads((tmp_path / "eval4" / "evaluation.json").read_text())["photos"]) == 3
    # an evaluation already there is kept unless --overwrite
    before = (tmp_path / "eval4" / "evaluation.json").read_bytes()
    assert main([*argv, "--out", str(tmp_path / "eval4"), "--holdout", "2"]) == 2
    assert "--overwrite" in capsys.readouterr().err and (tmp_path / "eval4" / "evaluation.json").read_bytes() == before
    assert main([*argv, "--out", str(tmp_path / "eval4"), "--holdout", "2", "--overwrite"]) == 0
    assert len(json.loads((tmp_path / "eval4" / "evaluation.json").read_text())["photos"]) == 2
    assert sorted(p.name for p in (tmp_path / "eval4").iterdir()) == ["evaluation.json"]  # no temporary left


# ----------------------------------------------------------------------------- peers

_HEAD = [(9, 9, 3, 32), (32,), (32,), (3, 3, 32, 64), (64,), (64,), (3, 3, 64, 128), (128,), (128,)]


def _engstrom_dump(folder: Path, seed: int = 0) -> Path:
    """A random checkpoint in the deeplearn.js layout of lengstrom/fast-style-transfer."""
    rng = np.random.default_rng(seed)
    shapes: list[tuple[int, ...]] = list(_HEAD)
    for _ in range(5):
        shapes += [(3, 3, 128, 128), (128,), (128,)] * 2
    shapes += [(3, 3, 64, 128), (64,), (64,), (3, 3, 32, 64), (32,), (32,), (9, 9, 32, 3), (3,), (3,)]
    folder.mkdir(parents=True)
    manifest = {}
    for i, shape in enumerate(shapes):
        name = f"Variable_{i}" if i else "Variable"
        scale = 1.0 if len(shape) == 1 and i % 3 == 2 else 0.05  # IN scales near 1, the rest small
        value = (rng.normal(1.0 if scale == 1.0 else 0.0, 0.05, shape)).astype("<f4")
        value.tofile(folder / name)
        manifest[name] = {"filename": name, "shape": list(shape)}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_engstrom_network_loads_a_dump_and_keeps_the_size(tmp_path: Path) -> None:
    net = EngstromNet(_engstrom_dump(tmp_path / "wave"))
    for h, w in ((32, 32), (37, 53)):
        with torch.no_grad():
            y = net(torch.rand(1, 3, h, w))
        assert y.shape == (1, 3, h, w) and float(y.min()) >= 0 and float(y.max()) <= 1
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{")
    with pytest.raises(InputFileError):
        EngstromNet(tmp_path / "broken")


def test_bench_peers_sheet_and_table(tiny_model_dir: Path, real_vgg_path: Path, tmp_path: Path, capsys) -> None:
    import av

    from stylecast.realtime.cli.bench import main

    _engstrom_dump(tmp_path / "peers" / "theirs")
    (tmp_path / "paintings").mkdir()
    _painting(tmp_path / "paintings" / "beta.jpg", (30, 30, 200))
    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(6):
            img = np.full((48, 64, 3), 40 * i, np.uint8)
            img[:, ::8] = 255
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")))
        out.mux(stream.encode())
    sheet = tmp_path / "sheet.png"
    code = main(["peers", "--model", str(tiny_model_dir), "--device", "cpu", "--peers", str(tmp_path / "peers"),
                 "--pairs", "beta=theirs", "--paintings", str(tmp_path / "paintings"), "--clips", str(clip),
                 "--frame-side", "64", "--vgg", str(real_vgg_path), "--sheet", str(sheet)])
    assert code == 0
    picture = cv2.imread(str(sheet))
    assert picture is not None and picture.shape[0] == 3 * 48  # the frames, ours, the peer's
    assert "beta" in capsys.readouterr().out
    code = main(["peers", "--model", str(tiny_model_dir), "--peers", str(tmp_path / "peers"), "--pairs", "beta=missing",
                 "--paintings", str(tmp_path / "paintings"), "--clips", str(clip), "--vgg", str(real_vgg_path)])
    assert code == 2
