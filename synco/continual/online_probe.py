"""CaSSLe's online linear probe, as an option of continual streams (``continual.online_probe=true``).

CaSSLe's code (solo-learn) trains a linear classifier on the backbone's *detached* features during SSL
training, with the labels of the current task's images, and reports its accuracy: the "online" linear
evaluation. It differs by several points from the offline probe (``continual.linear_epochs``): the classifier
sees each task's labels only while that task trains, so it forgets with the stream (class-incremental: its
argmax runs over all classes). Here it wraps any method:

    loss = method's loss + CE(classifier(stopgrad(backbone(x_1))), y)        (gradient into the classifier only)

Difference from the authors' code, for simplicity and for ``trainer.compile``: the features are an extra
no-grad forward of the online backbone in eval mode (running batch-norm statistics, no side effect), where
CaSSLe reuses the training forward's features (batch statistics). It costs one backbone forward of one view.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from synco.data.batch import Batch
from synco.methods.base import Method, StepContext
from synco.methods.outputs import ProbedOutput


class OnlineProbe(Method):
    """``method`` plus a linear classifier on its detached backbone features (CaSSLe's online evaluation).

    Args:
        method: the trained method (a base, or a regularised later task).
        num_classes: C, outputs of the classifier (all classes of the data set).
    """

    needs_labels = True

    def __init__(self, method: Method, num_classes: int) -> None:
        super().__init__()
        self.inner = method
        self.classifier = nn.Linear(method.online_encoder.backbone.feature_dim, num_classes)

    @property
    def online_encoder(self) -> nn.Module:
        return self.inner.online_encoder

    @property
    def temperature(self) -> float:
        return self.inner.temperature

    def trainable_parameters(self):
        return itertools.chain(self.inner.trainable_parameters(), self.classifier.parameters())

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, F) detached backbone features, eval mode (the probe never changes the backbone's statistics)."""
        backbone = self.inner.online_encoder.backbone
        mode = backbone.training
        backbone.eval()
        with torch.no_grad():
            out = backbone(images)
        backbone.train(mode)
        return out

    def training_step(self, batch: Batch, context: StepContext) -> ProbedOutput:
        out = self.inner.training_step(batch, context)
        if batch.labels is None:
            raise ValueError("continual.online_probe=true needs labelled images (the probe trains on their labels)")
        logits = self.classifier(self.features(batch.views[0]))  # (B, C)
        probe_loss = F.cross_entropy(logits, batch.labels)
        correct = (logits.argmax(1) == batch.labels).float().mean().detach()
        return ProbedOutput(loss=out.loss + probe_loss, base=out, probe_loss=probe_loss.detach(), probe_correct=correct)

    def after_step(self, out: ProbedOutput, batch: Batch) -> None:
        self.inner.after_step(out.base, batch)

    def epoch_log(self, epoch: int) -> dict:
        return self.inner.epoch_log(epoch)

    def load_initial_state(self, state: dict[str, torch.Tensor]) -> None:
        """The previous task's method into ``inner`` (its own rules), its classifier carried over."""
        inner = {k[len("inner."):]: v for k, v in state.items() if k.startswith("inner.")} or state
        self.inner.load_initial_state(inner)
        if "classifier.weight" in state:
            self.classifier.load_state_dict({"weight": state["classifier.weight"], "bias": state["classifier.bias"]})
