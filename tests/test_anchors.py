"""The classical anchors: known pixels untouched, a smooth fill of the hole, the fallback without OpenCV."""

from __future__ import annotations

import numpy as np
import pytest

from restoration import anchors


def ramp_with_hole(h: int = 40, w: int = 52) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w]
    gray_gt = (60 + 2 * xx + yy).astype(np.uint8)
    known = np.ones((h, w), np.uint8)
    known[10:25, 15:33] = 0
    gray_in = np.where(known == 1, gray_gt, 7).astype(np.uint8)
    return gray_in, known, gray_gt


@pytest.mark.parametrize("method", ["telea", "ns", "biharmonic"])
def test_fill_keeps_known_pixels_and_fills_smoothly(method):
    gray_in, known, gray_gt = ramp_with_hole()
    filled = anchors.classical_fill(gray_in, known, method)
    assert filled.dtype == np.uint8
    assert filled.shape == gray_in.shape
    assert np.array_equal(filled[known == 1], gray_in[known == 1])
    err = np.abs(filled.astype(int) - gray_gt.astype(int))[known == 0]
    assert err.mean() < 12  # a ramp is filled near its true values, far from the fill value 7


def test_without_opencv_the_fill_is_biharmonic(monkeypatch):
    monkeypatch.setattr(anchors, "_cv2", lambda: None)
    assert anchors.fill_method("telea") == "biharmonic"
    gray_in, known, _ = ramp_with_hole()
    assert np.array_equal(
        anchors.classical_fill(gray_in, known, "telea"), anchors.classical_fill(gray_in, known, "biharmonic")
    )


def test_anchor_answers():
    gray_in, known, gray_gt = ramp_with_hole()
    assert np.array_equal(anchors.anchor_rgb("input", gray_in, known)[..., 1], gray_in)
    assert np.array_equal(anchors.anchor_rgb("true_gray", gray_in, known, gray_gt)[..., 2], gray_gt)
    assert anchors.anchor_rgb("telea", gray_in, known).shape == (*gray_in.shape, 3)
    with pytest.raises(ValueError, match="needs the ground truth"):
        anchors.anchor_rgb("true_gray", gray_in, known)
    with pytest.raises(ValueError, match="unknown anchor"):
        anchors.anchor_rgb("nope", gray_in, known)


def test_nothing_lost_is_returned_as_is():
    gray_in, _, _ = ramp_with_hole()
    assert np.array_equal(anchors.classical_fill(gray_in, np.ones_like(gray_in)), gray_in)


def test_a_large_hole_is_solved_downscaled_and_stays_close_to_the_full_solve(monkeypatch):
    h, w = 96, 120
    yy, xx = np.mgrid[0:h, 0:w]
    gray_gt = (40 + xx + 0.8 * yy + 10 * np.sin(xx / 9.0)).astype(np.uint8)
    known = np.ones((h, w), np.uint8)
    known[20:71, 30:95] = 0  # 3315 lost pixels
    gray_in = np.where(known == 1, gray_gt, 0).astype(np.uint8)
    full = anchors.classical_fill(gray_in, known, "biharmonic")
    calls = []
    import skimage.restoration  # anchors imports it lazily, so patching the module is seen

    original = skimage.restoration.inpaint_biharmonic
    monkeypatch.setattr(
        skimage.restoration, "inpaint_biharmonic", lambda img, m: calls.append(img.shape) or original(img, m)
    )
    monkeypatch.setattr(anchors, "BIHARMONIC_MAX_LOST", 1000)  # -> factor 2
    small = anchors.classical_fill(gray_in, known, "biharmonic")
    assert calls == [(48, 60)]
    assert np.array_equal(small[known == 1], gray_in[known == 1])
    assert np.abs(small.astype(int) - full.astype(int))[known == 0].mean() < 2.0
