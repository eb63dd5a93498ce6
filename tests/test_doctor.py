"""nst-doctor, the onnxruntime install check, and nst-bench speed (at a tiny size, to prove it runs)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from stylecast.realtime import providers as P
from stylecast.realtime.bench import speed as bench_speed
from stylecast.realtime.cli import doctor as cli_doctor
from stylecast.realtime.cli.common import make_parser, run_command
from stylecast.realtime.errors import BackendUnavailableError


class FakeDist:
    """Just what runtime_distributions reads from an importlib.metadata.Distribution."""

    def __init__(self, name: str, folder: Path) -> None:
        self.metadata = {"Name": name}
        self._folder = folder

    def locate_file(self, path: str) -> Path:
        return self._folder / path


def ort_site() -> Path:
    import onnxruntime

    return Path(onnxruntime.__file__).resolve().parent.parent


# ---------------------------------------------------------------- check_onnxruntime_install


def test_this_install_is_healthy() -> None:
    P.check_onnxruntime_install()
    found = P.runtime_distributions(ort_site())
    assert len(found.get(ort_site(), [])) == 1


def test_both_distributions_in_one_folder_are_refused_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    site = ort_site()
    fakes = [FakeDist("onnxruntime", site), FakeDist("onnxruntime_gpu", site), FakeDist("onnxruntime-extensions", site)]
    monkeypatch.setattr(P.metadata, "distributions", lambda **kw: fakes)
    with pytest.raises(BackendUnavailableError) as info:
        P.check_onnxruntime_install()
    text = str(info.value)
    assert "onnxruntime and onnxruntime-gpu are both installed" in text
    assert "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime" in text
    assert info.value.exit_code == 3


def test_distributions_in_different_folders_are_fine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # e.g. onnxruntime-gpu on PYTHONPATH shadowing a system onnxruntime: the first one wins whole.
    fakes = [FakeDist("onnxruntime-gpu", ort_site()), FakeDist("onnxruntime", tmp_path)]
    monkeypatch.setattr(P.metadata, "distributions", lambda **kw: [d for d in fakes if not kw or str(d._folder) in kw["path"]])
    P.check_onnxruntime_install()


def test_unimportable_onnxruntime_gives_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` raise ImportError
    with pytest.raises(BackendUnavailableError, match="onnxruntime cannot be imported.*fix: pip uninstall -y"):
        P.check_onnxruntime_install()


def test_half_uninstalled_onnxruntime_gives_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime

    husk = types.ModuleType("onnxruntime")
    husk.__file__ = onnxruntime.__file__
    monkeypatch.setitem(sys.modules, "onnxruntime", husk)
    with pytest.raises(BackendUnavailableError, match="incomplete .*InferenceSession.*half uninstalled; fix: pip"):
        P.check_onnxruntime_install()


def test_install_fix_names_the_right_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(P.sys, "platform", "linux")
    monkeypatch.setattr(P.platform, "machine", lambda: "x86_64")
    assert P.install_fix() == "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu"
    monkeypatch.setattr(P.platform, "machine", lambda: "aarch64")
    assert P.install_fix() == "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime"


# ---------------------------------------------------------------- nst-doctor


def test_doctor_reports_versions_and_providers(capsys) -> None:
    assert cli_doctor.main([]) == 0
    out = capsys.readouterr().out
    for name in ("stylecast", "python", "numpy", "opencv", "onnxruntime", "execution providers offered"):
        assert name in out
    assert "CPUExecutionProvider        runs" in out
    assert "--device auto uses: " in out
    assert f"{P.physical_cores()} physical cores" in out
    assert out.rstrip().endswith("ok: stylecast can run here")


def test_doctor_times_a_model(tiny_model_dir: Path, capsys) -> None:
    assert cli_doctor.main(["--model", str(tiny_model_dir), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "valid (contract 1" in out and "0 alpha, 1 beta, 2 gamma" in out
    assert "runs on CPUExecutionProvider (fp32): 320x180 -> 320x180" in out


def test_doctor_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    assert cli_doctor.main(["--model", str(tmp_path)]) == 2  # a folder without manifest.json
    assert "manifest.json: missing" in capsys.readouterr().err

    def broken() -> None:
        raise BackendUnavailableError(f"onnxruntime is broken; fix: {P.install_fix()}")

    monkeypatch.setattr(P, "check_onnxruntime_install", broken)
    assert cli_doctor.main([]) == 3
    assert "fix: pip uninstall -y" in capsys.readouterr().err


# ---------------------------------------------------------------- nst-bench speed


def bench(argv: list[str]) -> int:
    parser = make_parser("nst-bench speed", "speed")
    bench_speed.add_arguments(parser)
    return run_command(parser, bench_speed.run, argv)


def test_bench_speed_runs_at_a_tiny_size(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("torch")
    out_json = tmp_path / "speed.json"
    argv = ["--model", str(tiny_model_dir), "--device", "cpu", "--sizes", "32x24", "40x17", "--repeats", "1", "--warmup", "0"]
    assert bench([*argv, "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "CPUExecutionProvider (actually running)" in out and "random weights of the same architecture" in out
    assert "32x24" in out and "40x17" in out
    result = json.loads(out_json.read_text())
    assert result["provider"] == "CPUExecutionProvider" and result["cpu_threads"] == P.physical_cores()
    rows = result["results"]
    assert [(r["width"], r["height"]) for r in rows] == [(32, 24), (40, 17)]
    assert all(r["engine_ms"] > 0 and r["reference_ms"] > 0 and r["speedup"] > 0 for r in rows)
    assert bench([*argv, "--json", str(out_json)]) == 2  # exists, no --overwrite
    assert "already exists" in capsys.readouterr().err


def test_bench_speed_with_the_checkpoint(tiny_model_dir: Path, tiny_checkpoint: Path, capsys) -> None:
    pytest.importorskip("torch")
    argv = ["--model", str(tiny_model_dir), "--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--sizes", "24x24", "--repeats", "1", "--warmup", "0"]
    assert bench(argv) == 0
    assert f"weights of {tiny_checkpoint}" in capsys.readouterr().out


def test_bench_speed_usage_errors(tmp_path: Path, tiny_model_dir: Path, capsys) -> None:
    assert bench(["--model", str(tmp_path / "bad")]) == 2
    assert "no such model folder" in capsys.readouterr().err
    assert bench(["--model", str(tiny_model_dir), "--sizes", "64x", "--no-reference"]) == 2
    assert "'64x' is not WIDTHxHEIGHT" in capsys.readouterr().err


def test_bench_speed_compares_models_in_the_same_run(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    out_json = tmp_path / "cmp.json"
    argv = ["--model", str(tiny_model_dir), "--compare", str(tiny_model_dir), "--device", "cpu", "--sizes", "32x24",
            "--repeats", "1", "--warmup", "0", "--no-reference", "--json", str(out_json)]
    assert bench(argv) == 0
    assert "the time of --model" in capsys.readouterr().out
    compare = json.loads(out_json.read_text())["results"][0]["compare"]
    assert len(compare) == 1 and compare[0]["ms"] > 0 and compare[0]["ratio"] > 0


def test_nst_bench_dispatches_subcommands(tiny_model_dir: Path, capsys) -> None:
    from stylecast.realtime.cli.bench import main

    assert main(["speed", "--model", str(tiny_model_dir), "--device", "cpu", "--sizes", "24x16", "--repeats", "1",
                 "--warmup", "0", "--no-reference", "-q"]) == 0
    assert "24x16" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["nonsense"])
    assert exc.value.code == 2


def test_nst_bench_video_runs_end_to_end(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    """Generated clip, the threaded pipeline and the naive loop both produce frames; JSON saved."""
    pytest.importorskip("torch")
    from stylecast.realtime.cli.bench import main

    out_json = tmp_path / "video.json"
    assert main(["video", "--model", str(tiny_model_dir), "--device", "cpu", "--sizes", "64x36", "--frames", "4",
                 "--json", str(out_json), "-q"]) == 0
    assert "64x36" in capsys.readouterr().out
    row = json.loads(out_json.read_text())["results"][0]
    assert row["frames"] == 4 and row["engine_fps"] > 0 and row["reference_fps"] > 0
