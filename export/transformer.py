"""Feed-forward style networks whose normalisation layers are driven by a style vector.

``JohnsonNet`` is the image transformation network of Johnson et al. 2016 ("Perceptual
Losses for Real-Time Style Transfer"), with every instance norm made *conditional*
(Dumoulin et al. 2017, "A Learned Representation for Artistic Style"): all convolution
weights are shared by all styles, and a style is only the vector of per-channel scales
(gamma) and shifts (beta) of the normalisation layers.

Style vector layout (S = 2 * total normalised channels): for each conditional
instance norm, in network order, ``[gamma (C), beta (C)]``. ``style_layout()`` lists it.

Networks take RGB float [B, 3, H, W] in [0, 1] and return RGB float [B, 3, H, W] of the
same size (nominally [0, 1]; clamped only at export). The Johnson network's last layer is a
sigmoid by default (``output="sigmoid"``): its output is always a valid colour, which trains
several times faster than a raw convolution on a short CPU budget (see weights/README.md);
``output="linear"`` keeps the plain convolution. Either way the exported contract is the same. Any H, W >= 16 works: the network
runs on the stride-rounded size internally and crops back.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class ConditionalInstanceNorm(nn.Module):
    """Instance norm whose affine scale and shift are read from the style vector (Dumoulin et al. 2017)."""

    def __init__(self, channels: int, offset: int) -> None:
        super().__init__()
        self.channels = channels
        self.offset = offset  # where this layer's [gamma, beta] starts in the style vector

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        c, o = self.channels, self.offset
        gamma = style[:, o : o + c, None, None]
        beta = style[:, o + c : o + 2 * c, None, None]
        return F.instance_norm(x, eps=1e-5) * gamma + beta


class ConvLayer(nn.Module):
    """Padded convolution. Reflection padding avoids dark borders (Johnson et al.); zero padding
    is cheaper and fine deep inside a network that works at reduced resolution."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, reflect: bool = True) -> None:
        super().__init__()
        self.pad = kernel // 2
        self.reflect = reflect
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=0 if reflect else self.pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reflect:
            x = F.pad(x, (self.pad,) * 4, mode="reflect")
        return self.conv(x)


class UpsampleConvLayer(nn.Module):
    """Nearest-neighbour upsampling then convolution: no checkerboard artefacts (Odena et al. 2016)."""

    def __init__(self, cin: int, cout: int, kernel: int, scale: int = 2) -> None:
        super().__init__()
        self.scale = scale
        self.conv = ConvLayer(cin, cout, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=float(self.scale), mode="nearest"))


class _StyleLayers:
    """Hands out consecutive offsets in the style vector as layers are built."""

    def __init__(self) -> None:
        self.dim = 0
        self.layout: list[tuple[str, int]] = []

    def norm(self, name: str, channels: int) -> ConditionalInstanceNorm:
        layer = ConditionalInstanceNorm(channels, self.dim)
        self.layout.append((name, channels))
        self.dim += 2 * channels
        return layer


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with conditional instance norm and an identity skip (He et al. 2016)."""

    def __init__(self, channels: int, styles: _StyleLayers, name: str, reflect: bool = True) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3, reflect=reflect)
        self.norm1 = styles.norm(f"{name}.norm1", channels)
        self.conv2 = ConvLayer(channels, channels, 3, reflect=reflect)
        self.norm2 = styles.norm(f"{name}.norm2", channels)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x), style))
        return x + self.norm2(self.conv2(y), style)


class StyleNetwork(nn.Module):
    """What every architecture offers the trainer and the exporter."""

    arch_name: str = ""
    stride: int = 1  # input sizes are rounded up to a multiple of this internally
    style_dim: int
    _layout: list[tuple[str, int]]

    def config(self) -> dict[str, Any]:
        """Constructor arguments, stored in checkpoints so the network can be rebuilt."""
        raise NotImplementedError

    def style_layout(self) -> list[tuple[str, int]]:
        """(layer name, channels) for each conditional norm, in style-vector order."""
        return list(self._layout)

    def for_bgr255(self) -> StyleNetwork | None:
        """A copy that takes BGR in 0..255 and returns BGR in 0..1 (no clamp needed), with the
        frame handling of the export folded into its weights, or None when the architecture
        cannot (then the graph converts the frame itself)."""
        return None

    def identity_style(self, n: int = 1) -> torch.Tensor:
        """Style vectors with gamma = 1 and beta = 0: the starting point of a new style."""
        parts = []
        for _, c in self._layout:
            parts += [torch.ones(c), torch.zeros(c)]
        return torch.cat(parts).expand(n, -1).clone()


class JohnsonNet(StyleNetwork):
    """9x9 conv, two stride-2 convs, residual blocks, two upsampling convs, 9x9 conv (Johnson et al. 2016)."""

    arch_name = "johnson"
    stride = 4

    OUTPUTS = ("sigmoid", "linear")

    def __init__(
        self, channels: tuple[int, int, int] = (32, 64, 128), residual_blocks: int = 5, output: str = "sigmoid"
    ) -> None:
        super().__init__()
        if output not in self.OUTPUTS:
            from stylecast.realtime.errors import UsageError

            raise UsageError(f"unknown output layer {output!r}; known: {', '.join(self.OUTPUTS)}")
        c1, c2, c3 = channels
        self._channels = (c1, c2, c3)
        self._blocks = residual_blocks
        self._output = output
        s = _StyleLayers()
        self.conv1, self.norm1 = ConvLayer(3, c1, 9), s.norm("norm1", c1)
        self.conv2, self.norm2 = ConvLayer(c1, c2, 3, stride=2), s.norm("norm2", c2)
        self.conv3, self.norm3 = ConvLayer(c2, c3, 3, stride=2), s.norm("norm3", c3)
        self.res = nn.ModuleList(ResidualBlock(c3, s, f"res{i + 1}") for i in range(residual_blocks))
        self.up1, self.norm4 = UpsampleConvLayer(c3, c2, 3), s.norm("norm4", c2)
        self.up2, self.norm5 = UpsampleConvLayer(c2, c1, 3), s.norm("norm5", c1)
        self.conv_out = ConvLayer(c1, 3, 9)
        self.style_dim = s.dim
        self._layout = s.layout

    def config(self) -> dict[str, Any]:
        return {"channels": list(self._channels), "residual_blocks": self._blocks, "output": self._output}

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """x: RGB float [B, 3, H, W] in [0, 1]; style: [B, S] or [1, S]. Returns [B, 3, H, W]."""
        h, w = x.shape[-2], x.shape[-1]
        # Two stride-2 convs take any size to ceil(H/4); the upsampling returns 4*ceil(H/4) >= H.
        y = F.relu(self.norm1(self.conv1(x), style))
        y = F.relu(self.norm2(self.conv2(y), style))
        y = F.relu(self.norm3(self.conv3(y), style))
        for block in self.res:
            y = block(y, style)
        y = F.relu(self.norm4(self.up1(y), style))
        y = F.relu(self.norm5(self.up2(y), style))
        y = self.conv_out(y)[..., :h, :w]
        return torch.sigmoid(y) if self._output == "sigmoid" else y


class FastNet(StyleNetwork):
    """A network built for speed: space-to-depth in, a narrow residual body at 1/``factor``
    resolution, depth-to-space out (pixel shuffle, Shi et al. 2016).

    The full-resolution 9x9 convolutions and instance norms dominate the Johnson network's
    cost; here every convolution runs at 1/16 of the pixels. Input sizes are padded (edge
    replication) to a multiple of ``factor`` and cropped back.

    ``output="residual"`` adds the head's result to the input picture; ``output="sigmoid"``
    (as the Johnson network) makes the picture from the head alone. A CIN network cannot
    cancel the input's own colours through a residual (the instance norms remove each
    channel's level), so a student distilled from a palette-remapping teacher needs
    ``"sigmoid"``. The head starts ICNR-initialised (Aitken et al. 2017): the 16 sub-pixels
    of each 4x4 block start with the same weights, so a fresh network has no checkerboard.
    """

    OUTPUTS = ("residual", "sigmoid")

    arch_name = "fast"

    def __init__(
        self, channels: int = 48, residual_blocks: int = 4, factor: int = 4, reflect: bool = False, output: str = "residual"
    ) -> None:
        super().__init__()
        if output not in self.OUTPUTS:
            from stylecast.realtime.errors import UsageError

            raise UsageError(f"unknown output layer {output!r}; known: {', '.join(self.OUTPUTS)}")
        self._cfg = {"channels": channels, "residual_blocks": residual_blocks, "factor": factor, "reflect": reflect,
                     "output": output}
        self.stride = factor
        s = _StyleLayers()
        packed = 3 * factor * factor
        self.stem, self.norm_in = ConvLayer(packed, channels, 3, reflect=reflect), s.norm("norm_in", channels)
        self.res = nn.ModuleList(ResidualBlock(channels, s, f"res{i + 1}", reflect=reflect) for i in range(residual_blocks))
        self.head = ConvLayer(channels, packed, 3, reflect=reflect)
        _icnr_(self.head.conv, factor)
        self.style_dim = s.dim
        self._layout = s.layout

    def config(self) -> dict[str, Any]:
        return dict(self._cfg)

    def for_bgr255(self) -> FastNet | None:
        """With the sigmoid output: the stem's input channels reordered to BGR and scaled by 1/255,
        the head's outputs reordered to BGR (pixel-unshuffle puts each colour's f*f sub-pixels
        together, so a colour swap is a permutation of those groups). The residual output adds
        the input itself, which a weight change cannot rescale: None."""
        if self._cfg["output"] != "sigmoid":
            return None
        net, group = copy.deepcopy(self), self.stride * self.stride
        order = [(2 - c) * group + k for c in range(3) for k in range(group)]  # RGB <-> BGR, per colour group
        with torch.no_grad():
            net.stem.conv.weight.copy_(self.stem.conv.weight[:, order] / 255.0)
            net.head.conv.weight.copy_(self.head.conv.weight[order])
            net.head.conv.bias.copy_(self.head.conv.bias[order])
        return net

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """x: RGB float [B, 3, H, W] in [0, 1]; style: [B, S] or [1, S]. Returns [B, 3, H, W]."""
        f = self.stride
        h, w = x.shape[-2], x.shape[-1]
        y = F.pad(x, (0, (f - w % f) % f, 0, (f - h % f) % f), mode="replicate")
        y = F.relu(self.norm_in(self.stem(F.pixel_unshuffle(y, f)), style))
        for block in self.res:
            y = block(y, style)
        y = F.pixel_shuffle(self.head(y), f)[..., :h, :w]
        if self._cfg["output"] == "sigmoid":
            return torch.sigmoid(y)
        return x + y  # the head predicts the change to the input


def _icnr_(conv: nn.Conv2d, factor: int) -> None:
    """ICNR: give the ``factor**2`` sub-pixel outputs of each channel the same initial weights and bias."""
    with torch.no_grad():
        out_ch = conv.out_channels // (factor * factor)
        conv.weight.copy_(conv.weight[:out_ch].repeat_interleave(factor * factor, dim=0))
        if conv.bias is not None:
            conv.bias.copy_(conv.bias[:out_ch].repeat_interleave(factor * factor))


ARCHITECTURES: dict[str, type[StyleNetwork]] = {JohnsonNet.arch_name: JohnsonNet, FastNet.arch_name: FastNet}


def build_network(arch: str = "johnson", config: dict[str, Any] | None = None) -> StyleNetwork:
    """Build a network by architecture name, with the constructor arguments of ``config()``."""
    try:
        cls = ARCHITECTURES[arch]
    except KeyError:
        from stylecast.realtime.errors import UsageError

        raise UsageError(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}") from None
    cfg = dict(config or {})
    if isinstance(cfg.get("channels"), list):  # JSON gives lists; the Johnson net takes a tuple
        cfg["channels"] = tuple(cfg["channels"])
    try:
        return cls(**cfg)
    except TypeError as exc:
        from stylecast.realtime.errors import UsageError

        raise UsageError(f"the settings {cfg} do not fit the {arch} architecture ({exc})") from None
