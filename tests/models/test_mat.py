"""MAT on the tiny preset: contract, reproducibility, checkpointing, gray helpers, key layout, the fill prior,
compile."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from restoration.inference import inpaint_gray
from restoration.models.fill_prior import harmonic_fill
from restoration.models.mat import (
    MATConfig,
    build_discriminator,
    build_generator,
    gray_to_mat_input,
    mat_output_to_luma,
)
from restoration.models.mat_checkpoint import (
    build_official_discriminator,
    build_official_generator,
    convert_official_state_dict,
    load_state_flexible,
)

FIXTURE = Path(
    os.environ.get("RESTORATION_MAT_FIXTURE", Path(__file__).resolve().parents[3] / "shared/fixtures/mat_official")
)


def tiny_inputs(batch: int = 2):
    torch.manual_seed(0)
    img = torch.rand(batch, 3, 64, 64) * 2 - 1
    known = torch.ones(batch, 1, 64, 64)
    known[:, :, 10:40, 16:50] = 0
    return img, known, torch.randn(batch, 32), torch.zeros(batch, 0)


def test_tiny_generator_contract_and_backward():
    G = build_generator(MATConfig(preset="tiny"))
    img, known, z, c = tiny_inputs()
    out, stg1 = G(img, known, z, c, return_stg1=True)
    assert out.shape == stg1.shape == img.shape
    assert torch.equal(out * known, img * known)  # known pixels come back exactly
    D = build_discriminator(MATConfig(preset="tiny"))
    logits, logits_stg1 = D(out, known, stg1, c)
    assert logits.shape == logits_stg1.shape == (2, 1)
    (logits.sum() + logits_stg1.sum()).backward()
    assert all(p.grad is not None for p in G.parameters() if p.requires_grad)


def test_generator_argument_makes_inference_reproducible_without_touching_global_rng():
    G = build_generator(MATConfig(preset="tiny")).eval()
    img, known, z, c = tiny_inputs()
    state = torch.get_rng_state()
    a = G(img, known, z, c, noise_mode="random", generator=torch.Generator().manual_seed(3))
    b = G(img, known, z, c, noise_mode="random", generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.equal(state, torch.get_rng_state())
    d = G(img, known, z, c, noise_mode="random", generator=torch.Generator().manual_seed(4))
    assert not torch.equal(a, d)  # the always-on feature dropout is really on


def test_activation_checkpointing_changes_nothing_numerically():
    img, known, z, c = tiny_inputs()
    outs, grads = [], []
    for flag in (False, True):
        torch.manual_seed(0)
        G = build_generator(MATConfig(preset="tiny", checkpointing=flag))
        out = G(img, known, z, c, noise_mode="const", generator=torch.Generator().manual_seed(1))
        out.square().mean().backward()
        outs.append(out.detach())
        grads.append(G.synthesis.first_stage.tran[0].blocks[0].attn.q.weight.grad.clone())
    torch.testing.assert_close(outs[0], outs[1])
    torch.testing.assert_close(grads[0], grads[1])


def test_gray_helpers():
    gray = torch.rand(2, 1, 8, 8) * 2 - 1
    rgb = gray_to_mat_input(gray)
    assert rgb.shape == (2, 3, 8, 8)
    torch.testing.assert_close(mat_output_to_luma(rgb), gray)


def _official_keys(name: str) -> dict[str, list[int]]:
    manifest = json.loads((FIXTURE / name).read_text())
    return {e["name"]: e["shape"] for e in manifest["entries"]}


@pytest.mark.parametrize("res", [256, 512])
def test_state_dict_keys_and_shapes_equal_the_official_ones(res):
    if not FIXTURE.is_dir():
        pytest.skip(f"MAT fixture not found at {FIXTURE} (set RESTORATION_MAT_FIXTURE)")
    g_official = {k: v for k, v in _official_keys(f"manifest_{res}.json").items() if not k.endswith("attn_mask")}
    g_ours = {k: list(v.shape) for k, v in build_official_generator(img_resolution=res).state_dict().items()}
    assert g_ours == g_official
    d_official = _official_keys(f"manifest_D_{res}.json")
    d_ours = {k: list(v.shape) for k, v in build_official_discriminator(img_resolution=res).state_dict().items()}
    assert d_ours == d_official
    assert convert_official_state_dict({"model.a.attn_mask": torch.zeros(1), "module.b": torch.ones(1)}) == {
        "b": torch.ones(1)
    }


def test_fill_prior_off_adds_no_parameter_and_no_random_draw():
    torch.manual_seed(0)
    G_none = build_generator(MATConfig(preset="tiny"))
    after_none = torch.get_rng_state()
    torch.manual_seed(0)
    G_fill = build_generator(MATConfig(preset="tiny", prior="fill"))
    assert torch.equal(after_none, torch.get_rng_state())
    none, fill = G_none.state_dict(), G_fill.state_dict()
    assert set(fill) - set(none) == {"synthesis.prior_gain"}
    assert all(torch.equal(v, fill[k]) for k, v in none.items())


def test_untrained_fill_prior_generator_returns_the_fill_and_its_gain_learns():
    G = build_generator(MATConfig(preset="tiny", prior="fill"))
    img, known, z, c = tiny_inputs()
    masked = img * known
    out, stg1 = G(masked, known, z, c, return_stg1=True)
    assert torch.equal(out, harmonic_fill(masked, known))  # exactly the fill, known pixels the input's
    assert torch.equal(out * known, img * known)
    out.square().mean().backward()  # step 0: only the zero gain can move the output
    assert G.synthesis.prior_gain.grad is not None
    assert G.synthesis.prior_gain.grad.abs() > 0
    gray = img[:, :1]
    restored = inpaint_gray(G.eval(), gray, known, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(restored, harmonic_fill(gray, known), atol=1e-6)  # luma of R = G = B


def test_fill_prior_loads_weights_without_its_gain_and_nothing_else_missing():
    state = build_generator(MATConfig(preset="tiny")).state_dict()  # the official layout: no prior_gain
    G = build_generator(MATConfig(preset="tiny", prior="fill"))
    assert load_state_flexible(G, state) == ["synthesis.prior_gain"]
    assert G.synthesis.prior_gain.item() == 0.0
    state.pop("mapping.fc0.weight")
    with pytest.raises(RuntimeError, match="mapping.fc0.weight"):
        load_state_flexible(G, state)


@pytest.mark.slow
def test_torch_compile_smoke():
    """The whole generator traces as training compiles it (`run.compile`): dropout from the global RNG, seeded alike
    for both calls. (An explicit `generator=` breaks the graph at every draw: ~5x the compile time.)"""
    G = build_generator(MATConfig(preset="tiny")).eval()
    img, known, z, c = tiny_inputs(1)
    compiled = torch.compile(G, backend="aot_eager")
    with torch.no_grad():
        torch.manual_seed(0)
        a = compiled(img, known, z, c, noise_mode="const")
        torch.manual_seed(0)
        b = G(img, known, z, c, noise_mode="const")
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
