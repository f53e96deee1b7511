"""Loading a finished (or interrupted) run: its checkpoint, its configuration, its frozen encoder.

The one place the evaluation protocols (knn, linear, finetune), ``synco analyze`` and ``synco export``
read runs from: a run directory (``RUN/checkpoints/last.ckpt``) or a checkpoint file.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from torch import nn

from synco.compose import build_method, probe_classes
from synco.config import load_config
from synco.data.loaders import normalisation
from synco.engine.checkpoint import ARCHITECTURE_KEYS, CheckpointError, load_checkpoint, setting_differences
from synco.engine.inputs import pretraining_images
from synco.methods.base import feature_model


def resolve_checkpoint(target: str | Path) -> tuple[Path, Path]:
    """(checkpoint file, run directory) from a run directory or a checkpoint path."""
    target = Path(target)
    if target.is_dir():
        return target / "checkpoints" / "last.ckpt", target
    return target, target.parent.parent if target.parent.name == "checkpoints" else target.parent


def load_run(target: str | Path, recipe: str | None = None, overrides: list[str] = ()):
    """(checkpoint state, merged configuration, run directory); the configuration starts from the checkpoint's.

    Raises:
        CheckpointError: unreadable checkpoint, or one that does not belong to the run directory its results
            would be written to (its settings differ from the directory's config.yaml).
    """
    path, run_dir = resolve_checkpoint(target)
    state = load_checkpoint(path)
    saved = run_dir / "config.yaml"
    if saved.is_file():
        differences = setting_differences(state["config"], OmegaConf.load(saved), (*ARCHITECTURE_KEYS, "data.dataset"),
                                          here="in the run's config.yaml")
        if differences:
            raise CheckpointError(
                f"checkpoint {path} does not belong to the run in {run_dir} ({'; '.join(differences)}), and results "
                f"would be written there; put the checkpoint in a folder of its own and evaluate it there"
            )
    cfg = load_config(recipe, list(overrides), base_yaml=state["config"])
    return state, cfg, run_dir


def run_normalisation(state: dict, cfg: DictConfig, labelled) -> tuple[list[float], list[float]]:
    """The channel mean and std the run's encoder was pretrained with, which every protocol must feed it.

    Pretraining normalises with the statistics of its own images (``data.subset`` of the pretraining split),
    which differ from those of an evaluation subset (``eval.train_subset``) or of the whole labelled split,
    and records them in the checkpoint. Checkpoints written before that recompute them from the
    pretraining images (``labelled``: the run's labelled training split).
    """
    saved = state.get("normalisation")
    if saved is not None:
        return [float(v) for v in saved["mean"]], [float(v) for v in saved["std"]]
    return normalisation(pretraining_images(cfg, labelled))


def run_identity(cfg: DictConfig, prefix: str) -> dict:
    """What a protocol's result records about the encoder it evaluated (besides its checkpoint epoch, which
    every protocol records already): method and backbone."""
    return {f"{prefix}method": cfg.method.name, f"{prefix}backbone": cfg.model.backbone}


def frozen_encoder(cfg: DictConfig, state: dict, channels: int, feature: str) -> nn.Module:
    """The checkpoint's query encoder (up to ``feature``), in eval mode, without gradients."""
    method = build_method(cfg, channels, num_train_images=1, seed=cfg.train.seed,
                          num_classes=probe_classes(state["model"]))
    method.load_state_dict(state["model"])
    model = feature_model(method, feature)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


