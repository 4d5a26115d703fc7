"""Perceptual loss on frozen features, with weights from a local file the user gives (never a download).

`vgg19`: torchvision's VGG-19 layout, pre-ReLU `conv4_4` (weight 1/4) and `conv5_4` (weight 1/2), inputs mapped
from [-1, 1] to ImageNet statistics, L1 between features: the perceptual term of the MAT recipe. Any timm model
name works too (`features_only`, the deepest two stages, equal weights). Weights load with `weights_only=True`
(or from safetensors); without a file the backbone keeps random weights, which is only meant for tests.
"""

from __future__ import annotations

from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn
from torchvision.models import vgg19

from restoration.precision import widen

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# indices in torchvision's vgg19().features of the convolutions conv4_4 and conv5_4 (pre-ReLU outputs)
VGG_LAYERS = {25: 0.25, 34: 0.5}


def load_state(path: Path) -> dict[str, Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"perceptual weights: {path} does not exist")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


class PerceptualLoss(nn.Module):
    """Frozen feature extractor + weighted L1 between features of `pred` and `target` (both in [-1, 1])."""

    def __init__(self, backbone: str = "vgg19", weights: Path | None = None) -> None:
        super().__init__()
        self.backbone_name = backbone
        if backbone == "vgg19":
            features = vgg19(weights=None).features[: max(VGG_LAYERS) + 1]
            if weights is not None:
                state = load_state(weights)
                state = {k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier")}
                features.load_state_dict(state)
            self.net = features
            self.layer_weights = dict(VGG_LAYERS)
        else:
            self.net = timm.create_model(backbone, pretrained=False, features_only=True)
            if weights is not None:
                self.net.load_state_dict(load_state(weights), strict=False)
            n = len(self.net.feature_info)
            self.layer_weights = {n - 2: 1.0, n - 1: 1.0}
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> PerceptualLoss:
        return super().train(False)  # always frozen, BatchNorm statistics included

    def features(self, img: Tensor) -> dict[int, Tensor]:
        x = ((widen(img) + 1.0) * 0.5 - self.mean) / self.std
        if self.backbone_name == "vgg19":
            out = {}
            for i, layer in enumerate(self.net):
                x = layer(x)
                if i in self.layer_weights:
                    out[i] = x
            return out
        return dict(enumerate(self.net(x)))

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        fp = self.features(pred)
        with torch.no_grad():
            ft = self.features(target)
        return sum(w * F.l1_loss(fp[i], ft[i]) for i, w in self.layer_weights.items())


def build_perceptual_loss(weights: Path | None, backbone: str = "vgg19") -> PerceptualLoss:
    return PerceptualLoss(backbone, weights)
