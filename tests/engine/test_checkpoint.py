"""Checkpoints are written atomically: a write that fails half-way leaves the previous checkpoint intact."""

import pytest
import torch

from synco.engine.checkpoint import load_checkpoint, save_checkpoint


class OneProcessFabric:
    """What ``save_checkpoint`` uses of a Lightning Fabric, with a ``save`` that can die half-way."""

    is_global_zero = True

    def __init__(self, fail_after_bytes=None):
        self.fail_after_bytes = fail_after_bytes

    def save(self, path, state):
        if self.fail_after_bytes is None:
            torch.save(state, path)
            return
        with open(path, "wb") as f:  # a disk that fills up, a job killed while writing
            f.write(b"\x80" * self.fail_after_bytes)
        raise OSError("No space left on device")

    def barrier(self):
        pass


def test_a_failed_write_leaves_the_previous_checkpoint_readable(tmp_path):
    path = tmp_path / "checkpoints" / "last.ckpt"
    save_checkpoint(OneProcessFabric(), path, {"epoch": 1, "model": {"w": torch.ones(3)}})
    before = path.read_bytes()
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(OneProcessFabric(fail_after_bytes=100), path, {"epoch": 2, "model": {"w": torch.zeros(3)}})
    assert path.read_bytes() == before
    assert load_checkpoint(path)["epoch"] == 1
    save_checkpoint(OneProcessFabric(), path, {"epoch": 2, "model": {"w": torch.zeros(3)}})  # the next try works
    assert load_checkpoint(path)["epoch"] == 2
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # no temporary file left behind
