"""StyleEngine, its runners, the shared CLI options and still images: real ONNX Runtime sessions on the tiny model."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from stylecast.realtime import providers as P
from stylecast.realtime.cli.common import make_parser, run_command
from stylecast.realtime.cli.options import add_model_options, add_temporal_option, list_styles
from stylecast.realtime.engine import (
    BoundRunner,
    PlainRunner,
    StyleEngine,
    fixed_shape_graph,
    open_engine,
)
from stylecast.realtime.errors import (
    BackendUnavailableError,
    ModelFolderError,
    OutputExistsError,
    StylecastError,
    UsageError,
)
from stylecast.realtime.images import read_image, write_image
from stylecast.realtime.model_folder import load_model_folder
from stylecast.realtime.stills import stylize_stills
from stylecast.realtime.styling import engine_from_args


def picture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth BGR uint8 test image with some noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / max(w, 1), yy / max(h, 1), (xx + yy) / (h + w)], axis=-1) * 255
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path):
    return load_model_folder(tiny_model_dir)


@pytest.fixture(scope="module")
def shared_engine(model):
    with StyleEngine(model, device="cpu") as engine:
        yield engine


@pytest.fixture
def engine(shared_engine: StyleEngine) -> StyleEngine:
    """The module's CPU engine, back on its first style at full strength."""
    shared_engine.set_style(0)
    shared_engine.strength = 1.0
    return shared_engine


@pytest.fixture
def engine_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    # run_command sets propagate=False on "stylecast", so listen on the engine logger itself.
    logger = logging.getLogger("stylecast.engine")
    logger.addHandler(caplog.handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(old)


def cuda_runs() -> bool:
    return P.probe_provider(P.CUDA).runs


# ---------------------------------------------------------------- frames


@pytest.mark.parametrize("h, w", [(17, 23), (31, 64), (5, 7), (1, 1), (16, 16), (3, 40), (48, 64)])
def test_output_has_exactly_the_input_size(engine: StyleEngine, h: int, w: int) -> None:
    img = picture(h, w)
    out = engine(img)
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    assert out.flags.c_contiguous


def test_output_is_stylised_not_copied(engine: StyleEngine) -> None:
    for h, w in [(48, 64), (5, 7)]:  # the tiny one goes through the upscale path
        img = picture(h, w)
        assert np.abs(engine(img).astype(int) - img).mean() > 5


def test_non_contiguous_input_gives_the_same_result(engine: StyleEngine) -> None:
    img = picture(40, 60)
    view = np.ascontiguousarray(img[:, ::-1])[:, ::-1]  # same pixels, negative stride
    assert not view.flags.c_contiguous
    np.testing.assert_array_equal(engine(view), engine(img))


def test_different_styles_give_different_outputs(engine: StyleEngine) -> None:
    img = picture(48, 64)
    outs = []
    for name in engine.style_names:
        engine.set_style(name)
        outs.append(engine(img).astype(int))
    assert engine.style_names == ("alpha", "beta", "gamma")
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(outs[i] - outs[j]).mean() > 2


def test_style_changes_never_build_a_session(engine: StyleEngine) -> None:
    session, count = engine.session, engine.sessions_created
    img = picture(32, 32)
    engine.set_style("gamma")
    engine(img)
    engine.set_style(1)
    engine.set_mix({"alpha": 0.3, "beta": 0.7})
    engine.set_style_vector(engine.model.style_vectors[2])
    engine.strength = 0.4
    engine(img)
    assert engine.session is session
    assert engine.sessions_created == count == 1


def test_style_by_name_index_and_digits(engine: StyleEngine) -> None:
    img = picture(24, 24)
    engine.set_style("beta")
    by_name = engine(img)
    engine.set_style(1)
    np.testing.assert_array_equal(engine(img), by_name)
    engine.set_style("1")
    np.testing.assert_array_equal(engine(img), by_name)
    np.testing.assert_array_equal(engine.style_vector, engine.model.style_vectors[1])
    assert engine.style_label == "beta"


def test_mix_of_one_style_equals_that_style(engine: StyleEngine) -> None:
    img = picture(40, 56)
    engine.set_style("gamma")
    want = engine(img)
    for mix in ({"gamma": 1.0}, {"gamma": 3.0}, {2: 0.5}, {"gamma": 1.0, "alpha": 0.0}):
        engine.set_mix(mix)
        np.testing.assert_array_equal(engine(img), want)


def test_mix_interpolates_the_vectors(engine: StyleEngine) -> None:
    v = engine.model.style_vectors
    engine.set_mix({"alpha": 1, "beta": 1, "gamma": 2})  # normalised to 0.25, 0.25, 0.5
    np.testing.assert_allclose(engine.style_vector, 0.25 * v[0] + 0.25 * v[1] + 0.5 * v[2], rtol=1e-6, atol=1e-6)
    assert engine.style_vector.dtype == np.float32
    assert "alpha 0.25" in engine.style_label
    with pytest.raises(ValueError):
        engine.style_vector[0] = 1.0  # read-only: a copy cannot change the engine silently anyway


def test_custom_style_vector(engine: StyleEngine) -> None:
    img = picture(32, 48)
    engine.set_style("beta")
    want = engine(img)
    engine.set_style("alpha")
    engine.set_style_vector(engine.model.style_vectors[1].astype(np.float64))
    np.testing.assert_array_equal(engine(img), want)
    assert engine.style_label == "custom"


def test_strength_zero_is_the_original_and_between_is_a_blend(engine: StyleEngine) -> None:
    img = picture(37, 53)
    full = engine(img).astype(int)
    engine.strength = 0.0
    np.testing.assert_array_equal(engine(img), img)
    engine.strength = 0.5
    half = engine(img).astype(int)
    lo, hi = np.minimum(full, img), np.maximum(full, img)
    assert np.all(half >= lo) and np.all(half <= hi)
    np.testing.assert_allclose(half, (full + img) / 2, atol=1.0)  # rounding only
    assert np.abs(half - full).mean() > 2 and np.abs(half - img.astype(int)).mean() > 2


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan"), "much"])
def test_invalid_strength_is_a_usage_error(engine: StyleEngine, bad: object) -> None:
    with pytest.raises(UsageError, match="between 0 and 1"):
        engine.strength = bad  # type: ignore[assignment]
    assert engine.strength == 1.0


def test_bad_inputs_raise_typed_errors(engine: StyleEngine) -> None:
    with pytest.raises(UsageError, match="BGR uint8"):
        engine(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(UsageError, match="BGR uint8"):
        engine(np.zeros((8, 8), np.uint8))
    with pytest.raises(UsageError, match="empty"):
        engine(np.zeros((0, 8, 3), np.uint8))
    with pytest.raises(ModelFolderError, match="alpha, beta, gamma"):
        engine.set_style("starry")
    with pytest.raises(ModelFolderError, match="out of range"):
        engine.set_style(7)
    with pytest.raises(UsageError):
        engine.set_mix({})
    with pytest.raises(UsageError, match=">= 0"):
        engine.set_mix({"alpha": -1})
    with pytest.raises(UsageError, match="sum to 0"):
        engine.set_mix({"alpha": 0})
    with pytest.raises(UsageError, match="float"):
        engine.set_style_vector(np.zeros(engine.model.style_dim + 1, np.float32))
    with pytest.raises(UsageError, match="NaN"):
        engine.set_style_vector(np.full(engine.model.style_dim, np.nan, np.float32))


def test_max_side_runs_smaller_and_returns_the_input_size(model, engine: StyleEngine) -> None:
    img = picture(40, 90)
    with StyleEngine(model, device="cpu", max_side=32) as small:
        out = small(img)
        assert out.shape == img.shape
        # Longer side 90 -> 32 keeps the aspect: 40 -> 14, raised to the 16 px minimum.
        net_in = cv2.resize(img, (32, 16), interpolation=cv2.INTER_AREA)
        want = cv2.resize(engine(net_in), (90, 40), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(out, want)
        assert small(picture(20, 30)).shape == (20, 30, 3)  # under max_side: full resolution
    with pytest.raises(UsageError, match="at least 16"):
        StyleEngine(model, device="cpu", max_side=8)


def test_close_is_idempotent_and_final(model) -> None:
    with StyleEngine(model, device="cpu") as engine:
        engine(picture(16, 16))
    assert engine.closed
    engine.close()
    with pytest.raises(StylecastError, match="closed"):
        engine(picture(16, 16))


# ---------------------------------------------------------------- providers and devices


def test_auto_reports_the_provider_that_really_runs(model, engine_log) -> None:
    if cuda_runs():
        pytest.skip("a CUDA device works here")
    import onnxruntime as ort

    with StyleEngine(model, device="auto") as engine:
        assert engine.provider == P.CPU == engine.session.get_providers()[0]
        assert engine.precision == "fp32"
        assert engine.threads == P.physical_cores()
        # idle CPU workers sleep: the blend and the capture after each run get the cores
        assert engine.session.get_session_options().get_session_config_entry(P.CPU_SPIN_KEY) == "0"
    text = engine_log.text
    assert "running on CPUExecutionProvider" in text
    if P.CUDA in ort.get_available_providers():  # offered but not runnable: that must be said
        assert "CUDAExecutionProvider is offered but cannot run here" in text


def test_device_cuda_without_a_working_gpu_is_exit_3(tiny_model_dir: Path, capsys) -> None:
    if cuda_runs():
        pytest.skip("a CUDA device works here")
    with pytest.raises(BackendUnavailableError, match="--device cuda") as info:
        open_engine(tiny_model_dir, device="cuda")
    assert info.value.exit_code == 3
    assert "\n" not in str(info.value)

    parser = make_parser("nst-test", "test")
    add_model_options(parser)
    code = run_command(parser, lambda args: engine_from_args(args).close(), ["--model", str(tiny_model_dir), "--device", "cuda:0"])
    assert code == 3
    err = capsys.readouterr().err
    assert err.startswith("error: --device cuda") and ("onnxruntime-gpu" in err or "CUDA" in err)


def test_device_names() -> None:
    assert P.parse_device("auto") == P.DeviceRequest("auto")
    assert P.parse_device("CUDA:1") == P.DeviceRequest("cuda", 1)
    assert str(P.parse_device("cuda:0")) == "cuda" and str(P.parse_device("cuda:2")) == "cuda:2"
    assert P.parse_device("tensorrt").kind == "tensorrt"
    for bad in ("gpu", "cuda:", "cuda:x", "cpu:1", "auto:0", ""):
        with pytest.raises(UsageError, match="unknown device"):
            P.parse_device(bad)


def test_physical_cores_is_sane() -> None:
    assert 1 <= P.physical_cores() <= P.logical_cpus()


def test_plain_run_on_cpu_matches_the_raw_session(engine: StyleEngine, model) -> None:
    img = picture(21, 34)
    raw = engine.session.run(None, {"frame": img[None], "style": model.style_vectors[:1]})[0][0]
    np.testing.assert_array_equal(engine(img), raw)
    assert isinstance(engine._runner, PlainRunner)


def test_bound_runner_and_fixed_size_switch_on_cpu(model) -> None:
    """The CUDA path's IO binding and fixed-shape hand-over, run on CPU buffers."""
    graph = model.graphs["fp32"]
    session = P.create_session(graph, P.CPU, threads=1)
    styles = model.style_vectors
    plain = PlainRunner(session, styles[:1])
    built: list[tuple[int, ...]] = []

    def fixed(shape: tuple[int, ...]):
        built.append(shape)
        return P.create_session(fixed_shape_graph(graph, shape), P.CPU, threads=1)

    runner = BoundRunner(session, styles[:1], device="cpu", fixed_session=fixed, fixed_after=2)
    a, b = picture(24, 40, seed=1), picture(24, 40, seed=2)
    first = runner(a)
    np.testing.assert_array_equal(first, plain(a))
    np.testing.assert_array_equal(runner(b), plain(b))  # second frame at this size: the build starts
    np.testing.assert_array_equal(first, plain(a))  # outputs are copies, not views of the bound buffer
    runner.wait_for_builder()
    np.testing.assert_array_equal(runner(a), plain(a))
    assert built == [(1, 24, 40, 3)] and runner.fixed_shape == (1, 24, 40, 3) and runner.fixed_sessions_created == 1
    runner.set_style(styles[2:3])  # updated in place: the fixed session sees it too
    plain.set_style(styles[2:3])
    np.testing.assert_array_equal(runner(b), plain(b))
    c = picture(30, 20)
    np.testing.assert_array_equal(runner(c), plain(c))  # a new size drops back to the dynamic session
    assert runner.fixed_shape is None
    runner.close()
    runner.close()


def test_fixed_shape_graph_pins_the_frame_size(model) -> None:
    session = P.create_session(fixed_shape_graph(model.graphs["fp32"], (1, 20, 28, 3)), P.CPU, threads=1)
    assert session.get_inputs()[0].shape == [1, 20, 28, 3]
    assert session.run(None, {"frame": picture(20, 28)[None], "style": model.style_vectors[:1]})[0].shape == (1, 20, 28, 3)


def test_no_bundled_model_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import stylecast.weights

    monkeypatch.setattr(stylecast.weights, "bundled_model_dir", lambda name="default": tmp_path / "none")
    with pytest.raises(ModelFolderError, match=r"no bundled model is installed yet; pass --model DIR \(create one with nst-train and nst-export\)"):
        open_engine(None)


# ---------------------------------------------------------------- shared CLI options


def parse(argv: list[str], temporal: bool = False) -> argparse.Namespace:
    parser = make_parser("nst-test", "test")
    add_model_options(parser)
    if temporal:
        add_temporal_option(parser)
    return parser.parse_args(argv)


def test_engine_from_args_applies_style_mix_and_strength(tiny_model_dir: Path) -> None:
    img = picture(32, 40)
    with engine_from_args(parse(["--model", str(tiny_model_dir), "--device", "cpu", "--style", "beta"])) as e:
        beta = e(img)
        assert e.style_label == "beta" and e.strength == 1.0
    with engine_from_args(parse(["--model", str(tiny_model_dir), "--device", "cpu", "--mix", "beta=2", "alpha=0"])) as e:
        np.testing.assert_array_equal(e(img), beta)
    with engine_from_args(parse(["--model", str(tiny_model_dir), "--device", "cpu", "--strength", "0"])) as e:
        np.testing.assert_array_equal(e(img), img)
    with engine_from_args(parse(["--model", str(tiny_model_dir), "--device", "cpu", "--max-side", "16"])) as e:
        assert e.max_side == 16 and e(img).shape == img.shape


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--strength", "1.5"], "--strength must be between 0 and 1, got 1.5"),
        (["--mix", "starry=x"], "--mix: 'starry=x' is not NAME=WEIGHT"),
        (["--mix", "starry"], "--mix: 'starry' is not NAME=WEIGHT"),
        (["--mix", "alpha=-1"], "--mix: the weight of 'alpha' must be 0 or more, got -1"),
        (["--mix", "alpha=0"], "--mix: the weights sum to 0"),
        (["--style", "alpha", "--mix", "beta=1"], "--style and --mix cannot be used together"),
        (["--style", "starry"], "unknown style 'starry'; this model has: alpha, beta, gamma"),
        (["--mix", "alpha=1", "starry=1"], "unknown style 'starry'; this model has: alpha, beta, gamma"),
    ],
)
def test_option_errors_are_exact(tiny_model_dir: Path, argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as info:
        engine_from_args(parse(["--model", str(tiny_model_dir), "--device", "cpu", *argv]))
    assert message in str(info.value)
    assert info.value.exit_code == 2


@pytest.mark.parametrize("argv", [["--device", "gpu"], ["--max-side", "8"], ["--max-side", "big"], ["--strength", "lots"]])
def test_option_format_errors_exit_2_at_parse_time(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as info:
        parse(argv)
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith("error: argument")


def test_list_styles_prints_index_and_name(tiny_model_dir: Path, capsys) -> None:
    assert list_styles(parse(["--model", str(tiny_model_dir), "--list-styles"])) is True
    assert capsys.readouterr().out == "0\talpha\n1\tbeta\n2\tgamma\n"
    assert list_styles(parse(["--model", str(tiny_model_dir)])) is False


def test_temporal_option_default_and_range(capsys) -> None:
    temporal = pytest.importorskip("stylecast.realtime.temporal")
    assert parse([], temporal=True).temporal == temporal.DEFAULT_TEMPORAL
    assert parse(["--temporal", "0"], temporal=True).temporal == 0.0
    with pytest.raises(SystemExit) as info:
        parse(["--temporal", "1.5"], temporal=True)
    assert info.value.code == 2
    assert "between 0 and 1" in capsys.readouterr().err


# ---------------------------------------------------------------- still images


def test_stills_file_to_file(engine: StyleEngine, tmp_path: Path) -> None:
    src = write_image(tmp_path / "in.png", picture(30, 44), overwrite=False)
    dst = tmp_path / "out.png"
    assert stylize_stills(engine, src, dst, overwrite=False) == [dst]
    np.testing.assert_array_equal(read_image(dst), engine(picture(30, 44)))
    with pytest.raises(OutputExistsError, match="--overwrite"):
        stylize_stills(engine, src, dst, overwrite=False)
    assert stylize_stills(engine, src, dst, overwrite=True) == [dst]
    with pytest.raises(OutputExistsError, match="overwrite the input"):
        stylize_stills(engine, src, src, overwrite=True)
    into = tmp_path / "folder"
    into.mkdir()
    assert stylize_stills(engine, src, into, overwrite=False) == [into / "in.png"]  # like cp into a folder
    with pytest.raises(UsageError, match="extension"):
        stylize_stills(engine, src, tmp_path / "out.txt", overwrite=False)


def test_stills_folder_to_folder(engine: StyleEngine, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i, (h, w) in enumerate([(20, 30), (33, 17), (9, 12)]):
        write_image(src / f"img{i}.png", picture(h, w, seed=i), overwrite=False)
    (src / "notes.txt").write_text("not an image")
    dst = tmp_path / "out"
    written = stylize_stills(engine, src, dst, overwrite=False)
    assert [p.name for p in written] == ["img0.png", "img1.png", "img2.png"]
    for p in written:
        original = read_image(src / p.name)
        np.testing.assert_array_equal(read_image(p), engine(original))
    assert sorted(p.name for p in dst.iterdir()) == ["img0.png", "img1.png", "img2.png"]

    # One existing output refuses the whole run before anything is written.
    (dst / "img0.png").unlink()
    before = (dst / "img1.png").stat().st_mtime_ns
    with pytest.raises(OutputExistsError, match="img1.png already exists"):
        stylize_stills(engine, src, dst, overwrite=False)
    assert not (dst / "img0.png").exists() and (dst / "img1.png").stat().st_mtime_ns == before
    assert len(stylize_stills(engine, src, dst, overwrite=True)) == 3

    with pytest.raises(OutputExistsError, match="overwrite the input"):
        stylize_stills(engine, src, src, overwrite=True)
    with pytest.raises(OutputExistsError, match="not a folder"):
        stylize_stills(engine, src, src / "img0.png", overwrite=True)
    with pytest.raises(UsageError, match="does not exist"):
        stylize_stills(engine, src, tmp_path / "missing" / "out", overwrite=False)
    assert sorted(p.name for p in src.iterdir()) == ["img0.png", "img1.png", "img2.png", "notes.txt"]
