"""A tiny pretraining setting shared by the end-to-end tests: Fashion-MNIST subsets, seconds per run."""

from synco.config import load_config

TINY = [
    "data.dataset=fashion_mnist", "data.image_size=28", "data.subset=256", "model.backbone=small_cnn",
    "model.bn_splits=4", "method.queue_size=128", "method.momentum=0.99", "method.negatives.num_hard=32",
    "method.negatives.num_interpolate=8", "method.negatives.num_extrapolate=8", "method.negatives.num_mixup=8",
    "method.negatives.num_noise=4", "method.negatives.num_perturb=4", "method.negatives.num_adversarial=4",
    "method.negatives.warmup_epochs=1", "train.batch_size=64", "train.lr=0.05", "train.progress=false",
    "eval.train_subset=256", "eval.test_subset=128", "eval.knn_k=20",
]


def tiny(run_dir, *extra):
    return load_config(None, TINY + [f"run_dir={run_dir}", f"data.cache_dir={run_dir}/cache", *extra])


def recomputed_knn(run_dir):
    """A finished run's kNN top-1/top-5 recomputed outside the library's evaluation code.

    The checkpoint's backbone (the untrained one of seed ``train.seed`` when no epoch ran) is applied to the
    test and bank images, normalised here with the channel statistics of the pretraining images (what the
    encoder was trained with; for data held in memory: streamed folders go through the library's loader,
    whose resize and crop are not what this guards), and the vote is ``reference.knn_reference``: float64,
    one image at a time.
    """
    from pathlib import Path

    import torch
    from reference import knn_reference

    from synco.config import load_config
    from synco.engine.checkpoint import load_checkpoint
    from synco.engine.inputs import load_labelled_splits
    from synco.eval.evaluate import sharded_features
    from synco.compose import build_method

    run_dir = Path(run_dir)
    cfg = load_config(run_dir / "config.yaml")
    labelled, test = load_labelled_splits(cfg)
    pretraining = labelled.head(cfg.data.subset)
    train, test = labelled.head(cfg.eval.train_subset), test.head(cfg.eval.test_subset)
    method = build_method(cfg, train.channels, num_train_images=len(pretraining), seed=cfg.train.seed)
    if (run_dir / "checkpoints" / "last.ckpt").exists():
        method.load_state_dict(load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["model"])
    backbone = method.backbone.eval()
    if pretraining.in_memory:
        pixels = pretraining.images.double() / 255
        mean, std = pixels.mean(dim=(0, 2, 3)).tolist(), pixels.std(dim=(0, 2, 3)).tolist()
    else:
        mean, std = list(pretraining.mean), list(pretraining.std)

    @torch.no_grad()
    def features(data):
        if not data.in_memory:
            return sharded_features(backbone, data, mean, std, 64, "cpu", cfg.data.image_size)
        m, s = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)
        return torch.cat([backbone((data.images[i:i + 100].float() / 255 - m) / s) for i in range(0, len(data), 100)])

    return knn_reference(features(train), train.labels, features(test), test.labels, len(train.classes),
                         cfg.eval.knn_k, cfg.eval.knn_temperature)


def assert_knn_recomputed(record, run_dir, test_size):
    """The recorded kNN equals the recomputed one, up to one test image (float32 feature rounding can flip a
    near-tie between two neighbours); a bug in normalisation or voting moves many."""
    import pytest

    expected = recomputed_knn(run_dir)
    one_image = 100.0 / test_size + 1e-9
    assert record["eval/knn_top1"] == pytest.approx(expected["top1"], abs=one_image)
    assert record["eval/knn_top5"] == pytest.approx(expected["top5"], abs=one_image)
