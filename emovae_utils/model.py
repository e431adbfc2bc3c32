"""Convolutional VAE for 80 x 128 log-mel spectrograms (the authors' layout).

The 80 mel bands are the ``Conv1d`` channels and the 128 frames the time axis.
See ``shared/docs/study-reference.md`` (section *Model*) for the source of every
layer size.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["EmotionVAE", "vae_loss", "save_model", "load_model", "IMPLEMENTATIONS"]

#: Ways of evaluating the same network (identical parameters and function).
#: ``"torch"`` calls the ``nn.Conv1d`` / ``nn.ConvTranspose1d`` modules (the
#: authors' code); ``"gemm"`` evaluates the same layers as matrix products in a
#: time-major layout with hand-written backward passes (faster on CPU; results
#: agree to float32 rounding).
IMPLEMENTATIONS = ("gemm", "torch")

_threshold_backward = torch.ops.aten.threshold_backward

# The fast ("gemm") path.  Every Conv1d / ConvTranspose1d of the network has
# kernel 4 and stride 2 except the two at the bottleneck, so each is one matrix
# product between the weight and a gathered copy of the input ("im2col"):
# output frame t of a k4/s2/p1 convolution reads input frames 2t-1 .. 2t+2,
# i.e. the pair of frames (2t, 2t+1) plus one neighbour on each side.
# Activations run time-major, (N, L, C) stored as (N*L, C) rows. For a
# channel-major input (a contiguous (N, 80, 128) tensor) the first encoder
# layer gathers straight from it and the last decoder layer writes the
# channel-major output, so no separate transposition is needed; for a
# time-major input (a transposed view of a contiguous (N, 128, 80) tensor, as
# fit() passes) every layer is time-major and the output is a view too.
# The bottleneck (last encoder conv, both Linear layers, reparameterisation,
# first decoder conv) and the two loss terms are single autograd nodes.
# Backward passes are written by hand: same maths, fewer memory passes and far
# fewer autograd nodes (at this size per-operation overhead is a third of the
# step time). Checked against the nn modules in tests/test_model.py.


class _ConvS2ReLUFirst(torch.autograd.Function):
    """``relu(conv1d(x, W, b, stride=2, padding=1))``, kernel 4, channel-major input.

    x (N, C, L) -> time-major (N, L/2, O).
    """

    @staticmethod
    def forward(ctx, x, weight, bias):  # noqa: D102
        x = x.contiguous()
        n, c, length = x.shape
        m = length // 2
        o = weight.shape[0]
        xv = x.view(n, c, m, 2).transpose(0, 1)  # (C, N, M, 2)
        cols = x.new_empty(4, c, n, m)  # tap k at frame 2t+k-1, laid out (k, c, n, t)
        cols[1] = xv[..., 0]
        cols[2] = xv[..., 1]
        cols[0, :, :, 1:] = xv[:, :, :-1, 1]
        cols[0, :, :, 0] = 0
        cols[3, :, :, :-1] = xv[:, :, 1:, 0]
        cols[3, :, :, -1] = 0
        cols = cols.view(4 * c, n * m)
        w_mat = weight.permute(2, 1, 0).reshape(4 * c, o)
        out = torch.addmm(bias, cols.t(), w_mat).relu_()
        ctx.save_for_backward(cols, w_mat, out)
        ctx.conf = (n, m, c, o)
        return out.view(n, m, o)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        cols, w_mat, out = ctx.saved_tensors
        n, m, c, o = ctx.conf
        g = _threshold_backward(grad.reshape(n * m, o), out, 0.0)
        gx = gw = gb = None
        if ctx.needs_input_grad[1]:
            gw = (cols @ g).view(4, c, o).permute(2, 1, 0).contiguous()
        if ctx.needs_input_grad[2]:
            gb = g.sum(0)
        if ctx.needs_input_grad[0]:
            gc = (w_mat @ g.t()).view(4, c, n, m)
            gx = grad.new_empty(n, c, m, 2)
            gxv = gx.transpose(0, 1)  # (C, N, M, 2)
            gxv[..., 0] = gc[1]
            gxv[:, :, 1:, 0] += gc[3, :, :, :-1]
            gxv[..., 1] = gc[2]
            gxv[:, :, :-1, 1] += gc[0, :, :, 1:]
            gx = gx.view(n, c, 2 * m)
        return gx, gw, gb


class _ConvS2ReLU(torch.autograd.Function):
    """``relu(conv1d(x, W, b, stride=2, padding=1))``, kernel 4, time-major.

    x (N, L, C) -> (N, L/2, O).
    """

    @staticmethod
    def forward(ctx, x, weight, bias):  # noqa: D102
        n, length, c = x.shape
        m = length // 2
        o = weight.shape[0]
        # zero-pad one frame each side; row t of the overlapping view is frames 2t-1 .. 2t+2
        xp = F.pad(x, (0, 0, 1, 1))
        cols = xp.as_strided((n, m, 4 * c), ((length + 2) * c, 2 * c, 1)).reshape(n * m, 4 * c)
        w_mat = weight.permute(2, 1, 0).reshape(4 * c, o)
        out = torch.addmm(bias, cols, w_mat).relu_()
        ctx.save_for_backward(cols, w_mat, out)
        ctx.conf = (n, m, c, o)
        return out.view(n, m, o)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        cols, w_mat, out = ctx.saved_tensors
        n, m, c, o = ctx.conf
        g = _threshold_backward(grad.reshape(n * m, o), out, 0.0)
        gx = gw = gb = None
        if ctx.needs_input_grad[1]:
            gw = (g.t() @ cols).view(o, 4, c).transpose(1, 2).contiguous()
        if ctx.needs_input_grad[2]:
            gb = g.sum(0)
        if ctx.needs_input_grad[0]:
            gcols = (g @ w_mat.t()).view(n, m, 4, c)
            gxp = gcols[:, :, 1:3].clone()
            gxp[:, :-1, 1] += gcols[:, 1:, 0]
            gxp[:, 1:, 0] += gcols[:, :-1, 3]
            gx = gxp.view(n, 2 * m, c)
        return gx, gw, gb


class _ConvTS2(torch.autograd.Function):
    """``conv_transpose1d(x, W, b, stride=2, padding=p)``, kernel 4, p in {0, 1}.

    Optionally followed by a ReLU. Time-major: (N, L, C) -> (N, 2L + 2 - 2p, O).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, padding, relu):  # noqa: D102
        n, length, c = x.shape
        o = weight.shape[1]
        w_mat = weight.permute(0, 2, 1).reshape(c, 4 * o)  # columns (k, o)
        y = (x.reshape(n * length, c) @ w_mat).view(n, length, 4 * o)
        b2 = bias.repeat(2)
        if padding == 1:
            # output pair s = frames (2s, 2s+1) = full frames (2s+1, 2s+2):
            # [y_k1(s) + y_k3(s-1), y_k2(s) + y_k0(s+1)]
            out = torch.add(y[..., o: 3 * o], b2)
            out[:, 1:, :o] += y[:, :-1, 3 * o:]
            out[:, :-1, o:] += y[:, 1:, :o]
            pairs = length
        else:
            # output pair s = frames (2s, 2s+1): [y_k0, y_k1](s) + [y_k2, y_k3](s-1)
            out = x.new_empty(n, length + 1, 2 * o)
            torch.add(y[..., : 2 * o], b2, out=out[:, :length])
            out[:, length] = b2
            out[:, 1:] += y[..., 2 * o:]
            pairs = length + 1
        if relu:
            out.relu_()
        ctx.save_for_backward(x, w_mat, out if relu else None)
        ctx.conf = (n, length, c, o, padding, relu, pairs)
        return out.view(n, 2 * pairs, o)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        x, w_mat, out = ctx.saved_tensors
        n, length, c, o, padding, relu, pairs = ctx.conf
        g = grad.reshape(n, pairs, 2 * o)
        if relu:
            g = _threshold_backward(g, out, 0.0)
        gy = g.new_empty(n, length, 4 * o)
        if padding == 1:
            gy[..., o: 3 * o] = g
            gy[:, :-1, 3 * o:] = g[:, 1:, :o]
            gy[:, -1, 3 * o:] = 0
            gy[:, 1:, :o] = g[:, :-1, o:]
            gy[:, 0, :o] = 0
        else:
            gy[..., : 2 * o] = g[:, :length]
            gy[..., 2 * o:] = g[:, 1:]
        gy = gy.view(n * length, 4 * o)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = (gy @ w_mat.t()).view(n, length, c)
        if ctx.needs_input_grad[1]:
            gw = (x.reshape(n * length, c).t() @ gy).view(c, 4, o).permute(0, 2, 1).contiguous()
        if ctx.needs_input_grad[2]:
            gb = g.reshape(-1, o).sum(0)
        return gx, gw, gb, None, None


class _ConvTS2Last(torch.autograd.Function):
    """``conv_transpose1d(x, W, b, stride=2, padding=1)``, kernel 4, no activation.

    Time-major input (N, L, C) -> channel-major output (N, O, 2L).
    """

    @staticmethod
    def forward(ctx, x, weight, bias):  # noqa: D102
        n, length, c = x.shape
        o = weight.shape[1]
        x2 = x.reshape(n * length, c)
        w_t = weight.permute(2, 1, 0).reshape(4 * o, c)  # rows (k, o)
        yt = (w_t @ x2.t()).view(4, o, n, length).transpose(1, 2)  # (k, N, O, L)
        out = x.new_empty(n, o, length, 2)
        b = bias.view(1, o, 1)
        # output frame 2s <- tap 1 at s, tap 3 at s-1; 2s+1 <- tap 2 at s, tap 0 at s+1
        torch.add(yt[1], b, out=out[..., 0])
        out[:, :, 1:, 0] += yt[3, :, :, :-1]
        torch.add(yt[2], b, out=out[..., 1])
        out[:, :, :-1, 1] += yt[0, :, :, 1:]
        ctx.save_for_backward(x2, w_t)
        ctx.conf = (n, length, c, o)
        return out.view(n, o, 2 * length)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        x2, w_t = ctx.saved_tensors
        n, length, c, o = ctx.conf
        g = grad.contiguous().view(n, o, length, 2)
        gyt = g.new_empty(4, o, n, length)
        gv = gyt.transpose(1, 2)  # (k, N, O, L)
        gv[1] = g[..., 0]
        gv[3, :, :, :-1] = g[:, :, 1:, 0]
        gv[3, :, :, -1] = 0
        gv[2] = g[..., 1]
        gv[0, :, :, 1:] = g[:, :, :-1, 1]
        gv[0, :, :, 0] = 0
        gyt = gyt.view(4 * o, n * length)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = (gyt.t() @ w_t).view(n, length, c)
        if ctx.needs_input_grad[1]:
            gw = (gyt @ x2).view(4, o, c).permute(2, 1, 0).contiguous()
        if ctx.needs_input_grad[2]:
            gb = g.sum((0, 2, 3))
        return gx, gw, gb


class _Bottleneck(torch.autograd.Function):
    """Encoder head + reparameterisation + decoder stem, with one hand-written backward.

    From the last encoder frames ``h`` (N, 4, 128) (time-major, after ReLU):
    ``a = relu(conv(h))`` (k3, s2, p0 -> one frame, 256 ch), ``[mu, logvar] =
    fc_enc(a)``, ``z = mu + eps * exp(logvar / 2)``, ``d = relu(fc_dec(z))``,
    ``out = relu(conv_transpose(d))`` (k3 -> 3 frames, 128 ch, time-major).
    Replaces about 40 small autograd nodes (their overhead dominates at this size).
    """

    @staticmethod
    def forward(ctx, h, w6, b6, w_enc, b_enc, w_dec, b_dec, w_d1, b_d1, eps):  # noqa: D102
        n = h.shape[0]
        lat = w_dec.shape[1]
        # (c, k) order so that the weights are used (and their gradients made) as stored
        a_in = h[:, :3].transpose(1, 2).reshape(n, -1)  # (N, (c, k)), frames 0..2
        w6m = w6.view(w6.shape[0], -1)  # (256, (c, k))
        a = torch.addmm(b6, a_in, w6m.t()).relu_()
        e = torch.addmm(b_enc, a, w_enc.t())
        mu, logvar = e[:, :lat], e[:, lat:]
        std = torch.exp(0.5 * logvar)
        z = torch.addcmul(mu, eps, std)
        d = torch.addmm(b_dec, z, w_dec.t()).relu_()
        wd1m = w_d1.view(w_d1.shape[0], -1)  # (256, (o, k))
        out = torch.addmm(b_d1.repeat_interleave(3), d, wd1m).relu_()  # (N, (o, k))
        ctx.save_for_backward(a_in, w6m, a, w_enc, eps, std, z, w_dec, d, wd1m, out)
        ctx.conf = h.shape
        return mu.clone(), logvar.clone(), out.view(n, -1, 3).transpose(1, 2).contiguous()

    @staticmethod
    def backward(ctx, g_mu, g_logvar, g_out):  # noqa: D102
        a_in, w6m, a, w_enc, eps, std, z, w_dec, d, wd1m, out = ctx.saved_tensors
        h_shape = ctx.conf
        n = h_shape[0]
        need = ctx.needs_input_grad
        g_out = _threshold_backward(g_out.transpose(1, 2).reshape(n, -1), out, 0.0)  # (N, (o, k))
        g_wd1 = (d.t() @ g_out).view(wd1m.shape[0], -1, 3) if need[7] else None
        g_bd1 = g_out.view(n, -1, 3).sum((0, 2)) if need[8] else None
        g_d = _threshold_backward(g_out @ wd1m.t(), d, 0.0)
        g_wdec = g_d.t() @ z if need[5] else None
        g_bdec = g_d.sum(0) if need[6] else None
        g_z = g_d @ w_dec
        g_e = torch.cat([g_mu + g_z, torch.addcmul(g_logvar, g_z, eps * std, value=0.5)], dim=1)
        g_wenc = g_e.t() @ a if need[3] else None
        g_benc = g_e.sum(0) if need[4] else None
        g_a = _threshold_backward(g_e @ w_enc, a, 0.0)
        g_w6 = (g_a.t() @ a_in).view(w6m.shape[0], -1, 3) if need[1] else None
        g_b6 = g_a.sum(0) if need[2] else None
        g_h = None
        if need[0]:
            g_h = a_in.new_zeros(h_shape)
            g_h[:, :3] = (g_a @ w6m).view(n, -1, 3).transpose(1, 2)
        return g_h, g_w6, g_b6, g_wenc, g_benc, g_wdec, g_bdec, g_wd1, g_bd1, None


class _KL(torch.autograd.Function):
    """``mean_n(-0.5 * sum_j(1 + logvar - mu**2 - exp(logvar)))`` with a fused backward."""

    @staticmethod
    def forward(ctx, mu, logvar):  # noqa: D102
        var = logvar.exp()
        ctx.save_for_backward(mu, var)
        return (mu.square() + var - logvar - 1.0).sum() * (0.5 / mu.shape[0])

    @staticmethod
    def backward(ctx, g):  # noqa: D102
        mu, var = ctx.saved_tensors
        s = g / mu.shape[0]
        return mu * s, (var - 1.0) * (0.5 * s)


def _storage_flat(t: torch.Tensor) -> torch.Tensor | None:
    """A 1-D view of a dense tensor in memory order, or None if there is none."""
    if t.is_contiguous():
        return t.view(-1)
    order = sorted(range(t.dim()), key=lambda d: -t.stride(d))
    tp = t.permute(order)
    return tp.view(-1) if tp.is_contiguous() else None


class _MSE(torch.autograd.Function):
    """``mean((r - x) ** 2)`` in one memory pass forward and one backward.

    ``r - x`` keeps the common memory layout of ``r`` and ``x`` (channel- or
    time-major); the sum of squares is a dot product over it.
    """

    @staticmethod
    def forward(ctx, r, x):  # noqa: D102
        diff = r - x
        flat = _storage_flat(diff)
        if flat is None:
            diff = diff.contiguous()
            flat = diff.view(-1)
        ctx.save_for_backward(diff)
        return torch.dot(flat, flat) / flat.numel()

    @staticmethod
    def backward(ctx, g):  # noqa: D102
        (diff,) = ctx.saved_tensors
        gr = diff * (g * (2.0 / diff.numel()))
        return gr, (-gr if ctx.needs_input_grad[1] else None)


class EmotionVAE(nn.Module):
    """VAE with a 1-D convolutional encoder and decoder.

    Parameters
    ----------
    latent_dim : int, default 8
        Size of the latent space (the report used 8).
    n_mels : int, default 80
        Number of mel bands (= input channels). The time axis must be 128 frames.

    Notes
    -----
    Encoder: Conv1d 80->64->32->16->16->128 (k4, s2, p1) + ReLU, time 128->4;
    Conv1d 128->256 (k3, s2, p0) + ReLU, time 4->1; Linear 256 -> 2*latent
    (first half mu, second half log-variance).
    Decoder: Linear latent->256, reshape (256, 1); ReLU before each
    ConvTranspose1d 256->128 (k3), 128->16 (k4, s2, p0), 16->16, 16->32,
    32->64, 64->80 (k4, s2, p1); time 1->3->8->16->32->64->128. No output
    activation. Kaiming-normal init on the two Linear layers only.
    With ``latent_dim=8`` the model has 283,744 parameters.

    ``impl`` (attribute, default ``"gemm"``) selects how the same layers are
    evaluated; see :data:`IMPLEMENTATIONS`. The gemm path accepts the input in
    either memory layout: channel-major (contiguous (N, 80, 128)) or time-major
    (``x = xt.transpose(1, 2)`` for a contiguous (N, 128, 80) ``xt``, which is
    faster); ``forward`` returns the reconstruction in the input's layout.
    """

    n_frames = 128

    def __init__(self, latent_dim: int = 8, n_mels: int = 80) -> None:
        super().__init__()
        #: Evaluation strategy, one of :data:`IMPLEMENTATIONS` (same function
        #: and parameters either way; not stored in the state dict).
        self.impl = "gemm"
        self.latent_dim = int(latent_dim)
        self.n_mels = int(n_mels)
        enc: list[nn.Module] = []
        chans = [self.n_mels, 64, 32, 16, 16, 128]
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            enc += [nn.Conv1d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
        enc += [nn.Conv1d(128, 256, 3, stride=2, padding=0), nn.ReLU(), nn.Flatten()]
        self.encoder = nn.Sequential(*enc)
        self.fc_enc = nn.Linear(256, 2 * self.latent_dim)

        self.fc_dec = nn.Linear(self.latent_dim, 256)
        dec: list[nn.Module] = [
            nn.ReLU(), nn.ConvTranspose1d(256, 128, 3),
            nn.ReLU(), nn.ConvTranspose1d(128, 16, 4, stride=2, padding=0),
        ]
        chans = [16, 16, 32, 64, self.n_mels]
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            dec += [nn.ReLU(), nn.ConvTranspose1d(c_in, c_out, 4, stride=2, padding=1)]
        self.decoder = nn.Sequential(*dec)

        for lin in (self.fc_enc, self.fc_dec):
            nn.init.kaiming_normal_(lin.weight)

    def _check_impl(self) -> str:
        if self.impl not in IMPLEMENTATIONS:
            raise ValueError(f"impl must be one of {IMPLEMENTATIONS}, got {self.impl!r}")
        return self.impl

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[1] != self.n_mels or x.shape[2] != self.n_frames:
            raise ValueError(
                f"expected input (N, {self.n_mels}, {self.n_frames}), got {tuple(x.shape)}"
            )

    def _convs(self) -> tuple[list[nn.Conv1d], list[nn.ConvTranspose1d]]:
        enc = [m for m in self.encoder if isinstance(m, nn.Conv1d)]
        dec = [m for m in self.decoder if isinstance(m, nn.ConvTranspose1d)]
        return enc, dec

    @staticmethod
    def _time_major(x: torch.Tensor) -> bool:
        """True when ``x`` (N, C, L) is stored time-major, i.e. ``x.transpose(1, 2)`` is contiguous."""
        return x.shape[0] > 0 and x.transpose(1, 2).is_contiguous() and not x.is_contiguous()

    def _gemm_trunk(self, x: torch.Tensor, enc: list[nn.Conv1d]) -> torch.Tensor:
        """First five encoder layers: (N, n_mels, 128) -> time-major (N, 4, 128)."""
        if self._time_major(x):
            h = _ConvS2ReLU.apply(x.transpose(1, 2), enc[0].weight, enc[0].bias)
        else:
            h = _ConvS2ReLUFirst.apply(x, enc[0].weight, enc[0].bias)
        for conv in enc[1:5]:
            h = _ConvS2ReLU.apply(h, conv.weight, conv.bias)
        return h

    @staticmethod
    def _gemm_tail(h: torch.Tensor, dec: list[nn.ConvTranspose1d], time_major: bool = False) -> torch.Tensor:
        """Last five decoder layers: time-major (N, 3, 128) -> (N, n_mels, 128).

        With ``time_major`` the result is a (N, n_mels, 128) view of time-major storage.
        """
        h = _ConvTS2.apply(h, dec[1].weight, dec[1].bias, 0, True)
        for conv in dec[2:5]:
            h = _ConvTS2.apply(h, conv.weight, conv.bias, 1, True)
        if time_major:
            return _ConvTS2.apply(h, dec[5].weight, dec[5].bias, 1, False).transpose(1, 2)
        return _ConvTS2Last.apply(h, dec[5].weight, dec[5].bias)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map ``x`` (N, n_mels, 128) to ``(mu, logvar)``, each (N, latent_dim)."""
        self._check_input(x)
        if self._check_impl() == "torch":
            h = self.encoder(x)
        else:
            enc, _ = self._convs()
            h = self._gemm_trunk(x, enc)
            last = enc[5]  # k3, s2, p0 on 4 frames: one output frame from frames 0..2
            a_in = h[:, :3].transpose(1, 2).reshape(h.shape[0], -1)  # (N, (c, k)), as _Bottleneck
            h = torch.addmm(last.bias, a_in, last.weight.view(last.out_channels, -1).t()).relu_()
        h = self.fc_enc(h)
        return h[:, : self.latent_dim], h[:, self.latent_dim:]

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """Sample ``z = mu + eps * exp(logvar / 2)`` with ``eps ~ N(0, I)``."""
        eps = torch.randn_like(mu)
        return mu + eps * torch.exp(0.5 * logvar)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Map latents (N, latent_dim) to spectrograms (N, n_mels, 128)."""
        if self._check_impl() == "torch":
            return self.decoder(self.fc_dec(z).unsqueeze(-1))  # (N, 256, 1) -> ...
        _, dec = self._convs()
        d = torch.addmm(self.fc_dec.bias, z, self.fc_dec.weight.t()).relu_()
        first = dec[0]  # k3, s1 on one frame: (N, 256) -> time-major (N, 3, 128), as _Bottleneck
        h = torch.addmm(first.bias.repeat_interleave(3), d, first.weight.view(first.in_channels, -1))
        h = h.relu_().view(z.shape[0], -1, 3).transpose(1, 2).contiguous()
        return self._gemm_tail(h, dec)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(reconstruction, mu, logvar)``; ``z`` is drawn by :meth:`reparameterize`."""
        if self._check_impl() == "torch":
            mu, logvar = self.encode(x)
            z = self.reparameterize(mu, logvar)
            return self.decode(z), mu, logvar
        self._check_input(x)
        enc, dec = self._convs()
        h = self._gemm_trunk(x, enc)
        # same random numbers as reparameterize(): randn_like(mu)
        eps = torch.randn(x.shape[0], self.latent_dim, dtype=h.dtype, device=h.device)
        mu, logvar, h = _Bottleneck.apply(
            h, enc[5].weight, enc[5].bias, self.fc_enc.weight, self.fc_enc.bias,
            self.fc_dec.weight, self.fc_dec.bias, dec[0].weight, dec[0].bias, eps,
        )
        # the reconstruction has the memory layout of the input (see class notes)
        return self._gemm_tail(h, dec, self._time_major(x)), mu, logvar


def vae_loss(
    recon: torch.Tensor,
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    beta: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """VAE loss of the study.

    Parameters
    ----------
    recon, x : torch.Tensor
        Reconstruction and input, same shape.
    mu, logvar : torch.Tensor
        Posterior parameters, (N, latent_dim).
    beta : float, default 1.0
        Weight of the KL term.

    Returns
    -------
    total, reconstruction, kl : torch.Tensor
        Scalars. ``reconstruction`` is the MSE averaged over all elements;
        ``kl = mean_n(-0.5 * sum_j(1 + logvar - mu**2 - exp(logvar)))``;
        ``total = reconstruction + beta * kl``.
    """
    if recon.shape == x.shape and recon.dtype == x.dtype:
        rec = _MSE.apply(recon, x)
    else:
        rec = F.mse_loss(recon, x, reduction="mean")
    if mu.dim() == 2 and mu.shape == logvar.shape:
        kl = _KL.apply(mu, logvar)
    else:
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)).mean()
    return rec + beta * kl, rec, kl


def save_model(path: str | os.PathLike, model: EmotionVAE, **metadata: Any) -> Path:
    """Save weights and constructor arguments (plus free metadata) atomically.

    Parameters
    ----------
    path : path-like
        Target file (``.pt``).
    model : EmotionVAE
    **metadata
        Extra picklable values (epochs, seed, data description...).

    Returns
    -------
    Path
        The written path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "config": {"latent_dim": model.latent_dim, "n_mels": model.n_mels},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": dict(metadata),
        "torch_version": torch.__version__,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_model(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[EmotionVAE, dict[str, Any]]:
    """Load a model written by :func:`save_model`.

    Returns
    -------
    model : EmotionVAE
        In eval mode, on ``map_location``.
    metadata : dict
        The ``**metadata`` given to :func:`save_model`.
    """
    payload = torch.load(Path(path), map_location=map_location, weights_only=False)
    model = EmotionVAE(**payload["config"])
    model.load_state_dict(payload["state_dict"])
    model.to(map_location).eval()
    return model, dict(payload.get("metadata", {}))
