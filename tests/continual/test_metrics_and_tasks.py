"""Continual metrics on hand-made accuracy matrices, and the task streams."""

import pytest
import torch

from synco.continual import (
    average_accuracy,
    average_forgetting,
    backward_transfer,
    check_partition,
    class_split,
    forgetting,
    forward_transfer,
    summary,
    task_indices,
)

# R[i][j]: accuracy on task j after training task i (3 tasks).
R = [[80.0, 30.0, 20.0],
     [70.0, 85.0, 25.0],
     [60.0, 75.0, 90.0]]


def test_metrics_by_hand():
    assert average_accuracy(R) == pytest.approx((60 + 75 + 90) / 3)
    assert average_accuracy(R, after=1) == pytest.approx((70 + 85) / 2)
    assert forgetting(R) == [80 - 60, 85 - 75]  # best before the last task minus final
    assert average_forgetting(R) == pytest.approx(15.0)
    assert backward_transfer(R) == pytest.approx(((60 - 80) + (75 - 85)) / 2)
    assert forward_transfer(R, random_init=[10.0, 20.0, 15.0]) == pytest.approx(((30 - 20) + (25 - 15)) / 2)


def test_forgetting_takes_the_best_earlier_value_not_the_first():
    r = [[50.0, 0, 0], [70.0, 60.0, 0], [40.0, 65.0, 80.0]]  # task 0 improved after task 1, then dropped
    assert forgetting(r) == [70 - 40, 60 - 65]  # negative forgetting: task 1 improved
    assert summary(r)["continual/average_forgetting"] == pytest.approx((30 - 5) / 2)


def test_a_single_task_has_no_forgetting_or_transfer_and_shapes_are_checked():
    assert average_forgetting([[50.0]]) is None and backward_transfer([[50.0]]) is None
    assert forward_transfer([[50.0]], [10.0]) is None
    with pytest.raises(ValueError, match="T x T"):
        average_accuracy([[1.0, 2.0]])
    with pytest.raises(ValueError, match="one accuracy per task"):
        forward_transfer(R, [1.0])


def test_class_split_is_the_authors_permutation_chunked():
    g = torch.Generator().manual_seed(5)
    expected = [c.tolist() for c in torch.randperm(10, generator=g).chunk(5)]
    assert class_split(10, 5) == expected
    assert sorted(c for task in class_split(100, 10) for c in task) == list(range(100))
    with pytest.raises(ValueError, match="continual.tasks=11 is more than the 10 classes"):
        class_split(10, 11)


def test_task_indices_by_class_and_by_data_shard():
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 1])
    indices, classes = task_indices(labels, "class", 2, tasks=[[0, 3], [1, 2]])
    assert classes == [[0, 3], [1, 2]] and indices[0].tolist() == [0, 3, 4, 7]
    assert indices[1].tolist() == [1, 2, 5, 6, 8]
    shards, none = task_indices(labels, "data", 2, seed=0)
    assert none is None and sorted(torch.cat(shards).tolist()) == list(range(9)) and len(shards[0]) == 5


def test_a_task_list_that_does_not_partition_the_classes_is_named():
    with pytest.raises(ValueError, match=r"in several tasks \[1\], in no task \[3\]"):
        check_partition([[0, 1], [1, 2]], 4)
    with pytest.raises(ValueError, match=r"out of range \[7\]"):
        check_partition([[0, 1], [2, 3, 7]], 4)


def test_data_shards_that_do_not_divide_evenly_and_more_tasks_than_images():
    labels = torch.arange(10) % 3
    shards, _ = task_indices(labels, "data", 3, seed=1)
    assert sorted(len(s) for s in shards) == [3, 3, 4] and sorted(torch.cat(shards).tolist()) == list(range(10))
    assert all(torch.equal(s, s.sort().values) for s in shards)  # each shard in image order
    assert [len(s) for s in task_indices(labels, "data", 10, seed=1)[0]] == [1] * 10  # one image a task
    with pytest.raises(ValueError, match=r"continual.tasks=11 must lie in \[1, 10\]"):
        task_indices(labels, "data", 11, seed=1)
