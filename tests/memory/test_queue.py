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
    assert set(q.state_dict()) == {"keys", "image_index", "pointer"}


def test_same_image_mask():
    q = NegativeQueue(4, 2)
    q.enqueue(torch.zeros(4, 2), torch.tensor([10, 11, 12, 10]))
    mask = q.same_image_mask(torch.tensor([10, 13]))
    assert mask.tolist() == [[True, False, False, True], [False, False, False, False]]
