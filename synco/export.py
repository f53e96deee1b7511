"""``synco export``: a run's backbone for other code bases.

- ``torchvision``: the query encoder's ResNet in torchvision's key names, without the classifier, saved
  as a plain state dict: ``torchvision.models.resnet50().load_state_dict(sd, strict=False)`` reports
  only ``fc.weight`` and ``fc.bias`` missing, and the loaded model (``fc = nn.Identity()``) computes the
  same features.
- ``detectron2``: the same weights renamed to Detectron2's ResNet names and pickled as
  ``{"model": {name: numpy array}, "__author__": "synco", "matching_heuristics": True}``, the layout of
  MoCo's ``convert-pretrain-to-detectron2.py``, for the detection transfer of the paper (VOC, COCO; see
  docs/evaluation.md).

Files are written to a temporary name and renamed, so an interrupted export leaves no half file.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import torch

from synco.compose import build_method, probe_classes
from synco.errors import ensure_writable_dir
from synco.models.backbones import TorchvisionResNet
from synco.runs import load_run

FORMATS = ("torchvision", "detectron2")


def torchvision_state_dict(method) -> dict[str, torch.Tensor]:
    """The query backbone's weights and batch-norm statistics in torchvision's names (no ``fc``)."""
    backbone = method.backbone
    if not isinstance(backbone, TorchvisionResNet):  # a configuration choice, reported like other bad values
        raise ValueError(  # noqa: TRY004
            f"export needs a torchvision ResNet backbone (model.backbone=resnet18/34/50/101), not "
            f"{type(backbone).__name__}"
        )
    return {k: v.detach().cpu().clone() for k, v in backbone.net.state_dict().items() if not k.startswith("fc.")}


def detectron2_name(name: str) -> str:
    """torchvision ResNet key -> Detectron2 ResNet key (stem, res2..res5, convN.norm, shortcut)."""
    if not name.startswith("layer"):
        name = "stem." + name  # conv1, bn1
    name = re.sub(r"^layer(\d)", lambda m: f"res{int(m.group(1)) + 1}", name)
    name = re.sub(r"(^|\.)bn(\d)", r"\1conv\2.norm", name)
    return name.replace("downsample.0", "shortcut").replace("downsample.1", "shortcut.norm")


def detectron2_weights(state: dict[str, torch.Tensor]) -> dict:
    """Detectron2's checkpoint layout of a torchvision state dict (batch counters dropped)."""
    model = {detectron2_name(k): v.numpy() for k, v in state.items() if not k.endswith("num_batches_tracked")}
    return {"model": model, "__author__": "synco", "matching_heuristics": True}


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


def export_run(target: str | Path, fmt: str, out: str | Path) -> dict:
    """Export a run's (directory or checkpoint) backbone; returns a small description of what was written."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {FORMATS}, got {fmt!r}")
    out = Path(out)
    ensure_writable_dir(out.parent, "the export's folder")
    state, cfg, _ = load_run(target)
    # The first convolution of the trained backbone tells the input channels (the method's first 4-d weight).
    first_conv = next(v for k, v in state["model"].items() if ".backbone." in k and v.dim() == 4)
    method = build_method(cfg, first_conv.shape[1], num_train_images=1, seed=0,  # input channels from the weights
                          num_classes=probe_classes(state["model"]))
    method.load_state_dict(state["model"])
    weights = torchvision_state_dict(method)
    if fmt == "torchvision":
        _atomic_write(out, lambda f: torch.save(weights, f))
    else:
        _atomic_write(out, lambda f: pickle.dump(detectron2_weights(weights), f))
    return {"tensors": len(weights), "backbone": cfg.model.backbone, "small_stem": bool(cfg.model.small_stem),
            "epoch": int(state["epoch"]), "out": str(out)}
