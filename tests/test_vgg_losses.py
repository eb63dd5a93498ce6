"""VGG loading (both formats, errors) and the perceptual loss formulas."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from conftest import named_vgg_state  # noqa: E402

from stylecast.export import losses as L  # noqa: E402
from stylecast.export.vgg import (  # noqa: E402
    ENV_VGG,
    VGGFeatures,
    _layer_plan,
    download_vgg,
    load_vgg,
    resolve_vgg_path,
)
from stylecast.realtime.errors import BackendUnavailableError, InputFileError, UsageError  # noqa: E402

# ----------------------------------------------------------------------------- formulas


def test_gram_of_known_tensor() -> None:
    f = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, 1.0]]]])  # [1, 2, 2, 2]
    # c0.c0 = 30, c0.c1 = 6, c1.c1 = 2, divided by C*H*W = 8
    assert torch.allclose(L.gram(f), torch.tensor([[[3.75, 0.75], [0.75, 0.25]]]))


def test_grid_offsets_measure_a_pixel_shuffle_checkerboard() -> None:
    """A pattern repeating every 4 pixels scores its mean absolute offset; a smooth ramp, a
    pattern of another period and an offset the same at every sub-pixel score (almost) 0."""
    offsets = torch.tensor([0.1, -0.1, 0.05, -0.05]).repeat(4).view(4, 4)  # mean 0, mean |.| 0.075
    ramp = torch.linspace(0, 0.25, 64).view(1, 1, 1, 64).expand(2, 3, 64, 64)
    checker = ramp + offsets.repeat(16, 16)
    assert float(L.grid_offsets(checker, 4)) == pytest.approx(0.075, abs=6e-3)
    assert float(L.grid_offsets(ramp, 4)) < 5e-3
    assert float(L.grid_offsets(ramp + 0.2, 4)) < 5e-3
    stripes = ramp + 0.1 * (torch.arange(64) % 3 == 0).float()  # period 3: no fixed offset per 4x4 position
    assert float(L.grid_offsets(stripes, 4)) < 0.2 * float(L.grid_offsets(checker, 4))
    x = checker.clone().requires_grad_()
    L.grid_offsets(x, 4).backward()
    assert float(x.grad.abs().sum()) > 0  # a loss term: it pushes the pattern out


def test_content_and_tv_by_hand() -> None:
    a = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    assert L.content_loss(a, torch.zeros_like(a)).item() == pytest.approx((1 + 4 + 9 + 16) / 4)
    x = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    # vertical diffs 2, 3 -> mean sq 6.5; horizontal 1, 2 -> 2.5
    assert L.tv_loss(x).item() == pytest.approx(9.0)
    assert L.tv_loss(torch.ones(1, 3, 5, 5)).item() == 0.0


def test_style_loss_broadcast_and_shape_check() -> None:
    g = torch.rand(3, 4, 4)
    t = torch.rand(1, 4, 4)
    assert L.style_loss(g, t).item() == pytest.approx(L.style_loss(g, t.expand(3, 4, 4)).item())
    with pytest.raises(ValueError):
        L.style_loss(g, torch.rand(2, 4, 4))


def test_pyramid_levels() -> None:
    x = torch.rand(1, 3, 32, 24)
    levels = L.pyramid(x, 3)
    assert [tuple(p.shape[-2:]) for p in levels] == [(32, 24), (16, 12), (8, 6)]
    assert levels[2][0, 0, 0, 0].item() == pytest.approx(x[0, 0, :4, :4].mean().item(), abs=1e-6)
    assert len(L.pyramid(x, 1)) == 1


def test_choose_recipe() -> None:
    truncated = ("relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1")
    recipe, name = L.choose_recipe(truncated)
    assert recipe is L.TRUNCATED_MULTISCALE and "multi-scale" in name
    assert recipe.pyramid_levels == 3 and recipe.style_weight == 1e4 * recipe.content_weight
    full = VGGFeatures.random("relu5_1", fmt="torchvision").taps
    recipe, name = L.choose_recipe(full)
    assert recipe is L.GATYS_FULL and set(recipe.style_layers) == {"relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"}
    with pytest.raises(UsageError):
        L.choose_recipe(("relu1_1", "relu2_1"))


def test_recipe_overrides_and_validation() -> None:
    r = L.TRUNCATED_MULTISCALE.replace(pyramid_levels=1, style_layers=L.parse_layer_weights("relu1_1:1, relu3_1:0.5"))
    assert r.pyramid_levels == 1 and r.style_layers == {"relu1_1": 1.0, "relu3_1": 0.5}
    assert L.TRUNCATED_MULTISCALE.pyramid_levels == 3  # presets unchanged
    assert L.parse_layer_weights("relu2_1") == {"relu2_1": 1.0}
    for bad in ("relu1_1:x", "conv1_1:1", ","):
        with pytest.raises(UsageError):
            L.parse_layer_weights(bad)
    for changes in ({"style_weight": -1.0}, {"pyramid_levels": 0}, {"tv_weight": float("nan")}):
        with pytest.raises(UsageError):
            L.TRUNCATED_MULTISCALE.replace(**changes)


def test_perceptual_loss_batched_per_sample_styles() -> None:
    vgg = VGGFeatures.random("relu3_1", seed=1)
    loss = L.PerceptualLoss(vgg, L.TRUNCATED_MULTISCALE)
    g = torch.Generator().manual_seed(0)
    content, out = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    styles = [loss.style_targets(torch.rand(1, 3, 40, 40, generator=g)) for _ in range(2)]
    assert set(styles[0]) == {(k, t) for k in range(3) for t in ("relu1_1", "relu2_1", "relu3_1")}
    stacked = L.stack_style_targets(styles)
    both = loss(out, content, stacked)
    assert set(both) == {"content", "style", "tv", "total", "style_per_sample"}
    singles = [loss(out[i : i + 1], content[i : i + 1], styles[i]) for i in range(2)]
    # style/content are means over the batch, so the batch equals the mean of the singles
    for key in ("content", "style"):
        assert both[key].item() == pytest.approx((singles[0][key] + singles[1][key]).item() / 2, rel=1e-4)
    for i in range(2):  # each sample's own style loss, against its own target
        assert both["style_per_sample"][i].item() == pytest.approx(singles[i]["style"].item(), rel=1e-4)
    # per-sample weights: the style term is the mean of weight * loss
    weighted = loss(out, content, stacked, torch.tensor([3.0, 0.5]))
    want = (3.0 * singles[0]["style"] + 0.5 * singles[1]["style"]).item() / 2
    assert weighted["style"].item() == pytest.approx(want, rel=1e-4)
    picked = L.select_style_targets(stacked, [1, 1])
    assert picked[(0, "relu1_1")].shape[0] == 2
    shared = loss(out, content, styles[0])  # [1, C, C] broadcast over the batch
    assert torch.isfinite(shared["total"])
    same = loss(content[:1], content[:1], loss.style_targets(content[:1]))
    assert same["content"].item() == 0.0 and same["style"].item() == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(UsageError):
        L.PerceptualLoss(vgg, L.GATYS_FULL)  # relu4_2 etc. missing
    with pytest.raises(UsageError):
        loss(torch.rand(1, 3, 3, 3), None, styles[0])  # too small for relu3_1


# ----------------------------------------------------------------------------- VGG


def test_real_file_sanity_means(real_vgg) -> None:
    assert real_vgg.format == "normalised" and real_vgg.taps == ("relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1")
    feats = real_vgg.features(torch.full((1, 3, 64, 64), 0.5), {"relu1_1", "relu2_1", "relu3_1"})
    assert tuple(feats["relu3_1"].shape) == (1, 256, 16, 16)
    for tap, expected in (("relu1_1", 0.243200), ("relu2_1", 0.140504), ("relu3_1", 0.101456)):
        assert feats[tap].mean().item() == pytest.approx(expected, abs=1e-4)
    assert all(not p.requires_grad for p in real_vgg.parameters())


def _torchvision_state_dict(arch: str, n_convs: int | None = None) -> dict:
    sd = {}
    convs = [s for s in _layer_plan(arch) if s is not None][:n_convs]
    for s in convs:
        sd[f"features.{s.tv_index}.weight"] = torch.zeros(s.out_ch, s.in_ch, 3, 3)
        sd[f"features.{s.tv_index}.bias"] = torch.zeros(s.out_ch)
    sd["classifier.0.weight"] = torch.zeros(4, 4)  # ignored
    return sd


@pytest.mark.parametrize(("arch", "last"), [("vgg19", "relu5_4"), ("vgg16", "relu5_3")])
def test_torchvision_format_loads(tmp_path: Path, arch: str, last: str) -> None:
    path = tmp_path / f"{arch}.pth"
    torch.save(_torchvision_state_dict(arch), path)
    vgg = load_vgg(path)
    assert (vgg.format, vgg.arch) == ("torchvision", arch)
    assert "relu5_1" in vgg.taps and "relu4_2" in vgg.taps and vgg.taps[-1] == last
    assert vgg.features(torch.rand(1, 3, 16, 16), ["relu5_1"])["relu5_1"].shape == (1, 512, 1, 1)


def test_truncated_torchvision_and_sequential_normalised(tmp_path: Path) -> None:
    path = tmp_path / "short.pth"
    torch.save(_torchvision_state_dict("vgg19", 4), path)
    assert load_vgg(path).taps[-1] == "relu2_2"
    # The same weights under the AdaIN/WCT Sequential keys and under the named keys.
    ref = VGGFeatures.random("relu2_1", seed=3)
    named = named_vgg_state(ref)
    seq = {"0.weight": ref.preproc.weight, "0.bias": ref.preproc.bias}
    for s in [s for s in _layer_plan("vgg19") if s is not None][:3]:
        conv = ref.convs[s.name]
        seq |= {f"{s.norm_index}.weight": conv.weight, f"{s.norm_index}.bias": conv.bias}
    assert sorted(k for k in seq if k.endswith("weight")) == ["0.weight", "2.weight", "5.weight", "9.weight"]
    torch.save(seq, tmp_path / "seq.pth")
    torch.save(named, tmp_path / "named.pth")
    x = torch.rand(1, 3, 20, 20)
    a = load_vgg(tmp_path / "seq.pth").features(x, ["relu2_1"])["relu2_1"]
    b = load_vgg(tmp_path / "named.pth").features(x, ["relu2_1"])["relu2_1"]
    assert torch.equal(a, b) and torch.allclose(a, ref.features(x, ["relu2_1"])["relu2_1"])


def test_bad_files_raise_input_file_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.pth"
    text.write_text("these are not weights\n")
    foreign = tmp_path / "foreign.pth"
    torch.save({"linear.weight": torch.zeros(2, 2)}, foreign)
    bad_shape = tmp_path / "shape.pth"
    sd = _torchvision_state_dict("vgg19", 2)
    sd["features.2.weight"] = torch.zeros(64, 64, 5, 5)
    torch.save(sd, bad_shape)
    gap = tmp_path / "gap.pth"
    sd = _torchvision_state_dict("vgg19", 3)
    del sd["features.2.weight"], sd["features.2.bias"]
    torch.save(sd, gap)
    nan = tmp_path / "nan.pth"
    sd = _torchvision_state_dict("vgg19", 1)
    sd["features.0.bias"][0] = float("nan")
    torch.save(sd, nan)
    for path in (tmp_path / "missing.pth", tmp_path, text, foreign, bad_shape, gap, nan):
        with pytest.raises(InputFileError) as err:
            load_vgg(path)
        assert str(path) in str(err.value)


def test_resolve_vgg_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError) as err:
        resolve_vgg_path(None, env={})
    msg = str(err.value)
    assert "vgg19-dcbb9e9d.pth" in msg and ENV_VGG in msg and "--vgg" in msg and "download:vgg19" in msg
    assert resolve_vgg_path(None, env={ENV_VGG: "/x/y.pth"}) == Path("/x/y.pth")
    assert resolve_vgg_path("/a.pth", env={ENV_VGG: "/x/y.pth"}) == Path("/a.pth")
    with pytest.raises(UsageError):
        resolve_vgg_path("download:vgg11", env={})

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(BackendUnavailableError) as err:
        download_vgg("vgg19", cache_dir=tmp_path / "cache")
    assert "network unreachable" in str(err.value) and "--vgg" in str(err.value)
    assert list((tmp_path / "cache").iterdir()) == []  # no partial file left


def test_random_constructor_is_frozen_and_explicit() -> None:
    vgg = VGGFeatures.random("relu2_1", seed=0, pool="avg")
    vgg.train()
    assert not vgg.training and vgg.taps[-1] == "relu2_1"
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    vgg.features(x, ["relu2_1"])["relu2_1"].sum().backward()
    assert x.grad is not None and all(p.grad is None for p in vgg.parameters())
    with pytest.raises(UsageError):
        vgg.features(x, ["relu4_1"])
    a = VGGFeatures.random("relu1_1", seed=5).convs["conv1_1"].weight
    assert torch.equal(a, VGGFeatures.random("relu1_1", seed=5).convs["conv1_1"].weight)
