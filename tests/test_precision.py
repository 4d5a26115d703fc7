import pytest
import torch

from restoration.precision import widen


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_is_widened_to_float32(dtype):
    x = torch.tensor([1.5, -2.25], dtype=dtype)
    y = widen(x)
    assert y.dtype == torch.float32
    assert torch.equal(y, torch.tensor([1.5, -2.25]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_full_precision_is_left_alone(dtype):
    x = torch.tensor([1.0 / 3.0], dtype=dtype)
    assert widen(x) is x  # float64 is not narrowed to float32, as Tensor.float() would


def test_widened_half_tensors_keep_their_gradient_path():
    x = torch.ones(3, dtype=torch.bfloat16, requires_grad=True)
    widen(x).sum().backward()
    assert x.grad is not None
    assert torch.equal(x.grad, torch.ones(3, dtype=torch.bfloat16))
