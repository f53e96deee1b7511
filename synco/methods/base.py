"""The method contract: what the training loop, evaluation, export and checkpoints may assume.

A method is an ``nn.Module`` that implements

- :meth:`Method.training_step` ``(batch, context) -> {"loss": scalar, ...}``: the forward pass and
  loss of one process's share of a batch (tensors it returns may be read by the analyses);
- :meth:`Method.after_step` ``(out, batch)``: what follows the optimizer step (momentum updates,
  enqueues), called once per step by the loop, on every process;
- :meth:`Method.trainable_parameters`: what the optimizer updates (online encoder, heads, predictors;
  never momentum copies or queues);
- :attr:`Method.online_encoder` (backbone + head), from which :attr:`Method.backbone` (the features that
  evaluation - kNN, linear probe, fine-tuning - and export use) and :attr:`Method.embedding_model` (the
  projected embeddings) follow;
- its state for checkpoints: everything a resumed run needs is a parameter or a buffer (queues and
  their pointers included), so ``state_dict()`` / ``load_state_dict()`` carry it.

Methods are registered by name with a :class:`MethodSpec` (their config block and their builder) in
``synco.registry.METHODS``; the training loop (``synco.engine.fit``) knows nothing else about them.
See docs/architecture.md for the worked example (SimCLR).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from torch import nn

from synco.data.batch import Batch
from synco.methods.outputs import StepOutput
from synco.models.compiled import CompilableForward
from synco.models.state import state_mismatch
from synco.negatives import SyntheticNegatives


@dataclass
class StepContext:
    """What a training step may need beyond the batch.

    Attributes:
        epoch: 0-based epoch of this step (SynCo's warm-up reads it).
        generator: this process's source of random draws inside the step (synthetic negatives).
        shuffle_generator: source of key-shuffle permutations (rank 0's draw is broadcast).
        observe: the analyses will read this step's outputs; a method may then return more
            (e.g. where its synthetic negatives came from), which costs memory on other steps.
        progress: share of the run's optimizer steps done before this one, in [0, 1] (schedules that
            change per step, such as a cosine-increased momentum, read it).
    """

    epoch: int = 0
    generator: torch.Generator | None = None
    shuffle_generator: torch.Generator | None = None
    observe: bool = False
    progress: float = 0.0


class Method(nn.Module):
    """Base class of every training method; subclasses implement the abstract members below.

    Class attributes:
        negative_analyses: the step returns a :class:`~synco.methods.outputs.QueueOutput` with
            ``queue_logits``, ``synthetic_logits``, ``positive`` and ``sources``, so the per-step analyses of
            negatives apply.
        needs_labels: the loss is supervised; the loop refuses data whose images lack labels before it
            trains (an instance may set it from its configuration).
    """

    negative_analyses: bool = False
    needs_labels: bool = False

    def training_step(self, batch: Batch, context: StepContext) -> StepOutput:
        """Loss of this process's share of ``batch``: a :class:`~synco.methods.outputs.StepOutput` of the
        method's family (``synco.methods.outputs``), whose ``loss`` is a scalar with gradient."""
        raise NotImplementedError

    def after_step(self, out: StepOutput, batch: Batch) -> None:
        """Called after every optimizer step with that step's ``out`` (momentum updates, enqueues)."""

    def trainable_parameters(self) -> Iterable[nn.Parameter]:
        """The parameters the optimizer updates (default: all that require a gradient)."""
        return [p for p in self.parameters() if p.requires_grad]

    @property
    def online_encoder(self) -> nn.Module:
        """The trained encoder, an :class:`~synco.methods.encoder.Encoder` (backbone + projection head).

        Methods laid out otherwise override :attr:`backbone` and :attr:`embedding_model` instead.
        """
        raise NotImplementedError

    @property
    def backbone(self) -> nn.Module:
        """The encoder up to its features (B, F): what evaluation and export use."""
        return self.online_encoder.backbone

    @property
    def embedding_model(self) -> nn.Module:
        """Backbone plus projection head: unit embeddings (B, D), for ``eval.feature=embedding``."""
        return self.online_encoder

    def load_initial_state(self, state: dict[str, torch.Tensor]) -> None:
        """Start from another run's weights (``train.init_from``: the previous task of a continual stream).

        The default loads ``state`` as this method's own state dict and raises ``ValueError`` naming what
        does not fit; methods that wrap another (continual regularisers) map it onto their parts.
        """
        mismatch = state_mismatch(self, state)
        if mismatch:
            raise ValueError(f"the initial weights do not fit this model: {mismatch}")
        self.load_state_dict(state)

    def compile_parts(self, mode: str = "default") -> list[str]:
        """Compile, for training, what pays off (``trainer.compile``): every encoder (backbone + head) and loss
        module with :class:`synco.models.compiled.CompilableForward`, and the synthetic negatives' path after
        the selection. State dict, evaluation and random streams are unchanged. Methods with other hot
        spots override this (and call it).

        Returns:
            The names of the compiled submodules (for the log).
        """
        compiled = []
        for name, module in self.named_modules():
            if isinstance(module, CompilableForward):
                module.compile_forward(mode)
                compiled.append(name)
            elif isinstance(module, SyntheticNegatives):
                module.compile_path(mode)
                compiled.append(name)
        return compiled

    def epoch_log(self, epoch: int) -> dict:
        """Per-epoch entries for metrics.jsonl describing the method's state in ``epoch`` (0-based)."""
        return {}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone features (B, F) of ``images``: what evaluation uses."""
        return self.backbone(images)


@dataclass(frozen=True)
class BuildContext:
    """What a method's builder gets: the whole configuration and facts about the data.

    Attributes:
        cfg: the validated configuration (builders are the only method code that reads it).
        in_channels: C of the images.
        num_train_images: size of the pretraining set (MoCo decides same-image masking from it).
        seed: the run's seed; builders seed the initial weights from it.
    """

    cfg: DictConfig
    in_channels: int
    num_train_images: int
    seed: int


@dataclass(frozen=True)
class MethodSpec:
    """A registered method.

    Attributes:
        config: the dataclass of its ``method:`` block (OmegaConf structured config); its fields, types
            and defaults are the allowed keys, checked before any work starts.
        build: ``build(BuildContext) -> Method``.
        validate: optional cross-field checks of the whole configuration, raising
            ``synco.config.ConfigError`` that names the field.
        summary: one line for ``synco --help`` and the docs.
        multi_view: the method trains on every view of ``data.views`` (multi-crop); False: on exactly two.
        continual_family: which form of the continual regularisers applies (``moco``, ``simclr``, ``byol``: see
            ``synco.continual.regularizers.FAMILY_NEEDS`` for what each reads from the step outputs); None: the
            regularisers are refused for this method.
    """

    config: type
    build: Callable[[BuildContext], Method]
    validate: Callable[[DictConfig], None] | None = None
    summary: str = ""
    multi_view: bool = False
    continual_family: str | None = None


def feature_model(method: Method, feature: str) -> nn.Module:
    """The part of a method whose output evaluation uses: ``backbone`` (F) or ``embedding`` (D, the head's output)."""
    return method.backbone if feature == "backbone" else method.embedding_model
