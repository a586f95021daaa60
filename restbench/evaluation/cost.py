"""What a network costs: parameter count, stored size, multiply-adds and FLOPs per window and
night. Pruning (which reports sizes before and after), the efficiency records and plugins all
count with these functions, so there is one definition of each number.

What is counted (the ``note`` of :func:`efficiency_report` repeats it with every result):

- ``params``: every parameter, BatchNorm affine weights included (docs/PROTOCOL.md's 2,264,485 for
  Sors on Sleep-EDF).
- ``size_kb``: float32 bytes of what a deployment stores, divided by 1024: all parameters plus
  the floating-point buffers a forward pass in eval mode reads (BatchNorm running mean and
  variance). Integer bookkeeping buffers (``num_batches_tracked``) are left out: inference never
  reads them. No container overhead (file headers, pickling, alignment) is included.
- ``macs``: multiply-adds of the convolution and linear layers, from their shapes (forward
  hooks record each layer's output size). Bias additions, BatchNorm (folded into the preceding
  convolution at deployment) and ReLU are not counted.
- ``mflops``: :class:`torch.utils.flop_counter.FlopCounterMode` FLOPs / 1e6, which counts a
  multiply-add as 2 FLOPs for convolutions and matrix products and nothing for element-wise
  operations, so ``mflops == 2 * macs / 1e6`` for a conv/linear network.

The paper's Table 5 (1,451 MFLOPs for Sors on Sleep-EDF) is 2 x 722.7 M MACs = 1,445 M plus
about 6 M element-wise operations (bias, BatchNorm, ReLU: roughly four per activation over the
1.56 M activations of the twelve conv blocks); our ``mflops`` is therefore 0.4 % below it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from torch import nn

#: One night of scoring: 9 h of 30-s windows (docs/PROTOCOL.md).
WINDOWS_PER_NIGHT = 1080

NOTE = (
    "params: all parameters (BatchNorm affine included); size_kb: float32 bytes of parameters "
    "plus BatchNorm running mean/var (num_batches_tracked excluded, no file overhead) / 1024; "
    "macs: conv/linear multiply-adds per window from layer shapes (bias, BatchNorm, ReLU not "
    "counted); mflops: torch FlopCounterMode FLOPs / 1e6 = 2 x MACs; per_night: x "
    "windows_per_night"
)


def count_params(module: "nn.Module") -> int:
    """Number of parameters of ``module`` (trainable or not), BatchNorm affine included."""
    return int(sum(p.numel() for p in module.parameters()))


def stored_numel(module: "nn.Module") -> int:
    """Number of float values a deployment stores: parameters plus floating-point buffers.

    Floating-point buffers are the BatchNorm running statistics (and any fixed filter taps a
    test-time transform keeps as a buffer); integer buffers such as ``num_batches_tracked`` are
    training bookkeeping and are not counted.
    """
    n = count_params(module)
    n += sum(b.numel() for b in module.buffers() if b.is_floating_point())
    return int(n)


def size_kb(module: "nn.Module") -> float:
    """Stored model size in KB (1 KB = 1024 bytes) at float32: 4 bytes per stored value.

    This is restbench's one definition of model size (the efficiency record's ``size_kb`` and
    the pruning report's ``size_kb_before``/``size_kb_after`` both call it). It counts the
    parameters *and* the floating-point buffers (BatchNorm running mean and variance), see
    :func:`stored_numel`, rather than the parameters alone, because that is the definition
    closest to the size the paper reports (Table 5: 8,896 KB for Sors on Sleep-EDF with
    2,264,485 parameters, defined as the "memory consumed (in KB) for storing the weights"):
    stored tensors give (2,264,485 + 4,808) x 4 / 1024 = 8,864.4 KB (0.4 % below), parameters
    alone 8,845.6 KB (0.6 % below). The paper does not say how it measured the size (it is not
    stated to be a file's); ``torch.save`` of the state_dict is 8,892.8 KB (torch 2.13), so the
    remaining ~32 KB is a file's container (per-tensor headers and alignment, the integer
    ``num_batches_tracked``), not weights (SHHS: 8,964 KB here vs the paper's 8,996 KB, the
    same gap). We report raw tensor bytes, which do not depend on the file format. The size of
    an actual exported file is a separate number (``tflite_fp32_size_kb``; BatchNorm folded
    into the convolutions, 8,850.0 KB for this model with litert-torch 0.10).
    """
    return stored_numel(module) * 4 / 1024


def _eval_forward(module: "nn.Module", input_shape: Sequence[int], fn) -> Any:
    """Run ``fn(module, x)`` on a zero input in eval mode without gradients; restore the mode.

    Eval mode keeps BatchNorm from updating its running statistics (and from needing batch > 1).
    """
    import torch

    try:
        ref = next(module.parameters())
        device, dtype = ref.device, ref.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    x = torch.zeros(tuple(int(s) for s in input_shape), device=device, dtype=dtype)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            return fn(module, x)
    finally:
        module.train(was_training)


def count_macs(module: "nn.Module", input_shape: Sequence[int]) -> int:
    """Multiply-adds of one forward pass on an input of ``input_shape`` (batch dimension included).

    Convolutions (any dimensionality, groups respected): output elements x (in_channels /
    groups) x kernel size. Linear: output elements x in_features. Each layer is counted every
    time it is called. Bias, BatchNorm and activations are not counted.
    """
    from torch import nn

    total = [0]

    def conv_hook(layer, _inputs, output):
        per_output = (layer.in_channels // layer.groups) * math.prod(layer.kernel_size)
        total[0] += output.numel() * per_output

    def linear_hook(layer, _inputs, output):
        total[0] += output.numel() * layer.in_features

    def declared_hook(layer, inputs, _output):
        total[0] += int(inputs[0].shape[0]) * int(layer.macs_per_window(int(inputs[0].shape[-1])))

    handles = []
    for layer in module.modules():
        if callable(getattr(layer, "macs_per_window", None)) and not any(True for _ in layer.children()):
            # a leaf computing with functional ops (e.g. the FFT band-pass) states its own cost
            handles.append(layer.register_forward_hook(declared_hook))
        elif isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            handles.append(layer.register_forward_hook(conv_hook))
        elif isinstance(layer, nn.Linear):
            handles.append(layer.register_forward_hook(linear_hook))
    try:
        _eval_forward(module, input_shape, lambda m, x: m(x))
    finally:
        for handle in handles:
            handle.remove()
    return int(total[0])


def count_flops(module: "nn.Module", input_shape: Sequence[int]) -> int:
    """FLOPs of one forward pass as :class:`torch.utils.flop_counter.FlopCounterMode` counts
    them: 2 per multiply-add of convolutions and matrix products, element-wise ops not counted."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    uncounted = [0]

    # Leaves that state their cost (macs_per_window) but compute with ops the counter does not
    # see (an FFT) are charged 2 x their stated MACs; when the counter did see them, nothing extra.
    def before(layer, _inputs):
        layer._restbench_flops_before = counter.get_total_flops()

    def after(layer, inputs, _output):
        if counter.get_total_flops() == layer._restbench_flops_before:
            uncounted[0] += 2 * int(inputs[0].shape[0]) * int(layer.macs_per_window(int(inputs[0].shape[-1])))

    handles = []
    for layer in module.modules():
        if callable(getattr(layer, "macs_per_window", None)) and not any(True for _ in layer.children()):
            handles += [layer.register_forward_pre_hook(before), layer.register_forward_hook(after)]

    def run(m, x):
        with counter:
            m(x)
        return counter.get_total_flops()

    try:
        return int(_eval_forward(module, input_shape, run)) + uncounted[0]
    finally:
        for handle in handles:
            handle.remove()


def efficiency_report(
    module: "nn.Module", input_shape: Sequence[int], windows_per_night: int = WINDOWS_PER_NIGHT
) -> dict:
    """Efficiency of ``module`` per window and per night, as typed numbers.

    ``input_shape`` is one window's shape, with or without a leading batch dimension
    (``(1, 12000)`` or ``(1, 1, 12000)``); counts are always for a single window (batch 1).
    Returns ``params``, ``size_kb``, ``macs``, ``mflops``, ``macs_per_night``,
    ``mflops_per_night``, ``windows_per_night``, ``input_shape`` and ``note`` (what is counted).
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 2:  # (channels, times): add the batch dimension
        shape = (1, *shape)
    shape = (1, *shape[1:])
    macs = count_macs(module, shape)
    flops = count_flops(module, shape)
    return {
        "params": count_params(module),
        "size_kb": size_kb(module),
        "macs": macs,
        "mflops": flops / 1e6,
        "macs_per_night": macs * int(windows_per_night),
        "mflops_per_night": flops * int(windows_per_night) / 1e6,
        "windows_per_night": int(windows_per_night),
        "input_shape": list(shape),
        "note": NOTE,
    }
