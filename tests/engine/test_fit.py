"""The reusable training loop and the method contract: any registered method trains through ``fit``,
``fit`` can be called again in one process (a task stream), and every call resumes exactly."""

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from synco.compose import build_method
from synco.config import load_config
from synco.data.loaders import normalisation
from synco.engine.checkpoint import load_checkpoint
from synco.engine.fit import FitInputs, FitState, Trainee, fit
from synco.engine.inputs import augmentation, load_splits, views_iterator
from synco.engine.launch import build_fabric
from synco.engine.metrics import MetricsWriter, read_metrics
from synco.engine.rng import RunGenerators
from synco.methods import Method, MethodSpec, StepOutput, build_encoder
from synco.pipelines.pretrain import pretrain
from synco.registry import METHODS

pytestmark = pytest.mark.slow

TINY = ["data.dataset=fashion_mnist", "data.image_size=28", "data.subset=256", "model.backbone=small_cnn",
        "model.bn_splits=1", "train.batch_size=64", "train.lr=0.05", "train.progress=false",
        "eval.train_subset=256", "eval.test_subset=128", "eval.knn_k=20"]


# A method that exists only in this test file: a config block, a Method, a builder, one registration.
@dataclass
class AlignOnlyConfig:
    name: str = "align_only"
    weight: float = 1.0


class AlignOnly(Method):
    """Pulls the two views' embeddings together (collapses, but trains): the smallest possible method."""

    def __init__(self, encoder, weight):
        super().__init__()
        self.encoder, self.weight = encoder, weight
        self.after_steps = 0

    @property
    def online_encoder(self) -> nn.Module:
        return self.encoder

    def training_step(self, batch, context):
        z1, z2 = self.encoder(batch.views[0]), self.encoder(batch.views[1])
        return StepOutput(loss=self.weight * (z1 - z2).pow(2).sum(1).mean())

    def after_step(self, out, batch):
        self.after_steps += 1


def build_align_only(context):
    torch.manual_seed(context.seed)
    return AlignOnly(build_encoder(context.cfg, context.in_channels), context.cfg.method.weight)


@pytest.fixture
def align_only_registered():
    METHODS.register("align_only", MethodSpec(AlignOnlyConfig, build_align_only))
    yield
    METHODS.unregister("align_only")


def test_a_method_registered_outside_the_library_pretrains_end_to_end(tmp_path, align_only_registered):
    cfg = load_config(None, TINY + ["method.name=align_only", "method.weight=2.0", "train.epochs=1",
                                    f"run_dir={tmp_path}", f"data.cache_dir={tmp_path}/cache"])
    assert cfg.method.weight == 2.0 and "queue_size" not in cfg.method
    record = pretrain(cfg)
    assert record["finished"]
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert "train/synthetic" not in records[-2]  # MoCo's per-epoch entry belongs to MoCo only
    assert load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["method"] == "align_only"


def _run_pieces(cfg):
    """What ``pretrain`` builds before calling ``fit``: fabric, data, method, optimizer, generators."""
    fabric = build_fabric(cfg)
    train, _, _ = load_splits(cfg)
    mean, std = normalisation(train)
    method = build_method(cfg, train.channels, len(train), cfg.train.seed)
    generators = RunGenerators(cfg.train.seed, fabric.device)
    trainee = Trainee.prepare(fabric, method, cfg)
    augment, loader = augmentation(cfg, train, mean, std, fabric.device)

    def batches(order, worker_seed, first_step=0):
        return views_iterator(cfg, train, order, cfg.train.batch_size, augment, generators.local, fabric.device,
                              sample_loader=loader, worker_seed=worker_seed, first_step=first_step)

    return fabric, trainee, FitInputs(train, batches), generators


def _stream(tmp_path, name, stop_in_task_2=False):
    """Two 'tasks' trained one after the other by two fit calls on one method (as a continual stream)."""
    cfg = load_config(None, TINY + ["method.name=moco_v2", "method.queue_size=128", "train.epochs=2",
                                    f"data.cache_dir={tmp_path}/cache", f"run_dir={tmp_path}/{name}"])
    fabric, trainee, inputs, generators = _run_pieces(cfg)
    metrics = MetricsWriter(tmp_path / f"{name}.jsonl")
    end_1 = fit(fabric, trainee, inputs, tmp_path / name / "task1.ckpt", metrics, generators, cfg)
    if stop_in_task_2:
        cfg.train.stop_after = 1
    end_2 = fit(fabric, trainee, inputs, tmp_path / name / "task2.ckpt", metrics, generators, cfg,
                start=FitState(0, end_1.global_step))
    return end_1, end_2, trainee


def test_fit_runs_twice_in_one_process_and_resumes_exactly_inside_the_second_call(tmp_path):
    end_1, end_2, straight = _stream(tmp_path, "straight")
    assert (end_1.epoch, end_2.epoch) == (2, 2) and end_2.global_step == 2 * end_1.global_step == 16
    _, stopped, _ = _stream(tmp_path, "stopped", stop_in_task_2=True)
    assert stopped.epoch == 1
    # A new process: rebuild everything, restore the second call's checkpoint, finish the task.
    cfg = load_config(None, TINY + ["method.name=moco_v2", "method.queue_size=128", "train.epochs=2",
                                    f"data.cache_dir={tmp_path}/cache"])
    fabric, trainee, inputs, generators = _run_pieces(cfg)
    path = tmp_path / "stopped" / "task2.ckpt"
    start = FitState.restore(load_checkpoint(path), trainee, generators, path)
    assert (start.epoch, start.global_step) == (1, 12)
    fit(fabric, trainee, inputs, path, MetricsWriter(tmp_path / "resumed.jsonl"), generators, cfg, start)
    a, b = straight.method.state_dict(), trainee.method.state_dict()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_metrics_reach_a_lightning_csv_logger_and_a_resume_keeps_what_was_logged(tmp_path):
    settings = TINY + ["method.name=simclr", "train.epochs=2", "trainer.loggers=[csv]", f"run_dir={tmp_path}",
                       f"data.cache_dir={tmp_path}/cache"]
    pretrain(load_config(None, [*settings, "train.stop_after=1"]))
    first = (tmp_path / "logs" / "csv" / "version_0" / "metrics.csv").read_text()
    pretrain(load_config(None, settings), resume=True)
    assert (tmp_path / "logs" / "csv" / "version_0" / "metrics.csv").read_text() == first  # not overwritten
    assert "train/loss" in first.splitlines()[0].split(",")
    csv = (tmp_path / "logs" / "csv" / "version_1" / "metrics.csv").read_text().splitlines()
    header = csv[0].split(",")
    assert "train/loss" in header and "eval/knn_top1" in header
    knn = [row.split(",")[header.index("eval/knn_top1")] for row in csv[1:]]
    final = read_metrics(tmp_path / "metrics.jsonl")[-1]["eval/knn_top1"]
    assert any(value and abs(float(value) - final) < 1e-9 for value in knn)
