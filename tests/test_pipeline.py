"""The inference pipeline: where weights come from, any image size, known pixels kept, clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_CONFIG, make_contest_folder, write_tiny_export
from PIL import Image

from restoration.inference import InferenceSettings
from restoration.pipeline import load_pipeline
from restoration.weights import ModelSourceError, resolve_source


def gray_of(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).convert("L")).astype(int)


def contest_inputs(tmp_path: Path) -> list[np.ndarray]:
    root = make_contest_folder(tmp_path / "contest", count=3)
    return [np.asarray(Image.open(p)) for p in sorted((root / "test_input").glob("*.png"))]


def test_restore_keeps_known_pixels_and_fills_the_detected_hole(tiny_export, tmp_path):
    pipeline = load_pipeline([tiny_export])
    grays = contest_inputs(tmp_path)
    out = pipeline.restore(grays)
    for gray, result in zip(grays, out):
        assert result.rgb.shape == (*gray.shape, 3)
        assert result.rgb.dtype == np.uint8
        assert result.mask_source == "exact"
        known = result.known.astype(bool)
        assert 0.05 < 1 - known.mean() < 0.3  # the filled rectangle, found without ground truth
        # the colorizer predicts chroma only: the luma of known pixels is the input's (to rounding)
        assert np.abs(gray_of(result.rgb)[known] - gray.astype(int)[known]).max() <= 2


@pytest.mark.parametrize("shape", [(50, 70), (64, 64), (130, 90), (17, 200)])
def test_any_size_is_padded_to_the_window_and_cropped_back(tiny_export, shape):
    pipeline = load_pipeline([tiny_export])
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, shape, dtype=np.uint8)
    known = np.ones(shape, np.uint8)
    known[: shape[0] // 2, : shape[1] // 2] = 0
    (result,) = pipeline.restore([gray], known=[known])
    assert result.rgb.shape == (*shape, 3)
    assert result.mask_source == "given"
    assert np.array_equal(result.known, known)


def test_same_seed_same_output_different_seed_different_output(tiny_export, tmp_path):
    pipeline = load_pipeline([tiny_export])
    grays = contest_inputs(tmp_path)
    a, b = pipeline.restore(grays, seed=3), pipeline.restore(grays, seed=3)
    c = pipeline.restore(grays, seed=4)
    assert all(np.array_equal(x.rgb, y.rgb) for x, y in zip(a, b))
    assert any(not np.array_equal(x.rgb, z.rgb) for x, z in zip(a, c))


def test_an_image_restores_the_same_in_any_batch_or_order(tiny_export, tmp_path):
    """Each image draws MAT's latent and dropout from its own stream (seed, key): batch and order do not matter,
    which is what lets validation during training score exactly what restoration-predict writes."""
    pipeline = load_pipeline([tiny_export])
    tile = pipeline.defaults.but(inpaint_mode="tile")
    grays = contest_inputs(tmp_path)
    keys = ["a", "b", "c"]
    together = pipeline.restore(grays, settings=tile, seed=5, keys=keys)
    alone = [pipeline.restore([g], settings=tile, seed=5, keys=[k])[0] for g, k in zip(grays, keys)]
    reversed_ = pipeline.restore(grays[::-1], settings=tile, seed=5, keys=keys[::-1])[::-1]
    for x, y, z in zip(together, alone, reversed_):
        assert np.array_equal(x.gray, y.gray)
        assert np.array_equal(x.gray, z.gray)
        # the colorizer's convolutions may round differently in another batch size: a rare 1-level difference
        for other in (y, z):
            diff = np.abs(x.rgb.astype(int) - other.rgb.astype(int))
            assert diff.max() <= 1
            assert (diff > 0).mean() < 1e-3
    renamed = pipeline.restore(grays, settings=tile, seed=5, keys=["x", "y", "z"])
    assert any(not np.array_equal(x.gray, y.gray) for x, y in zip(together, renamed))  # the key is the stream


def test_image_without_a_contest_hole_uses_the_detector_or_is_left_as_is(tmp_path):
    smooth = (np.linspace(0, 255, 64 * 64).reshape(64, 64)).astype(np.uint8)
    without = load_pipeline([write_tiny_export(tmp_path / "a")])
    (result,) = without.restore([smooth])
    assert result.mask_source == "none"
    assert result.known.all()
    with_detector = load_pipeline([write_tiny_export(tmp_path / "b", ("mat_G", "color_G", "detector"))])
    (result,) = with_detector.restore([smooth])
    assert result.mask_source == "learned"
    assert set(np.unique(result.known)) <= {0, 1}


def test_run_directory_and_checkpoint_resolve_to_the_same_networks(tiny_export, tmp_path):
    run = tmp_path / "runs" / "r"
    step = run / "checkpoints" / "step-00000002"
    step.mkdir(parents=True)
    shutil.copyfile(TINY_CONFIG, run / "config.yaml")
    for name in ("mat_G", "color_G"):
        shutil.copyfile(tiny_export / f"{name}.safetensors", step / f"ema_{name}.safetensors")
    (step / "trainer.json").write_text(json.dumps({"step": 2}))
    assert resolve_source(run).directory == step
    assert resolve_source(run).file("mat_G") == step / "ema_mat_G.safetensors"
    gray = contest_inputs(tmp_path)[:1]
    from_checkpoint = load_pipeline([run]).restore(gray)[0].rgb
    assert np.array_equal(from_checkpoint, load_pipeline([tiny_export]).restore(gray)[0].rgb)
    shutil.copytree(tiny_export, run / "final")
    assert resolve_source(run).directory == run / "final"  # a finished run: its export wins


def test_two_exports_chain_first_match_per_network(tmp_path):
    mat_only = write_tiny_export(tmp_path / "inpaint", ("mat_G",))
    color_only = write_tiny_export(tmp_path / "colorize", ("color_G",), seed=1)
    pipeline = load_pipeline([mat_only, color_only])
    assert set(pipeline.networks) == {"inpainter", "colorizer"}
    assert pipeline.files["colorizer"].parent == color_only
    assert "MAT (tile) -> colorizer (resize)" in pipeline.describe()


def test_bad_model_directories_are_named_in_the_error(tmp_path, tiny_export):
    with pytest.raises(ModelSourceError, match="no such directory"):
        load_pipeline([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelSourceError, match="empty: not a model directory"):
        load_pipeline([tmp_path / "empty"])
    broken = shutil.copytree(tiny_export, tmp_path / "broken")
    meta = json.loads((broken / "pipeline.json").read_text())
    meta["colorizer"]["decoder_channels"] = [8, 8, 8, 8]  # weights no longer fit the configured network
    (broken / "pipeline.json").write_text(json.dumps(meta))
    with pytest.raises(ModelSourceError, match=r"color_G\.safetensors: weights do not fit network 'color_G'"):
        load_pipeline([broken])


def test_truncation_zero_is_the_default_and_differs_from_sampled_styles(tiny_export, tmp_path):
    grays = contest_inputs(tmp_path)
    pipeline = load_pipeline([tiny_export])
    assert pipeline.defaults.truncation_psi == 0.0
    a = pipeline.restore(grays, seed=0)
    b = pipeline.restore(grays, settings=pipeline.defaults.but(truncation_psi=1.0), seed=0)
    assert any(not np.array_equal(x.rgb, y.rgb) for x, y in zip(a, b))
    for x, y in zip(a, b):  # only the lost region can change
        known = x.known.astype(bool)
        assert np.array_equal(x.rgb[known], y.rgb[known]) or np.abs(gray_of(x.rgb) - gray_of(y.rgb))[known].max() <= 2


# -- inference modes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("inpaint_mode", "color_mode"), [("resize", "resize"), ("fill", "full"), ("tile", "resize")])
def test_modes_keep_known_pixels_at_odd_sizes(tiny_export, inpaint_mode, color_mode):
    pipeline = load_pipeline([tiny_export])
    pipeline.color_size = 32  # below the images, so `resize` really resizes
    settings = InferenceSettings(inpaint_mode=inpaint_mode, color_mode=color_mode)
    rng = np.random.default_rng(0)
    grays, knowns = [], []
    for h, w in ((67, 131), (150, 90)):
        gray = rng.integers(0, 256, (h, w)).astype(np.uint8)
        known = np.ones((h, w), np.uint8)
        known[h // 4 : h // 2, w // 3 : w // 2] = 0
        grays.append(np.where(known == 1, gray, 5).astype(np.uint8))
        knowns.append(known)
    out = pipeline.restore(grays, known=knowns, settings=settings)
    for gray, known, result in zip(grays, knowns, out):
        assert result.rgb.shape == (*gray.shape, 3)
        k = known.astype(bool)
        # the luma of known pixels is the input's (to rounding), whatever the mode
        assert np.abs(gray_of(result.rgb)[k] - gray.astype(int)[k]).max() <= 2
        assert np.abs(gray_of(result.rgb)[~k] - 5).mean() > 1  # the hole was filled


def test_fill_mode_is_the_biharmonic_fill_of_the_gray(tiny_export):
    import torch

    from restoration.anchors import classical_fill
    from restoration.data.color import signed_to_u8, u8_to_signed

    pipeline = load_pipeline([tiny_export])
    assert "classical fill (biharmonic)" in pipeline.describe(InferenceSettings(inpaint_mode="fill"))
    yy, xx = np.mgrid[0:64, 0:64]
    known = np.ones((64, 64), np.uint8)
    known[20:40, 10:50] = 0
    gray_in = np.where(known == 1, 50 + 2 * xx + yy, 5).astype(np.uint8)
    filled = pipeline._fill(u8_to_signed(torch.from_numpy(gray_in))[None, None], torch.from_numpy(known)[None, None])
    assert np.array_equal(signed_to_u8(filled)[0, 0].numpy(), classical_fill(gray_in, known, "biharmonic"))


def test_an_export_with_the_fill_prior_rebuilds_it_and_untrained_restores_the_harmonic_fill(tmp_path):
    import torch

    from restoration.data.color import signed_to_u8, u8_to_signed
    from restoration.models.fill_prior import harmonic_fill

    export = write_tiny_export(tmp_path / "final", ("mat_G",), overrides=("mat.prior=fill",))
    assert json.loads((export / "pipeline.json").read_text())["mat"]["prior"] == "fill"
    pipeline = load_pipeline([export])
    assert pipeline.networks["inpainter"].synthesis.prior == "fill"
    assert "MAT (tile, on the harmonic fill)" in pipeline.describe()
    yy, xx = np.mgrid[0:64, 0:64]
    known = np.ones((64, 64), np.uint8)
    known[20:40, 10:50] = 0
    gray_in = np.where(known == 1, 50 + 2 * xx + yy, 5).astype(np.uint8)
    restored = pipeline.restore([gray_in], [known], settings=InferenceSettings(inpaint_mode="tile"))[0]
    expected = harmonic_fill(u8_to_signed(torch.from_numpy(gray_in))[None, None], torch.from_numpy(known)[None, None])
    assert np.abs(restored.gray.astype(int) - signed_to_u8(expected)[0, 0].numpy().astype(int)).max() <= 1


def test_resize_inpainting_keeps_known_pixels_exact(tiny_export):
    pipeline = load_pipeline([tiny_export])
    gray = np.random.default_rng(1).integers(0, 256, (1, 1, 150, 200)).astype(np.float32) / 127.5 - 1
    known = np.ones((1, 1, 150, 200), np.float32)
    known[..., 40:90, 60:120] = 0
    import torch

    g, k = torch.from_numpy(gray), torch.from_numpy(known)
    filled = pipeline._inpaint_resized(g, k, InferenceSettings(inpaint_mode="resize"), 0, ["img"])
    assert torch.equal(filled[k.bool()], g[k.bool()])


def test_modes_recorded_in_pipeline_json_are_the_defaults(tmp_path):
    from restoration.weights import record_inference

    export = write_tiny_export(tmp_path / "final")
    unrecorded = load_pipeline([export]).defaults
    assert (unrecorded.inpaint_mode, unrecorded.color_mode) == ("tile", "resize")
    record_inference(export, color_mode="full")
    assert load_pipeline([export]).defaults.color_mode == "full"
    record_inference(export, inpaint_mode="fill", color_mode="resize")
    pipeline = load_pipeline([export])
    assert (pipeline.defaults.inpaint_mode, pipeline.defaults.color_mode, pipeline.color_size) == ("fill", "resize", 64)
    assert pipeline.defaults.but(inpaint_mode="resize", color_mode=None).inpaint_mode == "resize"  # a flag wins
    assert pipeline.defaults.but(inpaint_mode=None).inpaint_mode == "fill"  # an unset flag keeps the default
    with pytest.raises(ValueError, match="inpaint mode"):
        pipeline.defaults.but(inpaint_mode="nope")


def test_chroma_scale_keeps_the_luma_and_scales_the_color(tiny_export, tmp_path):
    from restoration.weights import record_inference

    grays = contest_inputs(tmp_path)
    pipeline = load_pipeline([tiny_export])
    scales = (1.0, 0.5, 0.0, 2.0)
    out = {s: pipeline.restore(grays, settings=InferenceSettings(chroma_scale=s), seed=0) for s in scales}
    for i, gray in enumerate(grays):
        full, half, none, double = (out[s][i].rgb.astype(float) for s in scales)
        assert np.ptp(none, axis=2).max() <= 1  # no chroma: one gray value in all three channels
        known = out[0.0][i].known.astype(bool)
        assert np.abs(none[known] - gray[known][:, None]).max() <= 1  # and the input's gray where it is known
        chroma = lambda rgb: rgb - rgb.mean(axis=2, keepdims=True)  # noqa: E731
        assert np.abs(chroma(full)).mean() > 1
        strong = np.abs(chroma(full)) > 6  # away from uint8 rounding (the gamut fit may trim the strongest more)
        assert 0.45 < np.median(chroma(half)[strong] / chroma(full)[strong]) < 0.55
        luma = lambda rgb: rgb @ np.array([0.299, 0.587, 0.114])  # noqa: E731
        assert np.abs(luma(double) - luma(full)).max() <= 1.5  # more saturated, the same luma (uint8 rounding)
        assert np.abs(chroma(double)).mean() > 1.2 * np.abs(chroma(full)).mean()
        assert np.all((double >= 0) & (double <= 255))
    export = shutil.copytree(tiny_export, tmp_path / "recorded")
    record_inference(export, chroma_scale=0.75)
    assert load_pipeline([export]).defaults.chroma_scale == 0.75
    assert "chroma x0.75" in load_pipeline([export]).describe()
    with pytest.raises(ValueError, match="chroma scale"):
        InferenceSettings(chroma_scale=3.5)


def test_chroma_floor_lifts_faint_color_and_keeps_the_luma(tiny_export, tmp_path):
    grays = contest_inputs(tmp_path)
    pipeline = load_pipeline([tiny_export])
    faint = InferenceSettings(chroma_scale=0.01)
    plain = pipeline.restore(grays, settings=faint, seed=0)
    lifted = pipeline.restore(grays, settings=faint.but(chroma_floor=0.04), seed=0)
    luma = lambda rgb: rgb.astype(float) @ np.array([0.299, 0.587, 0.114])  # noqa: E731
    chroma = lambda rgb: np.abs(rgb.astype(float) - rgb.astype(float).mean(axis=2, keepdims=True))  # noqa: E731
    for a, b in zip(plain, lifted, strict=True):
        assert np.abs(luma(a.rgb) - luma(b.rgb)).max() <= 1.5
        gray_px = (np.ptp(a.rgb, axis=2) == 0).mean()
        assert gray_px > 0.9  # x0.01 rounds almost every pixel to R = G = B ...
        assert (np.ptp(b.rgb, axis=2) == 0).mean() < 0.15  # ... the floor gives most back their hue (not pure white)
        assert chroma(b.rgb).mean() > 2 * chroma(a.rgb).mean()
    assert "chroma floor 0.04" in pipeline.describe(faint.but(chroma_floor=0.04))


def test_a_shared_pipeline_is_never_changed_by_a_call(tiny_export, tmp_path):
    """Settings are per call: one caller's truncation or mode cannot leak into the next (the MLflow model serves
    concurrent requests from one pipeline)."""
    pipeline = load_pipeline([tiny_export])
    before = pipeline.defaults
    pipeline.restore(contest_inputs(tmp_path)[:1], settings=InferenceSettings(inpaint_mode="fill", truncation_psi=1.0))
    assert pipeline.defaults == before


def test_chroma_flip_makes_the_colors_mirror_equivariant(tiny_export, tmp_path):
    pipeline = load_pipeline([tiny_export])
    gray = contest_inputs(tmp_path)[0]
    known = [np.ones_like(gray)]  # nothing to inpaint: the colorizer alone
    flip = InferenceSettings(chroma_flip=True)
    a = pipeline.restore([gray], known=known, settings=flip)[0].rgb
    b = pipeline.restore([np.ascontiguousarray(gray[:, ::-1])], known=known, settings=flip)[0].rgb
    assert np.array_equal(a[:, ::-1], b)
    plain = pipeline.restore([gray], known=known)[0].rgb
    assert not np.array_equal(a, plain)  # an untrained colorizer is far from mirror-symmetric
