import torch

from synco.memory import NegativeQueue


def test_starts_with_unit_rows_and_no_images():
    q = NegativeQueue(7, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(q.keys.norm(dim=1), torch.ones(7))
    assert (q.image_index == -1).all() and q.pointer.item() == 0


def test_wraps_around_when_size_is_not_a_multiple_of_the_batch():
    q = NegativeQueue(5, 2)
    for start in (0, 3, 6):
        keys = torch.arange(start, start + 3, dtype=torch.float32).view(3, 1).expand(3, 2)
        q.enqueue(keys, torch.arange(start, start + 3))
    # rows written: 0,1,2 | 3,4,0 | 1,2,3 -> the newest 5 values 4..8 sit in rows 4,0,1,2,3
    assert q.image_index.tolist() == [5, 6, 7, 8, 4]
    assert q.keys[:, 0].tolist() == [5.0, 6.0, 7.0, 8.0, 4.0]
    assert q.pointer.item() == 4


def test_batch_larger_than_queue_keeps_the_newest():
    q = NegativeQueue(3, 1)
    q.enqueue(torch.arange(7.0).view(7, 1), torch.arange(7))
    assert sorted(q.image_index.tolist()) == [4, 5, 6]


def test_enqueue_detaches_and_buffers_are_in_state_dict():
    q = NegativeQueue(4, 2)
    keys = torch.ones(2, 2, requires_grad=True)
    q.enqueue(keys * 2)
    assert not q.keys.requires_grad
    assert set(q.state_dict()) == {"keys", "image_index", "labels", "pointer"}


def test_same_image_mask():
    q = NegativeQueue(4, 2)
    q.enqueue(torch.zeros(4, 2), torch.tensor([10, 11, 12, 10]))
    mask = q.same_image_mask(torch.tensor([10, 13]))
    assert mask.tolist() == [[True, False, False, True], [False, False, False, False]]


def test_labels_are_stored_wrapped_and_masked_by_class():


    queue = NegativeQueue(5, 3, generator=torch.Generator().manual_seed(0))
    keys = torch.nn.functional.normalize(torch.randn(4, 3, generator=torch.Generator().manual_seed(1)), dim=1)
    queue.enqueue(keys, torch.tensor([10, 11, 12, 13]), torch.tensor([0, 1, 2, 1]))
    queue.enqueue(keys[:3], torch.tensor([14, 15, 16]))  # no labels (unlabelled data): stored as -1
    assert queue.labels.tolist() == [-1, -1, 2, 1, -1]  # rows 4, 0, 1 overwritten by the second batch
    mask = queue.same_class_mask(torch.tensor([1, -1, 2]))
    assert mask.tolist() == [[False, False, False, True, False], [False] * 5, [False, False, True, False, False]]


def test_a_checkpoint_from_before_the_labels_loads_with_unknown_labels():


    queue = NegativeQueue(4, 3)
    old = {k: v for k, v in queue.state_dict().items() if k != "labels"}
    fresh = NegativeQueue(4, 3)
    fresh.labels.fill_(7)
    fresh.load_state_dict(old)
    assert fresh.labels.tolist() == [-1, -1, -1, -1] and torch.equal(fresh.keys, queue.keys)


def test_the_class_mask_at_its_edges_class_zero_the_last_class_and_the_last_row():
    """Class 0 is a class like any other (not 'unknown'), the last class and the queue's last row count too."""
    queue = NegativeQueue(4, 2, generator=torch.Generator().manual_seed(0))
    queue.enqueue(torch.nn.functional.normalize(torch.ones(4, 2), dim=1), torch.arange(4), torch.tensor([0, 9, -1, 0]))
    mask = queue.same_class_mask(torch.tensor([0, 9, 5]))
    assert mask.tolist() == [[True, False, False, True], [False, True, False, False], [False] * 4]
    assert queue.same_image_mask(torch.tensor([3])).tolist() == [[False, False, False, True]]
