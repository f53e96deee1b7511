"""MoCo-v2, MoCHI and SynCo: one method, three negative settings.

    query (B, D) = normalize(head_q(backbone_q(x_q)))
    key   (B, D) = normalize(head_k(backbone_k(x_k)))          no gradient, momentum encoder
    queue logits (B, K) -> N hardest -> synthetic logits (B, S) -> InfoNCE (Eq. 10-11)

Side effects (momentum update, enqueue) are explicit calls made by the training loop, not hidden in
``forward``. With ``negatives=None`` (or every synthetic count at 0) the loss is MoCo-v2's exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from synco import distributed
from synco.checks import ConfigError, at_least, choice, positive
from synco.data.batch import Batch
from synco.losses import InfoNCE
from synco.memory import NegativeQueue
from synco.methods.base import BuildContext, Method, MethodSpec, StepContext
from synco.methods.encoder import Encoder, build_encoder
from synco.methods.outputs import QueueOutput
from synco.models.momentum import momentum_copy, update_momentum
from synco.models.shuffle import batch_shuffle, batch_shuffle_across_ranks, batch_unshuffle
from synco.negatives import COUNT_KEYS, SyntheticNegatives, check_num_hard, mask_logits, mochi
from synco.negatives.schedule import SynthesisSchedule, check_schedule
from synco.negatives.sources import queue_pool
from synco.negatives.synthesize import EXTRAPOLATION_MODES
from synco.registry import METHODS


class MoCo(Method):
    """MoCo-v2 with an optional synthetic-negative generator (MoCHI or SynCo).

    Args:
        encoder: query encoder (backbone + head); the key encoder is a deep copy.
        queue: the (K, D) memory of past keys.
        criterion: the loss of (query, key, queue logits, synthetic logits); InfoNCE(0.2) when None.
        momentum: m in ``theta_k <- m theta_k + (1 - m) theta_q``.
        negatives: the synthetic-negative generator; None for plain MoCo-v2.
        mask_same_image: exclude queue rows holding keys of the query's own image from selection
            and from the loss (useful when K is close to the dataset size).
        shuffle_keys: permute the key batch before the key encoder (with split batch norm this is
            the single-process equivalent of MoCo's shuffle-BN).
        warmup_epochs: epochs before synthesis starts (SynCo's warm-up, 10 in the paper).
        stop_epoch: synthesis runs in epochs ``[warmup_epochs, stop_epoch)`` (SynCo-v2: 30 to 100 of 300);
            None: to the end.
        ramp: ``"none"`` (full counts while synthesis runs), ``"up"`` or ``"down"``: the six counts rise from
            1/E of the full counts to all of them over the E synthesis epochs, or fall from all to 1/E
            (rounded; needs ``stop_epoch``).
        exclude_same_class: label-aware synthesis: queue rows of the query's class (by the labels the
            queue stores) are never selected among the N hardest nor used as sources; they stay negatives
            of the loss. Needs labelled data. Rows of unknown class (the random start) are kept.
        second_queue: MoCo-v2+ (CaSSLe's and PNR's base): with a queue of view-2 keys the loss is
            symmetric, ``(L(q1, k2, queue of view-2 keys) + L(q2, k1, queue of view-1 keys)) / 2``
            (``synco.functional.mocov2plus_loss``), ``queue`` holding view-1 keys.
        momentum_end: MoCo-v2+'s schedule: m rises from ``momentum`` to ``momentum_end`` over the run,
            ``m = end - (end - m0) (cos(pi progress) + 1) / 2`` per step (CaSSLe's ``update_tau``); None: constant.
    """

    negative_analyses = True

    def __init__(
        self,
        encoder: Encoder,
        queue: NegativeQueue,
        criterion: nn.Module | None = None,
        momentum: float = 0.999,
        negatives: SyntheticNegatives | None = None,
        mask_same_image: bool = False,
        shuffle_keys: bool = True,
        warmup_epochs: int = 0,
        stop_epoch: int | None = None,
        ramp: str = "none",
        exclude_same_class: bool = False,
        second_queue: NegativeQueue | None = None,
        momentum_end: float | None = None,
    ) -> None:
        super().__init__()
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must lie in [0, 1], got {momentum}")
        if negatives is not None and negatives.num_synthetic:
            check_num_hard(negatives.num_hard, queue.size)
        self.encoder_q = encoder
        self.encoder_k = momentum_copy(encoder)
        self.queue = queue
        self.criterion = criterion if criterion is not None else InfoNCE(0.2)
        self.momentum = momentum
        self.negatives = negatives
        self.mask_same_image = mask_same_image
        self.shuffle_keys = shuffle_keys
        self.warmup_epochs = warmup_epochs
        self.schedule = SynthesisSchedule(negatives.counts if negatives is not None else (), warmup_epochs,
                                          stop_epoch, ramp)
        self.exclude_same_class = exclude_same_class
        if exclude_same_class:
            self.needs_labels = True
        self.second_queue = second_queue
        self.momentum_end = momentum_end

    @property
    def temperature(self) -> float:
        """tau of the InfoNCE criterion (the analyses temper logits with it)."""
        return self.criterion.temperature

    @property
    def online_encoder(self) -> Encoder:
        return self.encoder_q  # the name MoCo's code and every checkpoint use

    def trainable_parameters(self):
        return self.encoder_q.parameters()

    def synthesizes(self, epoch: int) -> bool:
        """Whether synthetic negatives are used in ``epoch`` (0-based): after the warm-up, before the stop."""
        return self.schedule.active(epoch)

    def synthesis_counts(self, epoch: int) -> tuple[int, ...]:
        """The six counts active in ``epoch`` (``synco.negatives.schedule``)."""
        return self.schedule.counts(epoch)

    def epoch_log(self, epoch: int) -> dict:
        """Whether synthesis ran in ``epoch`` and its counts per query (type 1 to 6, and their sum)."""
        if self.negatives is None:
            return {"train/synthetic": self.synthesizes(epoch)}
        return self.schedule.log(epoch)

    def momentum_at(self, progress: float) -> float:
        """The key encoder's momentum at ``progress`` (share of the run done): constant, or MoCo-v2+'s cosine rise."""
        if self.momentum_end is None:
            return self.momentum
        return self.momentum_end - (self.momentum_end - self.momentum) * (math.cos(math.pi * progress) + 1) / 2

    def momentum_update(self, momentum: float | None = None) -> None:
        """``theta_k <- m theta_k + (1 - m) theta_q`` (:func:`synco.models.momentum.update_momentum`)."""
        update_momentum(self.encoder_q, self.encoder_k, self.momentum if momentum is None else momentum)

    def training_step(self, batch: Batch, context: StepContext) -> QueueOutput:
        """:meth:`pair_step` on the batch's two views (both directions for MoCo-v2+); with ``context.observe``
        the output also holds the queue's image indices (before this step's enqueue) for the analyses."""
        images_q, images_k = batch.views
        synthesize = self.synthesizes(context.epoch)
        if synthesize and self.negatives is not None:  # the schedule's counts: a function of the epoch alone
            self.negatives.counts = self.synthesis_counts(context.epoch)
        out = self.pair_step(images_q, images_k, batch.index, synthesize, context.generator,
                             context.shuffle_generator, return_sources=context.observe, labels=batch.labels,
                             queue=self.second_queue if self.second_queue is not None else self.queue)
        if self.second_queue is not None:  # MoCo-v2+: the other direction, against the view-1 keys
            back = self.pair_step(images_k, images_q, batch.index, synthesize, context.generator,
                                  context.shuffle_generator, labels=batch.labels, queue=self.queue)
            out.loss = (out.loss + back.loss) / 2
            out.key_view_2, out.key = out.key, back.key  # keys of view 2 and of view 1
            out.query_view_2 = back.query  # q2, for regularisers of the two directions (PNR)
            out.synthetic_logits_view_2 = back.synthetic_logits  # q2's synthetic negatives (PNR + SynCo)
        if context.observe:
            queue = self.second_queue if self.second_queue is not None else self.queue
            out.queue_image_index = queue.image_index
        out.momentum = self.momentum_at(context.progress)
        return out

    def after_step(self, out: QueueOutput, batch: Batch) -> None:
        """Momentum update, then enqueue the keys of the whole global batch, in rank order, so that
        every rank's queue stays equal (MoCo-v2+: view-1 keys to ``queue``, view-2 keys to ``second_queue``)."""
        self.momentum_update(out.momentum)
        labels = None if batch.labels is None else distributed.all_gather_cat(batch.labels)
        index = distributed.all_gather_cat(batch.index)
        self.queue.enqueue(distributed.all_gather_cat(out.key), index, labels)
        if self.second_queue is not None:
            self.second_queue.enqueue(distributed.all_gather_cat(out.key_view_2), index, labels)

    @torch.no_grad()
    def encode_keys(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Keys (b, D) of this process's images from the momentum encoder.

        With ``shuffle_keys`` the key encoder sees a permuted batch, so that batch-norm statistics
        cannot leak which key belongs to which query (MoCo's shuffle-BN). With several processes the
        permutation runs over the global batch: every rank gathers all images, encodes the share the
        permutation gives it, and takes back the keys of its own images (MoCo's
        ``_batch_shuffle_ddp``). The permutation is drawn from ``generator`` on rank 0 and broadcast.
        """
        if not self.shuffle_keys:
            return self.encoder_k(images)
        if distributed.is_distributed():
            return batch_shuffle_across_ranks(images, self.encoder_k, generator)
        shuffled, inverse = batch_shuffle(images, generator)  # (B, C, H, W), (B,)
        return batch_unshuffle(self.encoder_k(shuffled), inverse)  # (B, D) back in batch order

    def loss(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        image_index: torch.Tensor | None = None,
        synthesize: bool = True,
        generator: torch.Generator | None = None,
        return_sources: bool = False,
        labels: torch.Tensor | None = None,
        queue: NegativeQueue | None = None,
    ) -> QueueOutput:
        """InfoNCE of a batch against the queue and, if ``synthesize``, the synthetic negatives.

        Args:
            query: (B, D) unit, with gradient.
            key: (B, D) unit, detached.
            image_index: (B,) dataset indices, needed for ``mask_same_image``.
            synthesize: False during warm-up.
            generator: source of the synthesis draws.
            return_sources: also return where the synthetic negatives came from (for the analyses;
                off by default: the (B, S, 2) layout would only add to the step's peak memory).
            labels: (B,) the queries' classes, needed for ``exclude_same_class``.
            queue: the queue of negatives (default ``self.queue``; MoCo-v2+ passes the other view's).

        Returns:
            a :class:`~synco.methods.outputs.QueueOutput` with ``loss`` (scalar), ``queue_logits`` (B, K,
            masked) and ``synthetic_logits`` (B, S; S = 0 when nothing is synthesised), both un-tempered,
            ``positive`` (B,) detached q.k, ``key``, and ``sources`` (``SyntheticSources`` when
            ``return_sources`` and synthesising, else None).
        """
        # The head runs in float32 (float64 stays float64) even under autocast: bf16 logits carry
        # ~3 significant digits, too few for a softmax over K + S negatives at temperature 0.2.
        dtype = torch.promote_types(query.dtype, torch.float32)
        with torch.autocast(query.device.type, enabled=False):
            return self._loss(query.to(dtype), key.to(dtype), image_index, synthesize, generator, return_sources,
                              labels, self.queue if queue is None else queue)

    def _loss(self, query, key, image_index, synthesize, generator, return_sources, labels,
              queue: NegativeQueue) -> QueueOutput:
        # No snapshot copy: the training loop enqueues only after backward, and autograd's version
        # counter raises if the queue is modified in place before the gradient has used it.
        queue_keys = queue.keys.detach().to(query.dtype)  # (K, D)
        raw_logits = torch.einsum("bd,kd->bk", query, queue_keys)  # (B, K)
        queue_logits, exclude = raw_logits, None
        if self.mask_same_image and image_index is not None:
            exclude = queue.same_image_mask(image_index)  # (B, K)
            queue_logits = mask_logits(raw_logits, exclude)
        synthetic_logits = query.new_zeros(query.shape[0], 0)  # (B, 0)
        sources = None
        if synthesize and self.negatives is not None and self.negatives.num_synthetic > 0:
            same_class = None
            if self.exclude_same_class:
                if labels is None:
                    raise ValueError("method.negatives.exclude_same_class needs the batch's labels")
                same_class = queue.same_class_mask(labels)  # (B, K): selection and sources only
            pool = queue_pool(queue_keys, same_image=exclude, same_class=same_class)
            arguments = dict(generator=generator, queue_logits=raw_logits, exclude=pool.exclude)
            if return_sources:
                synthetic_logits, sources = self.negatives.logits_and_sources(query, pool.candidates, **arguments)
            else:
                synthetic_logits = self.negatives.logits(query, pool.candidates, **arguments)  # (B, S)
        loss = self.criterion(query, key, queue_logits, synthetic_logits)
        positive = torch.einsum("bd,bd->b", query.detach(), key)  # (B,) for the analyses
        return QueueOutput(loss=loss, key=key, queue_logits=queue_logits, synthetic_logits=synthetic_logits,
                           positive=positive, sources=sources)

    def pair_step(
        self,
        images_q: torch.Tensor,
        images_k: torch.Tensor,
        image_index: torch.Tensor | None = None,
        synthesize: bool = True,
        generator: torch.Generator | None = None,
        shuffle_generator: torch.Generator | None = None,
        return_sources: bool = False,
        labels: torch.Tensor | None = None,
        queue: NegativeQueue | None = None,
    ) -> QueueOutput:
        """Forward both views and compute the loss; the caller then steps the optimizer and calls
        :meth:`after_step` (momentum update, enqueue of all ranks' keys); ``synco.engine.step.train_step``
        does all of it.

        Args:
            generator: source of the synthesis draws (and of the key shuffle if
                ``shuffle_generator`` is None).
            shuffle_generator: source of the key-shuffle permutation.
            return_sources: as in :meth:`loss`.

        Returns:
            :meth:`loss`'s record with ``query`` (B, D) set.
        """
        query = self.encoder_q(images_q)  # (B, D)
        key = self.encode_keys(images_k, shuffle_generator if shuffle_generator is not None else generator)
        out = self.loss(query, key, image_index, synthesize, generator, return_sources, labels, queue)
        out.query = query
        return out


# --------------------------------------------------------------------------- configuration and registration
@dataclass
class NegativesConfig:
    """``method.negatives``: SynCo's synthetic negatives (the paper's defaults, section 5.1)."""

    num_hard: int = 1024  # N, hardest queue negatives the synthetic ones are made from
    num_interpolate: int = 256  # type 1 per query: normalize(alpha q + (1 - alpha) n) (MoCHI's s' with mochi)
    num_extrapolate: int = 256  # type 2 per query: normalize(n + beta (n - q)) (Eq. 5)
    num_mixup: int = 256  # type 3 per query: normalize(gamma n_i + (1 - gamma) n_j) (MoCHI's s with mochi)
    num_noise: int = 64  # type 4 per query: normalize(n + e), e ~ N(0, sigma^2 I)
    num_perturb: int = 64  # type 5 per query: normalize(n + delta q), the step along grad_n(q.n) = q
    num_adversarial: int = 64  # type 6 per query: normalize(n + eta sign(q))
    alpha_max: float = 0.5  # alpha ~ U(0, alpha_max), in (0, 1]
    beta_max: float = 1.5  # beta ~ U(1, beta_max), above 1
    sigma: float = 0.01  # noise scale of type 4
    delta: float = 0.01  # step of type 5
    eta: float = 0.01  # step of type 6
    extrapolation: str = "paper"  # paper: Eq. 5; reference: the authors' code
    warmup_epochs: int = 10  # epochs of plain MoCo-v2 before synthesis starts
    # Synthesis stops before this epoch (0-based; SynCo-v2 synthesises in epochs 30-100 of 300); None: never stops
    stop_epoch: Optional[int] = None
    # none: full counts while synthesis runs; up / down: counts rise from 1/E of each count to all of it, or fall
    # from all to 1/E, linearly over the E = stop_epoch - warmup_epochs synthesis epochs (needs stop_epoch)
    ramp: str = "none"
    # Label-aware SynCo: queue rows of the query's class are never among the N hardest or sources (they stay
    # negatives of the loss); needs labelled data. Off: the paper's label-free SynCo.
    exclude_same_class: bool = False


@dataclass
class MoCoConfig:
    """``method:`` block of ``moco_v2``, ``mochi`` and ``synco``."""

    name: str = "synco"  # moco_v2: no synthetic negatives; mochi: types 1 and 3 only; synco: all six
    queue_size: int = 65536  # K, past keys used as negatives
    momentum: float = 0.999  # m of the key encoder, theta_k <- m theta_k + (1 - m) theta_q
    temperature: float = 0.2  # tau of InfoNCE
    # None: mask a query's own older keys when queue_size >= number of training images.
    mask_same_image: Optional[bool] = None
    # MoCo-v2+ (CaSSLe's and PNR's base): the symmetric loss with one queue of K keys per view.
    symmetric: bool = False
    # None: constant momentum; else it rises from method.momentum to this over the run, per step, on a cosine
    # (MoCo-v2+'s 0.99 -> 1.0 in the authors' scripts).
    momentum_end: Optional[float] = None
    negatives: NegativesConfig = field(default_factory=NegativesConfig)


def build_negatives(cfg: DictConfig) -> SyntheticNegatives | None:
    """The synthetic-negative generator of ``method.name``: None for MoCo-v2."""
    neg = cfg.method.negatives
    if cfg.method.name == "moco_v2":
        return None
    if cfg.method.name == "mochi":
        return mochi(num_hard=neg.num_hard, num_mix=neg.num_mixup, num_query_mix=neg.num_interpolate)
    # The config's field names are the constructor's; the warm-up and the label rule belong to the method.
    settings = {key: value for key, value in neg.items()
                if key not in ("warmup_epochs", "stop_epoch", "ramp", "exclude_same_class")}
    return SyntheticNegatives(**settings)


def build_moco(context: BuildContext) -> MoCo:
    """MoCo-v2 / MoCHI / SynCo with a fresh encoder, seeded by ``context.seed``.

    ``method.mask_same_image=None`` turns masking on when the queue can hold a key of every
    training image, i.e. when older keys of a query's own image are in the queue.
    """
    cfg = context.cfg
    torch.manual_seed(context.seed)
    encoder = build_encoder(cfg, context.in_channels)
    mask = cfg.method.mask_same_image
    if mask is None:
        mask = cfg.method.queue_size >= context.num_train_images
    queue = NegativeQueue(cfg.method.queue_size, cfg.model.embedding_dim,
                          generator=torch.Generator().manual_seed(context.seed + 1))
    return MoCo(
        encoder,
        queue=queue,
        criterion=InfoNCE(cfg.method.temperature),
        momentum=cfg.method.momentum,
        negatives=build_negatives(cfg),
        mask_same_image=bool(mask),
        shuffle_keys=cfg.model.shuffle_keys,
        warmup_epochs=cfg.method.negatives.warmup_epochs,
        stop_epoch=cfg.method.negatives.stop_epoch,
        ramp=cfg.method.negatives.ramp,
        exclude_same_class=cfg.method.negatives.exclude_same_class,
        second_queue=NegativeQueue(cfg.method.queue_size, cfg.model.embedding_dim,
                                   generator=torch.Generator().manual_seed(context.seed + 2))
        if cfg.method.symmetric else None,
        momentum_end=cfg.method.momentum_end,
    )


def validate_moco(cfg: DictConfig) -> None:
    """Ranges of the ``method`` block and the rules between its fields."""
    choice(cfg, "method.negatives.extrapolation", EXTRAPOLATION_MODES)
    at_least(cfg, "method.queue_size", 1)
    regularizer = OmegaConf.select(cfg, "continual.regularizer", default="none")
    if regularizer != "none" and not cfg.method.symmetric:
        raise ConfigError(f"continual.regularizer={regularizer} has no form for method.name={cfg.method.name} without "
                          "method.symmetric=true: the regularisers are built on MoCo-v2+ (both views as queries)")
    at_least(cfg, "method.negatives.warmup_epochs", 0)
    neg = cfg.method.negatives
    try:
        check_schedule(neg.warmup_epochs, neg.stop_epoch, neg.ramp)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    positive(cfg, "method.temperature")
    for key in ("num_hard", *COUNT_KEYS, "sigma", "delta", "eta"):
        at_least(cfg, f"method.negatives.{key}", 0)
    neg = cfg.method.negatives
    if not 0 < neg.alpha_max <= 1:
        raise ConfigError(f"method.negatives.alpha_max={neg.alpha_max} must lie in (0, 1]")
    if not neg.beta_max > 1:
        raise ConfigError(f"method.negatives.beta_max={neg.beta_max} must be greater than 1")
    if not 0 <= cfg.method.momentum <= 1:
        raise ConfigError(f"method.momentum={cfg.method.momentum} must lie in [0, 1]")
    end = cfg.method.momentum_end
    if end is not None and not cfg.method.momentum <= end <= 1:
        raise ConfigError(f"method.momentum_end={end} must lie in [method.momentum, 1] = [{cfg.method.momentum}, 1]")
    if cfg.method.name == "mochi":
        for key in ("num_extrapolate", "num_noise", "num_perturb", "num_adversarial"):
            if neg[key] != 0:
                raise ConfigError(
                    f"method.negatives.{key}={neg[key]} must be 0 for method.name=mochi "
                    "(MoCHI uses num_mixup = s and num_interpolate = s' only)"
                )
    if cfg.method.name != "moco_v2" and sum(neg[key] for key in COUNT_KEYS) > 0:
        if neg.num_hard < 1:
            raise ConfigError("method.negatives.num_hard must be at least 1 when any synthetic count is positive")
        try:
            check_num_hard(neg.num_hard, cfg.method.queue_size)
        except ValueError:
            raise ConfigError(
                f"method.negatives.num_hard={neg.num_hard} is larger than method.queue_size={cfg.method.queue_size}"
            ) from None


_MOCO = MethodSpec(MoCoConfig, build_moco, validate_moco,
                   "MoCo-v2 with a queue; MoCHI / SynCo add synthetic hard negatives (method.negatives)",
                   continual_family="moco")
METHODS.register("moco_v2", _MOCO)
METHODS.register("mochi", _MOCO)
METHODS.register("synco", _MOCO)
