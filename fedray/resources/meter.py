"""Measuring one real training step: FLOPs and peak training memory.

FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` around forward + backward (+ the optimizer
step, which it counts as 0: AdamW is elementwise). It counts matrix products and convolutions,
2 FLOPs per multiply-accumulate, i.e. what the analytic counter in ``analytic.py`` models. Torch's
convolution-backward formula ignores ``groups`` in the weight gradient (a depthwise conv's counted as a
dense one, ~30x too much for EfficientNet); :func:`conv_backward_flop` divides that term by ``groups``.

Memory, CPU model (any device): the bytes of

* the parameters and buffers of every *present* layer group (absent blocks are never run),
* the gradients (trainable parameters only),
* the AdamW state (``exp_avg``, ``exp_avg_sq``, ``step``),
* the tensors autograd saves for backward (``saved_tensors_hooks``, deduplicated by storage,
  parameters excluded since they are already counted).

That sum is the footprint at the end of a step's forward from the second step on, when the
previous step's gradients and the optimizer state are still alive (``local_train`` calls
``zero_grad`` after the forward): the peak step. Transient buffers (an op's temporaries,
frozen layers' activations, which build no graph) are not in the model.

Memory on CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, over a
client's whole local training. In a run the host keeps the full-depth model on the device, so
that figure includes blocks not yet present; ``fedray resources`` moves only present groups.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

from fedray.model import MultimodalModel


def conv_backward_flop(grad_out, x, w, bias, stride, padding, dilation, transposed, output_padding, groups,
                       output_mask, out_shape=None, **_: object) -> int:
    """Torch's count of a convolution's backward with the weight-gradient term divided by ``groups``."""
    args = (grad_out, x, w, bias, stride, padding, dilation, transposed, output_padding, groups)
    grad_input = flop_counter.conv_backward_flop(*args, [output_mask[0], False, False], out_val=out_shape)
    grad_weight = flop_counter.conv_backward_flop(*args, [False, output_mask[1], False], out_val=out_shape)
    return grad_input + grad_weight // groups


def flop_counter_mode() -> FlopCounterMode:
    """A silent ``FlopCounterMode`` with grouped convolutions' backward counted right."""
    return FlopCounterMode(display=False,
                           custom_mapping={torch.ops.aten.convolution_backward: conv_backward_flop})


@dataclass(frozen=True)
class StepCost:
    """What one training step costs (one client, one batch)."""

    flops: int  # forward + backward, 2 per multiply-accumulate
    state_bytes: int  # parameters and buffers of the present groups
    grad_bytes: int
    optimizer_bytes: int
    saved_bytes: int  # tensors saved for backward (activations), deduplicated by storage

    @property
    def memory_bytes(self) -> int:
        """The CPU memory model: peak bytes of one training step."""
        return self.state_bytes + self.grad_bytes + self.optimizer_bytes + self.saved_bytes


def _storage_key(t: torch.Tensor) -> tuple[str, int]:
    s = t.untyped_storage()
    return str(t.device), s.data_ptr()


def present_state_bytes(model: MultimodalModel) -> int:
    """Bytes of parameters and buffers in every layer group present at the model's current depths."""
    return sum(t.nbytes for t in model.state(frozenset(model.groups())).values())


def grad_bytes(model: torch.nn.Module) -> int:
    return sum(p.grad.nbytes for p in model.parameters() if p.grad is not None)


def optimizer_bytes(opt: torch.optim.Optimizer) -> int:
    """Bytes of every tensor in the optimizer's per-parameter state."""
    return sum(v.nbytes for state in opt.state.values() for v in state.values() if torch.is_tensor(v))


class StepMeter:
    """Measures the first training step it wraps; later wraps are no-ops (``cost`` is cached).

    One meter per stage and batch shape: every step of a stage has the same shapes (``drop_last``,
    fixed-length text padding) and the same present/trainable groups, so the same FLOPs and
    memory. A client's FLOPs for a round are ``cost.flops * steps``.
    """

    def __init__(self) -> None:
        self.cost: StepCost | None = None

    @contextmanager
    def step(self, model: MultimodalModel, opt: torch.optim.Optimizer) -> Iterator[None]:
        """Wrap one ``forward; zero_grad; backward; opt.step`` (a real step: numerics unchanged)."""
        if self.cost is not None:
            yield
            return
        params = {_storage_key(p) for p in model.parameters()}
        saved: dict[tuple[str, int], int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            key = _storage_key(t)
            if key not in params and t.device.type != "meta":
                saved[key] = t.untyped_storage().nbytes()
            return t

        counter = flop_counter_mode()
        with counter, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            yield
        self.cost = StepCost(counter.get_total_flops(), present_state_bytes(model), grad_bytes(model),
                             optimizer_bytes(opt), sum(saved.values()))


@contextmanager
def cuda_peak(device: torch.device) -> Iterator[list[int]]:
    """Yield a one-item list that holds ``max_memory_allocated`` on exit (0 off CUDA)."""
    out = [0]
    if device.type != "cuda":
        yield out
        return
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    yield out
    torch.cuda.synchronize(device)
    out[0] = int(torch.cuda.max_memory_allocated(device))
