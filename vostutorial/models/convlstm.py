r"""The convolutional LSTM (Shi et al., 2015): an LSTM whose gates are convolutions.

For input :math:`x_t` and state :math:`(h_{t-1}, c_{t-1})`, all ``(B, C, H, W)``:

.. math::

    i_t &= \sigma(W_i * [x_t, h_{t-1}] + b_i)      &\text{input gate: how much to write}\\
    f_t &= \sigma(W_f * [x_t, h_{t-1}] + b_f)      &\text{forget gate: how much to keep}\\
    g_t &= \tanh(W_g * [x_t, h_{t-1}] + b_g)       &\text{candidate: what to write}\\
    o_t &= \sigma(W_o * [x_t, h_{t-1}] + b_o)      &\text{output gate: how much to show}\\
    c_t &= f_t \odot c_{t-1} + i_t \odot g_t,\qquad h_t = o_t \odot \tanh(c_t)

where :math:`*` is a 2-D convolution. The four gates come from **one** convolution over the
concatenated input and hidden state (``4 * hidden`` output channels, split in the order
i, f, g, o as in ``torch.nn.LSTM``), which is both the textbook form and the fastest.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

State = tuple[Tensor, Tensor]


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step: ``cell(x, (h, c)) -> (h, c)`` with x ``(B, C_in, H, W)`` and h, c
    ``(B, C_hidden, H, W)``. ``forget_bias`` is added to the forget gate's bias at
    initialisation, so that a fresh cell starts out remembering."""

    def __init__(
        self, in_channels: int, hidden_channels: int, kernel_size: int = 3, forget_bias: float = 1.0
    ):
        super().__init__()
        self.in_channels, self.hidden_channels = in_channels, hidden_channels
        self.gates = nn.Conv2d(
            in_channels + hidden_channels,
            4 * hidden_channels,
            kernel_size,
            padding=kernel_size // 2,
        )
        with torch.no_grad():
            self.gates.bias[hidden_channels : 2 * hidden_channels] += forget_bias

    def gate_values(self, x: Tensor, state: State) -> dict[str, Tensor]:
        """The four gates ``i, f, g, o`` (after their non-linearities), each ``(B, C_h, H, W)``."""
        i, f, g, o = self.gates(torch.cat([x, state[0]], dim=1)).chunk(4, dim=1)
        return {
            "i": torch.sigmoid(i),
            "f": torch.sigmoid(f),
            "g": torch.tanh(g),
            "o": torch.sigmoid(o),
        }

    def forward(self, x: Tensor, state: State) -> State:
        gate = self.gate_values(x, state)
        c = gate["f"] * state[1] + gate["i"] * gate["g"]
        h = gate["o"] * torch.tanh(c)
        return h, c

    def zero_state(self, x: Tensor) -> State:
        """An all-zero ``(h, c)`` matching input ``x`` ``(B, C, H, W)``."""
        z = x.new_zeros(x.shape[0], self.hidden_channels, *x.shape[-2:])
        return z, z.clone()


class ConvLSTM(nn.Module):
    """A `ConvLSTMCell` run over a sequence.

    ``forward(x, state=None)`` with x ``(B, T, C_in, H, W)`` returns all hidden states
    ``(B, T, C_hidden, H, W)`` and the last ``(h, c)``; ``state`` defaults to zeros.
    """

    def __init__(
        self, in_channels: int, hidden_channels: int, kernel_size: int = 3, forget_bias: float = 1.0
    ):
        super().__init__()
        self.cell = ConvLSTMCell(in_channels, hidden_channels, kernel_size, forget_bias)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        if state is None:
            state = self.cell.zero_state(x[:, 0])
        outputs = []
        for t in range(x.shape[1]):
            state = self.cell(x[:, t], state)
            outputs.append(state[0])
        return torch.stack(outputs, dim=1), state
