"""MoCo-v2, MoCHI and SynCo: one method, three negative settings.

    query (B, D) = normalize(head_q(backbone_q(x_q)))
    key   (B, D) = normalize(head_k(backbone_k(x_k)))          no gradient, momentum encoder
    queue logits (B, K) -> N hardest -> synthetic logits (B, S) -> InfoNCE (Eq. 10-11)

Side effects (momentum update, enqueue) are explicit calls made by the training loop, not hidden in
``forward``. With ``negatives=None`` (or every synthetic count at 0) the loss is MoCo-v2's exactly.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from synco import distributed
from synco.functional import info_nce_loss
from synco.memory import NegativeQueue
from synco.negatives import SyntheticNegatives, mask_logits


class Encoder(nn.Module):
    """Backbone followed by a projection head; returns unit embeddings (B, D)."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.backbone(images)), dim=1)  # (B, D)


class MoCo(nn.Module):
    """MoCo-v2 with an optional synthetic-negative generator (MoCHI or SynCo).

    Args:
        encoder: query encoder (backbone + head); the key encoder is a deep copy.
        embedding_dim: D.
        queue_size: K.
        momentum: m in ``theta_k <- m theta_k + (1 - m) theta_q``.
        temperature: tau.
        negatives: the synthetic-negative generator; None for plain MoCo-v2.
        mask_same_image: exclude queue rows holding keys of the query's own image from selection
            and from the loss (useful when K is close to the dataset size).
        shuffle_keys: permute the key batch before the key encoder (with split batch norm this is
            the single-process equivalent of MoCo's shuffle-BN).
        queue_generator: seeds the random initial queue.
    """

    def __init__(
        self,
        encoder: Encoder,
        embedding_dim: int,
        queue_size: int = 65536,
        momentum: float = 0.999,
        temperature: float = 0.2,
        negatives: SyntheticNegatives | None = None,
        mask_same_image: bool = False,
        shuffle_keys: bool = True,
        queue_generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must lie in [0, 1], got {momentum}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if negatives is not None and negatives.num_synthetic and negatives.num_hard > queue_size:
            raise ValueError(
                f"num_hard={negatives.num_hard} is larger than queue_size={queue_size}"
            )
        self.encoder_q = encoder
        self.encoder_k = copy.deepcopy(encoder)
        for p in self.encoder_k.parameters():
            p.requires_grad_(False)
        self.queue = NegativeQueue(queue_size, embedding_dim, generator=queue_generator)
        self.momentum = momentum
        self.temperature = temperature
        self.negatives = negatives
        self.mask_same_image = mask_same_image
        self.shuffle_keys = shuffle_keys

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone features of the query encoder, (B, F): what evaluation uses."""
        return self.encoder_q.backbone(images)

    @torch.no_grad()
    def momentum_update(self) -> None:
        """``theta_k <- m theta_k + (1 - m) theta_q`` over parameters only, as in MoCo: buffers (batch-norm
        running statistics) are not averaged; the key encoder's come from its own forward passes."""
        for p_k, p_q in zip(self.encoder_k.parameters(), self.encoder_q.parameters()):
            p_k.mul_(self.momentum).add_(p_q.detach(), alpha=1 - self.momentum)

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
            return self._encode_keys_shuffled_across_ranks(images, generator)
        perm = torch.randperm(images.shape[0], generator=generator, device=images.device)  # (B,)
        keys = self.encoder_k(images[perm])  # (B, D) in shuffled order
        return keys[torch.argsort(perm)]  # (B, D) back in batch order

    def _encode_keys_shuffled_across_ranks(
        self, images: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        local, world, rank = images.shape[0], distributed.world_size(), distributed.rank()
        everything = distributed.all_gather_cat(images)  # (W b, C, H, W), rank-major
        perm = torch.randperm(world * local, generator=generator, device=images.device)  # (W b,)
        distributed.broadcast_(perm, src=0)  # every rank must use rank 0's permutation
        mine = perm.view(world, local)[rank]  # (b,) global positions this rank encodes
        keys = distributed.all_gather_cat(self.encoder_k(everything[mine]))  # (W b, D) in permuted order
        keys = keys[torch.argsort(perm)]  # (W b, D) in global batch order
        return keys.view(world, local, -1)[rank]  # (b, D) the keys of this rank's images

    def loss(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        image_index: torch.Tensor | None = None,
        synthesize: bool = True,
        generator: torch.Generator | None = None,
        return_sources: bool = False,
    ) -> dict[str, torch.Tensor]:
        """InfoNCE of a batch against the queue and, if ``synthesize``, the synthetic negatives.

        Args:
            query: (B, D) unit, with gradient.
            key: (B, D) unit, detached.
            image_index: (B,) dataset indices, needed for ``mask_same_image``.
            synthesize: False during warm-up.
            generator: source of the synthesis draws.
            return_sources: also return where the synthetic negatives came from (for the analyses;
                off by default: the (B, S, 2) layout would only add to the step's peak memory).

        Returns:
            dict with ``loss`` (scalar), ``queue_logits`` (B, K, masked) and ``synthetic_logits``
            (B, S; S = 0 when nothing is synthesised), both un-tempered, ``positive`` (B,) detached q.k,
            and ``sources`` (``SyntheticSources`` when ``return_sources`` and synthesising, else None).
        """
        # The head runs in float32 (float64 stays float64) even under autocast: bf16 logits carry
        # ~3 significant digits, too few for a softmax over K + S negatives at temperature 0.2.
        dtype = torch.promote_types(query.dtype, torch.float32)
        with torch.autocast(query.device.type, enabled=False):
            return self._loss(query.to(dtype), key.to(dtype), image_index, synthesize, generator, return_sources)

    def _loss(self, query, key, image_index, synthesize, generator, return_sources) -> dict[str, torch.Tensor]:
        # No snapshot copy: the training loop enqueues only after backward, and autograd's version
        # counter raises if the queue is modified in place before the gradient has used it.
        queue_keys = self.queue.keys.detach().to(query.dtype)  # (K, D)
        raw_logits = torch.einsum("bd,kd->bk", query, queue_keys)  # (B, K)
        queue_logits, exclude = raw_logits, None
        if self.mask_same_image and image_index is not None:
            exclude = self.queue.same_image_mask(image_index)  # (B, K)
            queue_logits = mask_logits(raw_logits, exclude)
        synthetic_logits = query.new_zeros(query.shape[0], 0)  # (B, 0)
        sources = None
        if synthesize and self.negatives is not None and self.negatives.num_synthetic > 0:
            arguments = dict(generator=generator, queue_logits=raw_logits, exclude=exclude)
            if return_sources:
                synthetic_logits, sources = self.negatives.logits_and_sources(query, queue_keys, **arguments)  # (B, S)
            else:
                synthetic_logits = self.negatives.logits(query, queue_keys, **arguments)  # (B, S)
        loss = info_nce_loss(query, key, queue_logits, synthetic_logits, self.temperature)
        positive = torch.einsum("bd,bd->b", query.detach(), key)  # (B,) for the analyses
        return {"loss": loss, "queue_logits": queue_logits, "synthetic_logits": synthetic_logits,
                "positive": positive, "sources": sources}

    def training_step(
        self,
        images_q: torch.Tensor,
        images_k: torch.Tensor,
        image_index: torch.Tensor | None = None,
        synthesize: bool = True,
        generator: torch.Generator | None = None,
        shuffle_generator: torch.Generator | None = None,
        return_sources: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Forward both views and compute the loss; the caller then steps the optimizer and calls
        :meth:`momentum_update` and ``queue.enqueue(keys, image_index)`` with the keys of all ranks
        (``synco.engine.step.train_step`` does all of it).

        Args:
            generator: source of the synthesis draws (and of the key shuffle if
                ``shuffle_generator`` is None).
            shuffle_generator: source of the key-shuffle permutation.
            return_sources: as in :meth:`loss`.

        Returns:
            :meth:`loss`'s dict plus ``query`` (B, D) and ``key`` (B, D).
        """
        query = self.encoder_q(images_q)  # (B, D)
        key = self.encode_keys(images_k, shuffle_generator if shuffle_generator is not None else generator)
        out = self.loss(query, key, image_index, synthesize, generator, return_sources)
        out.update(query=query, key=key)
        return out
