"""Is augmentation a bottleneck? Images per second of the input pipeline against the training step.

Measures, side by side in one process on real CIFAR-10 images (small CNN, the main job's recipe):
  - batched augmentation (synco.data.batch_augment, two views of a batch, in the training process);
  - per-image torchvision augmentation (two views), one image at a time on one thread, which is what
    one DataLoader worker delivers;
  - one training step of MoCo-v2 and of SynCo (forward, backward, optimizer, momentum, enqueue).
Prints medians of several repeats and the ratio pipeline / step. Run on a quiet machine:

    .venv/bin/python benchmarks/pipeline.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from synco.data.batch_augment import BatchAugment
from synco.data.datasets import load_dataset
from synco.data.loaders import channel_stats
from synco.data.transforms import TwoViews, pretrain_transform
from synco.engine.config import load_config
from synco.methods.build import build_method


def median_seconds(fns: dict, repeats: int, warmup: int = 2) -> dict:
    """Median wall time of each function, measured in alternation so that drift hits all alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/pretrain/cifar10/synco.yaml")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    cfg = load_config(args.config)
    data = load_dataset(cfg.data.dataset, cfg.data.root, True, cfg.data.cache_dir, cfg.data.image_size)
    mean, std = channel_stats(data.images)
    batch = cfg.train.batch_size
    images = data.images[:batch]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {batch}, {cfg.data.dataset}, "
          f"{cfg.model.backbone}, K={cfg.method.queue_size}")

    augment = BatchAugment(cfg.data.image_size, mean, std, cfg.data.crop_min_scale)
    g = torch.Generator().manual_seed(0)
    per_image = TwoViews(pretrain_transform("moco_v2", cfg.data.image_size, images.shape[1], mean, std))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    t_image = median_seconds({"x": lambda: [per_image(images[i]) for i in range(64)]}, args.repeats)["x"]
    torch.set_num_threads(threads)

    fns = {"batched augmentation, 2 views": lambda: (augment(images, g), augment(images, g))}
    for name in ("moco_v2", "synco"):
        method = build_method(load_config(args.config, [f"method.name={name}"]), images.shape[1], len(data), seed=0)
        opt = torch.optim.SGD(method.encoder_q.parameters(), lr=cfg.train.lr, momentum=0.9)
        view_q, view_k = augment(images, g), augment(images, g)
        index = torch.arange(batch)

        def step(method=method, opt=opt, view_q=view_q, view_k=view_k, index=index):
            out = method.training_step(view_q, view_k, index, True, g)
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
            method.momentum_update()
            method.queue.enqueue(out["key"], index)

        fns[f"training step, {name}"] = step
    rows = list(median_seconds(fns, args.repeats).items())
    rows.insert(1, ("per-image torchvision, 2 views, 1 thread", t_image * batch / 64))
    step_seconds = rows[-1][1]
    print(f"{'':44}{'ms / batch':>12}{'images/s':>10}{'rate / SynCo':>14}")
    for name, seconds in rows:
        print(f"{name:44}{seconds * 1e3:12.1f}{batch / seconds:10.0f}{step_seconds / seconds:14.2f}")


if __name__ == "__main__":
    main()
