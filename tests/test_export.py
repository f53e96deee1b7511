"""synco export: torchvision names that load strictly (apart from fc) and give the same features; Detectron2 names."""

import pickle

import pytest
import torch
import torchvision
from torch import nn

from synco.compose import build_method
from synco.config import load_config
from synco.export import detectron2_name, detectron2_weights, torchvision_state_dict


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_torchvision_export_loads_strictly_and_gives_the_same_features(backbone):
    cfg = load_config(None, [f"model.backbone={backbone}", "method.queue_size=64", "method.negatives.num_hard=8"])
    method = build_method(cfg, 3, num_train_images=100, seed=0)
    with torch.no_grad():  # make batch-norm statistics non-trivial so that they must be exported too
        for m in method.encoder_q.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    weights = torchvision_state_dict(method)
    model = getattr(torchvision.models, backbone)()
    result = model.load_state_dict(weights, strict=False)
    assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"] and not result.unexpected_keys
    model.fc = nn.Identity()
    model.eval()
    method.eval()
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(model(x), method(x))


def test_small_cnn_cannot_be_exported():
    cfg = load_config(None, ["model.backbone=small_cnn", "method.queue_size=64", "method.negatives.num_hard=8"])
    with pytest.raises(ValueError, match="needs a torchvision ResNet backbone"):
        torchvision_state_dict(build_method(cfg, 3, num_train_images=100, seed=0))


def test_detectron2_names_follow_mocos_converter():
    assert detectron2_name("conv1.weight") == "stem.conv1.weight"
    assert detectron2_name("bn1.running_var") == "stem.conv1.norm.running_var"
    assert detectron2_name("layer1.0.conv2.weight") == "res2.0.conv2.weight"
    assert detectron2_name("layer4.2.bn3.bias") == "res5.2.conv3.norm.bias"
    assert detectron2_name("layer2.0.downsample.0.weight") == "res3.0.shortcut.weight"
    assert detectron2_name("layer3.0.downsample.1.running_mean") == "res4.0.shortcut.norm.running_mean"


def test_detectron2_pickle_layout(tmp_path):
    weights = torchvision_state_dict(build_method(
        load_config(None, ["model.backbone=resnet18", "method.queue_size=64", "method.negatives.num_hard=8"]),
        3, num_train_images=100, seed=0))
    converted = detectron2_weights(weights)
    path = tmp_path / "r18.pkl"
    path.write_bytes(pickle.dumps(converted))
    loaded = pickle.loads(path.read_bytes())
    assert loaded["matching_heuristics"] is True and "stem.conv1.weight" in loaded["model"]
    assert not any(k.endswith("num_batches_tracked") for k in loaded["model"])
    assert len(loaded["model"]) == len([k for k in weights if not k.endswith("num_batches_tracked")])


@pytest.mark.slow
def test_export_command_on_a_run(tmp_path):
    from tiny_runs import tiny

    from synco.cli import main
    from synco.pipelines.pretrain import pretrain

    pretrain(tiny(tmp_path / "run", "train.epochs=1", "eval.baselines=false", "model.backbone=resnet18",
                  "model.small_stem=true", "model.bn_splits=1"))
    assert main(["export", str(tmp_path / "run"), "--format", "torchvision", "--out", str(tmp_path / "r18.pth")]) == 0
    weights = torch.load(tmp_path / "r18.pth", weights_only=True)
    assert weights["conv1.weight"].shape == (64, 1, 3, 3)  # Fashion-MNIST: one channel, CIFAR stem
    assert main(["export", str(tmp_path / "run"), "--format", "detectron2", "--out", str(tmp_path / "r18.pkl")]) == 0
    assert "stem.conv1.weight" in pickle.loads((tmp_path / "r18.pkl").read_bytes())["model"]
