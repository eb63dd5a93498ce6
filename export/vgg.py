"""The VGG feature extractor used by the perceptual losses (our own definition; no torchvision).

Two weight formats are understood, detected from the keys of the file:

``torchvision``
    torchvision's published ``vgg19`` / ``vgg16`` state dicts (keys ``features.N.weight``;
    ``classifier.*`` is ignored). Input is ImageNet-normalised RGB, convolutions use zero
    padding, pooling floors odd sizes.
``normalised``
    the "normalised VGG-19" of Gatys et al. as shipped with AdaIN / WCT, either with the
    Sequential index keys of those projects (``0.weight`` is a 1x1 preprocessing conv,
    ``2.weight`` conv1_1, ``5.weight`` conv1_2, ``9.weight`` conv2_1, ...) or with named keys
    (``preproc_1x1``, ``conv1_1``, ...). The 1x1 conv turns RGB [0, 1] into Caffe's BGR
    0..255 minus the mean; convolutions use reflection padding, pooling rounds up.

Either kind may be truncated: the extractor stops at the deepest convolution in the file and
``VGGFeatures.taps`` says which ReLU outputs exist. Callers always pass RGB in [0, 1]; the
module does its own normalisation.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylecast.realtime.errors import BackendUnavailableError, InputFileError, UsageError

log = logging.getLogger("stylecast.vgg")

ENV_VGG = "NST_VGG"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Caffe preprocessing done by the normalised VGG's 1x1 conv: RGB [0,1] -> BGR x255 - mean.
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.680)

TORCHVISION_URLS = {
    "vgg19": "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
}

# Output channels per conv, "M" = 2x2 pooling. The last pooling is left out: no tap follows it.
_CONFIGS: dict[str, tuple[int | str, ...]] = {
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512),
}

WEIGHTS_HELP = (
    "VGG weights are needed and are not bundled. Use torchvision's VGG-19 file "
    f"({TORCHVISION_URLS['vgg19']}) or the normalised VGG-19 of AdaIN/WCT "
    "(vgg_normalised.pth or a safetensors copy of it), and pass its path with --vgg PATH "
    f"or the {ENV_VGG} environment variable; or pass --vgg download:vgg19 (or download:vgg16) "
    "to download torchvision's file into ~/.cache/stylecast/ (about 550 MB)"
)


@dataclass(frozen=True)
class _Conv:
    name: str  # conv3_2
    relu: str  # relu3_2
    in_ch: int
    out_ch: int
    tv_index: int  # index in torchvision's `features` Sequential
    norm_index: int  # index in the AdaIN/WCT Sequential


def _layer_plan(arch: str) -> list[_Conv | None]:
    """The convolutions of ``arch`` in order, with ``None`` where a 2x2 pooling sits."""
    plan: list[_Conv | None] = []
    block, j, in_ch = 1, 1, 3
    tv_idx, norm_idx = 0, 1  # normalised: index 0 is the 1x1 preprocessing conv
    for item in _CONFIGS[arch]:
        if item == "M":
            plan.append(None)
            block, j = block + 1, 1
            tv_idx, norm_idx = tv_idx + 1, norm_idx + 1
            continue
        out_ch = int(item)
        # torchvision: conv, relu. AdaIN/WCT: reflection pad, conv, relu.
        plan.append(_Conv(f"conv{block}_{j}", f"relu{block}_{j}", in_ch, out_ch, tv_idx, norm_idx + 1))
        in_ch, j = out_ch, j + 1
        tv_idx, norm_idx = tv_idx + 2, norm_idx + 3
    return plan


class VGGFeatures(nn.Module):
    """Frozen VGG returning ReLU activations ("taps") for RGB input in [0, 1].

    Build it with :func:`load_vgg` (real weights) or :meth:`VGGFeatures.random` (tests only).
    Attributes: ``taps`` (ReLU names in network order, up to the deepest loaded layer),
    ``format`` ("torchvision" | "normalised"), ``arch`` ("vgg19" | "vgg16"), ``source``.
    Always in eval mode with ``requires_grad`` False; gradients still flow to the input.
    """

    def __init__(
        self,
        arch: str,
        fmt: str,
        weights: Mapping[str, tuple[Tensor, Tensor]],
        *,
        preproc: tuple[Tensor, Tensor] | None = None,
        pool: str = "max",
        source: str = "",
    ) -> None:
        super().__init__()
        if fmt not in ("torchvision", "normalised"):
            raise ValueError(f"unknown VGG format {fmt!r}")
        if pool not in ("max", "avg"):
            raise UsageError(f"pool must be 'max' or 'avg', not {pool!r}")
        self.arch, self.format, self.pool, self.source = arch, fmt, pool, source
        self._ceil = fmt == "normalised"  # the Caffe-derived model rounds odd sizes up
        padding_mode = "reflect" if fmt == "normalised" else "zeros"
        self.convs = nn.ModuleDict()
        self._plan: list[_Conv | None] = []
        for spec in _layer_plan(arch):
            if spec is None:
                self._plan.append(None)
                continue
            if spec.name not in weights:
                break
            conv = nn.Conv2d(spec.in_ch, spec.out_ch, 3, padding=1, padding_mode=padding_mode)
            w, b = weights[spec.name]
            conv.weight.data.copy_(w)
            conv.bias.data.copy_(b)
            self.convs[spec.name] = conv
            self._plan.append(spec)
        while self._plan and self._plan[-1] is None:  # no trailing pooling after the last conv
            self._plan.pop()
        if not self.convs:
            raise ValueError("no convolution weights given")
        self.taps: tuple[str, ...] = tuple(s.relu for s in self._plan if s is not None)
        if fmt == "normalised":
            if preproc is None:
                raise ValueError("the normalised format needs the 1x1 preprocessing conv")
            self.preproc = nn.Conv2d(3, 3, 1)
            self.preproc.weight.data.copy_(preproc[0])
            self.preproc.bias.data.copy_(preproc[1])
        else:
            self.preproc = None
            # Not persistent: they are constants, not weights, and stay out of state dicts.
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> VGGFeatures:
        """Stays in eval mode: a parent's ``.train()`` must not change the loss network."""
        return super().train(False)

    @classmethod
    def random(
        cls, taps_up_to: str = "relu3_1", seed: int = 0, *, arch: str = "vgg19", fmt: str = "normalised", pool: str = "max"
    ) -> VGGFeatures:
        """Random (He-initialised, seeded) weights up to ``taps_up_to``. For tests only: the
        features mean nothing, but shapes, padding and gradients are those of the real thing."""
        if arch not in _CONFIGS:
            raise UsageError(f"unknown VGG architecture {arch!r}; expected one of {', '.join(_CONFIGS)}")
        gen = torch.Generator().manual_seed(seed)
        weights: dict[str, tuple[Tensor, Tensor]] = {}
        for spec in _layer_plan(arch):
            if spec is None:
                continue
            std = (2.0 / (spec.in_ch * 9)) ** 0.5
            w = torch.randn(spec.out_ch, spec.in_ch, 3, 3, generator=gen) * std
            weights[spec.name] = (w, torch.zeros(spec.out_ch))
            if spec.relu == taps_up_to:
                break
        else:
            raise UsageError(f"{arch} has no tap {taps_up_to!r}")
        preproc = _caffe_preproc() if fmt == "normalised" else None
        return cls(arch, fmt, weights, preproc=preproc, pool=pool, source=f"random(seed={seed})")

    def _normalise(self, x: Tensor) -> Tensor:
        if self.preproc is not None:
            return self.preproc(x)
        return (x - self.mean) / self.std

    def features(self, x: Tensor, taps: Iterable[str]) -> dict[str, Tensor]:
        """ReLU activations of ``x``.

        x: float [B, 3, H, W], RGB in [0, 1]. taps: names from ``self.taps``.
        Returns {tap: float [B, C, H/2^p, W/2^p]} with p the poolings before the tap.
        Stops after the deepest requested tap.
        """
        wanted = set(taps)
        unknown = wanted.difference(self.taps)
        if unknown:
            raise UsageError(
                f"VGG tap(s) {', '.join(sorted(unknown))} not available in {self.source or 'this network'}; "
                f"it has {', '.join(self.taps)}"
            )
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected RGB input [B, 3, H, W], got shape {tuple(x.shape)}")
        out: dict[str, Tensor] = {}
        if not wanted:
            return out
        h = self._normalise(x)
        for spec in self._plan:
            if spec is None:
                pool = F.max_pool2d if self.pool == "max" else F.avg_pool2d
                h = pool(h, 2, 2, ceil_mode=self._ceil)
                continue
            h = F.relu(self.convs[spec.name](h))
            if spec.relu in wanted:
                out[spec.relu] = h
                if len(out) == len(wanted):
                    break
        return out

    forward = features

    def min_input_side(self, tap: str) -> int:
        """Smallest input height/width for which ``tap`` can be computed (reflection padding
        needs at least 2 pixels; a floored pooling needs at least 2)."""
        if tap not in self.taps:
            raise UsageError(f"VGG tap {tap!r} not available; this network has {', '.join(self.taps)}")
        for side in range(1, 4097):
            s, ok = side, True
            for spec in self._plan:
                if spec is None:
                    s = -(-s // 2) if self._ceil else s // 2
                    ok = s >= 1
                else:
                    ok = s >= (2 if self.format == "normalised" else 1)
                    if spec.relu == tap:
                        break
                if not ok:
                    break
            if ok:
                return side
        return 4097  # unreachable for the known architectures

    def extra_repr(self) -> str:
        return f"arch={self.arch}, format={self.format}, pool={self.pool}, taps={self.taps[0]}..{self.taps[-1]}"


def _caffe_preproc() -> tuple[Tensor, Tensor]:
    w = torch.zeros(3, 3, 1, 1)
    for out_c, in_c in ((0, 2), (1, 1), (2, 0)):  # RGB -> BGR
        w[out_c, in_c] = 255.0
    return w, -torch.tensor(_CAFFE_BGR_MEAN)


# ---------------------------------------------------------------------------------------------
# Reading weight files


def _looks_like_safetensors(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000


def _safetensors_load():  # noqa: ANN202 - safetensors is optional until a .safetensors file is read
    try:
        from safetensors.torch import load_file
    except ImportError as exc:
        raise BackendUnavailableError("reading .safetensors files needs safetensors: pip install safetensors") from exc
    return load_file


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    if not path.exists():
        raise InputFileError(f"{path}: no such VGG weight file. {WEIGHTS_HELP}")
    if path.is_dir():
        raise InputFileError(f"{path}: is a folder, expected a VGG weight file (.pth or .safetensors)")
    try:
        if path.stat().st_size == 0:
            raise InputFileError(f"{path}: the VGG weight file is empty")
        if _looks_like_safetensors(path):
            obj: object = _safetensors_load()(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except (InputFileError, BackendUnavailableError):
        raise
    except Exception as exc:  # noqa: BLE001 - a foreign file can make the readers raise anything
        raise InputFileError(
            f"{path}: not a readable PyTorch (.pth) or safetensors weight file ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})"
        ) from exc
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]  # a checkpoint wrapping the weights
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise InputFileError(f"{path}: does not hold a state dict of tensors (found {type(obj).__name__})")
    return {str(k).removeprefix("module."): v for k, v in obj.items()}


def _take(sd: Mapping[str, Tensor], prefix: str, spec_shape: tuple[int, ...], path: Path) -> tuple[Tensor, Tensor]:
    w, b = sd.get(f"{prefix}.weight"), sd.get(f"{prefix}.bias")
    if w is None or b is None:
        raise InputFileError(f"{path}: '{prefix}.weight' or '{prefix}.bias' is missing")
    if tuple(w.shape) != spec_shape or tuple(b.shape) != (spec_shape[0],):
        raise InputFileError(
            f"{path}: '{prefix}' has shape {tuple(w.shape)}/{tuple(b.shape)}, expected {spec_shape}/({spec_shape[0]},)"
        )
    w, b = w.float(), b.float()
    if not (torch.isfinite(w).all() and torch.isfinite(b).all()):
        raise InputFileError(f"{path}: '{prefix}' contains NaN or infinite values; the file is corrupt")
    return w, b


def _match_prefix(present: set, ordered: list, path: Path, what: str) -> int:
    """How many leading layers of ``ordered`` ``present`` holds; refuse gaps."""
    n = len(present)
    if n == 0 or set(ordered[:n]) != present:
        raise InputFileError(
            f"{path}: the {what} layers in the file ({', '.join(map(str, sorted(present, key=str)))[:200]}) "
            "are not the leading layers of VGG-16/19; the file is incomplete or not a VGG"
        )
    return n


def state_dict_to_vgg(sd: Mapping[str, Tensor], path: Path | str = "<state dict>", *, pool: str = "max") -> VGGFeatures:
    """Detect the format of a VGG state dict and build the extractor. Raises InputFileError."""
    path = Path(path)
    keys = list(sd)
    if any(k.endswith("running_mean") for k in keys):
        raise InputFileError(f"{path}: a batch-norm VGG (vgg*_bn) is not supported; use torchvision's vgg19 or vgg16")
    weights: dict[str, tuple[Tensor, Tensor]] = {}
    preproc = None
    if any(k.startswith("features.") for k in keys):
        fmt = "torchvision"
        present = {int(m.group(1)) for k in keys if (m := re.fullmatch(r"features\.(\d+)\.weight", k))}
        arch = ""
        for candidate in ("vgg19", "vgg16"):  # identical up to conv3_3; call those vgg19
            convs = [s for s in _layer_plan(candidate) if s is not None]
            if present and set(s.tv_index for s in convs[: len(present)]) == present:
                arch = candidate
                break
        if not arch:
            _match_prefix(present, [s.tv_index for s in _layer_plan("vgg19") if s], path, "'features.N'")
        for spec in [s for s in _layer_plan(arch) if s is not None][: len(present)]:
            weights[spec.name] = _take(sd, f"features.{spec.tv_index}", (spec.out_ch, spec.in_ch, 3, 3), path)
    elif "preproc_1x1.weight" in sd or "0.weight" in sd:
        fmt, arch = "normalised", "vgg19"
        convs = [s for s in _layer_plan(arch) if s is not None]
        named = "preproc_1x1.weight" in sd
        if named:
            present_n: set = {k.removesuffix(".weight") for k in keys if re.fullmatch(r"conv\d_\d\.weight", k)}
            n = _match_prefix(present_n, [s.name for s in convs], path, "named conv")
        else:
            present_n = {int(k.split(".")[0]) for k in keys if re.fullmatch(r"\d+\.weight", k)} - {0}
            n = _match_prefix(present_n, [s.norm_index for s in convs], path, "Sequential")
        preproc = _take(sd, "preproc_1x1" if named else "0", (3, 3, 1, 1), path)
        for spec in convs[:n]:
            key = spec.name if named else str(spec.norm_index)
            weights[spec.name] = _take(sd, key, (spec.out_ch, spec.in_ch, 3, 3), path)
    else:
        sample = ", ".join(keys[:5]) or "none"
        raise InputFileError(
            f"{path}: not a VGG weight file: expected torchvision's 'features.N.weight' keys or the normalised "
            f"VGG-19's ('0.weight' 1x1 conv, '2.weight', ... or 'preproc_1x1', 'conv1_1', ...); found keys {sample}"
        )
    return VGGFeatures(arch, fmt, weights, preproc=preproc, pool=pool, source=str(path))


def load_vgg(path: Path | str, *, pool: str = "max") -> VGGFeatures:
    """Load VGG weights from a .pth or .safetensors file (format detected from the keys).

    Raises InputFileError for a missing, unreadable, corrupt or foreign file.
    """
    path = Path(path).expanduser()
    vgg = state_dict_to_vgg(_read_state_dict(path), path, pool=pool)
    how = (
        "ImageNet mean/std input, zero padding" if vgg.format == "torchvision"
        else "built-in Caffe preprocessing, reflection padding"
    )
    log.info("VGG weights %s: %s %s format (%s), taps %s", path, vgg.format, vgg.arch, how, ", ".join(vgg.taps))
    return vgg


# ---------------------------------------------------------------------------------------------
# Choosing and fetching the weights


def resolve_vgg_path(cli_value: str | None, *, env: Mapping[str, str] | None = None) -> Path:
    """The VGG weight file to use: ``--vgg`` if given, else ``$NST_VGG``, else a UsageError
    explaining where to get weights. ``download:vgg19`` / ``download:vgg16`` (in either place)
    downloads torchvision's file explicitly. Existence is checked by :func:`load_vgg`."""
    env = os.environ if env is None else env
    value, origin = cli_value, "--vgg"
    if value is None:
        value, origin = env.get(ENV_VGG) or None, ENV_VGG
    if value is None:
        raise UsageError(f"no VGG weights given. {WEIGHTS_HELP}")
    value = value.strip()
    if not value:
        raise UsageError(f"{origin} is empty. {WEIGHTS_HELP}")
    if value.startswith("download:"):
        return download_vgg(value.removeprefix("download:"))
    return Path(value).expanduser()


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stylecast"


def download_vgg(name: str, cache_dir: Path | None = None, *, timeout: float = 30.0) -> Path:
    """Download torchvision's ``vgg19`` or ``vgg16`` weights (only when the user asks).

    Written to a temporary file in ``cache_dir`` (default ~/.cache/stylecast) and renamed
    once the sha256 matches the prefix in torchvision's file name. An existing verified
    copy is reused. Raises UsageError for an unknown name, BackendUnavailableError when the
    download fails.
    """
    if name not in TORCHVISION_URLS:
        raise UsageError(f"--vgg download:{name}: unknown; use download:vgg19 or download:vgg16")
    url = TORCHVISION_URLS[name]
    filename = url.rsplit("/", 1)[1]
    expected = re.search(r"-([0-9a-f]{8,})\.", filename).group(1)  # type: ignore[union-attr]
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    target = cache_dir / filename
    if target.is_file():
        log.info("using the downloaded %s weights in %s", name, target)
        return target
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackendUnavailableError(f"cannot create the cache folder {cache_dir}: {exc}") from exc
    log.info("downloading %s weights from %s to %s (about 550 MB)", name, url, target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=cache_dir)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as fh, urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - fixed https URL
            while chunk := resp.read(1 << 20):
                digest.update(chunk)
                fh.write(chunk)
        if not digest.hexdigest().startswith(expected):
            raise BackendUnavailableError(
                f"the download of {url} is corrupt (sha256 {digest.hexdigest()[:8]}..., expected {expected}...); try again"
            )
        os.replace(tmp, target)
    except BackendUnavailableError:
        tmp.unlink(missing_ok=True)
        raise
    except (OSError, urllib.error.URLError, TimeoutError) as exc:
        tmp.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise BackendUnavailableError(
            f"could not download {url} ({reason}); download it yourself and pass its path with --vgg PATH"
        ) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
