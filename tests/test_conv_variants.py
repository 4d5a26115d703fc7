"""`benchmarks/conv_variants.py`: every alternative convolution computes what the direct call does, in float64 and
with a gradient, so its timings compare the same work (issue #15's record of what was tried)."""

from __future__ import annotations

import pytest
import torch

from benchmarks import conv_variants as cv


@pytest.mark.parametrize(("kind", "size"), [("s1", 10), ("s2", 10), ("s2", 11), ("fir", 10), ("fir", 11)])
def test_variants_match_the_direct_convolution_and_its_gradients(kind, size):
    direct, variants = cv.VARIANTS[kind]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, size, size, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 3, 3, 3, generator=gen, dtype=torch.float64, requires_grad=kind != "fir")
    ref = direct(x, w)
    dy = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    ref_grads = torch.autograd.grad(ref, [x, w] if w.requires_grad else [x], dy)
    for fn in variants:
        out = fn(x, w)
        assert out.shape == ref.shape, fn.__name__
        torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10, msg=fn.__name__)
        grads = torch.autograd.grad(out, [x, w] if w.requires_grad else [x], dy)
        for g, r in zip(grads, ref_grads):
            torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-10, msg=fn.__name__)


def test_tiny_run_reports_every_variant(tmp_path, capsys):
    rows = cv.main(["--tiny", "--threads", "1", "--repeats", "1", "--json", str(tmp_path / "rows.json")])
    assert {r["variant"] for r in rows} == {"winograd_s1", "polyphase_s2", "space_to_depth_s2", "fir_separable",
                                            "fir_channels_last"}  # fmt: skip
    assert all(r["max_rel_diff"] < 1e-5 and r["speed_up"] > 0 for r in rows)
    assert "speed-up" in capsys.readouterr().out
    assert (tmp_path / "rows.json").is_file()
