from pathlib import Path

import pytest

from synco.config import ConfigError, load_config


def test_defaults_are_the_papers():
    cfg = load_config(None)
    assert cfg.method.name == "synco" and cfg.method.queue_size == 65536 and cfg.method.momentum == 0.999
    assert cfg.method.temperature == 0.2 and cfg.model.mlp and cfg.model.backbone == "resnet50"
    neg = cfg.method.negatives
    assert (neg.num_hard, neg.num_interpolate, neg.num_extrapolate, neg.num_mixup) == (1024, 256, 256, 256)
    assert (neg.num_noise, neg.num_perturb, neg.num_adversarial, neg.warmup_epochs) == (64, 64, 64, 10)
    assert (neg.sigma, neg.delta, neg.eta, neg.alpha_max, neg.beta_max) == (0.01, 0.01, 0.01, 0.5, 1.5)
    assert (cfg.train.lr, cfg.train.batch_size, cfg.train.weight_decay) == (0.03, 256, 1e-4)
    assert (cfg.eval.knn_k, cfg.eval.knn_temperature) == (200, 0.1)


def test_recipe_and_overrides_merge(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  epochs: 3\nmethod:\n  name: mochi\n  negatives:\n    num_extrapolate: 0\n"
                      "    num_noise: 0\n    num_perturb: 0\n    num_adversarial: 0\n")
    cfg = load_config(recipe, ["train.epochs=5", "data.subset=100"])
    assert cfg.train.epochs == 5 and cfg.data.subset == 100 and cfg.method.name == "mochi"


@pytest.mark.parametrize("override, field", [
    ("train.epochs=abc", "train.epochs"),
    ("nonsense.key=1", "nonsense"),
    ("method.name=no_such_method", "method.name"),
    ("data.dataset=mnist", "data.dataset"),
    ("model.backbone=vgg", "model.backbone"),
    ("train.epochs=-1", "train.epochs"),
    ("method.temperature=0", "method.temperature"),
    ("method.negatives.num_mixup=-3", "method.negatives.num_mixup"),
    ("method.negatives.num_hard=100000", "method.negatives.num_hard"),
    ("method.negatives.extrapolation=outward", "method.negatives.extrapolation"),
    ("method.negatives.beta_max=0.5", "method.negatives.beta_max"),
    ("method.momentum=2", "method.momentum"),
    ("model.bn_splits=3", "model.bn_splits"),
    ("data.subset=0", "data.subset"),
    ("method.name=mochi", "method.negatives.num_extrapolate"),
])
def test_bad_values_name_the_field(override, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(None, [override])


def test_bad_choice_lists_allowed_values():
    with pytest.raises(ConfigError, match="moco_v2.*mochi.*synco"):
        load_config(None, ["method.name=dino"])


def test_missing_recipe_and_malformed_override():
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("no/such.yaml")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(None, ["train.epochs"])


def test_every_shipped_recipe_loads():
    from pathlib import Path
    recipes = sorted(Path(__file__).resolve().parents[1].glob("configs/**/*.yaml"))
    assert len(recipes) >= 13  # cifar10 x 3, fashion_mnist, imagenet x 6, imagenet100 x 3
    for recipe in recipes:
        load_config(recipe)


@pytest.mark.parametrize("text, message", [
    ("train:\n  epochs: [1\n", "not valid YAML"),
    ("- a\n- b\n", "mapping"),
    ("train: 5\n", "train"),
])
def test_malformed_recipe_files(tmp_path, text, message):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(recipe)


def test_global_batch_must_split_evenly_over_processes():
    with pytest.raises(ConfigError, match="multiple of the 3 processes"):
        load_config(None, ["train.batch_size=256", "trainer.devices=3"])
    with pytest.raises(ConfigError, match="per-process batch 48 must be a multiple of model.bn_splits=32"):
        load_config(None, ["train.batch_size=96", "trainer.devices=2", "model.bn_splits=32"])
    load_config(None, ["train.batch_size=256", "trainer.devices=4", "model.bn_splits=8"])


def test_sync_batchnorm_excludes_split_batchnorm():
    with pytest.raises(ConfigError, match="model.sync_batchnorm=true and model.bn_splits=8"):
        load_config(None, ["model.sync_batchnorm=true", "model.bn_splits=8"])


@pytest.mark.parametrize("epochs", [200, 800])
def test_imagenet_recipes_hold_the_papers_settings(epochs):
    from pathlib import Path

    root = Path(__file__).parents[1] / "configs" / "pretrain" / "imagenet"
    synco = load_config(root / f"synco_{epochs}ep.yaml")
    assert (synco.model.backbone, synco.model.mlp, synco.data.image_size, synco.data.augmentation) == (
        "resnet50", True, 224, "moco_v2")
    assert (synco.train.epochs, synco.train.batch_size, synco.train.lr, synco.train.momentum,
            synco.train.weight_decay, synco.train.schedule) == (epochs, 256, 0.03, 0.9, 1e-4, "cosine")
    assert (synco.method.queue_size, synco.method.momentum, synco.method.temperature) == (65536, 0.999, 0.2)
    neg = synco.method.negatives
    assert (neg.num_hard, neg.num_interpolate, neg.num_extrapolate, neg.num_mixup, neg.num_noise, neg.num_perturb,
            neg.num_adversarial, neg.sigma, neg.delta, neg.eta, neg.warmup_epochs) == (
        1024, 256, 256, 256, 64, 64, 64, 0.01, 0.01, 0.01, 10)
    moco = load_config(root / f"moco_v2_{epochs}ep.yaml")
    assert moco.method.name == "moco_v2" and moco.train == synco.train and moco.method.queue_size == 65536


def test_cli_overrides_may_follow_the_options(tmp_path, monkeypatch):
    from synco import cli
    from synco.commands import linear

    seen = {}
    monkeypatch.setattr(linear, "run", lambda args: seen.setdefault("overrides", args.overrides) and 0)
    cli.main(["linear", str(tmp_path), "a.b=1", "--recipe", "r.yaml", "c.d=2", "--quiet"])
    assert seen["overrides"] == ["a.b=1", "c.d=2"]
    with pytest.raises(SystemExit):
        cli.main(["linear", str(tmp_path), "--recipe", "r.yaml", "--no-such-option"])


def test_shipped_recipes_are_found_by_name_from_any_directory(tmp_path, monkeypatch):
    from synco.config import RECIPES, packaged_recipes, resolve_recipe

    monkeypatch.chdir(tmp_path)  # no configs/ here
    expected = RECIPES / "pretrain" / "cifar10" / "synco.yaml"
    for name in ("cifar10/synco", "pretrain/cifar10/synco", "pretrain/cifar10/synco.yaml",
                 "configs/pretrain/cifar10/synco.yaml"):
        assert resolve_recipe(name) == expected
    assert load_config("cifar10/moco_v2").method.name == "moco_v2"
    assert load_config("linear/small").linear.lr == 30.0
    assert "pretrain/cifar10/synco" in packaged_recipes() and "continual/cifar10_5tasks_mocov2plus" in packaged_recipes()
    own = tmp_path / "cifar10" / "synco.yaml"  # a file of the user's wins over the shipped recipe of that name
    own.parent.mkdir()
    own.write_text("train: {epochs: 3}\n")
    assert resolve_recipe("cifar10/synco.yaml") == Path("cifar10/synco.yaml")
    with pytest.raises(ConfigError, match="no shipped recipe has that name"):
        load_config("cifar10/no_such_recipe")
