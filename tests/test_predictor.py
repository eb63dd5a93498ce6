"""The style-prediction network: shapes, the held-out check, training with exact resume,
joint training, export parity, add-style from a given vector, and nst-train-predictor's bad input."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from conftest import TINY_ARCH, shared_data  # noqa: E402
from test_style_images import painting, photo  # noqa: E402

from stylecast.export.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from stylecast.export.cli_style_train import main as train_predictor_main  # noqa: E402
from stylecast.export.onnx_export import PREDICTOR_TOLERANCE, PredictorWrapper  # noqa: E402
from stylecast.export.predictor import StylePredictor, load_predictor  # noqa: E402
from stylecast.export.predictor_corpus import difference_hash, select_corpus  # noqa: E402
from stylecast.export.predictor_train import PredictorSettings, train_predictor  # noqa: E402
from stylecast.export.train import StyleSpec, TrainSettings, add_style, train_styles  # noqa: E402
from stylecast.export.transformer import build_network  # noqa: E402
from stylecast.export.vgg import VGGFeatures  # noqa: E402
from stylecast.realtime import contract as C  # noqa: E402
from stylecast.realtime.errors import CheckpointError, InputFileError, UsageError  # noqa: E402
from stylecast.realtime.model_folder import load_model_folder, sha256_file  # noqa: E402

SETTINGS = PredictorSettings(steps=3, size=32, batch=2, side=64, hidden=16, checkpoint_every=100, preview_every=0)


@pytest.fixture(scope="module")
def vgg() -> VGGFeatures:
    return VGGFeatures.random("relu3_1", seed=0)  # explicit opt-in: the tests don't judge looks


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Path]:
    """Generated content photos, a style corpus (one file a renamed copy of a held-out
    painting) and a held-out folder of two paintings."""
    content, corpus, held = tmp_path / "content", tmp_path / "corpus", tmp_path / "heldout"
    for d in (content, corpus, held):
        d.mkdir()
    for i in range(3):
        photo(content / f"photo{i}.png", 48 + 4 * i, 40)
    for i in range(4):
        painting(corpus / f"{i:05d}.png", 80 + 8 * i, 72, seed=i)
    painting(held / "starry.png", 90, 70, seed=11)
    painting(held / "wave.png", 70, 90, seed=12)
    shutil.copy(held / "wave.png", corpus / "00099.png")  # the same bytes under another name
    return {"content": content, "corpus": corpus, "heldout": held}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, vgg: VGGFeatures) -> Path:
    """A checkpoint trained one step on two generated styles (so it records their images). Read-only."""
    tmp = tmp_path_factory.mktemp("base")
    (tmp / "content").mkdir()
    for i in range(2):
        photo(tmp / "content" / f"photo{i}.png", 48, 40 + 4 * i)
    styles = [StyleSpec(painting(tmp / f"style{i}.png", 64, 64, seed=20 + i)) for i in range(2)]
    settings = TrainSettings(steps=1, size=32, batch=2, style_size=64, preview_every=0, arch_config=TINY_ARCH)
    return train_styles(tmp / "content", styles, tmp / "base", vgg, settings, device="cpu", progress=False)


def _tensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "checkpoint.safetensors"))


# ---------------------------------------------------------------- the network


def test_untrained_predictor_gives_its_base_and_any_size_works(vgg: VGGFeatures) -> None:
    net = build_network("johnson", TINY_ARCH)
    base = net.identity_style(1)[0] + 0.1
    p = StylePredictor(vgg, base, hidden=16).eval()
    assert p.stat_dim == 2 * 3 * (64 + 128 + 256)
    with torch.no_grad():
        for h, w in ((64, 64), (71, 130)):
            out = p(torch.rand(2, 3, h, w))
            assert out.shape == (2, net.style_dim) and torch.equal(out, base.expand(2, -1))
        p.head.weight.normal_(0, 0.1)
        a, b = p(torch.rand(1, 3, 64, 64)), p(torch.rand(1, 3, 64, 64) * 0.3)
        assert (a - b).abs().max() > 1e-3
    with pytest.raises(UsageError, match="H, W >= 64"):
        p(torch.rand(1, 3, 63, 100))
    assert not any(q.requires_grad for q in p.vgg.parameters())  # the VGG stays frozen
    assert len(p.vgg.taps) == 5 and p.vgg.taps[-1] == "relu3_1"  # truncated copy: conv1_1 .. conv3_1


# ---------------------------------------------------------------- the held-out set


def test_held_out_images_never_reach_the_training_list(tmp_path: Path, data: dict[str, Path]) -> None:
    corpus, held = data["corpus"], data["heldout"]
    img = cv2.imread(str(held / "starry.png"))
    cv2.imwrite(str(corpus / "00100.jpg"), cv2.resize(img, (180, 140)))  # re-encoded and rescaled
    painting(corpus / "Starry.jpg", seed=30)  # other pixels, the same name
    selection = select_corpus(corpus, [held])
    names = {p.name for p in selection.files}
    assert names == {"00000.png", "00001.png", "00002.png", "00003.png"}
    reasons = {p.name: why for p, why in selection.excluded}
    assert reasons["00099.png"] == "same bytes as held-out wave.png"
    assert reasons["Starry.jpg"] == "same name as held-out starry.png"
    assert reasons["00100.jpg"] == "looks like held-out starry.png"
    assert select_corpus(corpus).files == tuple(sorted(corpus.iterdir()))  # nothing held out: everything
    with pytest.raises(InputFileError):
        select_corpus(corpus, [tmp_path / "missing"])


def test_real_corpus_never_contains_the_held_out_paintings() -> None:
    corpus, held = shared_data("style_corpus"), shared_data("styles")
    selection = select_corpus(corpus, [held])
    held_files = sorted(p for p in held.iterdir() if p.suffix == ".jpg")
    assert len(held_files) == 24 and len(selection.heldout) == 24
    held_hashes = {sha256_file(p) for p in held_files}
    held_names = {p.stem.lower() for p in held_files}
    assert len(selection.files) > 2400
    for f in selection.files:
        assert sha256_file(f) not in held_hashes, f
        assert f.stem.lower() not in held_names, f
    looks = [difference_hash(p) for p in held_files]
    for f in selection.files[::50]:  # a sample: the full look check ran inside select_corpus
        h = difference_hash(f)
        assert h is not None and all(min((h[0] ^ a).bit_count(), (h[0] ^ b).bit_count()) > 6 for a, b in looks)


# ---------------------------------------------------------------- training


def test_three_steps_then_resume_equals_uninterrupted(tmp_path: Path, data: dict[str, Path], base: Path, vgg: VGGFeatures) -> None:
    kw = {"heldout": [data["heldout"]], "device": "cpu", "progress": False}
    straight = train_predictor(base, data["corpus"], data["content"], tmp_path / "straight", vgg,
                               PredictorSettings(**{**SETTINGS.__dict__, "preview_every": 3}), **kw)
    two = train_predictor(base, data["corpus"], data["content"], tmp_path / "resumed", vgg,
                          PredictorSettings(**{**SETTINGS.__dict__, "steps": 2}), **kw)
    assert load_checkpoint(two).step == 2
    resumed = train_predictor(None, None, None, two, vgg, SETTINGS, device="cpu", resume=True, progress=False)
    assert [e["step"] for e in load_checkpoint(resumed).info["heldout_eval"]] == [0, 2, 3]
    a, b = _tensors(straight), _tensors(resumed)
    assert set(a) == set(b) and any(k.startswith("extra.predictor.") for k in a) and any(k.startswith("extra.optim.") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    before = _tensors(base)
    for k, v in before.items():  # frozen: the network and the named styles are bit-identical
        if k.startswith("net.") or k == "styles":
            assert torch.equal(v, a[k]), k
    ck = load_checkpoint(straight)
    assert ck.step == 3 and ck.info["mode"] == "predictor" and ck.style_names == ["style0", "style1"]
    predictor = load_predictor(ck)
    assert predictor is not None and predictor.style_dim == ck.net.style_dim
    assert predictor.head.weight.abs().max() > 0  # it learned (the last layer starts at zero)
    corpus = ck.info["corpus"]
    assert corpus["files"] == 4 and ["00099.png", "same bytes as held-out wave.png"] in corpus["excluded"]
    assert {h["name"] for h in ck.info["heldout_files"]} == {"starry.png", "wave.png"}
    assert [e["step"] for e in ck.info["heldout_eval"]] == [0, 3]  # the baseline, then every checkpoint
    assert set(ck.info["heldout_eval"][0]) == {"step", "content", "style", "total"}
    assert (straight / "previews" / "step_000003.png").is_file()


def test_joint_training_changes_the_network_and_repredicts_the_styles(tmp_path: Path, data: dict[str, Path], base: Path,
                                                                       vgg: VGGFeatures) -> None:
    s = PredictorSettings(**{**SETTINGS.__dict__, "steps": 1, "joint": True, "preview_every": 0})
    out = train_predictor(base, data["corpus"], data["content"], tmp_path / "joint", vgg, s, device="cpu", progress=False)
    before, after = _tensors(base), _tensors(out)
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("net."))
    ck = load_checkpoint(out)
    predictor = load_predictor(ck)
    from stylecast.export.tensors import bgr_to_tensor
    from stylecast.realtime.style_images import predictor_input

    for i, name in enumerate(ck.style_names):
        image = cv2.imread(ck.info["style_sources"][name])
        with torch.no_grad():
            want = predictor(bgr_to_tensor(predictor_input(image, s.side)))[0]
        assert torch.allclose(ck.styles[i], want, atol=1e-6)


def test_joint_training_needs_the_style_images(tmp_path: Path, data: dict[str, Path], tiny_checkpoint: Path, vgg: VGGFeatures) -> None:
    s = PredictorSettings(**{**SETTINGS.__dict__, "steps": 1, "joint": True})
    with pytest.raises(UsageError, match="re-predicts the named styles"):
        train_predictor(tiny_checkpoint, data["corpus"], data["content"], tmp_path / "j", vgg, s, device="cpu", progress=False)
    assert not (tmp_path / "j" / "checkpoint.json").exists()


def test_resume_refuses_other_checkpoints(tmp_path: Path, base: Path, vgg: VGGFeatures) -> None:
    with pytest.raises(CheckpointError, match="not a style-predictor checkpoint"):
        train_predictor(None, None, None, base, vgg, SETTINGS, device="cpu", resume=True, progress=False)
    with pytest.raises(UsageError, match="--resume"):
        train_predictor(base, tmp_path, tmp_path, base, vgg, SETTINGS, device="cpu", progress=False)


# ---------------------------------------------------------------- export


def test_exported_predictor_matches_pytorch(tiny_predictor_model_dir: Path, tiny_predictor_checkpoint: Path) -> None:
    model = load_model_folder(tiny_predictor_model_dir)
    assert model.manifest["predictor"] == C.PREDICTOR_GRAPH
    entry = model.manifest["files"][C.PREDICTOR_GRAPH]
    assert entry["sha256"] == sha256_file(model.predictor) and entry["bytes"] < 8 * 2**20
    predictor = load_predictor(load_checkpoint(tiny_predictor_checkpoint))
    session = ort.InferenceSession(str(model.predictor), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert meta[C.META_PREDICTOR_SIDE] == "256" and meta[C.META_STYLE_DIM] == str(model.style_dim)
    rng = np.random.default_rng(0)
    for h, w in ((64, 64), (77, 203), (256, 171)):
        image = rng.integers(0, 256, (1, h, w, 3), dtype=np.uint8)
        got = session.run(None, {C.INPUT_STYLE_IMAGE: image})[0]
        with torch.no_grad():
            want = PredictorWrapper(predictor)(torch.from_numpy(image)).numpy()
        assert got.dtype == np.float32 and got.shape == (1, model.style_dim)
        assert np.abs(got - want).max() <= PREDICTOR_TOLERANCE


def test_add_style_starts_from_a_given_vector(tmp_path: Path, data: dict[str, Path], base: Path, vgg: VGGFeatures) -> None:
    start = torch.full((load_checkpoint(base).net.style_dim,), 0.5)
    s = TrainSettings(steps=1, size=32, batch=1, style_size=64, lr=1e-2, checkpoint_every=1, preview_every=0)
    out = add_style(base, StyleSpec(painting(tmp_path / "new.png", seed=40), 1.0, "new"), data["content"], tmp_path / "added",
                    vgg, s, device="cpu", progress=False, init_vector=start)
    learned = load_checkpoint(out).styles[-1]
    assert 0 < (learned - start).abs().max() <= 1.05e-2  # one Adam step of lr from the given start
    with pytest.raises(UsageError, match="initial style vector"):
        add_style(base, StyleSpec(tmp_path / "new.png", 1.0, "n2"), data["content"], tmp_path / "bad", vgg, s,
                  device="cpu", progress=False, init_vector=torch.zeros(3))


# ---------------------------------------------------------------- the command line


@pytest.mark.parametrize("case", ["no_from", "missing_corpus", "empty_heldout", "bad_side", "no_vgg"])
def test_cli_bad_input_exit_2(case: str, tmp_path: Path, data: dict[str, Path], tiny_checkpoint: Path,
                              capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NST_VGG", raising=False)
    args = ["--from", str(tiny_checkpoint), "--corpus", str(data["corpus"]), "--content-dir", str(data["content"]),
            "--out", str(tmp_path / "out"), "--vgg", str(tmp_path / "missing_vgg.pth"), "--steps", "1"]
    if case == "no_from":
        args = args[2:]
    elif case == "missing_corpus":
        args[3] = str(tmp_path / "nope")
    elif case == "empty_heldout":
        (tmp_path / "empty").mkdir()
        args += ["--heldout", str(tmp_path / "empty")]
    elif case == "bad_side":
        args += ["--side", "32"]
    elif case == "no_vgg":
        args = args[:-4] + ["--steps", "1"]
    assert train_predictor_main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_cli_end_to_end_with_real_vgg(real_vgg_path: Path, tmp_path: Path, data: dict[str, Path], base: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code = train_predictor_main(["--from", str(base), "--corpus", str(data["corpus"]), "--content-dir", str(data["content"]),
                                 "--out", str(out), "--vgg", str(real_vgg_path), "--steps", "2", "--size", "32", "--side", "64",
                                 "--batch", "2", "--hidden", "16", "--preview-every", "0", "-q"])
    assert code == 0, capsys.readouterr().err
    assert "nst-export" in capsys.readouterr().out
    ck = load_checkpoint(out)
    assert ck.step == 2 and load_predictor(ck).vgg.format == "normalised"


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version(flag: str) -> None:
    r = subprocess.run([sys.executable, "-c", "from stylecast.export.cli_style_train import main; main()", flag],
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0 and r.stdout.strip()


def test_checkpoint_without_predictor_record(tmp_path: Path) -> None:
    net = build_network("johnson", TINY_ARCH)
    save_checkpoint(tmp_path / "c", net, net.identity_style(1), ["a"], {"step": 0})
    assert load_predictor(load_checkpoint(tmp_path / "c")) is None
