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

_relu_grad = torch.ops.aten.threshold_backward.grad_input  # grad * (out > 0), with out=

# The fast ("gemm") path. Activations run time-major, (N, frames, channels),
# each sample padded with one zero frame at either end and stored as one
# contiguous block, so a whole batch is one matrix of frame rows with zero rows
# between the samples. Every Conv1d / ConvTranspose1d of kernel 4 and stride 2
# is then a few matrix products over that block, with no im2col copy:
#
# * Conv1d k4/s2/p1: output frame t reads input frames 2t-1 .. 2t+2, i.e. the
#   padded frame pairs t and t+1. Viewing the padded input as rows of frame
#   pairs, out = pairs[:-1] @ W(taps 0,1) + pairs[1:] @ W(taps 2,3); the row
#   that straddles two samples is computed and ignored.
# * ConvTranspose1d k4/s2/p1: output frames (2s, 2s+1) are
#   [h(s) W1 + h(s-1) W3, h(s) W2 + h(s+1) W0]: one product over all rows plus
#   two accumulated into shifted halves of the output (the zero pad rows make
#   the shifts correct at the sample edges). p0 (the first, 3 -> 8 frames) is
#   the same with [h(s) [W0 W1] + h(s-1) [W2 W3]].
#
# Each ReLU writes straight into the next layer's padded input. The backward
# pass is the same products transposed, written by hand; the whole network is
# one autograd node (per-operation overhead, not arithmetic, dominated the
# step time at this size). Gradients with respect to the input are computed
# only when the input requires them. Checked against the nn modules (values
# and gradients) in tests/test_model.py.


def _enc_mat(w: torch.Tensor) -> torch.Tensor:
    """Conv1d weight (O, C, K) -> (K*C, O), rows ordered (tap, channel)."""
    return w.permute(2, 1, 0).reshape(-1, w.shape[0])


def _dec_mat(w: torch.Tensor) -> torch.Tensor:
    """ConvTranspose1d weight (C, O, K) -> (C, K*O), columns ordered (tap, channel)."""
    return w.permute(0, 2, 1).reshape(w.shape[0], -1)


def _store_in_order(param: nn.Parameter, order: tuple[int, ...]) -> None:
    """Re-store ``param`` so that ``param.permute(order)`` is contiguous (values unchanged)."""
    inverse = tuple(sorted(range(len(order)), key=order.__getitem__))
    param.data = param.data.permute(order).contiguous().permute(inverse)


def _padded(like: torch.Tensor, n: int, frames: int, c: int) -> torch.Tensor:
    """Uninitialised (n, frames + 2, c) with zero first and last frame."""
    p = like.new_empty(n, frames + 2, c)
    p[:, 0::frames + 1].zero_()
    return p


def _conv_s2(p: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Conv1d k4/s2/p1 of padded ``p`` (N, 2M+2, C) -> pre-activation (N, M, O) (a view)."""
    n, frames, c = p.shape
    m = frames // 2 - 1
    q = p.view(-1, 2 * c)  # rows = padded frame pairs, M+1 per sample
    r = p.new_empty(q.shape[0], w.shape[1])
    torch.addmm(b, q[:-1], w[: 2 * c], out=r[:-1])
    r[:-1].addmm_(q[1:], w[2 * c:])
    return r.view(n, m + 1, -1)[:, :m]


def _conv_s2_backward(
    p: torch.Tensor, w: torch.Tensor, gr: torch.Tensor, need_input: bool,
    gw: torch.Tensor | None = None, gb: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Gradients of :func:`_conv_s2` given ``gr`` (N, M+1, O) with ``gr[:, M] == 0``.

    Returns the weight gradient as (4C, O) like ``w`` (written into ``gw`` if
    given), the bias gradient (into ``gb`` if given) and (if ``need_input``) the
    gradient of the unpadded input frames (N, 2M, C) (a view).
    """
    n, frames, c = p.shape
    q = p.view(-1, 2 * c)
    g = gr.view(-1, gr.shape[-1])[:-1]
    gw = w.new_empty(w.shape) if gw is None else gw
    torch.mm(q[:-1].t(), g, out=gw[: 2 * c])
    torch.mm(q[1:].t(), g, out=gw[2 * c:])
    gq = None
    if need_input:
        gq = p.new_empty(q.shape)
        torch.mm(g, w[: 2 * c].t(), out=gq[:-1])
        gq[-1].zero_()
        gq[1:].addmm_(g, w[2 * c:].t())
        gq = gq.view(n, frames, c)[:, 1:-1]
    return gw, (gr.sum((0, 1)) if gb is None else torch.sum(gr, (0, 1), out=gb)), gq


def _convt_s2(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor, padding: int) -> torch.Tensor:
    """ConvTranspose1d k4/s2 of padded ``h`` (N, L+2, C), ``w`` as (C, 4O).

    Returns the pre-activation output as frame pairs (N, L + 1 - padding, 2O) (a view).
    """
    n, frames, c = h.shape
    o = w.shape[1] // 4
    rows = h.view(-1, c)
    if padding == 1:
        out = torch.addmm(b.repeat(2), rows, w[:, o: 3 * o])
        out[1:, :o].addmm_(rows[:-1], w[:, 3 * o:])
        out[:-1, o:].addmm_(rows[1:], w[:, :o])
        return out.view(n, frames, 2 * o)[:, 1:-1]
    out = torch.addmm(b.repeat(2), rows, w[:, : 2 * o])
    out[1:].addmm_(rows[:-1], w[:, 2 * o:])
    return out.view(n, frames, 2 * o)[:, 1:]


def _convt_s2_backward(
    h: torch.Tensor, w: torch.Tensor, gp: torch.Tensor, padding: int, need_input: bool = True,
    gw: torch.Tensor | None = None, gb: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Gradients of :func:`_convt_s2` given ``gp`` (N, L+2, 2O), zero outside the output pairs.

    Returns the weight gradient as (C, 4O) like ``w`` (written into ``gw`` if
    given), the bias gradient (into ``gb`` if given) and (if ``need_input``) the
    gradient of the unpadded input frames (N, L, C) (a view).
    """
    n, frames, c = h.shape
    o = w.shape[1] // 4
    rows = h.view(-1, c)
    g = gp.view(-1, 2 * o)
    gw = w.new_empty(w.shape) if gw is None else gw
    gx = None
    if padding == 1:
        torch.mm(rows.t(), g, out=gw[:, o: 3 * o])
        torch.mm(rows[:-1].t(), g[1:, :o], out=gw[:, 3 * o:])
        torch.mm(rows[1:].t(), g[:-1, o:], out=gw[:, :o])
        if need_input:
            gx = torch.mm(g, w[:, o: 3 * o].t())
            gx[:-1].addmm_(g[1:, :o], w[:, 3 * o:].t())
            gx[1:].addmm_(g[:-1, o:], w[:, :o].t())
    else:
        torch.mm(rows.t(), g, out=gw[:, : 2 * o])
        torch.mm(rows[:-1].t(), g[1:], out=gw[:, 2 * o:])
        if need_input:
            gx = torch.mm(g, w[:, : 2 * o].t())
            gx[:-1].addmm_(g[1:], w[:, 2 * o:].t())
    if gx is not None:
        gx = gx.view(n, frames, c)[:, 1:-1]
    g_o = g.view(-1, o)
    return gw, (g_o.sum(0) if gb is None else torch.sum(g_o, 0, out=gb)), gx


def _relu_into(pre: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``relu(pre)`` (N, L, C) written into a fresh zero-padded (N, L+2, C)."""
    n, frames, c = pre.shape
    p = _padded(like, n, frames, c)
    torch.clamp_min(pre, 0, out=p[:, 1:-1])
    return p


def _pairs_as_frames(pairs: torch.Tensor) -> torch.Tensor:
    """(N, S, 2C) frame pairs -> (N, 2S, C) frames (a view)."""
    n, s, c2 = pairs.shape
    return pairs.view(n, 2 * s, c2 // 2)


def _gemm_encoder(x: torch.Tensor, enc_w: list[torch.Tensor], enc_b: list[torch.Tensor]):
    """Conv layers 1-6 of the encoder on ``x`` (N, C, 128) in any layout.

    Returns ``(a, saved)``: the (N, 256) output of the sixth conv (after ReLU)
    and what the backward pass needs.
    """
    n, c, frames = x.shape
    p = _padded(x, n, frames, c)
    p[:, 1:-1].copy_(x.transpose(1, 2))
    ps, mats = [p], []  # padded inputs of conv layers 1-5 (after ReLU), weight matrices
    for w, b in zip(enc_w[:5], enc_b[:5]):
        mats.append(_enc_mat(w))
        pre = _conv_s2(ps[-1], mats[-1], b)
        if len(ps) < 5:
            ps.append(_relu_into(pre, x))
    a5 = torch.clamp_min(pre, 0)  # (N, 4, 128), contiguous
    # sixth conv (k3, s2, p0) on 4 frames: one output frame from frames 0..2
    a_in = a5.view(n, -1)[:, : 3 * a5.shape[2]]  # (N, (tap, channel))
    w6 = enc_w[5].permute(0, 2, 1).reshape(enc_w[5].shape[0], -1)  # (256, (tap, channel))
    a = torch.addmm(enc_b[5], a_in, w6.t()).clamp_min_(0)
    return a, (ps, mats, a5, a_in, w6, a)


def _gemm_decoder(d: torch.Tensor, dec_w: list[torch.Tensor], dec_b: list[torch.Tensor]):
    """Decoder from ``d`` (N, 256) (after the first ReLU) to the output.

    Returns ``(pairs, saved)``: the output as frame pairs (N, 64, 2 * n_mels),
    i.e. time-major (a view), and what the backward pass needs.
    """
    n = d.shape[0]
    w1 = dec_w[0]  # (256, 128, 3): k3 on one frame -> 3 frames
    w1m = _dec_mat(w1)  # (256, (tap, channel))
    h1 = torch.addmm(dec_b[0].repeat(w1.shape[2]), d, w1m).view(n, w1.shape[2], w1.shape[1])
    hs = [_relu_into(h1, d)]  # padded inputs of ConvTranspose layers 2-6 (after ReLU)
    mats = []
    for i, (w, b) in enumerate(zip(dec_w[1:], dec_b[1:])):
        mats.append(_dec_mat(w))
        pairs = _convt_s2(hs[-1], mats[-1], b, 0 if i == 0 else 1)
        if i < 4:
            hs.append(_relu_into(_pairs_as_frames(pairs), d))
    return pairs, (w1m, hs, mats)


def _gemm_forward(x: torch.Tensor, eps: torch.Tensor, lat: int, params: tuple[torch.Tensor, ...]):
    """The whole network; returns ``(pairs, mu, logvar, saved)`` (see :func:`_gemm_decoder`)."""
    enc_w, enc_b = params[0:12:2], params[1:12:2]
    w_enc, b_enc, w_dec, b_dec = params[12:16]
    dec_w, dec_b = params[16::2], params[17::2]
    a, enc_saved = _gemm_encoder(x, enc_w, enc_b)
    e = torch.addmm(b_enc, a, w_enc.t())
    mu, logvar = e[:, :lat], e[:, lat:]
    std = torch.exp(0.5 * logvar)
    z = torch.addcmul(mu, eps, std)
    d = torch.addmm(b_dec, z, w_dec.t()).clamp_min_(0)
    pairs, dec_saved = _gemm_decoder(d, dec_w, dec_b)
    return pairs, mu, logvar, (enc_saved, dec_saved, eps, std, z, d)


# memory orders in which EmotionVAE stores its conv weights (see _store_in_order):
# encoder convs 1-5 (O, C, K) as (K, C, O); the others as (O, K, C) / (C, K, O)
_ENC_ORDER, _OTHER_ORDER = (2, 1, 0), (0, 2, 1)


def _matrix_view(t: torch.Tensor | None, order: tuple[int, ...], rows: int) -> torch.Tensor | None:
    """``t.permute(order)`` as a (rows, -1) matrix if that is a view of ``t``, else None."""
    if t is None:
        return None
    tp = t.permute(order)
    return tp.reshape(rows, -1) if tp.is_contiguous() else None


def _gemm_backward(
    params: tuple[torch.Tensor, ...],
    saved: tuple,
    gp: torch.Tensor,
    g_mu: torch.Tensor | None,
    g_logvar: torch.Tensor | None,
    x_needs_grad: bool,
    out: list[torch.Tensor] | None = None,
) -> list[torch.Tensor | None]:
    """Gradients of :func:`_gemm_forward`: ``[d x, d params...]``.

    ``gp`` is the gradient of the output pairs, (N, 66, 2 * n_mels) with zero
    first and last row (the padded layout of the last layer's input). With
    ``out`` (one tensor per parameter, parameter-shaped) the parameter
    gradients are written into those tensors (directly by the matrix products
    when their memory order allows) and returned.
    """
    enc_w, w_enc, w_dec, dec_w = params[0:12:2], params[12], params[14], params[16::2]
    (ps, enc_mats, a5, a_in, w6, a), (w1m, hs, mats), eps, std, z, d = saved
    n = d.shape[0]
    dest = list(out) if out is not None else [None] * len(params)
    grads: list[torch.Tensor | None] = [None] * len(params)

    def weight_grad(i: int, order: tuple[int, ...], rows: int):
        """(matrix destination or None, finish) for parameter ``i``'s gradient."""
        mat = _matrix_view(dest[i], order, rows)

        def finish(gmat: torch.Tensor) -> None:
            if mat is not None:
                grads[i] = dest[i]
                return
            inverse = tuple(sorted(range(3), key=order.__getitem__))
            shape = [params[i].shape[k] for k in order]
            g = gmat.view(shape).permute(inverse)
            grads[i] = g if dest[i] is None else dest[i].copy_(g)
        return mat, finish

    for i in range(4, -1, -1):  # ConvTranspose layers 6 .. 2: input hs[i], weights mats[i]
        h = hs[i]
        k = 18 + 2 * i  # index of this layer's weight in params
        mat, finish = weight_grad(k, _OTHER_ORDER, h.shape[2])
        gwm, grads[k + 1], gx = _convt_s2_backward(
            h, mats[i], gp, 0 if i == 0 else 1, gw=mat, gb=dest[k + 1]
        )
        finish(gwm)
        if i > 0:  # through the ReLU that made hs[i], into layer i's output pairs
            frames = hs[i - 1].shape[1]
            gp = h.new_empty(n, frames, mats[i - 1].shape[1] // 2)
            if i == 1:  # the p0 layer's pairs are rows 1 .. L+1
                gp[:, 0].zero_()
                dst = gp[:, 1:]
            else:
                gp[:, 0::frames - 1].zero_()
                dst = gp[:, 1:-1]
            _relu_grad(gx, h[:, 1:-1], 0.0, grad_input=_pairs_as_frames(dst))
    # first ConvTranspose (k3 on one frame), fc_dec, reparameterisation
    w1 = dec_w[0]
    g_h1 = d.new_empty(n, w1.shape[2] * w1.shape[1])
    _relu_grad(gx, hs[0][:, 1:-1], 0.0, grad_input=g_h1.view(n, w1.shape[2], w1.shape[1]))
    mat, finish = weight_grad(16, _OTHER_ORDER, w1.shape[0])
    finish(torch.mm(d.t(), g_h1, out=mat) if mat is not None else d.t() @ g_h1)
    g_h1_rows = g_h1.view(-1, w1.shape[1])
    grads[17] = g_h1_rows.sum(0) if dest[17] is None else torch.sum(g_h1_rows, 0, out=dest[17])
    g_d = torch.ops.aten.threshold_backward(g_h1 @ w1m.t(), d, 0.0)

    def small(i: int, fn, *args) -> None:
        grads[i] = fn(*args) if dest[i] is None else fn(*args, out=dest[i])

    small(14, torch.mm, g_d.t(), z)
    small(15, torch.sum, g_d, 0)
    g_z = g_d @ w_dec
    g_e = torch.cat([g_z, (g_z * eps).mul_(std).mul_(0.5)], dim=1)
    lat = g_z.shape[1]
    if g_mu is not None:
        g_e[:, :lat] += g_mu
    if g_logvar is not None:
        g_e[:, lat:] += g_logvar
    small(12, torch.mm, g_e.t(), a)
    small(13, torch.sum, g_e, 0)
    # sixth encoder conv and the ReLU before it
    g_a = torch.ops.aten.threshold_backward(g_e @ w_enc, a, 0.0)
    o6, c6, k6 = enc_w[5].shape
    mat, finish = weight_grad(10, _OTHER_ORDER, o6)
    finish(torch.mm(g_a.t(), a_in, out=mat) if mat is not None else g_a.t() @ a_in)
    small(11, torch.sum, g_a, 0)
    gr = a5.new_empty(n, a5.shape[1] + 1, a5.shape[2])
    gr[:, k6:].zero_()
    _relu_grad((g_a @ w6).view(n, k6, c6), a5[:, :k6], 0.0, grad_input=gr[:, :k6])
    g_x = None
    for i in range(4, -1, -1):  # conv layers 5 .. 1; ps[i] is layer i+1's padded input
        mat, finish = weight_grad(2 * i, _ENC_ORDER, enc_mats[i].shape[0])
        gwm, grads[2 * i + 1], gq = _conv_s2_backward(
            ps[i], enc_mats[i], gr, i > 0 or x_needs_grad, gw=mat, gb=dest[2 * i + 1]
        )
        finish(gwm)
        if i > 0:
            p = ps[i]
            frames = p.shape[1] - 2
            gr = p.new_empty(n, frames + 1, p.shape[2])
            gr[:, frames].zero_()
            _relu_grad(gq, p[:, 1:-1], 0.0, grad_input=gr[:, :frames])
        elif gq is not None:
            g_x = gq.transpose(1, 2)
    return [g_x] + grads


class _FusedVAE(torch.autograd.Function):
    """``EmotionVAE.forward`` (gemm path) as one autograd node with a hand-written backward."""

    @staticmethod
    def forward(ctx, x, eps, lat, *params):  # noqa: D102
        pairs, mu, logvar, saved = _gemm_forward(x, eps, lat, params)
        ctx.save_for_backward(*params)
        ctx.saved = saved
        ctx.x_needs_grad = ctx.needs_input_grad[0]
        recon = _pairs_as_frames(pairs).transpose(1, 2)  # (N, n_mels, 128), time-major storage
        if not EmotionVAE._time_major(x):
            recon = recon.contiguous()
        return recon, mu.clone(), logvar.clone()

    @staticmethod
    def backward(ctx, g_recon, g_mu, g_logvar):  # noqa: D102
        saved, ctx.saved = ctx.saved, None
        hs = saved[1][1]
        n, frames, _ = hs[-1].shape
        gp = _padded(hs[-1], n, frames - 2, g_recon.shape[1] * 2)
        _pairs_as_frames(gp[:, 1:-1]).copy_(g_recon.transpose(1, 2))
        grads = _gemm_backward(ctx.saved_tensors, saved, gp, g_mu, g_logvar, ctx.x_needs_grad)
        return (grads[0], None, None, *grads[1:])


def _gemm_loss_and_grad(
    x: torch.Tensor, eps: torch.Tensor, lat: int, beta: float, params: tuple[torch.Tensor, ...],
    out: list[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor | None]]:
    """:func:`vae_loss` of the gemm forward pass and its gradients, without autograd.

    The reconstruction error is computed straight into the buffer that the
    backward pass uses as the output gradient; no reconstruction is kept.
    Returns ``(total, reconstruction, kl, [d params...])``; see
    :func:`_gemm_backward` for ``out``.
    """
    pairs, mu, logvar, saved = _gemm_forward(x, eps, lat, params)
    p0 = saved[0][0][0]  # the padded input (N, 130, n_mels)
    n, frames, c = p0.shape
    gp = _padded(pairs, n, frames // 2 - 1, 2 * c)
    x_pairs = p0.view(n, -1)[:, c: c * (frames - 1)].view(n, -1, 2 * c)
    torch.sub(pairs, x_pairs, out=gp[:, 1:-1])  # recon - x; the pad rows stay 0
    flat = gp.view(-1)
    numel = n * c * (frames - 2)
    rec = torch.dot(flat, flat) / numel
    var = logvar.exp()
    kl = (mu.square() + var - logvar - 1.0).sum() * (0.5 / n)
    gp.mul_(2.0 / numel)  # d rec / d recon
    g_mu = mu * (beta / n)
    g_logvar = (var - 1.0).mul_(0.5 * beta / n)
    grads = _gemm_backward(params, saved, gp, g_mu, g_logvar, False, out)
    return rec + beta * kl, rec, kl, grads[1:]


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
        # Store the conv weights in the memory order the gemm path multiplies with
        # (same shapes, values and state dict; the weight matrices become views).
        enc, dec = self._convs()
        for conv in enc[:5]:  # (O, C, K) stored as (K, C, O)
            _store_in_order(conv.weight, (2, 1, 0))
        for conv in enc[5:] + dec:  # (O, C, K) / (C, O, K) stored as (O, K, C) / (C, K, O)
            _store_in_order(conv.weight, (0, 2, 1))

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

    def _params(self) -> list[torch.Tensor]:
        """Parameters in the order :class:`_FusedVAE` takes them."""
        enc, dec = self._convs()
        out: list[torch.Tensor] = []
        for conv in enc:
            out += [conv.weight, conv.bias]
        out += [self.fc_enc.weight, self.fc_enc.bias, self.fc_dec.weight, self.fc_dec.bias]
        for conv in dec:
            out += [conv.weight, conv.bias]
        return out

    def _gemm_ok(self) -> bool:
        """The gemm path serves encode/decode when no gradient is being recorded."""
        return self._check_impl() == "gemm" and not torch.is_grad_enabled()

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map ``x`` (N, n_mels, 128) to ``(mu, logvar)``, each (N, latent_dim)."""
        self._check_input(x)
        if self._gemm_ok():
            enc, _ = self._convs()
            h, _ = _gemm_encoder(x, [c.weight for c in enc], [c.bias for c in enc])
        else:
            h = self.encoder(x)
        h = self.fc_enc(h)
        return h[:, : self.latent_dim], h[:, self.latent_dim:]

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """Sample ``z = mu + eps * exp(logvar / 2)`` with ``eps ~ N(0, I)``."""
        eps = torch.randn_like(mu)
        return mu + eps * torch.exp(0.5 * logvar)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Map latents (N, latent_dim) to spectrograms (N, n_mels, 128)."""
        if not self._gemm_ok():
            return self.decoder(self.fc_dec(z).unsqueeze(-1))  # (N, 256, 1) -> ...
        _, dec = self._convs()
        d = torch.addmm(self.fc_dec.bias, z, self.fc_dec.weight.t()).clamp_min_(0)
        pairs, _ = _gemm_decoder(d, [c.weight for c in dec], [c.bias for c in dec])
        return _pairs_as_frames(pairs).transpose(1, 2).contiguous()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(reconstruction, mu, logvar)``; ``z`` is drawn by :meth:`reparameterize`."""
        if self._check_impl() == "torch":
            mu, logvar = self.encode(x)
            z = self.reparameterize(mu, logvar)
            return self.decode(z), mu, logvar
        self._check_input(x)
        # same random numbers as reparameterize(): randn_like(mu)
        eps = torch.randn(x.shape[0], self.latent_dim, dtype=x.dtype, device=x.device)
        return _FusedVAE.apply(x, eps, self.latent_dim, *self._params())

    def loss_and_grad(
        self, x: torch.Tensor, beta: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The study's loss of a batch, with its gradients written to the parameters' ``.grad``.

        Equivalent to ``zero_grad()``, ``total, rec, kl = vae_loss(*...self(x), x, ..., beta)``
        and ``total.backward()``: the same function, random numbers and
        gradients. On the gemm path it runs without autograd: the loss is
        computed inside the hand-written backward pass and no reconstruction
        is kept (what :func:`emovae_utils.train.fit` uses). The gradients
        overwrite ``.grad`` (allocated if missing); ``x`` gets none.

        Returns
        -------
        total, reconstruction, kl : torch.Tensor
            Detached scalars, as :func:`vae_loss` returns them.
        """
        params = self._params()
        if self._check_impl() == "torch":
            for p in params:
                p.grad = None
            with torch.enable_grad():
                recon, mu, logvar = self(x)
                total, rec, kl = vae_loss(recon, x, mu, logvar, beta)
                total.backward()
            return total.detach(), rec.detach(), kl.detach()
        self._check_input(x)
        eps = torch.randn(x.shape[0], self.latent_dim, dtype=x.dtype, device=x.device)
        with torch.no_grad():
            for p in params:
                if p.grad is None:
                    p.grad = torch.empty_like(p)  # in the parameter's memory layout
            total, rec, kl, _ = _gemm_loss_and_grad(
                x, eps, self.latent_dim, float(beta), params, [p.grad for p in params]
            )
        return total, rec, kl


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
