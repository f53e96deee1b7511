"""Input pipeline alone: images per second of decoding + MoCo-v2 augmentation from image files.

What one machine's CPUs can feed, for data read from disk (ImageNet-style folders): each image is
decoded with Pillow and either augmented twice with torchvision (RandomResizedCrop to ``image_size``,
colour jitter, grayscale, blur, flip: ``augment_on=sample``) or only cropped twice, the rest being left
to the accelerator (``augment_on=accelerator``), and collated, in 0..n DataLoader workers. Without a folder it writes
synthetic JPEGs of ImageNet's typical size (500 x 375, quality 90: smooth colour fields with noise,
so they compress like photographs rather than like flat colours) to a temporary folder.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from synco.data.folders import IMAGENET_MEAN, IMAGENET_STD, load_folder_split
from synco.data.loaders import ViewsDataset
from synco.data.transforms import TwoViews, pretrain_transform


def write_synthetic_jpegs(folder: Path, count: int, size=(500, 375), seed: int = 0) -> None:
    """``count`` JPEGs in ``folder/train/<class>/`` (10 classes)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    for i in range(count):
        base = rng.uniform(0, 255, 3)
        slope = rng.uniform(-0.4, 0.4, (2, 3))
        image = base + xx[..., None] * slope[0] + yy[..., None] * slope[1] + rng.normal(0, 12, (height, width, 3))
        out = folder / "train" / f"class{i % 10}"
        out.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(out / f"{i:05d}.jpg", quality=90)


def _rate(dataset, workers: int, batch: int, seed: int = 0) -> float:
    """Images per second of one pass over ``dataset`` (after the workers have started)."""
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, shuffle=False, num_workers=workers, generator=torch.Generator().manual_seed(seed),
        prefetch_factor=4 if workers else None, persistent_workers=False,
    )
    iterator = iter(loader)
    next(iterator)  # the first batch includes worker start-up; not timed
    start, images = time.perf_counter(), 0
    for batch_views in iterator:
        images += batch_views[0].shape[0]
    return images / (time.perf_counter() - start)


def run_pipeline(root: str | None, image_size: int, count: int, workers: list[int], batch: int) -> dict:
    """Rows of images/s for decoding alone and for decoding + two augmented views, per worker count."""
    with tempfile.TemporaryDirectory() as tmp:
        if root is None:
            write_synthetic_jpegs(Path(tmp), count)
            root, source = tmp, f"{count} synthetic 500x375 JPEGs (quality 90)"
        else:
            source = f"{root}/train"
        data = load_folder_split(root, "train").head(count)
        # Decoding alone: a centre crop to a common size so batches can be collated.
        from torchvision.transforms import v2

        decode = ViewsDataset(data, lambda image: (v2.functional.center_crop(image, [image_size]),) * 2)
        augment = ViewsDataset(data, TwoViews(pretrain_transform(
            "moco_v2", image_size, 3, IMAGENET_MEAN, IMAGENET_STD)))
        crops = ViewsDataset(data, TwoViews(v2.RandomResizedCrop(image_size, scale=(0.2, 1.0), antialias=True)))
        rows = []
        for n in workers:
            rows.append({"pipeline": f"decode only, {n} workers", "images_per_s": _rate(decode, n, batch)})
            rows.append({"pipeline": f"decode + 2 crops (augment_on=accelerator), {n} workers",
                         "images_per_s": _rate(crops, n, batch)})
            rows.append({"pipeline": f"decode + 2 MoCo-v2 views (augment_on=sample), {n} workers",
                         "images_per_s": _rate(augment, n, batch)})
    return {"source": source, "rows": rows, "threads": torch.get_num_threads()}
