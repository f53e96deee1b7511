"""Accumulates the per-step negative statistics of ``synco.analysis.negatives`` over an epoch.

Every ``eval.analysis_every`` steps the training loop hands a step's outputs (before the enqueue, so
the queue still matches the logits) to :meth:`NegativeLog.observe`; :meth:`NegativeLog.epoch_record`
returns the epoch's means as ``analysis/...`` entries of metrics.jsonl. With several processes rank 0
observes its own queries (a sample of the global batch).
"""

from __future__ import annotations

from collections import defaultdict

import torch
import torch.nn.functional as F

from synco.analysis.hard_negatives import isotropy, label_record
from synco.analysis.negatives import false_negative_rates, hardness_profile, proxy_accuracy, strategy_statistics
from synco.functional.representation import alignment, class_distance_ratios, effective_rank, uniformity
from synco.methods.outputs import QueueOutput, StepOutput, innermost


class NegativeLog:
    def __init__(self, temperature: float, labels: torch.Tensor, top: int = 1024) -> None:
        self.temperature = temperature
        self.labels = labels  # (N,) labels of the pretraining images (-1: unlabelled)
        self.top = top
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.hardness: torch.Tensor | None = None
        self.hardness_steps = 0

    def _add(self, values: dict) -> None:
        for key, value in values.items():
            self.sums[key] += value
            self.counts[key] += 1

    def observe_step(self, out: StepOutput, batch) -> None:
        """``observe`` for the training loop: a method's step output (a ``QueueOutput`` with
        ``queue_image_index``, possibly inside a wrapper's record) and its Batch."""
        out = innermost(out)
        self.observe(out, batch.index, out.queue_image_index)

    @torch.no_grad()
    def observe(self, out: QueueOutput, index: torch.Tensor, queue_image_index: torch.Tensor) -> None:
        """One step: ``out`` from ``MoCo.training_step``, this rank's image indices (b,), the queue's (K,)."""
        positive, queue_logits, synthetic = out.positive, out.queue_logits.detach(), out.synthetic_logits
        synthetic = synthetic.detach()
        self._add(proxy_accuracy(positive, queue_logits, synthetic))
        profile = hardness_profile(positive, queue_logits, self.temperature, self.top).cpu()
        self.hardness = profile if self.hardness is None else self.hardness + profile
        self.hardness_steps += 1
        sources = out.sources
        if sources is None:
            self._add({"max_real_logit": queue_logits.max(dim=1).values.mean().item()})
            return
        self._add(strategy_statistics(queue_logits, synthetic, sources.strategy, positive, self.temperature))
        labels = self.labels
        query_labels = labels[index.cpu()]
        queue_rows = queue_image_index.cpu()
        queue_labels = torch.where(queue_rows >= 0, labels[queue_rows.clamp(min=0)], torch.full_like(queue_rows, -1))
        self._add(false_negative_rates(query_labels, sources.hardest.cpu(), sources.index.cpu(), queue_labels))

    def epoch_record(self) -> dict:
        """``analysis/<name>`` means over the observed steps (and the mean hardness profile); then resets."""
        record = {f"analysis/{k}": self.sums[k] / self.counts[k] for k in sorted(self.sums)}
        if self.hardness is not None:
            record["analysis/hardness_top"] = [round(v, 8) for v in (self.hardness / self.hardness_steps).tolist()]
            record["analysis/observed_steps"] = self.hardness_steps
        self.reset()
        return record


@torch.no_grad()
def representation_record(encoder, test, augment, count: int, seed: int, device) -> dict:
    """Alignment, uniformity, effective rank, class concentration and isotropy of ``encoder``'s embeddings on
    the first ``count`` test images (held out from pretraining), and H-SCL's four losses and Assumption 1
    (``synco.analysis.hard_negatives``) on their two augmented views; in-memory data only.

    Positive pairs are two draws of the training augmentation from a generator seeded with ``seed``, so
    the analysis never touches the training run's random streams.
    """
    if not test.in_memory or augment is None:
        return {}
    images, labels = test.images[:count].to(device), test.labels[:count]
    g = torch.Generator(device=device).manual_seed(seed)
    was_training = encoder.training
    encoder.eval()
    plain = torch.cat([encoder(augment.normalise(images[i:i + 256])).float().cpu() for i in range(0, len(images), 256)])
    views = [torch.cat([encoder(augment(images[i:i + 256], g)).float().cpu() for i in range(0, len(images), 256)])
             for _ in range(2)]
    encoder.train(was_training)
    ratios = class_distance_ratios(plain, labels)
    record = {
        "analysis/align": alignment(*views), "analysis/uniform": uniformity(plain),
        "analysis/effective_rank": effective_rank(plain), "analysis/class_ratio": [round(r, 6) for r in ratios],
        "analysis/class_ratio_mean": sum(ratios) / max(len(ratios), 1), "analysis/heldout_images": len(images),
        "analysis/isotropy": isotropy(plain),
    }
    if bool((labels >= 0).all()):  # H-SCL's four losses and Assumption 1 need every image's class
        unit = [F.normalize(v, dim=1) for v in views]
        record.update(label_record(unit[0], unit[1], labels))
    return record
