"""The composition root of a model: the registered method, wrapped for continual learning when asked.

Everything that builds a model from a configuration (pretraining, continual streams, evaluation of a run,
export, analyses, benches) calls :func:`build_method`; it sits above the methods and the continual wrappers
so that neither imports the other's layer upwards.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from synco.continual.online_probe import OnlineProbe
from synco.continual.regularized import Regularized
from synco.methods.base import BuildContext, Method
from synco.registry import METHODS


def probe_classes(state: dict) -> int | None:
    """Classes of a saved model's online probe (``continual.online_probe``), None without one: what
    :func:`build_method` needs to rebuild that model from its checkpoint."""
    weight = state.get("classifier.weight")
    return None if weight is None else int(weight.shape[0])


def build_method(cfg: DictConfig, in_channels: int, num_train_images: int, seed: int,
                 num_classes: int | None = None) -> Method:
    """The method named ``cfg.method.name``, with fresh weights seeded by ``seed`` (wrapped by a continual
    regulariser in later tasks, and by CaSSLe's online probe over ``num_classes`` classes when asked for)."""
    method = METHODS.get(cfg.method.name).build(BuildContext(cfg, in_channels, num_train_images, seed))
    continual = cfg.get("continual")
    if continual is not None and continual.regularizer != "none" and (continual.current_task or 0) >= 1:
        family = METHODS.get(cfg.method.name).continual_family  # declared at registration, never inferred
        method = Regularized(method, family, continual.regularizer, continual.predictor_hidden, continual.distill_weight,
                             continual.distill_temperature, continual.frozen_batchnorm, seed,
                             continual.pseudo_negatives, continual.negative_weight)
    if continual is not None and continual.online_probe:
        if num_classes is None:
            raise ValueError("continual.online_probe=true needs the number of classes of the data set")
        torch.manual_seed(seed + 6)
        method = OnlineProbe(method, num_classes)
    return method
