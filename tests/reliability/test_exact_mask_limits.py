"""The exact lost-region rule has an upper limit too: a flat region no contest hole could be (a white background
spanning the photo) is never taken for the hole. The real hole is still found; when there is none, the rule is
refused, the pipeline falls back (learned detector, else nothing lost) and restoration-predict says so."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import write_tiny_export
from PIL import Image

from restoration import predict
from restoration.data import exact_mask
from restoration.pipeline import load_pipeline

H, W = 16, 4000  # a 4000x16 strip


def white_background_photo(seed: int = 0) -> np.ndarray:
    """(16, 4000) gray: a textured subject in the middle, a pure white (255) backdrop left and right of it."""
    rng = np.random.default_rng(seed)
    gray = np.full((H, W), 255, np.uint8)
    xx = np.arange(W // 3, 2 * W // 3)
    subject = 100 + 60 * np.sin(xx / 7.0)[None, :] + rng.integers(-20, 21, (H, xx.size))
    gray[:, xx] = np.clip(subject, 0, 230).astype(np.uint8)
    return gray


def with_hole(gray: np.ndarray, fill: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """The photo with one flat contest-style hole in the subject: (masked gray, hole map)."""
    hole = np.zeros(gray.shape, bool)
    hole[3:12, 1900:1980] = True
    masked = gray.copy()
    masked[hole] = fill
    return masked, hole


def luma(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).convert("L")).astype(int)


def test_the_rule_passes_over_the_background_to_the_real_hole():
    masked, hole = with_hole(white_background_photo())
    found, refused = exact_mask.find_exact_hole(masked)
    assert refused is None
    assert found is not None
    assert found[hole].all()
    assert (found & ~hole).sum() <= 2  # a subject pixel or two equal to the fill next to the hole, no more


def test_the_rule_is_refused_when_only_a_background_is_flat():
    found, refused = exact_mask.find_exact_hole(white_background_photo())
    assert found is None
    assert refused.startswith("its flat region of gray 255 (21,344 of 64,000 pixels)")
    assert refused.endswith("spans the image from top to bottom: a background, not a contest hole")


def test_restoring_keeps_the_known_pixels_of_a_white_background_photo(tiny_export):
    pipeline = load_pipeline([tiny_export])
    photo = white_background_photo()
    masked, hole = with_hole(photo)
    (result,) = pipeline.restore([masked])
    outside = ~hole
    changed = np.abs(luma(result.rgb) - masked.astype(int))[outside] > 2
    assert changed.sum() <= 2, f"{changed.sum()} known pixels repainted"
    assert result.known[outside].sum() >= outside.sum() - 2
    assert not result.known[hole].any()
    assert result.mask_source == "exact"
    assert result.exact_refused == ""
    (result,) = pipeline.restore([photo])  # no hole at all: nothing repainted, and the refusal is told
    assert np.abs(luma(result.rgb) - photo.astype(int)).max() <= 2
    assert result.known.all()
    assert result.mask_source == "none"
    assert "a background, not a contest hole" in result.exact_refused


def test_with_a_detector_the_refused_rule_falls_back_to_it(tmp_path):
    pipeline = load_pipeline([write_tiny_export(tmp_path / "m", ("mat_G", "color_G", "detector"))])
    assert pipeline.known_mask(white_background_photo()).source == "learned"
    assert "a background" in pipeline.known_mask(white_background_photo()).exact_refused


@pytest.mark.parametrize("hole", [False, True])
def test_predict_warns_when_the_rule_is_refused(tiny_export, tmp_path, capsys, hole):
    photo = white_background_photo()
    image = with_hole(photo)[0] if hole else photo
    path = tmp_path / "in" / "STRIP.png"
    path.parent.mkdir()
    Image.fromarray(image).save(path)
    rc = predict.main(["--model", str(tiny_export), "--input", str(path), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert rc == 0
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    if hole:
        assert warnings == []
        return
    assert warnings == [
        f"warning: the contest fill rule was refused for 1 input(s), their known pixels kept: {path}: its flat "
        f"region of gray 255 ({H * (W - 2 * (W // 3)):,} of {H * W:,} pixels) spans the image from top to bottom: "
        "a background, not a contest hole (nothing inpainted)"
    ]
    restored = np.asarray(Image.open(tmp_path / "out" / "STRIP.png").convert("RGB"))
    assert np.abs(luma(restored) - photo.astype(int)).max() <= 2


def test_a_contest_input_is_not_affected():
    """Real-photo behaviour is unchanged (tests/data/test_exact_mask.py): a hole inside a photo is still found."""
    rng = np.random.default_rng(3)
    gray = rng.integers(0, 256, (96, 128), dtype=np.uint8)
    gray[20:60, 30:90] = 17
    found, refused = exact_mask.find_exact_hole(gray)
    assert refused is None
    assert found is not None
    assert found.sum() == 40 * 60


def test_a_region_spanning_the_width_or_covering_half_the_image_is_no_contest_hole():
    found, refused = exact_mask.find_exact_hole(np.ascontiguousarray(white_background_photo().T))  # 16 x 4000
    assert found is None
    assert refused.endswith("spans the image from left to right: a background, not a contest hole")
    rng = np.random.default_rng(4)
    gray = rng.integers(0, 200, (64, 64), dtype=np.uint8)
    gray[:50, :50] = 230  # touches two borders that are not opposite, but covers 61 % of the image
    found, refused = exact_mask.find_exact_hole(gray)
    assert found is None
    assert refused == (
        "its flat region of gray 230 (2,500 of 4,096 pixels) covers more than 50% of the image: a background, not a "
        "contest hole"
    )
