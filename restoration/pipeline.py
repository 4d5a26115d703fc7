"""The trained pipeline as one object: find the lost region -> MAT inpaints the gray -> composite -> colorize.

Shared by `predict` (files), `evaluate` and the MLflow pyfunc model, so all three restore an image the same way;
MAT runs through `inference.inpaint_gray`, the same function the stages validate with during training. Where the
weights come from and how networks are rebuilt is `restoration/weights.py`.

Sizes: MAT works on a fixed square window (512 for the official weights). An image of any other size is padded
to a whole number of windows with the pad marked as lost (MAT paints it, the crop removes it). How the lost region
is then filled is the `inpaint_mode`:
- `tile`: window by window at full resolution (a hole cut by a window border loses the context across it);
- `resize`: the whole canvas resized to one window, MAT fills it there, and the fill is upsampled into the hole
  (known pixels stay the input's, at full resolution): for models trained below the photos' resolution;
- `fill`: no network, the biharmonic fill of the gray (`anchors.classical_fill`, scikit-image; it scored M above
  OpenCV's Telea on held-out photos), the smooth answer the contest's M rewards.
The colorizer is fully convolutional; `color_mode` `full` runs it on the whole canvas, `resize` runs it at its
training resolution (`pipeline.json` `image_size`) and upsamples only its chroma under the full-resolution luma;
`chroma_scale` (< 1) makes the color less saturated with the same hue.
Defaults come from the `inference` field of `pipeline.json` (the inpaint mode and the chroma scale are measured at
the end of an `inpaint`, `colorize` or `joint` training, `mode_choice.py`; the quality study measures and records
the resolution modes), else `tile`, `resize` and 1. `resize` is the
color default because a colorizer run on photos larger than it was trained on loses color (BENCHMARKS.md: C 0.339
`full` vs 0.426 `resize` for a 128 px colorizer on 512 px photos) and it changes nothing on photos no larger.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from restoration.anchors import PIPELINE_FILL, classical_fill
from restoration.data.color import gray_chroma_to_rgb, signed_to_u8, signed_to_unit, u8_to_signed, unit_to_signed
from restoration.data.exact_mask import exact_hole
from restoration.inference import composite, inpaint_gray
from restoration.models.mat import INFERENCE_TRUNCATION
from restoration.weights import NETWORKS, ModelSourceError, build_network, load_weights_into, resolve_source

log = logging.getLogger(__name__)

UNET_MULTIPLE = 32  # the timm U-Nets (colorizer, detector, baseline) need sides divisible by their total stride
MaskSource = Literal["given", "exact", "detector", "none"]
InpaintMode = Literal["tile", "resize", "fill"]
ColorMode = Literal["full", "resize"]
INPAINT_MODES: tuple[InpaintMode, ...] = ("tile", "resize", "fill")
COLOR_MODES: tuple[ColorMode, ...] = ("full", "resize")


@dataclass
class Restored:
    """One restored image: RGB (H, W, 3) uint8, the known mask used (H, W) uint8 {0, 1}, and where it came from."""

    rgb: np.ndarray
    known: np.ndarray
    mask_source: MaskSource


@dataclass
class Pipeline:
    """The networks that restore a gray image; any of them may be missing (see `describe`)."""

    networks: dict[str, nn.Module]
    device: torch.device
    files: dict[str, Path] = field(default_factory=dict)
    truncation_psi: float = INFERENCE_TRUNCATION  # MAT's style: 0 = the mean style (best contest score), 1 = sampled
    inpaint_mode: InpaintMode = "tile"
    color_mode: ColorMode = "resize"
    color_size: int | None = None  # the colorizer's training resolution (`color_mode="resize"`)
    bf16: bool = False  # networks under bf16 autocast on their device (GPU or CPU); fp32 by default
    chroma_scale: float = 1.0  # the colorizer's chroma times this (< 1: less saturated, the hue kept)

    def __post_init__(self) -> None:
        if self.inpaint_mode not in INPAINT_MODES:
            raise ValueError(f"inpaint mode {self.inpaint_mode!r}: expected one of {', '.join(INPAINT_MODES)}")
        if self.color_mode not in COLOR_MODES:
            raise ValueError(f"color mode {self.color_mode!r}: expected one of {', '.join(COLOR_MODES)}")
        if not 0.0 <= self.chroma_scale <= 1.0:
            raise ValueError(f"chroma scale {self.chroma_scale}: expected a number in [0, 1]")

    @property
    def window(self) -> int:
        """The side that image canvases are padded to a multiple of."""
        G = self.networks.get("mat_G")
        return int(G.img_resolution) if G is not None else UNET_MULTIPLE

    def describe(self) -> str:
        nets = self.networks
        if "baseline_G" in nets and "mat_G" not in nets:
            steps = ["one U-Net GAN (baseline)"]
        else:
            if self.inpaint_mode == "fill":
                inpainter = f"classical fill ({PIPELINE_FILL})"
            elif "mat_G" in nets:
                inpainter = f"MAT ({self.inpaint_mode})"
            else:
                inpainter = "no inpainter (lost region kept as filled)"
            scale = f", chroma x{self.chroma_scale:g}" if self.chroma_scale != 1 else ""
            colorizer = f"colorizer ({self.color_mode}{scale})" if "color_G" in nets else "no colorizer (gray output)"
            steps = [inpainter, colorizer]
        detect = "exact rule + learned detector" if "detector" in nets else "exact rule"
        precision = "bf16" if self.bf16 else "fp32"
        return f"{detect} -> " + " -> ".join(steps) + f" (window {self.window}px, {self.device}, {precision})"

    # -- the lost region -------------------------------------------------------------------------------------
    @torch.no_grad()
    def known_mask(self, gray: np.ndarray) -> tuple[np.ndarray, MaskSource]:
        """(H, W) uint8 -> (known (H, W) uint8 {0, 1}, source): the exact contest rule, else the learned detector,
        else everything known (nothing is inpainted)."""
        hole = exact_hole(gray)
        if hole is not None:
            return (~hole).astype(np.uint8), "exact"
        detector = self.networks.get("detector")
        if detector is None:
            return np.ones(gray.shape, np.uint8), "none"
        h, w = gray.shape
        H, W = _round_up(h, UNET_MULTIPLE), _round_up(w, UNET_MULTIPLE)
        canvas = np.pad(gray, ((0, H - h), (0, W - w)), mode="reflect" if min(h, w) > 1 else "edge")
        x = u8_to_signed(torch.from_numpy(canvas).to(self.device)[None, None])
        with self._autocast():
            logits = detector(x)[0, 0, :h, :w].float()
        return (logits > 0).cpu().numpy().astype(np.uint8), "detector"

    # -- restoring -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def restore(
        self, grays: list[np.ndarray], known: list[np.ndarray | None] | None = None, *, seed: int = 0
    ) -> list[Restored]:
        """Restore gray (H, W) uint8 images of any sizes; `known` masks (1 = known) replace the detection."""
        known = known if known is not None else [None] * len(grays)
        masks: list[tuple[np.ndarray, MaskSource]] = [
            (k.astype(np.uint8), "given") if k is not None else self.known_mask(g) for g, k in zip(grays, known)
        ]
        window = self.window
        results: list[Restored | None] = [None] * len(grays)
        by_canvas: dict[tuple[int, int], list[int]] = {}
        for i, g in enumerate(grays):
            by_canvas.setdefault((_round_up(g.shape[0], window), _round_up(g.shape[1], window)), []).append(i)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        for (H, W), idx in by_canvas.items():
            gray_b = np.stack([_pad(grays[i], H, W, mode="edge") for i in idx])  # (b, H, W)
            known_b = np.stack([_pad(masks[i][0], H, W, mode="zero") for i in idx])  # pad = lost
            gray_t = u8_to_signed(torch.from_numpy(gray_b).to(self.device)[:, None])  # (b, 1, H, W)
            known_t = torch.from_numpy(known_b).to(self.device)[:, None].float()
            with self._autocast():
                rgb = self._restore_canvas(gray_t, known_t, generator).float()
            rgb_u8 = signed_to_u8(rgb).cpu()
            for j, i in enumerate(idx):
                h, w = grays[i].shape
                rgb = rearrange(rgb_u8[j, :, :h, :w], "c h w -> h w c").numpy()
                results[i] = Restored(rgb=np.ascontiguousarray(rgb), known=masks[i][0], mask_source=masks[i][1])
        return results  # type: ignore[return-value]

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def _restore_canvas(self, gray: Tensor, known: Tensor, generator: torch.Generator) -> Tensor:
        """(b, 1, H, W) gray in [-1, 1] + known mask, H and W multiples of the window -> (b, 3, H, W) in [-1, 1]."""
        nets = self.networks
        if "baseline_G" in nets and "mat_G" not in nets:
            return nets["baseline_G"](gray).clamp(-1, 1)
        if self.inpaint_mode == "fill":
            gray = self._fill(gray, known)
        elif "mat_G" in nets:
            inpaint = self._inpaint if self.inpaint_mode == "tile" else self._inpaint_resized
            gray = inpaint(gray, known, generator)
        if "color_G" in nets:
            return self._colorize(gray)
        return gray.expand(-1, 3, -1, -1)

    def _fill(self, gray: Tensor, known: Tensor) -> Tensor:
        """The classical fill of each image (exact on uint8: the canvas came from uint8 gray)."""
        gray_u8 = signed_to_u8(gray[:, 0]).cpu().numpy()  # (b, H, W)
        known_u8 = (known[:, 0] > 0.5).cpu().numpy().astype(np.uint8)
        filled = np.stack([classical_fill(g, k, PIPELINE_FILL) for g, k in zip(gray_u8, known_u8)])
        return u8_to_signed(torch.from_numpy(filled).to(gray.device)[:, None])

    def _inpaint_resized(self, gray: Tensor, known: Tensor, generator: torch.Generator) -> Tensor:
        """MAT on the whole canvas resized to one window; its fill upsampled into the hole, known pixels exact.

        A pixel of the small canvas is known only when every input pixel it covers is known, so the fill value of
        the hole never leaks into MAT's context."""
        R = self.window
        if gray.shape[2:] == (R, R):
            return self._inpaint(gray, known, generator)
        small = F.interpolate(gray, size=(R, R), mode="area")  # (b, 1, R, R)
        small_known = (F.interpolate(known, size=(R, R), mode="area") > 1.0 - 1e-4).float()
        filled = inpaint_gray(
            self.networks["mat_G"], small, small_known, truncation_psi=self.truncation_psi, generator=generator
        )
        up = F.interpolate(filled, size=gray.shape[2:], mode="bicubic", align_corners=False).clamp(-1, 1)
        return composite(known, gray, up)

    def _colorize(self, gray: Tensor) -> Tensor:
        """(b, 1, H, W) gray -> (b, 3, H, W) RGB whose luma is `gray`; in `resize` mode the chroma is predicted
        with the short side at the colorizer's training resolution and upsampled bilinearly; then scaled by
        `chroma_scale`."""
        G = self.networks["color_G"]
        H, W = gray.shape[2:]
        size = self.color_size
        if self.color_mode == "full" or size is None or min(H, W) <= size:
            chroma = G.chroma(gray).float()  # what G(gray) combines with the gray
        else:
            scale = size / min(H, W)
            h, w = _round_up(round(H * scale), UNET_MULTIPLE), _round_up(round(W * scale), UNET_MULTIPLE)
            chroma = G.chroma(F.interpolate(gray, size=(h, w), mode="area")).float()  # (b, 2, h, w)
            chroma = F.interpolate(chroma, size=(H, W), mode="bilinear", align_corners=False)
        if self.chroma_scale != 1:
            chroma = chroma * self.chroma_scale
        return unit_to_signed(gray_chroma_to_rgb(signed_to_unit(gray.float()), chroma)).clamp(-1, 1)

    def _inpaint(self, gray: Tensor, known: Tensor, generator: torch.Generator) -> Tensor:
        """MAT window by window; known pixels stay exactly the input's."""
        R = self.window
        nh, nw = gray.shape[2] // R, gray.shape[3] // R
        tiles = rearrange(gray, "b c (nh h) (nw w) -> (b nh nw) c h w", h=R, w=R)
        tiles_known = rearrange(known, "b c (nh h) (nw w) -> (b nh nw) c h w", h=R, w=R)
        filled = inpaint_gray(
            self.networks["mat_G"], tiles, tiles_known, truncation_psi=self.truncation_psi, generator=generator
        )
        return rearrange(filled, "(b nh nw) c h w -> b c (nh h) (nw w)", nh=nh, nw=nw)


def _round_up(n: int, multiple: int) -> int:
    return max(1, math.ceil(n / multiple)) * multiple


def _pad(a: np.ndarray, H: int, W: int, *, mode: Literal["edge", "zero"]) -> np.ndarray:
    pads = ((0, H - a.shape[0]), (0, W - a.shape[1]))
    return np.pad(a, pads, mode="edge") if mode == "edge" else np.pad(a, pads)


def load_pipeline(
    sources: list[str | Path],
    device: str | torch.device = "cpu",
    truncation_psi: float = INFERENCE_TRUNCATION,
    *,
    inpaint_mode: InpaintMode | None = None,
    color_mode: ColorMode | None = None,
    bf16: bool = False,
    chroma_scale: float | None = None,
) -> Pipeline:
    """Build the networks found in `sources` (first match per network) with their weights, in eval mode; `bf16`
    runs them under bf16 autocast (the weights stay fp32).

    Modes (and `chroma_scale`) left as None come from the first source whose `pipeline.json` records them
    (`inference`), else `tile`, `resize` and 1."""
    resolved = [resolve_source(s) for s in sources]
    if not resolved:
        raise ModelSourceError("no model given")
    device = torch.device(device)
    networks: dict[str, nn.Module] = {}
    files: dict[str, Path] = {}
    color_size = None
    for name in NETWORKS:
        for source in resolved:
            path = source.file(name)
            if path is None:
                continue
            net = build_network(name, source.meta)
            load_weights_into(net, path, name)
            networks[name] = net.to(device).eval().requires_grad_(False)
            files[name] = path
            if name == "color_G" and source.meta.get("image_size"):
                color_size = int(source.meta["image_size"])
            break
    if not {"mat_G", "color_G", "baseline_G"} & set(networks):
        dirs = ", ".join(str(s.directory) for s in resolved)
        raise ModelSourceError(f"{dirs}: no inpainter, colorizer or baseline weights (found: {sorted(networks)})")
    for name, path in files.items():
        log.info("%s <- %s", name, path)
    recorded = [s.meta.get("inference") or {} for s in resolved]
    inpaint_mode = inpaint_mode or next((r["inpaint_mode"] for r in recorded if "inpaint_mode" in r), "tile")
    color_mode = color_mode or next((r["color_mode"] for r in recorded if "color_mode" in r), "resize")
    if chroma_scale is None:
        chroma_scale = next((float(r["chroma_scale"]) for r in recorded if "chroma_scale" in r), 1.0)
    return Pipeline(
        networks=networks, device=device, files=files, truncation_psi=truncation_psi, inpaint_mode=inpaint_mode,
        color_mode=color_mode, color_size=color_size, bf16=bf16, chroma_scale=chroma_scale,
    )  # fmt: skip
