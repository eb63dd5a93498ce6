"""The style-prediction network: any picture -> a style vector for a trained transformer.

Ghiasi et al. 2017 ("Exploring the structure of a real-time, arbitrary neural artistic
stylization network") predict the conditional-instance-norm vector of a style network from
the style image with an ImageNet Inception trunk. Here the trunk is the truncated VGG the
losses already use, summarised as in MetaNet (Shen et al. 2018) and AdaIN (Huang & Belongie
2017) by per-channel means and standard deviations, over the same image pyramid as the
multi-scale loss, then a small MLP:

    x  RGB [B, 3, H, W] in [0, 1], H, W >= 64
    for level k < L and tap t in (relu1_1, relu2_1, relu3_1):
        F = VGG_t(avgpool_{2^k}(x))                     [B, C_t, h, w]
        mean over h, w; standard deviation over h, w    [B, C_t] each
    log1p of all of them, concatenated                  [B, D]   D = 2 L (64 + 128 + 256)
    LayerNorm -> Linear(D, n) -> ReLU -> Linear(n, n) -> ReLU -> Linear(n, S)
    + base                                              [B, S]

``base`` is the mean of the trained network's style vectors, and the last layer starts at
zero: an untrained predictor already gives a valid (average) style. The predictor carries
its own copy of the VGG up to relu3_1, so an exported predictor graph needs nothing else.
Its tensors are stored among a checkpoint's ``extra`` tensors, so the checkpoint is still a
normal one for nst-export, which exports the predictor beside the network.

Training is in ``predictor_train.py``, the choice of training images in ``predictor_corpus.py``.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylecast.realtime import contract as C
from stylecast.realtime.errors import CheckpointError, UsageError

from .checkpoint import Checkpoint
from .vgg import VGGFeatures

log = logging.getLogger("stylecast.predictor")

PREDICTOR_TAPS = ("relu1_1", "relu2_1", "relu3_1")
DEFAULT_SIDE = 256
"""Shorter side (px) of the style images the predictor learns from; the runtime scales to it."""
DEFAULT_HIDDEN = 512
DEFAULT_LEVELS = 3
PREDICTOR_PREFIX = "predictor."
"""Prefix of the predictor's tensors among a checkpoint's ``extra`` tensors."""


def truncate_vgg(vgg: VGGFeatures, last_tap: str = PREDICTOR_TAPS[-1]) -> VGGFeatures:
    """A new frozen VGG with the weights of ``vgg`` up to ``last_tap`` (a full VGG-19 is
    80 MB; the part the predictor needs is about 2 MB)."""
    if last_tap not in vgg.taps:
        raise UsageError(f"the style predictor needs VGG tap {last_tap}; the VGG weights have {', '.join(vgg.taps)}")
    weights: dict[str, tuple[Tensor, Tensor]] = {}
    last_conv = last_tap.replace("relu", "conv")
    for name, conv in vgg.convs.items():
        weights[name] = (conv.weight.detach().cpu().clone(), conv.bias.detach().cpu().clone())
        if name == last_conv:
            break
    preproc = None
    if vgg.preproc is not None:
        preproc = (vgg.preproc.weight.detach().cpu().clone(), vgg.preproc.bias.detach().cpu().clone())
    return VGGFeatures(vgg.arch, vgg.format, weights, preproc=preproc, pool=vgg.pool, source=vgg.source)


class StylePredictor(nn.Module):
    """Style image(s) -> style vector(s) for one transformer (see the module docstring).

    ``vgg`` is truncated to relu3_1 and kept frozen; ``base`` float [S] is the vector the
    predictor starts from. ``side`` is only recorded: the shorter side the images it learns
    from have, which the runtime scales every image to.
    """

    def __init__(
        self,
        vgg: VGGFeatures,
        base: Tensor,
        *,
        hidden: int = DEFAULT_HIDDEN,
        levels: int = DEFAULT_LEVELS,
        side: int = DEFAULT_SIDE,
    ) -> None:
        super().__init__()
        if base.ndim != 1:
            raise ValueError(f"base must be a style vector [S], got shape {tuple(base.shape)}")
        if not 1 <= levels <= 4 or hidden < 1:
            raise UsageError(f"predictor levels must be 1..4 and hidden >= 1, got {levels} and {hidden}")
        if side < C.PREDICTOR_MIN_SIDE:
            raise UsageError(f"the predictor's side must be at least {C.PREDICTOR_MIN_SIDE} px, got {side}")
        self.vgg = truncate_vgg(vgg)
        self.levels, self.hidden, self.side = levels, hidden, side
        self.style_dim = int(base.shape[0])
        with torch.no_grad():
            probe = self.vgg.features(torch.zeros(1, 3, 64, 64), PREDICTOR_TAPS)
        self.stat_dim = 2 * levels * sum(probe[t].shape[1] for t in PREDICTOR_TAPS)
        self.norm = nn.LayerNorm(self.stat_dim)
        self.mlp = nn.Sequential(
            nn.Linear(self.stat_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.head = nn.Linear(hidden, self.style_dim)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.register_buffer("base", base.detach().float().clone())

    def config(self) -> dict[str, Any]:
        """What ``from_config`` needs to rebuild the module before loading its weights."""
        return {
            "hidden": self.hidden, "levels": self.levels, "side": self.side, "style_dim": self.style_dim,
            "vgg": {"arch": self.vgg.arch, "format": self.vgg.format, "pool": self.vgg.pool, "last_tap": PREDICTOR_TAPS[-1]},
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> StylePredictor:
        """An untrained predictor of the shape ``config`` describes (load its weights next)."""
        v = config["vgg"]
        vgg = VGGFeatures.random(v["last_tap"], arch=v["arch"], fmt=v["format"], pool=v["pool"])
        return cls(vgg, torch.zeros(int(config["style_dim"])), hidden=int(config["hidden"]),
                   levels=int(config["levels"]), side=int(config["side"]))

    def statistics(self, x: Tensor) -> Tensor:
        """x: RGB float [B, 3, H, W] in [0, 1], H, W >= 64 -> log1p of the feature statistics [B, D]."""
        stats: list[Tensor] = []
        for k in range(self.levels):
            xk = x if k == 0 else F.avg_pool2d(x, 2**k)
            feats = self.vgg.features(xk, PREDICTOR_TAPS)
            for tap in PREDICTOR_TAPS:
                f = feats[tap].float().flatten(2)  # float32 even under autocast: variances of large values
                mean = f.mean(-1)
                var = (f - mean[..., None]).pow(2).mean(-1)
                stats += [mean, (var + 1e-6).sqrt()]
        return torch.log1p(torch.cat(stats, 1))  # ReLU features are >= 0; log1p tames their range

    def forward(self, x: Tensor) -> Tensor:
        """x: RGB float [B, 3, H, W] in [0, 1] -> style vectors float [B, S]."""
        if x.ndim != 4 or x.shape[1] != 3 or min(x.shape[-2:]) < C.PREDICTOR_MIN_SIDE:
            raise UsageError(f"the style predictor takes RGB images [B, 3, H, W] with H, W >= {C.PREDICTOR_MIN_SIDE}, got {tuple(x.shape)}")
        h = self.mlp(self.norm(self.statistics(x)))
        return self.base + self.head(h).float()


def predictor_tensors(predictor: StylePredictor) -> dict[str, Tensor]:
    """The predictor's weights as checkpoint ``extra`` tensors (``predictor.<name>``)."""
    return {PREDICTOR_PREFIX + k: v.detach().float().cpu().contiguous() for k, v in predictor.state_dict().items()}


def load_predictor(checkpoint: Checkpoint) -> StylePredictor | None:
    """The predictor stored in ``checkpoint`` (eval mode, CPU), or None when it has none."""
    config = checkpoint.info.get("predictor")
    if config is None:
        return None
    try:
        predictor = StylePredictor.from_config(config)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{checkpoint.folder}: incomplete predictor record ({exc})") from exc
    state = {k[len(PREDICTOR_PREFIX):]: v for k, v in checkpoint.extra.items() if k.startswith(PREDICTOR_PREFIX)}
    try:
        predictor.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{checkpoint.folder}: predictor weights do not fit its record ({str(exc).splitlines()[0]})") from exc
    if predictor.style_dim != checkpoint.net.style_dim:
        raise CheckpointError(f"{checkpoint.folder}: the predictor gives S={predictor.style_dim}, the network takes S={checkpoint.net.style_dim}")
    return predictor.eval()
