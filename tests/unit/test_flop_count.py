"""The FLOPs meter counts a grouped convolution's backward as twice its forward, as for a dense one
(torch's own formula counts a depthwise weight gradient as dense: ``groups`` times too much)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from fedray.resources.meter import flop_counter_mode


def _counts(conv: nn.Module, counter: FlopCounterMode) -> tuple[int, int]:
    x = torch.randn(2, 32, 8, 8, requires_grad=True)
    with FlopCounterMode(display=False) as fwd, torch.no_grad():
        conv(x)
    with counter:
        conv(x).sum().backward()
    return fwd.get_total_flops(), counter.get_total_flops()


@pytest.mark.parametrize("groups", [1, 4, 32])
def test_backward_costs_twice_the_forward_whatever_the_groups(groups):
    forward, total = _counts(nn.Conv2d(32, 32, 3, padding=1, groups=groups, bias=False), flop_counter_mode())
    assert total == 3 * forward


def test_a_dense_convolution_counts_as_torch_counts_it():
    conv = nn.Conv2d(32, 16, 3, stride=2, padding=1)
    assert _counts(conv, flop_counter_mode())[1] == _counts(conv, FlopCounterMode(display=False))[1]
