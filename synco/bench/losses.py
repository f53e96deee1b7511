"""What the label-aware losses cost, side by side in one run (``synco bench losses``).

1. Each loss's forward + backward on random unit embeddings with labels: the in-batch losses against
   NT-Xent (SimCLR's), the queue forms against MoCo's InfoNCE with the same K; milliseconds, ratio and
   peak memory above the inputs.
2. The label-aware queue in a whole training step of the CPU recipe (small CNN, synthetic 32 px images):
   MoCo-v2 without labels against MoCo-v2 enqueueing the batch's labels, and SynCo against label-aware
   SynCo (``method.negatives.exclude_same_class``).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from synco.bench.measure import median_ratios, peak_mib, timed_rounds
from synco.compose import build_method
from synco.config import load_config
from synco.data.batch import Batch
from synco.functional import hcl_loss, hscl_loss, info_nce_loss, nt_xent_loss, schane_loss, supcon_loss
from synco.functional.queue_supervised import hscl_queue_loss, supcon_queue_loss
from synco.methods import StepContext


def _unit(*shape, generator) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(*shape, generator=generator), dim=-1)


def _rows(fns: dict, base: str, repeats: int) -> list[dict]:
    device = torch.device("cpu")
    times = timed_rounds(fns, repeats, device)
    ratios = median_ratios(times, base)
    memory = {name: peak_mib(fn, device) for name, fn in fns.items()}
    return [{"loss": name, "ms": sorted(t)[len(t) // 2], "time_ratio": ratios[name], "peak_mib": memory[name],
             "memory_ratio": memory[name] / memory[base] if memory[base] else math.nan} for name, t in times.items()]


def loss_rows(batch: int = 256, dim: int = 128, queue: int = 65536, classes: int = 10, repeats: int = 7):
    """(in-batch rows against NT-Xent, queue rows against InfoNCE); forward + backward of each loss."""
    g = torch.Generator().manual_seed(0)
    z1, z2 = _unit(batch, dim, generator=g), _unit(batch, dim, generator=g)
    labels = torch.randint(classes, (batch,), generator=g)
    keys, bank = _unit(batch, dim, generator=g), _unit(queue, dim, generator=g)
    bank_labels = torch.randint(classes, (queue,), generator=g)

    def run(loss_of):
        def step():
            a = z1.clone().requires_grad_(True)
            loss_of(a).backward()
        return step

    in_batch = {
        "NT-Xent (SimCLR)": run(lambda a: nt_xent_loss(a, z2, 0.5)),
        "HCL / H-UCL": run(lambda a: hcl_loss(a, z2, 0.5, 1.0, 0.1)),
        "SupCon": run(lambda a: supcon_loss(torch.stack([a, z2], 1), labels, temperature=0.1)),
        "SCL": run(lambda a: hscl_loss(a, z2, labels, 0.5, beta=0.0)),
        "H-SCL(beta 1)": run(lambda a: hscl_loss(a, z2, labels, 0.5, beta=1.0)),
        "H-SCL(tau e^-0.5)": run(lambda a: hscl_loss(a, z2, labels, 0.5, threshold=math.exp(-0.5))),
        "SCHaNe (anchor)": run(lambda a: schane_loss(torch.cat([a, z2]), torch.cat([labels, labels]), 0.1)),
        "SCHaNe (positive)": run(lambda a: schane_loss(torch.cat([a, z2]), torch.cat([labels, labels]), 0.1,
                                                       "positive")),
    }
    contrast, contrast_labels = torch.cat([keys, bank]), torch.cat([labels, bank_labels])
    with_queue = {
        "InfoNCE (MoCo)": run(lambda a: info_nce_loss(a, keys, a @ bank.T, None, 0.2)),
        "SupCon + queue": run(lambda a: supcon_queue_loss(a, contrast, labels, contrast_labels, 0.1)),
        "H-SCL(beta 1) + queue": run(lambda a: hscl_queue_loss(a, contrast, labels, contrast_labels, 0.5)),
    }
    return _rows(in_batch, "NT-Xent (SimCLR)", repeats), _rows(with_queue, "InfoNCE (MoCo)", repeats)


def queue_step_rows(recipe: str = "configs/pretrain/cifar10/synco.yaml", batch: int = 256, repeats: int = 7):
    """Whole steps: MoCo-v2 without / with labels enqueued; SynCo and label-aware SynCo (both with labels)."""
    g = torch.Generator().manual_seed(0)
    cfg0 = load_config(recipe)
    size = cfg0.data.image_size
    views = (torch.randn(batch, 3, size, size, generator=g), torch.randn(batch, 3, size, size, generator=g))
    labels = torch.randint(10, (batch,), generator=g)
    settings = {
        "MoCo-v2, no labels": (["method.name=moco_v2"], None),
        "MoCo-v2, labels enqueued": (["method.name=moco_v2"], labels),
        "SynCo": (["method.name=synco"], labels),
        "SynCo, exclude_same_class": (["method.name=synco", "method.negatives.exclude_same_class=true"], labels),
    }
    fns = {}
    for name, (overrides, step_labels) in settings.items():
        cfg = load_config(recipe, overrides)
        method = build_method(cfg, 3, 50000, seed=0)
        method.queue.labels.copy_(torch.randint(10, (method.queue.size,), generator=g))  # a queue past its start
        opt = torch.optim.SGD(method.trainable_parameters(), lr=0.01, momentum=0.9)
        step_batch = Batch(views=views, index=torch.arange(batch), labels=step_labels)
        context = StepContext(epoch=10**9, generator=torch.Generator().manual_seed(1),
                              shuffle_generator=torch.Generator().manual_seed(2))

        def step(method=method, opt=opt, step_batch=step_batch, context=context):
            out = method.training_step(step_batch, context)
            opt.zero_grad()
            out.loss.backward()
            opt.step()
            method.after_step(out, step_batch)

        fns[name] = step
    times = timed_rounds(fns, repeats, torch.device("cpu"))
    base = {"MoCo-v2, no labels": "MoCo-v2, no labels", "MoCo-v2, labels enqueued": "MoCo-v2, no labels",
            "SynCo": "SynCo", "SynCo, exclude_same_class": "SynCo"}
    rows = []
    for name, t in times.items():
        ratio = median_ratios({name: t, base[name]: times[base[name]]}, base[name])[name]
        rows.append({"step": name, "ms": sorted(t)[len(t) // 2], "time_ratio": ratio, "against": base[name]})
    return rows, f"{Path(recipe).name} (small CNN, batch {batch}, K={cfg0.method.queue_size}, synthetic {size} px images)"
