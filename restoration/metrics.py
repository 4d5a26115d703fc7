"""The contest score, exactly, in batched torch (CPU or GPU): S, M, C and their weighted sum; plus PSNR, mask IoU.

The organisers' scorer is the community baseline (see the project's design notes):
- S: scikit-image `structural_similarity(gt, pred, channel_axis=-1, data_range=pred.max() - pred.min())`:
  7x7 box window, K1 0.01, K2 0.03, sample covariance (N / (N - 1), N = 49), per channel then averaged, the mean
  taken over the SSIM map without a 3-pixel border.
- M: the same call on the lost pixels only, taken in raster order as an (N, 3) array: a 1-D SSIM with a 7-sample
  window sliding along the flattened sequence (3 samples cropped at each end), data_range from the *whole*
  prediction.
- C: OpenCV's 8-bit RGB->HSV hue (H = hue / 2 in [0, 180), integer fixed-point arithmetic), a 180-bin histogram
  of all pixels, L2-normalised, compared with HISTCMP_CORREL (Pearson correlation; 1 when the variance term is
  ~0, as OpenCV does).
- score = 0.2 S + 0.4 M + 0.4 C per image.

Everything is computed in float64 so the oracles (scikit-image, OpenCV; dev-only) agree to ~1e-12.
Where scikit-image raises or returns NaN, the score is defined as follows (METRIC.md leaves these cases open):
- Fewer than 7 lost pixels: M uses one window over all lost samples (no crop); with no lost pixel at all M is 1
  (nothing was lost, nothing can be wrong).
- A constant prediction (data_range 0, so C1 = C2 = 0): SSIM is a product of a luminance factor
  (2 ux uy + C1) / (ux^2 + uy^2 + C1) and a contrast-structure factor (2 vxy + C2) / (vx + vy + C2). scikit-image
  divides 0 by 0 (NaN) where both windows are flat; here a factor whose numerator and denominator are both 0 is 1,
  its value for any positive C1/C2. So two identical constant images (all black, all white) have S = M = 1; a
  constant prediction of a window that is not flat scores 0 there, as in scikit-image (METRIC.md); two flat windows
  of different values score 2 ux uy / (ux^2 + uy^2) (0 for black against any other value).
- C is always defined: images without chroma (gray, black, white) put every pixel in hue bin 0, so two of them
  correlate to 1 and a gray answer to a colored photo to about 0 (METRIC.md); a histogram of zero variance
  correlates to 1, as OpenCV does.
- S of an image smaller than the 7x7 window is undefined (scikit-image raises): `ValueError`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

K1, K2 = 0.01, 0.03
WIN = 7
PAD = (WIN - 1) // 2
WEIGHTS = {"S": 0.2, "M": 0.4, "C": 0.4}
HUE_BINS = 180
_HSV_SHIFT = 12


def _check(pred: Tensor, gt: Tensor, known_mask: Tensor | None = None) -> None:
    if pred.dtype != torch.uint8 or gt.dtype != torch.uint8:
        raise TypeError(f"contest metrics expect uint8 images, got pred {pred.dtype} and gt {gt.dtype}")
    if pred.ndim != 4 or pred.shape[1] != 3 or pred.shape != gt.shape:
        raise ValueError(f"pred and gt must both be (B, 3, H, W); got {tuple(pred.shape)} and {tuple(gt.shape)}")
    if known_mask is not None and (
        known_mask.ndim != 4 or known_mask.shape[1] != 1 or known_mask.shape[2:] != pred.shape[2:]
    ):
        raise ValueError(f"known_mask must be (B, 1, H, W) like the images; got {tuple(known_mask.shape)}")


def _data_range(pred: Tensor) -> Tensor:
    """max - min over each whole predicted image (all channels): (B,) float64."""
    flat = pred.flatten(1).double()
    return flat.amax(dim=1) - flat.amin(dim=1)


def _ssim_terms(ux, uy, uxx, uyy, uxy, n: int, data_range: Tensor) -> Tensor:
    cov_norm = n / (n - 1)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    luminance = _ratio(2 * ux * uy + c1, ux * ux + uy * uy + c1)
    return luminance * _ratio(2 * vxy + c2, vx + vy + c2)


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    """num / den, and 1 where den is 0: with data_range 0 (C1 = C2 = 0) a factor of two flat windows is 0 / 0, and
    1 is its value for any positive constant (see the module docstring). den > 0 everywhere else."""
    flat = den == 0
    return torch.where(flat, torch.ones_like(num), num / torch.where(flat, torch.ones_like(den), den))


def ssim_full(pred: Tensor, gt: Tensor) -> Tensor:
    """S per image: (B,) float64."""
    _check(pred, gt)
    if min(pred.shape[2:]) < WIN:
        raise ValueError(f"S is not defined for an image smaller than the {WIN}x{WIN} SSIM window (scikit-image "
                         f"raises): got {pred.shape[3]}x{pred.shape[2]}")  # fmt: skip
    x, y = gt.double(), pred.double()  # (B, 3, H, W)
    dr = _data_range(pred).view(-1, 1, 1, 1)

    def box(t: Tensor) -> Tensor:  # valid 7x7 mean = skimage's map with the 3-px border cropped
        return F.avg_pool2d(t, WIN, stride=1)

    smap = _ssim_terms(box(x), box(y), box(x * x), box(y * y), box(x * y), WIN * WIN, dr)
    return smap.mean(dim=(1, 2, 3))  # mean over channels of per-channel means (equal sizes)


def _ssim_1d(x: Tensor, y: Tensor, data_range: Tensor) -> Tensor:
    """1-D SSIM of (N, 3) sequences (float64), skimage semantics; see the module docstring for N < 7."""
    n = x.shape[0]
    if n == 0:
        return torch.ones((), dtype=torch.float64, device=x.device)
    win = WIN if n >= WIN else n
    xs, ys = x.T.unsqueeze(1), y.T.unsqueeze(1)  # (3, 1, N)

    def box(t: Tensor) -> Tensor:
        return F.avg_pool1d(t, win, stride=1)

    if win == 1:
        # a single sample has no variance: the contrast-structure factor is C2 / C2 = 1, the luminance one is left
        c1 = (K1 * data_range) ** 2
        smap = _ratio(2 * xs * ys + c1, xs * xs + ys * ys + c1)
    else:
        smap = _ssim_terms(box(xs), box(ys), box(xs * xs), box(ys * ys), box(xs * ys), win, data_range)
    return smap.mean(dim=(1, 2)).mean()


def ssim_masked(pred: Tensor, gt: Tensor, known_mask: Tensor) -> Tensor:
    """M per image: (B,) float64, SSIM over the lost pixels in raster order."""
    _check(pred, gt, known_mask)
    dr = _data_range(pred)
    lost = known_mask[:, 0] < 0.5  # (B, H, W)
    out = []
    for b in range(pred.shape[0]):
        sel = lost[b]
        x = gt[b].permute(1, 2, 0)[sel].double()  # (N, 3), raster order
        y = pred[b].permute(1, 2, 0)[sel].double()
        out.append(_ssim_1d(x, y, dr[b]))
    return torch.stack(out)


def opencv_hue(rgb_u8: Tensor) -> Tensor:
    """OpenCV `cvtColor(RGB2HSV)` hue channel of uint8 RGB, bit-exact: (B, 3, H, W) -> (B, H, W) int64 in [0, 180)."""
    r, g, b = rgb_u8.long().unbind(dim=1)
    v = torch.maximum(torch.maximum(r, g), b)
    vmin = torch.minimum(torch.minimum(r, g), b)
    diff = v - vmin
    # OpenCV's table: hdiv[d] = round((180 << 12) / (6 d)), hdiv[0] = 0
    table = torch.zeros(256, dtype=torch.int64, device=rgb_u8.device)
    d = torch.arange(1, 256, dtype=torch.float64, device=rgb_u8.device)
    table[1:] = torch.round((HUE_BINS << _HSV_SHIFT) / (6.0 * d)).long()
    h = torch.where(v == r, g - b, torch.where(v == g, b - r + 2 * diff, r - g + 4 * diff))
    h = (h * table[diff] + (1 << (_HSV_SHIFT - 1))) >> _HSV_SHIFT
    return torch.where(h < 0, h + HUE_BINS, h)


def hue_histogram(rgb_u8: Tensor) -> Tensor:
    """180-bin hue histograms, (B, 180) float64 (counts)."""
    hue = opencv_hue(rgb_u8).flatten(1)  # (B, HW)
    hist = torch.zeros(hue.shape[0], HUE_BINS, dtype=torch.float64, device=hue.device)
    return hist.scatter_add_(1, hue, torch.ones_like(hue, dtype=torch.float64))


def hist_correlation(h1: Tensor, h2: Tensor) -> Tensor:
    """OpenCV HISTCMP_CORREL of L2-normalised (float32, as cv2.normalize) histograms: (B,) float64."""
    h1 = F.normalize(h1.float(), dim=1).double()
    h2 = F.normalize(h2.float(), dim=1).double()
    n = h1.shape[1]
    s1, s2 = h1.sum(1), h2.sum(1)
    num = (h1 * h2).sum(1) - s1 * s2 / n
    den2 = ((h1 * h1).sum(1) - s1 * s1 / n) * ((h2 * h2).sum(1) - s2 * s2 / n)
    safe = den2.abs() > torch.finfo(torch.float64).eps
    return torch.where(safe, num / den2.clamp_min(1e-300).sqrt(), torch.ones_like(num))


def color_similarity(pred: Tensor, gt: Tensor) -> Tensor:
    """C per image: (B,) float64 in [-1, 1]."""
    _check(pred, gt)
    return hist_correlation(hue_histogram(gt), hue_histogram(pred))


def contest_score(pred: Tensor, gt: Tensor, known_mask: Tensor) -> dict[str, Tensor]:
    """Per-image `S`, `M`, `C` and `score` (float64, shape (B,)) for uint8 (B, 3, H, W) images and a
    (B, 1, H, W) `known_mask` (1 = known; bool, uint8 0/1 or float)."""
    _check(pred, gt, known_mask)
    known = known_mask.float() if known_mask.dtype != torch.uint8 else (known_mask > 0).float()
    parts = {"S": ssim_full(pred, gt), "M": ssim_masked(pred, gt, known), "C": color_similarity(pred, gt)}
    parts["score"] = sum(WEIGHTS[k] * parts[k] for k in WEIGHTS)
    return parts


def psnr(pred: Tensor, gt: Tensor) -> Tensor:
    """PSNR in dB per image for uint8 images (capped at 100 dB for identical images): (B,) float64."""
    _check(pred, gt)
    mse = (pred.double() - gt.double()).square().flatten(1).mean(dim=1)
    return (10 * torch.log10(255.0**2 / mse.clamp_min(1e-10))).clamp_max(100.0)


def mask_iou(pred_known: Tensor, true_known: Tensor) -> Tensor:
    """IoU of the *lost* regions (the part that matters) per image: (B,) float64; 1 when both have none."""
    pred_hole = pred_known.flatten(1) < 0.5
    true_hole = true_known.flatten(1) < 0.5
    inter = (pred_hole & true_hole).sum(1).double()
    union = (pred_hole | true_hole).sum(1).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def score_image(pred_rgb: np.ndarray, gt_rgb: np.ndarray, known: np.ndarray, device: str = "cpu") -> dict[str, float]:
    """One image scored the way `restoration-evaluate` scores a submission: (H, W, 3) uint8 prediction and ground
    truth, (H, W) known mask {0, 1} -> S, M, C, score and PSNR. Validation during training scores with this too, so
    its figures and a submission's agree to the last digit."""
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].to(device)  # noqa: E731
    p, g = to_t(pred_rgb), to_t(gt_rgb)
    parts = contest_score(p, g, torch.from_numpy(np.ascontiguousarray(known))[None, None].to(device))
    return {**{k: float(v[0]) for k, v in parts.items()}, "psnr": float(psnr(p, g)[0])}
