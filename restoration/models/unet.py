"""A U-Net decoder on any `timm` encoder (`features_only=True`), shared by the colorizer, detector and baseline.

The encoder is never hand-built: any architecture timm knows works, and pretrained weights come only from a local file
(`pretrained_cfg_overlay=dict(file=...)`, timm's own loader, so 1-channel inputs get its channel adaptation), never
a download. Names that would make timm fetch something (`hf-hub:org/name`, URLs, `timm/...` hub paths, `local-dir:`)
are refused (`encoder_name_problem`): building a network never touches the network. Inputs whose sides are not
multiples of the encoder's stride are reflect-padded and cropped back.
"""

from __future__ import annotations

import re
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn

_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")  # an architecture (and tag), no scheme (`hf-hub:`), no path


def encoder_name_problem(name: object) -> str | None:
    """Why `name` is not an encoder timm builds offline, or None when it is one: a plain architecture name that timm
    lists (`resnet34`, `resnet34.a1_in1k`); hub and URL names (`hf-hub:...`, `https://...`, `timm/...`) are refused
    because timm would download their config even without pretrained weights."""
    if not isinstance(name, str) or not name:
        return f"expected a timm architecture name such as 'resnet34', got {name!r}"
    if not _PLAIN_NAME.match(name):
        return (
            f"{name!r} is not a plain timm architecture name (hub or URL names like 'hf-hub:org/name' would be "
            "downloaded; models are built offline): use a name such as 'resnet34'"
        )
    if not timm.is_model(name):
        return f"{name!r} is not an architecture this timm {timm.__version__} knows (timm.list_models())"
    return None


def create_encoder(name: str, in_chans: int, pretrained: Path | None) -> nn.Module:
    problem = encoder_name_problem(name)
    if problem:
        raise ValueError(f"encoder: {problem}")
    kwargs = {"features_only": True, "in_chans": in_chans}
    if pretrained is not None:
        path = Path(pretrained)
        if not path.is_file():
            raise FileNotFoundError(f"encoder weights for {name!r}: {path} does not exist")
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **kwargs)
    return timm.create_model(name, pretrained=False, **kwargs)


class ConvBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class TimmUNet(nn.Module):
    """Encoder features at strides s_1 < ... < s_k; the decoder goes back up with skips, then to full resolution,
    where the raw input is concatenated once more (fine detail for masks and chroma edges)."""

    def __init__(
        self,
        *,
        encoder: str,
        in_chans: int,
        out_chans: int,
        decoder_channels: tuple[int, ...] = (256, 128, 64, 32),
        pretrained: Path | None = None,
    ) -> None:
        super().__init__()
        self.encoder = create_encoder(encoder, in_chans, pretrained)
        info = self.encoder.feature_info
        enc_chans, reductions = info.channels(), info.reduction()
        self.stride = max(reductions)
        self.reductions = reductions
        blocks = []
        cin = enc_chans[-1]
        skips = list(reversed(enc_chans[:-1]))  # deepest skip first
        for i, skip in enumerate(skips):
            cout = decoder_channels[min(i, len(decoder_channels) - 1)]
            blocks.append(ConvBlock(cin + skip, cout))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.final = ConvBlock(cin + in_chans, decoder_channels[-1])
        self.head = nn.Conv2d(decoder_channels[-1], out_chans, 1)

    def forward(self, x: Tensor) -> Tensor:
        H, W = x.shape[-2:]
        pad_h, pad_w = (-H) % self.stride, (-W) % self.stride
        xp = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect") if (pad_h or pad_w) else x
        feats = self.encoder(xp)
        y = feats[-1]
        for block, skip in zip(self.blocks, reversed(feats[:-1])):
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([y, skip], dim=1))
        y = F.interpolate(y, size=xp.shape[-2:], mode="bilinear", align_corners=False)
        y = self.head(self.final(torch.cat([y, xp], dim=1)))
        return y[..., :H, :W]
