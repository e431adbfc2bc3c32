"""The hand-written accelerator: the authors' VAE as matrix products, CPU only by default.

Opt-in (``fit(..., accel="gemm")``, or ``accel="auto"`` on the CPU): it
computes exactly :class:`~emovae_utils.models.EmotionVAE`'s forward pass and
the gradients of its :meth:`~emovae_utils.models.EmotionVAE.loss_function`,
and refuses any other model (:func:`why_not` says why), so it can never
silently replace a model it was not written for. Agreement with the stock
``nn`` layers and autograd is tested in float64 (``tests/test_accel.py``);
speed against a truly stock loop in ``benchmarks/train.py``.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

__all__ = ["GemmAccelerator", "why_not", "AcceleratorUnavailable"]


class AcceleratorUnavailable(ValueError):
    """The accelerator cannot serve this model; the message says why."""


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
# one autograd node, or none at all in GemmAccelerator.loss_and_grad (what fit uses).
# At this size per-operation overhead, not arithmetic, dominated the step time,
# so every buffer and every view (slice, transpose) is made through a _Memo:
# a fresh one per call for autograd, one kept across the calls of
# loss_and_grad with the same batch shape, so that only the arithmetic is
# repeated there. Checked against the nn modules (values and gradients) in
# tests/test_model.py.

# memory orders in which the accelerator stores the conv weights (see _store_in_order):
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
    """The network (gemm path) as one autograd node with a hand-written backward."""

    @staticmethod
    def forward(ctx, x, eps, lat, *params):  # noqa: D102
        memo = _Memo()
        pairs, mu, logvar, saved = _gemm_forward(memo, x, eps, lat, params)
        ctx.save_for_backward(*params)
        ctx.saved = (memo, saved)
        ctx.x_needs_grad = ctx.needs_input_grad[0]
        recon = _pairs_as_frames(pairs).transpose(1, 2)  # (N, n_mels, 128), time-major storage
        if not _time_major(x):
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
    memo: _Memo, x: torch.Tensor, eps: torch.Tensor, lat: int, params: Any,
    out: list[torch.Tensor] | None = None, index: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor | None]]:
    """``EmotionVAE.loss_function`` of the gemm forward pass on ``x`` (or ``x[index]``) and its gradients.

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
    g_mu = mu / n
    g_logvar = (var - 1.0).mul_(0.5 / n)
    # d rec / d recon = 2 (recon - x) / numel: the factor is applied inside the products
    grads = _gemm_backward(memo, params, saved, gp, g_mu, g_logvar, False, out, 2.0 / numel)
    return rec + kl, rec, kl, grads[1:]


def _time_major(x: torch.Tensor) -> bool:
    """True when ``x`` (N, C, L) is stored time-major, i.e. ``x.transpose(1, 2)`` is contiguous."""
    return x.shape[0] > 0 and x.transpose(1, 2).is_contiguous() and not x.is_contiguous()


_METHODS = ("encode", "decode", "forward", "loss_function", "reparameterize")


def _layer_signature(model: nn.Module) -> list[tuple[str, str, str]]:
    return [(name, type(m).__name__, m.extra_repr()) for name, m in model.named_modules()]


def why_not(model: nn.Module) -> str | None:
    """Why the accelerator cannot train ``model``, or ``None`` when it can.

    It serves exactly the authors' architecture with the study's loss: the
    class :class:`~emovae_utils.models.EmotionVAE` itself (not a subclass),
    its layer list unchanged, no method replaced on the instance, no hooks,
    every parameter trainable.

    Examples
    --------
    >>> from emovae_utils.models import build
    >>> why_not(build("emotion_vae")) is None
    True
    >>> why_not(build("beta_vae"))
    'accelerator "gemm" was written for EmotionVAE exactly, not BetaVAE (a subclass may change encode, decode or loss_function); it trains through autograd'
    """
    from ..models.emotion_vae import EmotionVAE

    if type(model) is not EmotionVAE:
        return (f'accelerator "gemm" was written for EmotionVAE exactly, not {type(model).__name__} '
                "(a subclass may change encode, decode or loss_function); it trains through autograd")
    replaced = [name for name in _METHODS if name in vars(model)]
    if replaced:
        return f'accelerator "gemm": method(s) {replaced} replaced on this instance'
    with torch.device("meta"):
        reference = EmotionVAE(**model.config)
    got, want = _layer_signature(model), _layer_signature(reference)
    if got != want:
        diff = next((g, w) for g, w in zip(got + [None] * len(want), want + [None] * len(got)) if g != w)
        return f'accelerator "gemm": the layers differ from the authors\' architecture ({diff[0]} instead of {diff[1]})'
    if any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or
           getattr(m, "_backward_pre_hooks", None) for m in model.modules()):
        return 'accelerator "gemm": the model has hooks, which it would skip'
    if not all(p.requires_grad for p in model.parameters()):
        return 'accelerator "gemm": some parameters are frozen; it trains all of them'
    return None


class GemmAccelerator:
    """Training steps of :class:`~emovae_utils.models.EmotionVAE` without autograd.

    Activations run time-major in zero-padded buffers (see the notes at the
    top of this module); the backward pass is written by hand. While in use
    (:meth:`store_weights` .. :meth:`restore_weights`) the conv weights keep
    their shapes and values but are stored in the memory order of the matrix
    products, so the weight and gradient matrices are views.

    Parameters
    ----------
    model : EmotionVAE
        Checked with :func:`why_not`.

    Raises
    ------
    AcceleratorUnavailable
        When :func:`why_not` gives a reason.
    """

    name = "gemm"

    def __init__(self, model: nn.Module) -> None:
        reason = why_not(model)
        if reason:
            raise AcceleratorUnavailable(reason)
        self.model = model
        self._memos: dict[Any, _Memo] = {}

    def _convs(self) -> tuple[list[nn.Conv1d], list[nn.ConvTranspose1d]]:
        enc = [m for m in self.model.encoder if isinstance(m, nn.Conv1d)]
        dec = [m for m in self.model.decoder if isinstance(m, nn.ConvTranspose1d)]
        return enc, dec

    def weight_orders(self) -> list[tuple[nn.Parameter, tuple[int, ...]]]:
        """Each conv weight with the memory order the products use (see ``_ENC_ORDER``)."""
        enc, dec = self._convs()
        return [(c.weight, _ENC_ORDER) for c in enc[:5]] + [(c.weight, _OTHER_ORDER) for c in enc[5:] + dec]

    def params(self) -> list[torch.Tensor]:
        """Parameters in the order the kernels take them."""
        enc, dec = self._convs()
        m = self.model
        out: list[torch.Tensor] = []
        for conv in enc:
            out += [conv.weight, conv.bias]
        out += [m.fc_enc.weight, m.fc_enc.bias, m.fc_dec.weight, m.fc_dec.bias]
        for conv in dec:
            out += [conv.weight, conv.bias]
        return out

    def store_weights(self) -> None:
        """Re-store the conv weights in the products' memory order (values unchanged)."""
        for weight, order in self.weight_orders():
            _store_in_order(weight, order)

    def restore_weights(self) -> None:
        """Give every parameter PyTorch's own contiguous layout again (values unchanged)."""
        for p in self.model.parameters():
            p.data = p.data.contiguous()
            p.grad = None
        self._memos.clear()

    def forward(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(recon, mu, logvar)`` of ``x`` (N, n_mels, 128) as one autograd node.

        ``eps`` (N, latent_dim) defaults to ``torch.randn`` (the same numbers as
        the model's ``reparameterize``). The same function as the model's
        ``forward``; any memory layout of ``x`` (time-major is faster).
        """
        self.model._check_input(x)
        if eps is None:
            eps = torch.randn(x.shape[0], self.model.latent_dim, dtype=x.dtype, device=x.device)
        return _FusedVAE.apply(x, eps, self.model.latent_dim, *self.params())

    def _memo_for(self, shape: tuple[int, ...], x: torch.Tensor, params: list[torch.Tensor]) -> _Memo:
        """The kept :class:`_Memo` for this batch shape and storage (a fresh one if views are impossible).

        Its views point into the parameters and their gradients, so it is kept
        only while they keep their storage and the memory order that makes the
        weight matrices views.
        """
        key = (shape, x.dtype, x.device,
               tuple((p.data_ptr(), p.stride(), p.grad.data_ptr(), p.grad.stride()) for p in params))
        memo = self._memos.get(key)
        if memo is None:
            memo = _Memo()
            if all(_matrix_view(w, order, _rows(w, order)) is not None
                   and _matrix_view(w.grad, order, _rows(w, order)) is not None
                   for w, order in self.weight_orders()):
                if len(self._memos) >= 4:  # e.g. the full and the last, smaller batch of an epoch
                    self._memos.clear()
                self._memos[key] = memo
        return memo

    def loss_and_grad(self, x: torch.Tensor, index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The model's ``loss_function`` on a batch, its gradients written to the parameters' ``.grad``.

        Equivalent to ``zero_grad()``, ``loss_function(x, model(x))`` and
        ``backward()``: the same function, random numbers and gradients, without
        autograd (the loss is computed inside the backward pass; buffers of a
        batch shape are reused by the next call).

        Parameters
        ----------
        x : torch.Tensor, (N, n_mels, 128)
            Fastest as a time-major view (``xt.transpose(1, 2)`` of a contiguous ``xt``).
        index : torch.Tensor, optional
            1-D int64: the batch is ``x[index]``, gathered straight into the input buffer.

        Returns
        -------
        dict
            ``loss``, ``reconstruction``, ``kl``: detached scalars.
        """
        self.model._check_input(x)
        params = self.params()
        n = x.shape[0] if index is None else index.shape[0]
        eps = torch.randn(n, self.model.latent_dim, dtype=x.dtype, device=x.device)
        with torch.no_grad():
            for p in params:
                if p.grad is None:
                    p.grad = torch.empty_like(p)  # in the parameter's memory layout
            total, rec, kl, _ = _gemm_loss_and_grad(
                self._memo_for((n, *x.shape[1:]), x, params), x, eps, self.model.latent_dim,
                params, [p.grad for p in params], index,
            )
        return {"loss": total, "reconstruction": rec, "kl": kl}
