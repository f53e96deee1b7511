"""The pools of candidates the synthetic negatives are drawn from, against loops over their rules."""

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from synco.negatives import SyntheticNegatives, batch_pool, queue_pool


def loop_exclusion(big_b, offset, local, labels=None):
    """(2b, 2B) from the rule, one pair at a time: anchor (view v, image offset + i), candidate (view w, image j)."""
    out = torch.zeros(2 * local, 2 * big_b, dtype=torch.bool)
    for v in range(2):
        for i in range(local):
            image = offset + i
            for w in range(2):
                for j in range(big_b):
                    same_image = j == image  # its own view (w == v) or its positive (w != v)
                    same_class = labels is not None and labels[j] == labels[image]
                    out[v * local + i, w * big_b + j] = same_image or same_class
    return out


@settings(max_examples=25, deadline=None)
@given(world=st.integers(1, 3), local=st.integers(1, 4), classes=st.one_of(st.none(), st.integers(1, 4)),
       seed=st.integers(0, 100))
def test_batch_pool_excludes_the_anchors_own_views_and_with_labels_its_class(world, local, classes, seed):
    g = torch.Generator().manual_seed(seed)
    big_b = world * local
    all_z1, all_z2 = (F.normalize(torch.randn(big_b, 5, generator=g), dim=1) for _ in range(2))
    labels = None if classes is None else torch.randint(classes, (big_b,), generator=g)
    for rank in range(world):
        pool = batch_pool(all_z1, all_z2, rank * local, local, labels)
        assert torch.equal(pool.candidates, torch.cat([all_z1, all_z2]))
        assert torch.equal(pool.exclude, loop_exclusion(big_b, rank * local, local, labels))


def test_no_synthetic_negative_is_made_from_an_excluded_candidate():
    """Every source of every strategy (the hardest rows, the mixup pairs) is a candidate the anchor may use: never
    its own image's views, never (label-aware) a view of its class."""
    g = torch.Generator().manual_seed(0)
    big_b, local = 12, 6
    all_z1, all_z2 = (F.normalize(torch.randn(big_b, 8, generator=g, dtype=torch.float64), dim=1) for _ in range(2))
    labels = torch.arange(big_b) % 4  # 3 images per class: 2B - 2 - 4 = 18 usable candidates per anchor
    negatives = SyntheticNegatives(num_hard=8, num_interpolate=4, num_extrapolate=4, num_mixup=4, num_noise=2,
                                   num_perturb=2, num_adversarial=2)
    for with_labels in (False, True):
        pool = batch_pool(all_z1, all_z2, 6, local, labels if with_labels else None)
        anchors = torch.cat([all_z1[6:], all_z2[6:]])
        _, sources = negatives.logits_and_sources(anchors, pool.candidates, generator=torch.Generator().manual_seed(1),
                                                  exclude=pool.exclude)
        rows = torch.cat([sources.hardest, sources.index.flatten(1)], dim=1)  # (2b, N + 2S), -1: no second source
        for a in range(2 * local):
            used = rows[a][rows[a] >= 0]
            assert used.numel() > 0 and not pool.exclude[a, used].any()


def test_queue_pool_joins_the_same_image_and_same_class_masks():
    keys = torch.randn(5, 3)
    same_image = torch.tensor([[True, False, False, False, False]])
    same_class = torch.tensor([[False, False, True, False, False]])
    assert queue_pool(keys).exclude is None
    assert torch.equal(queue_pool(keys, same_image).exclude, same_image)
    assert torch.equal(queue_pool(keys, None, same_class).exclude, same_class)
    assert torch.equal(queue_pool(keys, same_image, same_class).exclude, same_image | same_class)
    assert not queue_pool(keys.requires_grad_(True)).candidates.requires_grad
