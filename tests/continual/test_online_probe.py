"""CaSSLe's online linear probe (continual.online_probe): a classifier on detached features that changes nothing
else, carried from task to task, and its accuracy matrix in the stream's record."""

import pytest
import torch
from tiny_runs import tiny

from synco.compose import build_method
from synco.continual.online_probe import OnlineProbe
from synco.data.batch import Batch
from synco.methods import StepContext

STREAM = ["method.name=moco_v2", "method.symmetric=true", "continual.tasks=2",
          "continual.task_classes=[[0,1,2,3,4],[5,6,7,8,9]]", "continual.predictor_hidden=16"]


def built(tmp_path, task, *extra):
    cfg = tiny(tmp_path, *STREAM, f"continual.current_task={task}", "continual.online_probe=true", *extra)
    return build_method(cfg, 1, 256, seed=0, num_classes=10)


def step_batch():
    g = torch.Generator().manual_seed(0)
    views = torch.randn(2, 16, 1, 28, 28, generator=g)
    return Batch(views=(views[0], views[1]), index=torch.arange(16), labels=torch.randint(10, (16,), generator=g))


def test_the_probe_adds_its_cross_entropy_and_nothing_else(tmp_path):
    method = built(tmp_path, 0)
    assert isinstance(method, OnlineProbe) and method.needs_labels
    plain = built(tmp_path, 0).inner  # the same weights: the same seed
    batch = step_batch()
    out = method.training_step(batch, StepContext(epoch=0, generator=torch.Generator().manual_seed(1),
                                                  shuffle_generator=torch.Generator().manual_seed(2)))
    ref = plain.training_step(batch, StepContext(epoch=0, generator=torch.Generator().manual_seed(1),
                                                 shuffle_generator=torch.Generator().manual_seed(2)))
    # loss = the method's loss + CE of the classifier on the eval-mode, detached backbone features of view 1
    method.inner.online_encoder.backbone.eval()
    with torch.no_grad():
        logits = method.classifier(method.inner.online_encoder.backbone(batch.views[0]))
    method.inner.online_encoder.backbone.train()
    ce = torch.nn.functional.cross_entropy(logits, batch.labels)
    torch.testing.assert_close(out.loss, ref.loss + ce)
    out.loss.backward()
    ref.loss.backward()
    for (name, p), q in zip(method.inner.encoder_q.named_parameters(), plain.encoder_q.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)  # the probe's gradient stops at the features
    assert method.classifier.weight.grad.abs().sum() > 0
    plain_buffers = dict(plain.encoder_q.backbone.named_buffers())
    for name, value in method.inner.encoder_q.backbone.named_buffers():  # the probe's eval-mode forward leaves
        torch.testing.assert_close(value, plain_buffers[name], msg=name)  # the running statistics as they were


def test_a_later_task_starts_from_the_previous_probe_and_encoder(tmp_path):
    first = built(tmp_path, 0)
    with torch.no_grad():
        first.classifier.weight.normal_()
    later = built(tmp_path, 1, "continual.regularizer=pnr")
    later.load_initial_state(first.state_dict())
    torch.testing.assert_close(later.classifier.weight, first.classifier.weight)
    torch.testing.assert_close(later.inner.base.encoder_q.head[0].weight, first.inner.encoder_q.head[0].weight)
    torch.testing.assert_close(later.inner.frozen.head[0].weight, first.inner.encoder_q.head[0].weight)


def test_without_the_class_count_the_probe_is_refused(tmp_path):
    cfg = tiny(tmp_path, *STREAM, "continual.online_probe=true")
    with pytest.raises(ValueError, match="number of classes"):
        build_method(cfg, 1, 256, seed=0)


@pytest.mark.slow
def test_a_stream_reports_the_online_matrix_beside_the_others(tmp_path):
    from synco.pipelines.continual import run_continual
    from synco.engine.checkpoint import load_checkpoint
    from synco.engine.inputs import load_labelled_splits

    cfg = tiny(tmp_path, *STREAM, "continual.online_probe=true", "continual.regularizer=cassle", "train.epochs=1",
               "data.subset=512", "method.queue_size=128", "eval.analysis_every=null")
    record = run_continual(cfg)
    online = record["continual/R_online_matrix"]
    assert len(online) == 2 and all(len(row) == 2 for row in online)
    assert record["continual/online_average_accuracy"] == pytest.approx(sum(online[1]) / 2)
    # R_online[1][0] by hand: task 1's classifier, argmax over all 10 classes, on the test images of classes 0-4.
    state = load_checkpoint(tmp_path / "task_1" / "checkpoints" / "last.ckpt")
    from omegaconf import OmegaConf

    method = build_method(OmegaConf.merge(cfg, {"continual": {"current_task": 1}}), 1, 512, 0, num_classes=10)
    method.load_state_dict(state["model"])
    _, test = load_labelled_splits(cfg)
    test = test.head(128)
    mean, std = state["normalisation"]["mean"], state["normalisation"]["std"]
    images = (test.images.float() / 255 - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    method.eval()
    with torch.no_grad():
        predicted = method.classifier(method.backbone(images)).argmax(1)
    first = torch.isin(test.labels, torch.arange(5))
    expected = 100 * (predicted[first] == test.labels[first]).float().mean().item()
    assert online[1][0] == pytest.approx(expected, abs=100 / first.sum().item() + 1e-6)
    # The protocols rebuild a task's model, probe included, from its checkpoint alone.
    from synco.runs import frozen_encoder

    task_cfg = OmegaConf.merge(cfg, {"continual": {"current_task": 1}})
    encoder = frozen_encoder(task_cfg, state, 1, "backbone")
    torch.testing.assert_close(encoder(images[:4]), method.backbone(images[:4]))
