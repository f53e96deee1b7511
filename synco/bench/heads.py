"""The negative head alone at the paper's setting: MoCo-v2 against MoCHI and SynCo.

Head = what ``MoCo.loss`` does plus its backward: queue logits ``q @ queue.T`` (B, K), for MoCHI and
SynCo the top-N selection and the synthetic logits (B, S), the InfoNCE loss, and the backward into
the query. The encoders are left out (identity), so the figures isolate the cost of the negatives.
Every method runs the same ``MoCo.loss`` code; only the negative generator differs. One more row, "official
MoCo (code form)", is the official MoCo builder's head as its code computes it (the queue stored (D, K) and
cloned, ``einsum`` logits, ``cat``, division by t, cross-entropy), so this project's plain head can be compared
with it in the same process.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from synco.bench.measure import median_ratios, peak_mib, timed_rounds
from synco.losses import InfoNCE
from synco.memory import NegativeQueue
from synco.methods import Encoder, MoCo
from synco.negatives import COUNT_KEYS, SyntheticNegatives, mochi


@dataclass
class HeadSetting:
    """Sizes of the head benchmark; the defaults are the paper's ImageNet setting."""

    batch: int = 256
    queue: int = 65536
    dim: int = 128
    num_hard: int = 1024
    counts: tuple[int, ...] = (256, 256, 256, 64, 64, 64)
    temperature: float = 0.2
    dtype: str = "float32"
    device: str = "cpu"
    repeats: int = 7
    compile: bool = False  # also each head with ``Method.compile_parts`` (torch.compile), side by side


OFFICIAL = "official MoCo (code form)"


def _negatives(setting: HeadSetting) -> dict[str, SyntheticNegatives | None]:
    synco = dict(zip(COUNT_KEYS, setting.counts))
    return {
        "MoCo-v2": None,
        f"MoCHI({setting.num_hard}, {setting.counts[2]}, {setting.counts[0]})": mochi(
            setting.num_hard, setting.counts[2], setting.counts[0]
        ),
        "SynCo": SyntheticNegatives(num_hard=setting.num_hard, **synco),
        "SynCo, vector path": SyntheticNegatives(num_hard=setting.num_hard, **synco, logits_path="vectors"),
    }


def official_moco_head(query0: torch.Tensor, key: torch.Tensor, queue: torch.Tensor, temperature: float):
    """One forward + backward of the official MoCo builder's head in its code form.

    Args:
        query0: (B, D) unit queries (cloned with gradient at every call).
        key: (B, D) unit keys.
        queue: (D, K) unit keys, the official buffer's layout.
    """

    def head():
        query = query0.clone().requires_grad_(True)
        positive = torch.einsum("nc,nc->n", query, key).unsqueeze(-1)  # (B, 1)
        negative = torch.einsum("nc,ck->nk", query, queue.clone().detach())  # (B, K)
        logits = torch.cat([positive, negative], dim=1)  # (B, 1 + K)
        logits /= temperature
        labels = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        return loss.detach(), query.grad  # for the tests; the benchmark ignores them

    return head


def _head_functions(setting: HeadSetting) -> tuple[dict, dict]:
    """({head name: a function running one forward + backward}, {head name: its MoCo method, None for the
    official code form})."""
    device, dtype = torch.device(setting.device), getattr(torch, setting.dtype)
    g = torch.Generator().manual_seed(0)
    query0 = F.normalize(torch.randn(setting.batch, setting.dim, generator=g), dim=1).to(device, dtype)
    key = F.normalize(torch.randn(setting.batch, setting.dim, generator=g), dim=1).to(device, dtype)
    queue_generator = torch.Generator().manual_seed(1)
    fns, methods = {}, {}
    heads = list(_negatives(setting).items())
    if setting.compile:  # fresh generators, same settings: the compiled twins of every head but the vector path
        heads += [(f"{name}, compiled", negatives) for name, negatives in _negatives(setting).items()
                  if "vector" not in name]
    for name, negatives in heads:
        method = MoCo(
            Encoder(nn.Identity(), nn.Identity()), NegativeQueue(setting.queue, setting.dim, generator=queue_generator),
            InfoNCE(setting.temperature), negatives=negatives,
        ).to(device)
        method.queue.keys = method.queue.keys.to(dtype)
        if name.endswith(", compiled"):
            method.compile_parts()
        synthesis = torch.Generator(device=device).manual_seed(2)

        def head(method=method, synthesis=synthesis):
            query = query0.clone().requires_grad_(True)
            method.loss(query, key, None, True, synthesis).loss.backward()

        fns[name], methods[name] = head, method
        if name == "MoCo-v2":  # the official code form beside it, on the same queue (stored (D, K))
            fns[OFFICIAL] = official_moco_head(query0, key, method.queue.keys.T.contiguous(), setting.temperature)
            methods[OFFICIAL] = None
    return fns, methods


def run_heads(setting: HeadSetting) -> list[dict]:
    """Median time (forward + backward), median paired ratio to MoCo-v2 and peak memory; a row per head.

    With ``setting.compile`` every head also runs compiled; ``same_mode_ratio`` is then the ratio to
    MoCo-v2 in the same mode (compiled to compiled: each at its best) and ``speedup`` the eager head's time
    over the compiled one's (paired per round). The compile warm-up happens in the untimed first rounds.
    """
    device = torch.device(setting.device)
    fns, methods = _head_functions(setting)
    times = timed_rounds(fns, setting.repeats, device)
    ratios = median_ratios(times, "MoCo-v2")
    compiled_ratios = median_ratios(times, "MoCo-v2, compiled") if setting.compile else {}
    rows = []
    for name, fn in fns.items():
        negatives = methods[name].negatives if methods[name] is not None else None
        eager = name.removesuffix(", compiled")
        rows.append({
            "head": name,
            "synthetic": negatives.num_synthetic if negatives is not None else 0,
            "ms": statistics.median(times[name]),
            "time_ratio": ratios[name],
            "same_mode_ratio": compiled_ratios.get(name, ratios[name]),
            "speedup": statistics.median(e / c for e, c in zip(times[eager], times[name])),
            "peak_mib": peak_mib(fn, device),
        })
    for row in rows:
        row["memory_ratio"] = row["peak_mib"] / rows[0]["peak_mib"]
    return rows


def profile_heads(setting: HeadSetting, heads: tuple[str, ...] = ("MoCo-v2", "SynCo"), calls: int = 5) -> list[dict]:
    """Where the time goes: self time per call of every operator (PyTorch profiler), per head.

    Returns rows ``{"op": name, <head>: ms per call, ...}`` sorted by the last head's excess over the
    first, so the top rows are what the extra negatives cost. Profiler overhead inflates small ops a
    little; the per-op split, not the total, is the point.
    """
    from torch.profiler import ProfilerActivity, profile

    fns, _ = _head_functions(setting)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if setting.device.startswith("cuda") else [])
    per_head = {}
    for name in heads:
        fn = fns[name]
        for _ in range(2):
            fn()
        with profile(activities=activities) as prof:
            for _ in range(calls):
                fn()
            if setting.device.startswith("cuda"):
                torch.cuda.synchronize()
        key = "self_device_time_total" if setting.device.startswith("cuda") else "self_cpu_time_total"
        per_head[name] = {e.key: getattr(e, key) / 1e3 / calls for e in prof.key_averages() if e.key.startswith("aten::")}
    ops = sorted(set().union(*per_head.values()))
    rows = [{"op": op, **{h: per_head[h].get(op, 0.0) for h in heads}} for op in ops]
    rows.sort(key=lambda r: r[heads[-1]] - r[heads[0]], reverse=True)
    return rows
