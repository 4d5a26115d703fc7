"""metrics.py against the dev-only oracles the contest scorer used: scikit-image SSIM and OpenCV hue histograms."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import structural_similarity

from restoration.metrics import contest_score, mask_iou, opencv_hue, psnr

TOL = 1e-4


def oracle(pred: np.ndarray, gt: np.ndarray, known: np.ndarray) -> dict[str, float]:
    """The community baseline scorer on (H, W, 3) uint8 arrays; known (H, W) bool."""
    dr = float(pred.max()) - float(pred.min())
    s = structural_similarity(gt, pred, channel_axis=-1, data_range=dr)
    lost = ~known
    m = structural_similarity(gt[lost], pred[lost], channel_axis=-1, data_range=dr)
    hists = []
    for img in (gt, pred):
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        h = cv2.calcHist([hsv], [0], None, [180], [0, 180])
        hists.append(cv2.normalize(h, h).flatten())
    c = cv2.compareHist(hists[0], hists[1], cv2.HISTCMP_CORREL)
    return {"S": s, "M": m, "C": c, "score": 0.2 * s + 0.4 * m + 0.4 * c}


def ours(pred: np.ndarray, gt: np.ndarray, known: np.ndarray) -> dict[str, float]:
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]  # noqa: E731
    k = torch.from_numpy(known.astype(np.uint8))[None, None]
    return {key: float(v[0]) for key, v in contest_score(t(pred), t(gt), k).items()}


def assert_agree(pred, gt, known):
    want, got = oracle(pred, gt, known), ours(pred, gt, known)
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=TOL), (key, got[key], want[key])


def polygon_known(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    known = np.ones((h, w), bool)
    y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
    known[y0 : y0 + rng.integers(8, h // 2), x0 : x0 + rng.integers(8, w // 2)] = False
    return known


def test_random_images_agree_with_oracles():
    rng = np.random.default_rng(0)
    for _ in range(4):
        gt = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        pred = np.clip(gt.astype(int) + rng.integers(-40, 40, gt.shape), 0, 255).astype(np.uint8)
        assert_agree(pred, gt, polygon_known(48, 64, rng))


def test_real_photos_agree_with_oracles(shared_photos):
    rng = np.random.default_rng(1)
    for path in shared_photos[:3]:
        gt = np.array(Image.open(path).convert("RGB").resize((192, 128)))
        gray = np.array(Image.fromarray(gt).convert("L"))
        pred = np.repeat(gray[..., None], 3, -1)
        pred[..., 0] = np.clip(pred[..., 0].astype(int) + 20, 0, 255)  # a tinted guess
        assert_agree(pred, gt, polygon_known(128, 192, rng))


@pytest.mark.parametrize("case", ["constant", "one_pixel_row", "thin", "border", "gray", "red"])
def test_edge_cases_agree_with_oracles(case):
    rng = np.random.default_rng(2)
    gt = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    pred = np.clip(gt.astype(int) + rng.integers(-30, 30, gt.shape), 0, 255).astype(np.uint8)
    known = polygon_known(40, 40, rng)
    if case == "constant":
        pred = np.full_like(gt, 77)
    elif case == "one_pixel_row":
        known = np.ones((40, 40), bool)
        known[5, 3:20] = False
    elif case == "thin":
        known = np.ones((40, 40), bool)
        known[:, 17] = False
    elif case == "border":
        known = np.ones((40, 40), bool)
        known[:12, :9] = False
        known[-5:, :] = False
    elif case == "gray":
        gray = rng.integers(0, 256, (40, 40, 1), dtype=np.uint8)
        pred = np.repeat(gray, 3, -1)
    elif case == "red":
        pred[..., 0], pred[..., 1:] = 255, 0
    if case == "constant":
        with np.errstate(invalid="ignore", divide="ignore"):
            want = oracle(pred, gt, known)
        got = ours(pred, gt, known)
        for key in ("C",):
            assert got[key] == pytest.approx(want[key], abs=TOL)
        for key in ("S", "M"):  # skimage gives 0 here, or nan when both images are flat
            assert got[key] == pytest.approx(np.nan_to_num(want[key]), abs=TOL)
        return
    assert_agree(pred, gt, known)


def test_opencv_hue_is_bit_exact():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    img[0, :8] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [7, 7, 7], [255, 254, 0], [0, 1, 255], [200, 0, 1], [0, 0, 0]]
    want = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)[..., 0]
    got = opencv_hue(torch.from_numpy(img).permute(2, 0, 1)[None])[0].numpy()
    np.testing.assert_array_equal(got, want)


def test_perfect_and_constant_predictions():
    rng = np.random.default_rng(4)
    gt = rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8)
    gt_t = torch.from_numpy(gt)
    known = torch.ones(2, 1, 32, 32)
    known[:, :, 4:20, 6:22] = 0
    perfect = contest_score(gt_t, gt_t, known)
    assert torch.allclose(perfect["score"], torch.ones(2, dtype=torch.float64))
    constant = contest_score(torch.full_like(gt_t, 128), gt_t, known)
    assert (constant["score"].abs() < 0.05).all()


def test_few_lost_pixels_and_none():
    gt = torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8)
    known = torch.ones(1, 1, 16, 16)
    assert float(contest_score(gt, gt, known)["M"][0]) == 1.0  # nothing lost
    known[0, 0, 3, 3:6] = 0  # 3 lost pixels: one window over all of them
    assert float(contest_score(gt, gt, known)["M"][0]) == pytest.approx(1.0)
    worse = gt.clone()
    worse[0, :, 3, 3:6] = 255 - worse[0, :, 3, 3:6]
    assert float(contest_score(worse, gt, known)["M"][0]) < 1.0


def test_bad_inputs_are_refused():
    x = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(TypeError, match="uint8"):
        contest_score(x.float(), x, torch.ones(1, 1, 8, 8))
    with pytest.raises(ValueError, match="known_mask"):
        contest_score(x, x, torch.ones(1, 1, 4, 4))


def test_psnr_and_mask_iou():
    a = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    b = a.clone()
    b[..., 0, 0] = 255
    assert float(psnr(a, b)[0]) == pytest.approx(10 * np.log10(255**2 / (255**2 / 16)))
    k1, k2 = torch.ones(1, 1, 4, 4), torch.ones(1, 1, 4, 4)
    k1[..., :2, :] = 0
    k2[..., :1, :] = 0
    assert float(mask_iou(k2, k1)[0]) == pytest.approx(0.5)
    assert float(mask_iou(torch.ones(1, 1, 4, 4), torch.ones(1, 1, 4, 4))[0]) == 1.0
