"""Loading a finished (or interrupted) run: its checkpoint, its configuration, its frozen encoder.

The one place the evaluation protocols (knn, linear, finetune), ``synco analyze`` and ``synco export``
read runs from: a run directory (``RUN/checkpoints/last.ckpt``) or a checkpoint file.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from torch import nn

from synco.config import load_config
from synco.engine.checkpoint import ARCHITECTURE_KEYS, CheckpointError, load_checkpoint, setting_differences
from synco.eval.evaluate import feature_model
from synco.methods import build_method


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


def run_identity(cfg: DictConfig, prefix: str) -> dict:
    """What a protocol's result records about the encoder it evaluated (besides its checkpoint epoch, which
    every protocol records already): method and backbone."""
    return {f"{prefix}method": cfg.method.name, f"{prefix}backbone": cfg.model.backbone}


def frozen_encoder(cfg: DictConfig, state: dict, channels: int, feature: str) -> nn.Module:
    """The checkpoint's query encoder (up to ``feature``), in eval mode, without gradients."""
    method = build_method(cfg, channels, num_train_images=1, seed=cfg.train.seed)
    method.load_state_dict(state["model"])
    model = feature_model(method, feature)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


