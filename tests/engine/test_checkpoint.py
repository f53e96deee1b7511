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


def test_a_weights_only_copy_gives_the_same_encoder_without_the_training_state(tiny_runs, tmp_path):
    from synco.engine.checkpoint import write_weights_only
    from synco.runs import frozen_encoder, load_run, run_normalisation

    run = tiny_runs("train.epochs=1", "eval.baselines=false")  # the run other tests share
    full = run / "checkpoints" / "last.ckpt"
    copy = write_weights_only(full, tmp_path / "pinned" / "encoder.ckpt")
    assert "optimizer" in load_checkpoint(full)
    assert "optimizer" not in load_checkpoint(copy)
    assert copy.stat().st_size < full.stat().st_size
    assert sorted(p.name for p in copy.parent.iterdir()) == ["encoder.ckpt"]
    (state_a, cfg_a, _), (state_b, cfg_b, _) = load_run(full), load_run(copy)
    assert state_b["epoch"] == state_a["epoch"]
    assert run_normalisation(state_b, cfg_b, None) == run_normalisation(state_a, cfg_a, None)
    channels = 1 if cfg_a.data.dataset == "fashion_mnist" else 3
    images = torch.randn(4, channels, cfg_a.data.image_size, cfg_a.data.image_size)
    a, b = frozen_encoder(cfg_a, state_a, channels, "backbone"), frozen_encoder(cfg_b, state_b, channels, "backbone")
    assert torch.equal(a(images), b(images))


def test_a_weights_only_copy_of_a_file_that_is_no_checkpoint_names_it(tmp_path):
    from synco.engine.checkpoint import CheckpointError, write_weights_only

    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="notes.ckpt"):
        write_weights_only(tmp_path / "notes.ckpt", tmp_path / "copy.ckpt")
    assert not (tmp_path / "copy.ckpt").exists()
