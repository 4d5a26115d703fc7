"""One decoding rule for shards, prediction and evaluation: 16-bit, CMYK, palette, alpha, EXIF and a pixel limit."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from fault_images import masked_gray, photo, png_claiming_size, save_gray16, write_contest_csv
from PIL import Image, ImageOps

from restoration.data.shard_build import build
from restoration.image_io import read_gray, read_rgb


def l_of(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).convert("L"))


def test_16_bit_gray_is_scaled_to_8_bit_not_clipped(tmp_path):
    gray8 = masked_gray(photo())
    path = save_gray16(tmp_path / "g16.png", gray8)
    np.testing.assert_array_equal(read_gray(path).gray, gray8)
    assert read_gray(path).converted_from is None  # 16-bit gray is not a color conversion
    np.testing.assert_array_equal(read_rgb(path), np.repeat(gray8[..., None], 3, axis=-1))
    dark = np.arange(0, 256, dtype=np.uint16).reshape(16, 16)  # 16-bit samples that happen to be small stay dark
    Image.fromarray(dark).save(tmp_path / "dark16.png")
    np.testing.assert_array_equal(read_gray(tmp_path / "dark16.png").gray, np.rint(dark / 257).astype(np.uint8))


def unusual_files(folder: Path, rgb: np.ndarray) -> dict[str, np.ndarray]:
    """name -> the RGB pixels each file must decode to."""
    img = Image.fromarray(rgb)
    img.convert("CMYK").save(folder / "cmyk.tif")
    palette = img.quantize(16)
    palette.save(folder / "palette.png")
    rgba = np.dstack([rgb, np.where(np.arange(rgb.shape[1]) % 2, 0, 255)[None].repeat(rgb.shape[0], 0)])
    Image.fromarray(rgba.astype(np.uint8)).save(folder / "alpha.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: a viewer rotates it 90 degrees clockwise
    img.save(folder / "rotated.png", exif=exif)
    return {
        "cmyk.tif": np.asarray(img.convert("CMYK").convert("RGB")),
        "palette.png": np.asarray(palette.convert("RGB")),
        "alpha.png": rgb,  # alpha dropped: the stored colors, even where fully transparent
        "rotated.png": np.asarray(ImageOps.exif_transpose(Image.open(folder / "rotated.png")).convert("RGB")),
    }


def test_gray_and_rgb_readers_agree_on_cmyk_palette_alpha_and_exif(tmp_path):
    rgb = photo(size=12)[:, :10]
    for name, expected in unusual_files(tmp_path, rgb).items():
        np.testing.assert_array_equal(read_rgb(tmp_path / name), expected, err_msg=name)
        np.testing.assert_array_equal(read_gray(tmp_path / name).gray, l_of(expected), err_msg=name)
        assert read_rgb((tmp_path / name).read_bytes()).shape == expected.shape  # bytes (zip members) alike
    assert read_rgb(tmp_path / "rotated.png").shape == (10, 12, 3)


def test_shards_decode_unusual_ground_truths_like_the_readers(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    expected = unusual_files(root, photo(size=12)[:, :10])
    out = tmp_path / "shards"
    build("photos", root, out, size=8, val_fraction=0.0, progress=False)
    with tarfile.open(out / "train-000000.tar") as tar:
        gts = {m.name.split(".")[0]: tar.extractfile(m).read() for m in tar.getmembers() if m.name.endswith("gt.png")}
    for name, rgb in expected.items():
        want = np.asarray(ImageOps.fit(Image.fromarray(rgb), (8, 8), method=Image.Resampling.BICUBIC))
        got = np.asarray(Image.open(io.BytesIO(gts[Path(name).stem])))
        np.testing.assert_array_equal(got, want, err_msg=name)


def contest_rows(root: Path, files: dict[str, tuple[np.ndarray | Path, np.ndarray | Path]]) -> None:
    """Write each (input, gt) pair; arrays are saved as 8-bit PNGs, paths are used as they are."""
    rows = []
    for key, (inp, gt) in files.items():
        paths = []
        for kind, value in (("input", inp), ("gt", gt)):
            if isinstance(value, Path):
                paths.append(value.relative_to(root).as_posix())
                continue
            Image.fromarray(value).save(root / f"{key}_{kind}.png")
            paths.append(f"{key}_{kind}.png")
        rows.append(tuple(paths))
    write_contest_csv(root, rows)


def test_contest_pairs_with_16_bit_or_cmyk_files_are_exact_or_rejected(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    rgb = photo(size=24)
    gray = l_of(rgb)
    lossy_cmyk = root / "lossy_cmyk_gt.jpg"
    Image.fromarray(rgb).convert("CMYK").save(lossy_cmyk, quality=95)
    Image.fromarray(rgb).convert("CMYK").save(root / "cmyk_gt.tif")
    contest_rows(
        root,
        {
            "gt16": (masked_gray(np.dstack([gray] * 3)), save_gray16(root / "gt16_gt.png", gray)),
            "input16": (save_gray16(root / "input16_input.png", masked_gray(rgb)), rgb),
            "cmyk": (masked_gray(rgb), root / "cmyk_gt.tif"),
            "unrelated16": (save_gray16(root / "unrelated16_input.png", l_of(photo(size=24, seed=9))), rgb),
            "lossycmyk": (masked_gray(rgb), lossy_cmyk),
        },
    )
    out = tmp_path / "shards"
    manifest = build("contest", root, out, val_fraction=0.0, progress=False)
    rejected = (out / "rejected.csv").read_text()
    assert "unrelated16_input.png" in rejected
    assert "lossy_cmyk_gt.jpg" in rejected
    assert rejected.count("does not match") == 2
    assert manifest["totals"] == {"train": 3, "val": 0, "rejected": 2}
    with tarfile.open(out / "train-000000.tar") as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    hole = masked_gray(rgb, fill=7) != gray
    for key in ("gt16", "input16", "cmyk"):
        known = np.asarray(Image.open(io.BytesIO(files[f"{key}_input.known.png"])))
        np.testing.assert_array_equal(known == 0, hole, err_msg=key)
    gt16 = np.asarray(Image.open(io.BytesIO(files["gt16_input.gt.png"])))
    np.testing.assert_array_equal(gt16[..., 0], gray)  # 16-bit gt scaled, not clipped to 255


def test_pixel_limit_is_configurable_and_a_bomb_header_is_refused_before_decoding(tmp_path, monkeypatch):
    small = tmp_path / "small.png"
    Image.fromarray(photo(size=24)).save(small)
    monkeypatch.setenv("RESTORATION_MAX_PIXELS", "500")
    with pytest.raises(ValueError, match=r"24x24 = .* over the pixel limit .*RESTORATION_MAX_PIXELS"):
        read_rgb(small)
    monkeypatch.delenv("RESTORATION_MAX_PIXELS")
    assert read_rgb(small).shape == (24, 24, 3)
    over_default = png_claiming_size(tmp_path / "100mp.png", 10000, 10000)  # PIL alone would only warn
    with pytest.raises(ValueError, match=r"10000x10000 = 100.0 megapixels is over the pixel limit of 64 megapixels"):
        read_gray(over_default)
    bomb = png_claiming_size(tmp_path / "bomb.png", 20000, 20000)  # PIL's own ceiling: same kind of message
    for reader in (read_rgb, read_gray):
        with pytest.raises(ValueError, match=r"over the pixel limit: .*400000000 pixels"):
            reader(bomb)
