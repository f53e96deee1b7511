"""``data.views``: any number of views per image, each with its own size, crop range, blur and solarisation, on
both augmentation paths; the default stays two views of one augmentation drawn in order from one stream."""

import pytest
import torch
from tiny_runs import TINY

from synco.config import load_config
from synco.data.batch_augment import BatchAugment, random_solarize
from synco.data.views import view_specs
from synco.engine.inputs import augmentation, load_splits, views_iterator
from synco.data.loaders import normalisation

MULTI_CROP = "data.views=[{count: 2}, {count: 3, size: 12, crop_min_scale: 0.05, crop_max_scale: 0.14}]"


def first_batch(tmp_path, *overrides):
    data_settings = [s for s in TINY if not s.startswith("method.")]  # the tiny run minus MoCo's method block
    cfg = load_config(None, data_settings + ["method.name=swav", "train.batch_size=8",
                                             f"data.cache_dir={tmp_path}/cache", *overrides])
    train, _, _ = load_splits(cfg)
    mean, std = normalisation(train)
    augment, loader = augmentation(cfg, train, mean, std, "cpu")
    order = torch.arange(16)
    return next(iter(views_iterator(cfg, train, order, 8, augment, torch.Generator().manual_seed(0), "cpu",
                                    sample_loader=loader, worker_seed=0))), augment, train, mean, std


def test_default_is_two_views_of_one_augmentation():
    cfg = load_config(None, [])
    specs = view_specs(cfg.data)
    assert len(specs) == 2 and specs[0] == specs[1]
    assert specs[0].size == cfg.data.image_size and specs[0].crop_scale == (cfg.data.crop_min_scale, 1.0)


def test_default_batch_views_are_one_augmentation_drawn_twice_in_order(tmp_path):
    batch, augment, train, mean, std = first_batch(tmp_path, "method.name=simclr")
    images = train.images[:8]
    g = torch.Generator().manual_seed(0)
    alone = BatchAugment(28, mean, std, 0.2)
    expected = (alone(images, g), alone(images, g))
    for got, want in zip(batch.views, expected):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("augment_on", ["batch", "sample"])
def test_multi_crop_gives_every_view_at_its_size(tmp_path, augment_on):
    batch, *_ = first_batch(tmp_path, MULTI_CROP, f"data.augment_on={augment_on}")
    assert [tuple(v.shape) for v in batch.views] == [(8, 1, 28, 28)] * 2 + [(8, 1, 12, 12)] * 3
    assert not torch.equal(batch.views[2], batch.views[3])  # every view draws its own augmentation


def test_asymmetric_views_get_their_own_blur_and_solarisation(tmp_path):
    _, augment, *_ = first_batch(tmp_path, "method.name=byol",
                                 "data.views=[{blur_p: 1.0, solarize_p: 0.0}, {blur_p: 0.1, solarize_p: 0.2}]")
    first, second = augment.augments
    assert (first.blur_p, first.solarize_p) == (1.0, 0.0) and (second.blur_p, second.solarize_p) == (0.1, 0.2)


def test_solarize_flips_bright_pixels_of_chosen_images_only():
    images = torch.rand(64, 3, 4, 4)
    out = random_solarize(images, 0.5, torch.Generator().manual_seed(0))
    changed = (out != images).flatten(1).any(dim=1)
    assert 10 < int(changed.sum()) < 54
    for i in range(64):
        expected = torch.where(images[i] >= 0.5, 1 - images[i], images[i]) if changed[i] else images[i]
        torch.testing.assert_close(out[i], expected, rtol=0, atol=0)
    assert torch.equal(random_solarize(images, 0.0, None), images)
