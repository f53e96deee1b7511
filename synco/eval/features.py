"""Feature extraction for evaluation (no augmentation)."""

from __future__ import annotations

import torch


@torch.no_grad()
def extract_features(
    model: torch.nn.Module, images: torch.Tensor, mean: list[float], std: list[float],
    batch_size: int = 512, device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Run ``model`` in eval mode over uint8 images (N, C, H, W); returns (N, F) float32 on the CPU."""
    was_training = model.training
    model.eval()
    mean_t = torch.tensor(mean, device=device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, -1, 1, 1)
    out = []
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size].to(device).float() / 255
        out.append(model((x - mean_t) / std_t).float().cpu())  # (b, F)
    model.train(was_training)
    return torch.cat(out)


def raw_pixel_features(images: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """Standardised, flattened pixels (N, C*H*W): the raw-pixel kNN baseline."""
    x = images.float() / 255
    x = (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    return x.flatten(1)
