"""The trained pipeline as one object: find the lost region -> inpaint the gray -> composite -> colorize.

Everything that restores an image goes through `Pipeline`: validation during training (built from the stage's EMA
networks in memory, `Pipeline.from_networks`), `restoration-predict`, `restoration-evaluate`'s callers, the MLflow
model, the demo and the quality study (built from an export, `load_pipeline`). How it restores is an
`InferenceSettings` value passed per call (`restoration/inference.py`); a model's defaults are the settings chosen on
its val split when its training ended (`pipeline.json` `inference`). Networks are held by role (inpainter,
colorizer, restorer, mask_detector: `weights.NETWORK_TABLE`), never by name.

Sizes: MAT works on a fixed square window (512 for the official weights). An image of any other size is padded to a
whole number of windows with the pad marked as lost (MAT paints it, the crop removes it). The colorizer is fully
convolutional; in `resize` color mode it runs at its training resolution (`pipeline.json` `image_size`) and only its
chroma is upsampled under the full-resolution luma, because a colorizer run on photos larger than it was trained on
loses color (BENCHMARKS.md).

Randomness: each image draws MAT's latent and dropout from its own generator, seeded by the call's seed and the
image's key (its file name), so an image restores the same whatever batch or order it comes in; that is what makes
the validation score of a run equal to what `restoration-predict` scores on the same files.
"""

from __future__ import annotations

import logging
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from restoration.anchors import PIPELINE_FILL, classical_fill
from restoration.data.color import (
    chroma_at_least,
    gray_chroma_to_rgb,
    signed_to_u8,
    signed_to_unit,
    u8_to_signed,
    unit_to_signed,
)
from restoration.data.exact_mask import find_exact_hole
from restoration.inference import InferenceSettings, composite, inpaint_gray
from restoration.weights import (
    INFERENCE_NETWORKS,
    RESTORING_ROLES,
    ModelSourceError,
    Role,
    build_network,
    load_weights_into,
    recorded_settings,
    resolve_source,
)

log = logging.getLogger(__name__)

UNET_MULTIPLE = 32  # the timm U-Nets (colorizer, detector, baseline) need sides divisible by their total stride
MaskSource = Literal["given", "exact", "learned", "none"]


class KnownMask(NamedTuple):
    """A known mask (H, W) uint8 {0, 1}, where it came from, and why the exact contest rule was refused when it was
    (`exact_mask.find_exact_hole`: the input's largest flat region is a background, not a hole), else ''."""

    known: np.ndarray
    source: MaskSource
    exact_refused: str = ""


@dataclass
class Restored:
    """One restored image: RGB (H, W, 3) uint8, the inpainted gray (H, W) uint8 it was colored from, the known mask
    used (H, W) uint8 {0, 1}, where that mask came from, and why the exact rule was refused ('' when it was not)."""

    rgb: np.ndarray
    gray: np.ndarray
    known: np.ndarray
    mask_source: MaskSource
    exact_refused: str = ""


def image_generator(seed: int, key: str, part: int, device: torch.device) -> torch.Generator:
    """The random stream of one image (of one of its MAT windows, `part`): a function of the seed and the key only."""
    text = f"{seed}:{key}:{part}".encode(errors="surrogateescape")  # a key from a non-UTF-8 file name: its bytes
    return torch.Generator(device=device).manual_seed(zlib.crc32(text))


@dataclass
class Pipeline:
    """The networks that restore a gray image, by role; any of them may be missing (see `describe`)."""

    networks: dict[Role, nn.Module]
    device: torch.device
    color_size: int | None = None  # the colorizer's training resolution (`color_mode="resize"`)
    defaults: InferenceSettings = field(default_factory=InferenceSettings)
    files: dict[Role, Path] = field(default_factory=dict)

    @classmethod
    def from_networks(
        cls, networks: dict[Role, nn.Module], device: torch.device, *, color_size: int | None = None,
        defaults: InferenceSettings | None = None,
    ) -> Pipeline:  # fmt: skip
        """A pipeline over networks in memory (a stage's EMA networks during validation); they are used as they
        are, not copied."""
        return cls(dict(networks), torch.device(device), color_size, defaults or InferenceSettings())

    @property
    def window(self) -> int:
        """The side that image canvases are padded to a multiple of."""
        G = self.networks.get("inpainter")
        return int(G.img_resolution) if G is not None else UNET_MULTIPLE

    @property
    def restorer_only(self) -> bool:
        """One network doing inpainting and color at once (the baseline)."""
        return "restorer" in self.networks and "inpainter" not in self.networks

    @property
    def has_choices(self) -> bool:
        """Whether its settings are worth choosing on a val split (an inpainter or a colorizer to set)."""
        return not self.restorer_only and bool({"inpainter", "colorizer"} & set(self.networks))

    @property
    def colorizes(self) -> bool:
        return "colorizer" in self.networks and not self.restorer_only

    def describe(self, settings: InferenceSettings | None = None) -> str:
        s = settings or self.defaults
        nets = self.networks
        if self.restorer_only:
            steps = ["one U-Net GAN (baseline)"]
        else:
            if s.inpaint_mode == "fill":
                inpainter = f"classical fill ({PIPELINE_FILL})"
            elif "inpainter" in nets:
                on_fill = (
                    ", on the harmonic fill" if getattr(nets["inpainter"].synthesis, "prior", "none") == "fill" else ""
                )
                inpainter = f"MAT ({s.inpaint_mode}{on_fill})"
            else:
                inpainter = "no inpainter (lost region kept as filled)"
            scale = (
                (f", chroma x{s.chroma_scale:g}" if s.chroma_scale != 1 else "")
                + (f", chroma floor {s.chroma_floor:g}" if s.chroma_floor else "")
                + (", flip" if s.chroma_flip else "")
            )
            colorizer = f"colorizer ({s.color_mode}{scale})" if "colorizer" in nets else "no colorizer (gray output)"
            steps = [inpainter, colorizer]
        detect = "exact rule + learned detector" if "mask_detector" in nets else "exact rule"
        return f"{detect} -> " + " -> ".join(steps) + f" (window {self.window}px, {self.device}, {s.precision})"

    # -- the lost region -------------------------------------------------------------------------------------
    def known_mask(self, gray: np.ndarray, settings: InferenceSettings | None = None) -> KnownMask:
        """(H, W) uint8 -> the exact contest rule's mask (source `exact`), else the learned detector's (`learned`),
        else everything known (`none`: nothing is inpainted). When the exact rule was refused because the input's
        largest flat region cannot be a contest hole (a background spanning the image), the fallback is the same
        and `exact_refused` says why, so that callers can warn: repainting a background would change known pixels.
        """
        hole, refused = find_exact_hole(gray)
        if hole is not None:
            return KnownMask((~hole).astype(np.uint8), "exact")
        if "mask_detector" not in self.networks:
            return KnownMask(np.ones(gray.shape, np.uint8), "none", refused or "")
        return KnownMask(self.detect(gray, settings), "learned", refused or "")

    @torch.no_grad()
    def detect(self, gray: np.ndarray, settings: InferenceSettings | None = None) -> np.ndarray:
        """The learned detector's known mask (H, W) uint8 {0, 1} of a gray (H, W) uint8 image."""
        h, w = gray.shape
        H, W = _round_up(h, UNET_MULTIPLE), _round_up(w, UNET_MULTIPLE)
        canvas = np.pad(gray, ((0, H - h), (0, W - w)), mode="reflect" if min(h, w) > 1 else "edge")
        x = u8_to_signed(torch.from_numpy(canvas).to(self.device)[None, None])
        with self._autocast(settings or self.defaults):
            logits = self.networks["mask_detector"](x)[0, 0, :h, :w].float()
        return (logits > 0).cpu().numpy().astype(np.uint8)

    # -- restoring -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def restore(
        self,
        grays: list[np.ndarray],
        known: list[np.ndarray | None] | None = None,
        *,
        settings: InferenceSettings | None = None,
        seed: int = 0,
        keys: list[str] | None = None,
    ) -> list[Restored]:
        """Restore gray (H, W) uint8 images of any sizes with `settings` (default: the model's); `known` masks (1 =
        known) replace the detection; `keys` (file names) seed each image's random draws (default: its position)."""
        s = settings or self.defaults
        known = known if known is not None else [None] * len(grays)
        keys = keys if keys is not None else [str(i) for i in range(len(grays))]
        masks: list[KnownMask] = [
            KnownMask(k.astype(np.uint8), "given") if k is not None else self.known_mask(g, s)
            for g, k in zip(grays, known)
        ]
        window = self.window
        results: list[Restored | None] = [None] * len(grays)
        by_canvas: dict[tuple[int, int], list[int]] = {}
        for i, g in enumerate(grays):
            by_canvas.setdefault((_round_up(g.shape[0], window), _round_up(g.shape[1], window)), []).append(i)
        for (H, W), idx in by_canvas.items():
            gray_b = np.stack([_pad(grays[i], H, W, mode="edge") for i in idx])  # (b, H, W)
            known_b = np.stack([_pad(masks[i].known, H, W, mode="zero") for i in idx])  # pad = lost
            gray_t = u8_to_signed(torch.from_numpy(gray_b).to(self.device)[:, None])  # (b, 1, H, W)
            known_t = torch.from_numpy(known_b).to(self.device)[:, None].float()
            filled, rgb = self.restore_canvas(gray_t, known_t, s, seed=seed, keys=[keys[i] for i in idx])
            gray_u8, rgb_u8 = signed_to_u8(filled.float()).cpu(), signed_to_u8(rgb.float()).cpu()
            for j, i in enumerate(idx):
                h, w = grays[i].shape
                out = rearrange(rgb_u8[j, :, :h, :w], "c h w -> h w c").numpy()
                results[i] = Restored(
                    rgb=np.ascontiguousarray(out), gray=gray_u8[j, 0, :h, :w].numpy(), known=masks[i].known,
                    mask_source=masks[i].source, exact_refused=masks[i].exact_refused,
                )  # fmt: skip
        return results  # type: ignore[return-value]

    def restore_canvas(
        self, gray: Tensor, known: Tensor, settings: InferenceSettings, *, seed: int, keys: list[str]
    ) -> tuple[Tensor, Tensor]:
        """Tensors in, tensors out: (b, 1, H, W) gray in [-1, 1] + known mask, H and W multiples of `window` ->
        (the inpainted gray (b, 1, H, W), the RGB (b, 3, H, W)), both in [-1, 1]."""
        with self._autocast(settings):
            nets = self.networks
            if self.restorer_only:
                rgb = nets["restorer"](gray).float().clamp(-1, 1)
                return gray, rgb
            if settings.inpaint_mode == "fill":
                gray = self._fill(gray, known)
            elif "inpainter" in nets:
                inpaint = self._inpaint if settings.inpaint_mode == "tile" else self._inpaint_resized
                gray = inpaint(gray, known, settings, seed, keys).float()
            if "colorizer" in nets:
                return gray, self._colorize(gray, settings).float()
            return gray, gray.expand(-1, 3, -1, -1)

    def _autocast(self, settings: InferenceSettings) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=settings.bf16)

    def _generators(self, seed: int, keys: list[str], parts: int) -> list[torch.Generator]:
        return [image_generator(seed, key, part, self.device) for key in keys for part in range(parts)]

    def _fill(self, gray: Tensor, known: Tensor) -> Tensor:
        """The classical fill of each image (exact on uint8: the canvas came from uint8 gray)."""
        gray_u8 = signed_to_u8(gray[:, 0]).cpu().numpy()  # (b, H, W)
        known_u8 = (known[:, 0] > 0.5).cpu().numpy().astype(np.uint8)
        filled = np.stack([classical_fill(g, k, PIPELINE_FILL) for g, k in zip(gray_u8, known_u8)])
        return u8_to_signed(torch.from_numpy(filled).to(gray.device)[:, None])

    def _inpaint(self, gray: Tensor, known: Tensor, s: InferenceSettings, seed: int, keys: list[str]) -> Tensor:
        """MAT window by window; known pixels stay exactly the input's."""
        R = self.window
        nh, nw = gray.shape[2] // R, gray.shape[3] // R
        tiles = rearrange(gray, "b c (nh h) (nw w) -> (b nh nw) c h w", h=R, w=R)
        tiles_known = rearrange(known, "b c (nh h) (nw w) -> (b nh nw) c h w", h=R, w=R)
        filled = inpaint_gray(
            self.networks["inpainter"], tiles, tiles_known, truncation_psi=s.truncation_psi,
            generator=self._generators(seed, keys, nh * nw),
        )  # fmt: skip
        return rearrange(filled, "(b nh nw) c h w -> b c (nh h) (nw w)", nh=nh, nw=nw)

    def _inpaint_resized(self, gray: Tensor, known: Tensor, s: InferenceSettings, seed: int, keys: list[str]) -> Tensor:
        """MAT on the whole canvas resized to one window; its fill upsampled into the hole, known pixels exact.

        A pixel of the small canvas is known only when every input pixel it covers is known, so the fill value of
        the hole never leaks into MAT's context."""
        R = self.window
        if gray.shape[2:] == (R, R):
            return self._inpaint(gray, known, s, seed, keys)
        small = F.interpolate(gray, size=(R, R), mode="area")  # (b, 1, R, R)
        small_known = (F.interpolate(known, size=(R, R), mode="area") > 1.0 - 1e-4).float()
        filled = inpaint_gray(
            self.networks["inpainter"], small, small_known, truncation_psi=s.truncation_psi,
            generator=self._generators(seed, keys, 1),
        )  # fmt: skip
        up = F.interpolate(filled.float(), size=gray.shape[2:], mode="bicubic", align_corners=False).clamp(-1, 1)
        return composite(known, gray, up)

    def _colorize(self, gray: Tensor, s: InferenceSettings) -> Tensor:
        """(b, 1, H, W) gray -> (b, 3, H, W) RGB whose luma is `gray`; in `resize` mode the chroma is predicted
        with the short side at the colorizer's training resolution and upsampled bilinearly; then scaled by
        `chroma_scale`, then raised to at least `chroma_floor`."""
        G = self.networks["colorizer"]
        H, W = gray.shape[2:]
        size = self.color_size
        predict = G.chroma  # what G(gray) combines with the gray
        if s.chroma_flip:
            predict = lambda g: (G.chroma(g).float() + G.chroma(g.flip(-1)).float().flip(-1)) / 2  # noqa: E731
        if s.color_mode == "full" or size is None or min(H, W) <= size:
            chroma = predict(gray).float()
        else:
            scale = size / min(H, W)
            h, w = _round_up(round(H * scale), UNET_MULTIPLE), _round_up(round(W * scale), UNET_MULTIPLE)
            chroma = predict(F.interpolate(gray, size=(h, w), mode="area")).float()  # (b, 2, h, w)
            chroma = F.interpolate(chroma, size=(H, W), mode="bilinear", align_corners=False)
        if s.chroma_scale != 1:
            chroma = chroma * s.chroma_scale
        chroma = chroma_at_least(chroma, s.chroma_floor)
        return unit_to_signed(gray_chroma_to_rgb(signed_to_unit(gray.float()), chroma)).clamp(-1, 1)


def _round_up(n: int, multiple: int) -> int:
    return max(1, math.ceil(n / multiple)) * multiple


def _pad(a: np.ndarray, H: int, W: int, *, mode: Literal["edge", "zero"]) -> np.ndarray:
    pads = ((0, H - a.shape[0]), (0, W - a.shape[1]))
    return np.pad(a, pads, mode="edge") if mode == "edge" else np.pad(a, pads)


def load_pipeline(sources: list[str | Path], device: str | torch.device = "cpu") -> Pipeline:
    """Build the inference networks found in `sources` (first match per network) with their weights, in eval mode.
    Its `defaults` come from the first source whose `pipeline.json` records each setting (`inference`), else
    `InferenceSettings()`; callers override them per call (`defaults.but(...)`)."""
    resolved = [resolve_source(s) for s in sources]
    if not resolved:
        raise ModelSourceError("no model given")
    device = torch.device(device)
    networks: dict[Role, nn.Module] = {}
    files: dict[Role, Path] = {}
    color_size = None
    for spec in INFERENCE_NETWORKS:
        for source in resolved:
            path = source.file(spec.name)
            if path is None:
                continue
            net = build_network(spec.name, source.meta, source.origin or source.directory)
            load_weights_into(net, path, spec.name)
            networks[spec.role] = net.to(device).eval().requires_grad_(False)
            files[spec.role] = path
            if spec.role == "colorizer" and source.meta.get("image_size"):
                color_size = int(source.meta["image_size"])
            break
    if not set(RESTORING_ROLES) & set(networks):
        dirs = ", ".join(str(s.directory) for s in resolved)
        raise ModelSourceError(f"{dirs}: no inpainter, colorizer or baseline weights (found: {sorted(networks)})")
    for role, path in files.items():
        log.info("%s <- %s", role, path)
    defaults = recorded_settings(resolved)
    return Pipeline(networks=networks, device=device, color_size=color_size, defaults=defaults, files=files)
