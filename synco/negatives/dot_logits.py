"""Synthetic logits from dot products: the fast path of ``SyntheticNegatives.logits``.

Every SynCo negative is a normalised combination ``s = u / ||u||`` of a few vectors, so its logit
``q.s`` needs no (B, S, D) tensor, only dot products, most of which the queue logits already hold:

    type 1  u = a q + (1 - a) n            q.u = a q.q + (1 - a) q.n
    type 2  u = (1 + b) n - b q  (paper)   q.u = (1 + b) q.n - b q.q
            u = b n + (1 - b) q  (code)    q.u = b q.n + (1 - b) q.q
    type 3  u = g n_i + (1 - g) n_j        q.u = g q.n_i + (1 - g) q.n_j
    type 4  u = n + e                      q.u = q.n + q.e
    type 5  u = n + delta q                q.u = q.n + delta q.q
    type 6  u = n + eta sign(q)            q.u = q.n + eta q.sign(q)

and ``||u||^2`` follows from the Gram entries (q.q, q.n, n.n, n_i.n_j, n.e, e.e, n.sign(q)). Only
n_i.n_j (type 3), n.e (type 4) and n.sign(q) (type 6) need queue rows gathered; they are computed in
small batches of queries so the gathered rows stay in cache.

Gradient: the synthetic vectors are constants (detached), so ``d(q.s)/dq = s``. With the norm
detached, the expression above has exactly that gradient: the ``q.n`` terms carry gradient
``n / ||u||`` and the ``q.q`` (with one factor detached), ``q.e`` and ``q.sign(q)`` terms carry the
rest. The ``q.n`` values are gathered from the (detached) queue logits and their gradient
``sum_s w_s n_s`` is formed by ``embedding_bag`` over the queue rows, never as (B, S, D).

Arithmetic runs in float32 at least (float64 stays float64), so bf16/fp16 queries get logits as
accurate as float32 before the final cast back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Gathered elements per batch of queries in the row-dot helpers (about 1 MB in float32).
_CHUNK_ELEMENTS = 1 << 18


class _SelectedQueueDots(torch.autograd.Function):
    """``q.n`` for chosen queue rows, read from precomputed logits, with gradient into ``q`` only.

    forward(query (B, D), queue (K, D), dots (B, K) detached ``q.n``, index (B, M)) -> (B, M)
    backward: ``grad_query[b] = sum_m grad[b, m] * queue[index[b, m]]`` via ``embedding_bag``.
    """

    @staticmethod
    def forward(ctx, query, queue, dots, index):
        ctx.save_for_backward(queue, index)
        ctx.query_dtype = query.dtype
        return torch.gather(dots, 1, index)  # (B, M)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        queue, index = ctx.saved_tensors
        grad_query = F.embedding_bag(
            index, queue, per_sample_weights=grad.to(queue.dtype).contiguous(), mode="sum"
        )  # (B, D)
        return grad_query.to(ctx.query_dtype), None, None, None


def _row_dots(queue: torch.Tensor, index: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """``queue[index[b, m]] . other[b, m]`` for other (B, M, D), or (B, 1, D) broadcast; returns (B, M)."""
    if torch.compiler.is_compiling():  # the compiler fuses the gather into the reduction: no (B, M, D) tensor
        return (queue[index] * other).sum(-1)
    batch, count = index.shape
    step = max(1, _CHUNK_ELEMENTS // max(1, count * queue.shape[1]))
    out = []
    for start in range(0, batch, step):
        rows = queue.index_select(0, index[start:start + step].reshape(-1))  # (b*M, D)
        rows = rows.view(-1, count, queue.shape[1])  # (b, M, D)
        out.append(torch.linalg.vecdot(rows, other[start:start + step]))  # (b, M)
    return torch.cat(out, dim=0)  # (B, M)


def _pair_dots(queue: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """``queue[first[b, m]] . queue[second[b, m]]``, (B, M), without a (B, M, D) tensor."""
    if torch.compiler.is_compiling():  # fused by the compiler, as in _row_dots
        return (queue[first] * queue[second]).sum(-1)
    batch, count = first.shape
    step = max(1, _CHUNK_ELEMENTS // max(1, count * queue.shape[1]))
    out = []
    for start in range(0, batch, step):
        a = queue.index_select(0, first[start:start + step].reshape(-1))  # (b*M, D)
        b = queue.index_select(0, second[start:start + step].reshape(-1))  # (b*M, D)
        out.append(torch.linalg.vecdot(a, b).view(-1, count))  # (b, M)
    return torch.cat(out, dim=0)  # (B, M)


def _normalised(numerator: torch.Tensor, squared_norm: torch.Tensor) -> torch.Tensor:
    """``numerator / max(||u||, 1e-12)`` as ``F.normalize`` does; the norm is detached."""
    return numerator / squared_norm.clamp_min(0).sqrt().clamp_min(1e-12)


def synthetic_logits_from_dots(
    query: torch.Tensor,
    queue: torch.Tensor,
    queue_logits: torch.Tensor,
    first: list[torch.Tensor],
    second: torch.Tensor,
    coef: list[torch.Tensor],
    noise: torch.Tensor,
    extrapolation: str,
    delta: float,
    eta: float,
) -> torch.Tensor:
    """Un-tempered synthetic logits ``q.s`` (B, S) of the six strategies, laid out as ``sample``.

    Args:
        query: (B, D) with gradient.
        queue: (K, D).
        queue_logits: (B, K) ``query @ queue.T`` (unmasked; only read, detached).
        first: per strategy (B, n_t) queue rows of the source negative.
        second: (B, n_3) queue rows of mixup's second source.
        coef: per strategy (B, n_t) alpha, beta, gamma (ignored for types 4-6).
        noise: (B, n_4, D) the Gaussian noise of type 4, already scaled by sigma.
        extrapolation: ``"paper"`` or ``"reference"`` (see ``synthesize.extrapolate``).
        delta, eta: steps of types 5 and 6.

    Returns:
        (B, S) in ``query``'s dtype; gradient into ``query`` only.
    """
    work = torch.promote_types(query.dtype, torch.float32)
    q = query.to(work)  # (B, D) with gradient
    q0 = q.detach()
    n = queue.detach().to(work)  # (K, D)
    qq = torch.linalg.vecdot(q0, q0).unsqueeze(1)  # (B, 1)
    self_dot = torch.linalg.vecdot(q, q0).unsqueeze(1)  # (B, 1) = q.q, gradient q0
    row_sq_norm = torch.linalg.vector_norm(n, dim=1).square()  # (K,) n.n

    # One gather for every q.n the logits need: each strategy's source, then mixup's second source.
    index = torch.cat([*first, second], dim=1)  # (B, S + n_3)
    dots = _SelectedQueueDots.apply(q, n, queue_logits.detach().to(work), index)  # (B, S + n_3)
    dots0 = dots.detach()
    splits = [f.shape[1] for f in first] + [second.shape[1]]
    qn, qn0 = dots.split(splits, dim=1), dots0.split(splits, dim=1)
    nn = [row_sq_norm.take(f) for f in first]  # per strategy (B, n_t)

    def two_term(t: int, c_q: torch.Tensor | float, c_n: torch.Tensor | float) -> torch.Tensor:
        """u = c_q q + c_n n: ||u||^2 = c_q^2 q.q + 2 c_q c_n q.n + c_n^2 n.n."""
        sq = c_q * c_q * qq + 2 * c_q * c_n * qn0[t] + c_n * c_n * nn[t]
        return _normalised(c_q * self_dot + c_n * qn[t], sq)

    pieces = []
    if first[0].shape[1]:  # interpolation
        alpha = coef[0].to(work)
        pieces.append(two_term(0, alpha, 1 - alpha))
    if first[1].shape[1]:  # extrapolation
        beta = coef[1].to(work)
        if extrapolation == "paper":
            pieces.append(two_term(1, -beta, 1 + beta))
        else:
            pieces.append(two_term(1, 1 - beta, beta))
    if first[2].shape[1]:  # mixup
        gamma = coef[2].to(work)
        cross = _pair_dots(n, first[2], second)  # (B, n_3) n_i.n_j
        sq = gamma.square() * nn[2] + 2 * gamma * (1 - gamma) * cross + (1 - gamma).square() * row_sq_norm.take(second)
        pieces.append(_normalised(gamma * qn[2] + (1 - gamma) * qn[6], sq))
    if first[3].shape[1]:  # noise
        e = noise.to(work)  # (B, n_4, D)
        qe = torch.einsum("bd,bnd->bn", q, e)  # (B, n_4), gradient e
        sq = nn[3] + 2 * _row_dots(n, first[3], e) + torch.linalg.vecdot(e, e)
        pieces.append(_normalised(qn[3] + qe, sq))
    if first[4].shape[1]:  # perturbation along q
        pieces.append(two_term(4, delta, 1.0))
    if first[5].shape[1]:  # adversarial sign step
        sign = torch.sign(q0)  # (B, D)
        q_sign = torch.linalg.vecdot(q, sign).unsqueeze(1)  # (B, 1), gradient sign(q)
        sq = nn[5] + 2 * eta * _row_dots(n, first[5], sign.unsqueeze(1)) + eta * eta * torch.linalg.vecdot(
            sign, sign
        ).unsqueeze(1)
        pieces.append(_normalised(qn[5] + eta * q_sign, sq))
    if not pieces:
        return query.new_zeros(query.shape[0], 0)
    return torch.cat(pieces, dim=1).to(query.dtype)  # (B, S)

