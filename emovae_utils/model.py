"""Convolutional VAE for 80 x 128 log-mel spectrograms (the authors' layout).

The 80 mel bands are the ``Conv1d`` channels and the 128 frames the time axis.
See ``shared/docs/study-reference.md`` (section *Model*) for the source of every
layer size.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["EmotionVAE", "vae_loss", "save_model", "load_model", "IMPLEMENTATIONS"]

#: Ways of evaluating the same network (identical parameters and function).
#: ``"torch"`` calls the ``nn.Conv1d`` / ``nn.ConvTranspose1d`` modules (the
#: authors' code); ``"gemm"`` evaluates the same layers as matrix products in a
#: zero-padded time-major layout with a hand-written backward pass (faster on
#: CPU; results agree to float32 rounding, gradients included).
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
# pass is the same products transposed, written by hand: the whole network is
# one autograd node, or none at all in EmotionVAE.loss_and_grad (what fit uses).
# At this size per-operation overhead, not arithmetic, dominated the step time,
# so every buffer and every view (slice, transpose) is made through a _Memo:
# a fresh one per call for autograd, one kept across the calls of
# loss_and_grad with the same batch shape, so that only the arithmetic is
# repeated there. Checked against the nn modules (values and gradients) in
# tests/test_model.py.

# memory orders in which EmotionVAE stores its conv weights (see _store_in_order):
# encoder convs 1-5 (O, C, K) as (K, C, O); the others as (O, K, C) / (C, K, O)
_ENC_ORDER, _OTHER_ORDER = (2, 1, 0), (0, 2, 1)


class _Memo:
    """Buffers and views made once per key and then reused (see the notes above)."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: dict[Any, Any] = {}

    def __call__(self, key: Any, make: Callable[[], Any]) -> Any:
        item = self.items.get(key)
        if item is None:
            item = self.items[key] = make()
        return item


def _store_in_order(param: nn.Parameter, order: tuple[int, ...]) -> None:
    """Re-store ``param`` so that ``param.permute(order)`` is contiguous (values unchanged)."""
    inverse = tuple(sorted(range(len(order)), key=order.__getitem__))
    param.data = param.data.permute(order).contiguous().permute(inverse)


def _rows(w: torch.Tensor, order: tuple[int, ...]) -> int:
    """Rows of a conv weight's matrix: (tap, in) for ``_ENC_ORDER``, else the first dim."""
    return w.shape[2] * w.shape[1] if order == _ENC_ORDER else w.shape[0]


def _matrix(t: torch.Tensor, order: tuple[int, ...], rows: int) -> torch.Tensor:
    """``t.permute(order)`` as a (rows, -1) matrix: a view when stored in that order."""
    return t.permute(order).reshape(rows, -1)


def _matrix_view(t: torch.Tensor | None, order: tuple[int, ...], rows: int) -> torch.Tensor | None:
    """:func:`_matrix` if it is a view of ``t``, else None."""
    if t is None or not t.permute(order).is_contiguous():
        return None
    return _matrix(t, order, rows)


def _padded(like: torch.Tensor, n: int, frames: int, c: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Uninitialised (n, frames + 2, c) with zero first and last frame, and its interior."""
    p = like.new_empty(n, frames + 2, c)
    p[:, 0::frames + 1].zero_()
    return p, p[:, 1:-1]


def _pairs_as_frames(pairs: torch.Tensor) -> torch.Tensor:
    """(N, S, 2C) frame pairs -> (N, 2S, C) frames (a view)."""
    n, s, c2 = pairs.shape
    return pairs.view(n, 2 * s, c2 // 2)


def _enc_views(p: torch.Tensor, w: torch.Tensor):
    """Views for :func:`_conv_s2` of padded ``p`` (N, 2M+2, C) with ``w`` (4C, O)."""
    n, frames, c = p.shape
    m = frames // 2 - 1
    q = p.view(-1, 2 * c)  # rows = padded frame pairs, M+1 per sample
    r = p.new_empty(q.shape[0], w.shape[1])
    return q[:-1], q[1:], w[: 2 * c], w[2 * c:], r[:-1], r.view(n, m + 1, -1)[:, :m]


def _conv_s2(memo: _Memo, key: Any, p: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Conv1d k4/s2/p1 of padded ``p`` (N, 2M+2, C), ``w`` as (4C, O): pre-activation (N, M, O)."""
    q_head, q_tail, wa, wb, r_head, pre = memo(key, lambda: _enc_views(p, w))
    torch.addmm(b, q_head, wa, out=r_head)
    r_head.addmm_(q_tail, wb)
    return pre


def _enc_grad_views(p: torch.Tensor, w: torch.Tensor, gr: torch.Tensor, gw: torch.Tensor, need_input: bool):
    n, frames, c = p.shape
    q = p.view(-1, 2 * c)
    g = gr.view(-1, gr.shape[-1])[:-1]
    views = [q[:-1].t(), q[1:].t(), g, gw[: 2 * c], gw[2 * c:]]
    if need_input:
        gq = p.new_empty(q.shape)
        views += [w[: 2 * c].t(), w[2 * c:].t(), gq[:-1], gq[-1], gq[1:], gq.view(n, frames, c)[:, 1:-1]]
    return views


def _conv_s2_backward(
    memo: _Memo, key: Any, p: torch.Tensor, w: torch.Tensor, gr: torch.Tensor, need_input: bool,
    gw: torch.Tensor, gb: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gradients of :func:`_conv_s2` given ``gr`` (N, M+1, O) with ``gr[:, M] == 0``.

    Writes the weight gradient into ``gw`` ((4C, O), like ``w``); returns the
    bias gradient (written into ``gb`` if given) and, if ``need_input``, the
    gradient of the unpadded input frames (N, 2M, C) (a view).
    """
    v = memo(key, lambda: _enc_grad_views(p, w, gr, gw, need_input))
    torch.mm(v[0], v[2], out=v[3])
    torch.mm(v[1], v[2], out=v[4])
    gb = gr.sum((0, 1)) if gb is None else torch.sum(gr, (0, 1), out=gb)
    if not need_input:
        return gb, None
    torch.mm(v[2], v[5], out=v[7])
    v[8].zero_()
    v[9].addmm_(v[2], v[6])
    return gb, v[10]


def _dec_views(h: torch.Tensor, w: torch.Tensor, padding: int):
    """Views for :func:`_convt_s2` of padded ``h`` (N, L+2, C) with ``w`` (C, 4O)."""
    n, frames, c = h.shape
    o = w.shape[1] // 4
    rows = h.view(-1, c)
    out = h.new_empty(rows.shape[0], 2 * o)
    if padding == 1:  # [h(s) W1 + h(s-1) W3, h(s) W2 + h(s+1) W0]
        pairs = out.view(n, frames, 2 * o)[:, 1:-1]
        return (rows, w[:, o: 3 * o], out, pairs, (out[1:, :o], rows[:-1], w[:, 3 * o:]),
                (out[:-1, o:], rows[1:], w[:, :o]))
    # p0: [h(s) W0 + h(s-1) W2, h(s) W1 + h(s-1) W3]
    return rows, w[:, : 2 * o], out, out.view(n, frames, 2 * o)[:, 1:], (out[1:], rows[:-1], w[:, 2 * o:])


def _convt_s2(memo: _Memo, key: Any, h: torch.Tensor, w: torch.Tensor, b: torch.Tensor, padding: int) -> torch.Tensor:
    """ConvTranspose1d k4/s2 of padded ``h`` (N, L+2, C), ``w`` as (C, 4O).

    Returns the pre-activation output as frame pairs (N, L + 1 - padding, 2O) (a view).
    """
    rows, w_main, out, pairs, *shifted = memo(key, lambda: _dec_views(h, w, padding))
    torch.addmm(torch.cat((b, b)), rows, w_main, out=out)
    for dst, src, wk in shifted:
        dst.addmm_(src, wk)
    return pairs


def _dec_grad_views(h: torch.Tensor, w: torch.Tensor, gp: torch.Tensor, gw: torch.Tensor, padding: int):
    n, frames, c = h.shape
    o = w.shape[1] // 4
    rows = h.view(-1, c)
    g = gp.view(-1, 2 * o)
    gx = h.new_empty(rows.shape)
    gx_in = gx.view(n, frames, c)[:, 1:-1]
    if padding == 1:
        shifted = [(g[1:, :o], rows[:-1].t(), gw[:, 3 * o:], gx[:-1], w[:, 3 * o:].t()),
                   (g[:-1, o:], rows[1:].t(), gw[:, :o], gx[1:], w[:, :o].t())]
        main = (rows.t(), gw[:, o: 3 * o], w[:, o: 3 * o].t())
    else:
        shifted = [(g[1:], rows[:-1].t(), gw[:, 2 * o:], gx[:-1], w[:, 2 * o:].t())]
        main = (rows.t(), gw[:, : 2 * o], w[:, : 2 * o].t())
    return g, g.view(-1, o), main, shifted, gx, gx_in


def _convt_s2_backward(
    memo: _Memo, key: Any, h: torch.Tensor, w: torch.Tensor, gp: torch.Tensor, padding: int,
    gw: torch.Tensor, gb: torch.Tensor | None, scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of :func:`_convt_s2` given ``scale * gp`` (``gp`` (N, L+2, 2O), zero outside the pairs).

    Writes the weight gradient into ``gw`` ((C, 4O), like ``w``); returns the
    bias gradient (written into ``gb`` if given) and the gradient of the
    unpadded input frames (N, L, C) (a view). ``scale`` is applied inside the
    matrix products (one pass over ``gp`` less than scaling it first).
    """
    g, g_o, (rows_t, gw_main, w_main_t), shifted, gx, gx_in = memo(
        key, lambda: _dec_grad_views(h, w, gp, gw, padding)
    )
    gw_main.addmm_(rows_t, g, beta=0, alpha=scale)
    gx.addmm_(g, w_main_t, beta=0, alpha=scale)
    for g_k, src_t, gw_k, gx_k, w_k_t in shifted:
        gw_k.addmm_(src_t, g_k, beta=0, alpha=scale)
        gx_k.addmm_(g_k, w_k_t, alpha=scale)
    gb = g_o.sum(0) if gb is None else torch.sum(g_o, 0, out=gb)
    if scale != 1.0:
        gb.mul_(scale)
    return gb, gx_in


def _gemm_encoder(memo: _Memo, x: torch.Tensor, enc_w: Any, enc_b: Any, index: torch.Tensor | None = None):
    """Conv layers 1-6 of the encoder on ``x`` (N, C, 128) in any layout (or on ``x[index]``).

    Returns ``(a, saved)``: the (N, 256) output of the sixth conv (after ReLU)
    and what the backward pass needs.
    """
    _, c, frames = x.shape
    n = x.shape[0] if index is None else index.shape[0]
    p, p_in = memo("x", lambda: _padded(x, n, frames, c))
    if index is None:
        p_in.copy_(x.transpose(1, 2))
    else:  # gathered straight into the padded input
        torch.index_select(x.transpose(1, 2), 0, index, out=p_in)
    ps = [p]  # padded inputs of conv layers 1-5 (after ReLU)
    for i in range(5):
        w = memo(("ew", i), lambda: _matrix(enc_w[i], _ENC_ORDER, 4 * enc_w[i].shape[1]))
        pre = _conv_s2(memo, ("e", i), ps[-1], w, enc_b[i])
        if i < 4:
            nxt, nxt_in = memo(("ep", i), lambda: _padded(x, n, pre.shape[1], pre.shape[2]))
            torch.clamp_min(pre, 0, out=nxt_in)
            ps.append(nxt)
    a5 = memo("a5", lambda: x.new_empty(pre.shape))  # (N, 4, 128)
    torch.clamp_min(pre, 0, out=a5)
    # sixth conv (k3, s2, p0) on 4 frames: one output frame from frames 0..2
    w6 = enc_w[5]
    a_in, w6_t = memo("e5", lambda: (a5.view(n, -1)[:, : w6.shape[2] * a5.shape[2]],
                                     _matrix(w6, _OTHER_ORDER, w6.shape[0]).t()))
    a = torch.addmm(enc_b[5], a_in, w6_t).clamp_min_(0)
    return a, (ps, a5, a_in, a)


def _gemm_decoder(memo: _Memo, d: torch.Tensor, dec_w: Any, dec_b: Any):
    """Decoder from ``d`` (N, 256) (after the first ReLU) to the output.

    Returns ``(pairs, saved)``: the output as frame pairs (N, 64, 2 * n_mels),
    i.e. time-major (a view), and what the backward pass needs.
    """
    n = d.shape[0]
    w1 = dec_w[0]  # (256, 128, 3): k3 on one frame -> 3 frames
    w1m = memo("dw1", lambda: _matrix(w1, _OTHER_ORDER, w1.shape[0]))  # (256, (tap, channel))
    h1 = torch.addmm(torch.cat((dec_b[0],) * w1.shape[2]), d, w1m).view(n, w1.shape[2], w1.shape[1])
    h, h_in = memo(("dh", 0), lambda: _padded(d, n, w1.shape[2], w1.shape[1]))
    torch.clamp_min(h1, 0, out=h_in)
    hs = [h]  # padded inputs of ConvTranspose layers 2-6 (after ReLU)
    for i in range(5):
        w = memo(("dw", i), lambda: _matrix(dec_w[i + 1], _OTHER_ORDER, dec_w[i + 1].shape[0]))
        pairs = _convt_s2(memo, ("d", i), hs[-1], w, dec_b[i + 1], 0 if i == 0 else 1)
        if i < 4:
            frames = _pairs_as_frames(pairs)
            h, h_in = memo(("dh", i + 1), lambda: _padded(d, n, frames.shape[1], frames.shape[2]))
            torch.clamp_min(frames, 0, out=h_in)
            hs.append(h)
    return pairs, (w1m, hs)


def _gemm_forward(
    memo: _Memo, x: torch.Tensor, eps: torch.Tensor, lat: int, params: Any, index: torch.Tensor | None = None
):
    """The whole network on ``x`` (or ``x[index]``); returns ``(pairs, mu, logvar, saved)``.

    ``pairs`` is the output as frame pairs, see :func:`_gemm_decoder`.
    """
    a, enc_saved = _gemm_encoder(memo, x, params[0:12:2], params[1:12:2], index)
    e = torch.addmm(params[13], a, params[12].t())
    mu, logvar = e[:, :lat], e[:, lat:]
    std = torch.exp(0.5 * logvar)
    z = torch.addcmul(mu, eps, std)
    d = torch.addmm(params[15], z, params[14].t()).clamp_min_(0)
    pairs, dec_saved = _gemm_decoder(memo, d, params[16::2], params[17::2])
    return pairs, mu, logvar, (enc_saved, dec_saved, eps, std, z, d)


def _gemm_backward(
    memo: _Memo,
    params: Any,
    saved: tuple,
    gp: torch.Tensor,
    g_mu: torch.Tensor | None,
    g_logvar: torch.Tensor | None,
    x_needs_grad: bool,
    out: list[torch.Tensor] | None = None,
    gp_scale: float = 1.0,
) -> list[torch.Tensor | None]:
    """Gradients of :func:`_gemm_forward`: ``[d x, d params...]``.

    ``gp_scale * gp`` is the gradient of the output pairs, ``gp`` (N, 66,
    2 * n_mels) with zero first and last row (the padded layout of the last
    layer's input). With
    ``out`` (one tensor per parameter, parameter-shaped) the parameter
    gradients are written into those tensors (directly by the matrix products
    when their memory order allows) and returned.
    """
    enc_w, dec_w = params[0:12:2], params[16::2]
    (ps, a5, a_in, a), (w1m, hs), eps, std, z, d = saved
    n = d.shape[0]
    dest = list(out) if out is not None else [None] * len(params)
    grads: list[torch.Tensor | None] = [None] * len(params)
    copies = []  # (param index, matrix, order) of gradients computed outside their destination

    def weight_grad(i: int, order: tuple[int, ...]) -> torch.Tensor:
        """Matrix destination for weight ``i``'s gradient (a view of ``dest[i]`` if possible)."""
        w = params[i]
        rows = _rows(w, order)
        mat = memo(("gw", i), lambda: _matrix_view(dest[i], order, rows))
        if mat is None:
            mat = memo(("gwbuf", i), lambda: w.new_empty(rows, w.numel() // rows))
            copies.append((i, mat, order))
        else:
            grads[i] = dest[i]
        return mat

    for i in range(4, -1, -1):  # ConvTranspose layers 6 .. 2: input hs[i]
        k = 18 + 2 * i  # index of this layer's weight in params
        h = hs[i]
        w = memo(("dw", i), None)
        grads[k + 1], gx = _convt_s2_backward(
            memo, ("dg", i), h, w, gp, 0 if i == 0 else 1, weight_grad(k, _OTHER_ORDER), dest[k + 1],
            gp_scale if i == 4 else 1.0,
        )
        if i > 0:  # through the ReLU that made hs[i], into layer i's output pairs
            gp, gp_frames = memo(("dgp", i), lambda: _grad_pairs(h, hs[i - 1], w.shape[0], i == 1))
            _relu_grad(gx, memo(("dh", i), None)[1], 0.0, grad_input=gp_frames)
    # first ConvTranspose (k3 on one frame), fc_dec, reparameterisation
    w1 = dec_w[0]
    g_h1 = d.new_empty(n, w1.shape[2] * w1.shape[1])
    _relu_grad(gx, memo(("dh", 0), None)[1], 0.0, grad_input=g_h1.view(n, w1.shape[2], w1.shape[1]))
    torch.mm(d.t(), g_h1, out=weight_grad(16, _OTHER_ORDER))
    grads[17] = _sum_rows(g_h1.view(-1, w1.shape[1]), dest[17])
    g_d = torch.ops.aten.threshold_backward(g_h1 @ w1m.t(), d, 0.0)
    grads[14] = g_d.t() @ z if dest[14] is None else torch.mm(g_d.t(), z, out=dest[14])
    grads[15] = _sum_rows(g_d, dest[15])
    g_z = g_d @ params[14]
    g_e = torch.cat([g_z, (g_z * eps).mul_(std).mul_(0.5)], dim=1)
    lat = g_z.shape[1]
    if g_mu is not None:
        g_e[:, :lat] += g_mu
    if g_logvar is not None:
        g_e[:, lat:] += g_logvar
    grads[12] = g_e.t() @ a if dest[12] is None else torch.mm(g_e.t(), a, out=dest[12])
    grads[13] = _sum_rows(g_e, dest[13])
    # sixth encoder conv and the ReLU before it
    g_a = torch.ops.aten.threshold_backward(g_e @ params[12], a, 0.0)
    torch.mm(g_a.t(), a_in, out=weight_grad(10, _OTHER_ORDER))
    grads[11] = _sum_rows(g_a, dest[11])
    o6, c6, k6 = enc_w[5].shape
    gr, gr_valid = memo("gr5", lambda: _grad_rows(a5, k6))
    w6_t = memo("e5", None)[1]
    _relu_grad((g_a @ w6_t.t()).view(n, k6, c6), a5[:, :k6], 0.0, grad_input=gr_valid)
    g_x = None
    for i in range(4, -1, -1):  # conv layers 5 .. 1; ps[i] is layer i+1's padded input
        need_input = i > 0 or x_needs_grad
        grads[2 * i + 1], gq = _conv_s2_backward(
            memo, ("eg", i), ps[i], memo(("ew", i), None), gr, need_input,
            weight_grad(2 * i, _ENC_ORDER), dest[2 * i + 1],
        )
        if i > 0:
            p = ps[i]
            gr, gr_valid = memo(("gr", i), lambda: _grad_rows(p[:, 1:-1], p.shape[1] - 2))
            _relu_grad(gq, memo(("ep", i - 1), None)[1], 0.0, grad_input=gr_valid)
        elif gq is not None:
            g_x = gq.transpose(1, 2)
    for i, mat, order in copies:
        inverse = tuple(sorted(range(3), key=order.__getitem__))
        g = mat.view([params[i].shape[k] for k in order]).permute(inverse)
        grads[i] = g if dest[i] is None else dest[i].copy_(g)
    return [g_x] + grads


def _sum_rows(g: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    return g.sum(0) if out is None else torch.sum(g, 0, out=out)


def _grad_rows(act: torch.Tensor, valid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient rows (N, M+1, C) for an encoder conv output ``act`` (N, M, C): zero beyond ``valid``."""
    n, m, c = act.shape
    gr = act.new_empty(n, m + 1, c)
    gr[:, valid:].zero_()
    return gr, gr[:, :valid]


def _grad_pairs(h: torch.Tensor, h_prev: torch.Tensor, c: int, p0: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded gradient of the output pairs of the ConvTranspose whose input is ``h_prev``.

    ``h`` is its padded (after-ReLU) output; returns the buffer (N, L+2, 2C),
    zero outside the pairs, and its pairs viewed as frames (N, 2L(+2), C).
    """
    n, frames, _ = h_prev.shape
    if not p0:
        gp, pairs = _padded(h, n, frames - 2, 2 * c)
        return gp, _pairs_as_frames(pairs)
    gp = h.new_empty(n, frames, 2 * c)  # the p0 layer's pairs are rows 1 .. L+1
    gp[:, 0].zero_()
    return gp, _pairs_as_frames(gp[:, 1:])


class _FusedVAE(torch.autograd.Function):
    """``EmotionVAE.forward`` (gemm path) as one autograd node with a hand-written backward."""

    @staticmethod
    def forward(ctx, x, eps, lat, *params):  # noqa: D102
        memo = _Memo()
        pairs, mu, logvar, saved = _gemm_forward(memo, x, eps, lat, params)
        ctx.save_for_backward(*params)
        ctx.saved = (memo, saved)
        ctx.x_needs_grad = ctx.needs_input_grad[0]
        recon = _pairs_as_frames(pairs).transpose(1, 2)  # (N, n_mels, 128), time-major storage
        if not EmotionVAE._time_major(x):
            recon = recon.contiguous()
        return recon, mu.clone(), logvar.clone()

    @staticmethod
    def backward(ctx, g_recon, g_mu, g_logvar):  # noqa: D102
        (memo, saved), ctx.saved = ctx.saved, None
        h6 = saved[1][1][-1]
        gp, gp_in = _padded(h6, h6.shape[0], h6.shape[1] - 2, 2 * g_recon.shape[1])
        _pairs_as_frames(gp_in).copy_(g_recon.transpose(1, 2))
        grads = _gemm_backward(memo, ctx.saved_tensors, saved, gp, g_mu, g_logvar, ctx.x_needs_grad)
        return (grads[0], None, None, *grads[1:])


def _gemm_loss_and_grad(
    memo: _Memo, x: torch.Tensor, eps: torch.Tensor, lat: int, beta: float, params: Any,
    out: list[torch.Tensor] | None = None, index: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor | None]]:
    """:func:`vae_loss` of the gemm forward pass on ``x`` (or ``x[index]``) and its gradients.

    Without autograd: the reconstruction error is computed straight into the
    buffer that the backward pass uses as the output gradient; no
    reconstruction is kept. Returns ``(total, reconstruction, kl, [d params...])``;
    see :func:`_gemm_backward` for ``out``.
    """
    pairs, mu, logvar, saved = _gemm_forward(memo, x, eps, lat, params, index)

    def views():
        p0 = saved[0][0][0]  # the padded input (N, 130, n_mels)
        n, frames, c = p0.shape
        gp, gp_in = _padded(p0, n, frames // 2 - 1, 2 * c)
        x_pairs = p0.view(n, -1)[:, c: c * (frames - 1)].view(n, -1, 2 * c)
        return gp, gp_in, gp.view(-1), x_pairs

    gp, gp_in, flat, x_pairs = memo("loss", views)
    torch.sub(pairs, x_pairs, out=gp_in)  # recon - x; the pad rows stay 0
    n = mu.shape[0]
    numel = x_pairs.numel()
    rec = torch.dot(flat, flat) / numel
    var = logvar.exp()
    kl = (mu.square() + var - logvar - 1.0).sum() * (0.5 / n)
    g_mu = mu * (beta / n)
    g_logvar = (var - 1.0).mul_(0.5 * beta / n)
    # d rec / d recon = 2 (recon - x) / numel: the factor is applied inside the products
    grads = _gemm_backward(memo, params, saved, gp, g_mu, g_logvar, False, out, 2.0 / numel)
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
    faster); ``forward`` returns the reconstruction in the same dimension
    order. With autograd recording, :meth:`encode` and :meth:`decode` use the
    ``nn`` modules (same function; :meth:`forward` is always one gemm node).
    The conv weights have the usual shapes and state-dict entries but are
    stored in the memory order of the gemm path's matrix products, so that
    those matrices are views (PyTorch's convolutions accept any layout).
    :meth:`loss_and_grad` is a training step without autograd (what
    :func:`emovae_utils.train.fit` uses).
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
        for weight, order in self._weight_orders():
            _store_in_order(weight, order)

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

    def _weight_orders(self) -> list[tuple[nn.Parameter, tuple[int, ...]]]:
        """Each conv weight with the memory order the gemm path uses (see ``_ENC_ORDER``)."""
        enc, dec = self._convs()
        return [(c.weight, _ENC_ORDER) for c in enc[:5]] + [(c.weight, _OTHER_ORDER) for c in enc[5:] + dec]

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

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_memos", None)  # buffers of loss_and_grad, rebuilt on demand
        return state

    def _memo_for(self, shape: tuple[int, ...], x: torch.Tensor, params: list[torch.Tensor]) -> _Memo:
        """The kept :class:`_Memo` of :meth:`loss_and_grad` for this batch shape and storage.

        Its views point into the parameters and their gradients, so it is kept
        only while they keep their storage and the memory order that makes the
        weight matrices views; otherwise a fresh one is used (always correct).
        """
        key = (shape, x.dtype, x.device,
               tuple((p.data_ptr(), p.stride(), p.grad.data_ptr(), p.grad.stride()) for p in params))
        memos = self.__dict__.setdefault("_memos", {})
        memo = memos.get(key)
        if memo is None:
            memo = _Memo()
            if all(_matrix_view(w, order, _rows(w, order)) is not None
                   and _matrix_view(w.grad, order, _rows(w, order)) is not None
                   for w, order in self._weight_orders()):
                if len(memos) >= 4:  # e.g. the full and the last, smaller batch of an epoch
                    memos.clear()
                memos[key] = memo
        return memo

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map ``x`` (N, n_mels, 128) to ``(mu, logvar)``, each (N, latent_dim)."""
        self._check_input(x)
        if self._gemm_ok():
            enc, _ = self._convs()
            h, _ = _gemm_encoder(_Memo(), x, [c.weight for c in enc], [c.bias for c in enc])
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
        pairs, _ = _gemm_decoder(_Memo(), d, [c.weight for c in dec], [c.bias for c in dec])
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
        self, x: torch.Tensor, beta: float = 1.0, index: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The study's loss of a batch, with its gradients written to the parameters' ``.grad``.

        Equivalent to ``zero_grad()``, ``recon, mu, logvar = self(x)``,
        ``total, rec, kl = vae_loss(recon, x, mu, logvar, beta)`` and
        ``total.backward()``: the same function, random numbers and gradients.
        On the gemm path it runs without autograd: the loss is computed inside
        the hand-written backward pass, no reconstruction is kept, and the
        buffers of a batch shape are reused by the next call (what
        :func:`emovae_utils.train.fit` uses). The gradients overwrite
        ``.grad`` (allocated if missing); ``x`` gets none.

        Parameters
        ----------
        x : torch.Tensor, (N, n_mels, 128)
        beta : float, default 1.0
            Weight of the KL term.
        index : torch.Tensor, optional
            1-D int64 indices: the batch is ``x[index]``, gathered straight
            into the network's input buffer (fastest with time-major ``x``).

        Returns
        -------
        total, reconstruction, kl : torch.Tensor
            Detached scalars, as :func:`vae_loss` returns them.
        """
        params = self._params()
        if index is not None and self._check_impl() == "torch":
            x, index = x.index_select(0, index), None
        if self._check_impl() == "torch":
            for p in params:
                p.grad = None
            with torch.enable_grad():
                recon, mu, logvar = self(x)
                total, rec, kl = vae_loss(recon, x, mu, logvar, beta)
                total.backward()
            return total.detach(), rec.detach(), kl.detach()
        self._check_input(x)
        n = x.shape[0] if index is None else index.shape[0]
        eps = torch.randn(n, self.latent_dim, dtype=x.dtype, device=x.device)
        with torch.no_grad():
            for p in params:
                if p.grad is None:
                    p.grad = torch.empty_like(p)  # in the parameter's memory layout
            total, rec, kl, _ = _gemm_loss_and_grad(
                self._memo_for((n, *x.shape[1:]), x, params), x, eps, self.latent_dim, float(beta),
                params, [p.grad for p in params], index,
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
