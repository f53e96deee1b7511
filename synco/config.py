"""Structured configuration: YAML recipe + ``KEY=VALUE`` overrides, validated, saved with the run.

OmegaConf does the merging and type checking (a string for an int field, an unknown key); the
checks below add allowed values and ranges, each error naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from synco.checks import ConfigError, at_least, choice, positive  # noqa: F401 (ConfigError: public here too)
from synco.data.datasets import is_streamed
from synco.data.transforms import AUGMENTATIONS
from synco.data.views import ViewConfig, check_views, view_specs
from synco.errors import first_line
from synco.methods.moco import MoCoConfig
from synco.models.backbones import TIMM_ALIASES, is_backbone, list_backbones
from synco.registry import DATASETS, METHODS, REGULARIZERS

SCHEDULES = ("cosine", "constant")
OPTIMIZERS = ("sgd", "lars", "adam", "adamw")  # built by synco.engine.optim
FEATURES = ("backbone", "embedding")
AUGMENT_ON = ("batch", "sample", "accelerator")


@dataclass
class DataConfig:
    dataset: str = "cifar10"  # a registered data set (synco.registry.DATASETS)
    root: Optional[str] = None  # None: the data set's default locations (see synco.data.datasets)
    # decoded JPEG archives are cached here; None: $SYNCO_CACHE_DIR, else $XDG_CACHE_HOME/synco or ~/.cache/synco
    cache_dir: Optional[str] = None
    subset: Optional[int] = None  # use only the first n training images
    image_size: int = 32  # training crops are this many pixels square (28 for Fashion-MNIST)
    augmentation: str = "moco_v2"  # moco_v2: + blur, weaker colour jitter (MoCo-v2); moco_v1: MoCo-v1's
    # batch: whole batch as tensor ops on the training device (in-memory data); sample: torchvision per image
    # in DataLoader workers; accelerator: workers decode and crop, colour/blur/flip run batched on the device
    augment_on: str = "batch"
    crop_min_scale: float = 0.2  # random resized crop keeps at least this share of the image
    num_workers: int = 0  # DataLoader workers for augment_on=sample (and streamed evaluation)
    persistent_workers: bool = False  # faster epoch starts; resume is then not bit-exact (worker RNG)
    # Fetch torchvision's files first (machines with internet: cifar10, cifar100, fashion_mnist, stl10), into root,
    # or without one into the cache's datasets/ folder (~/.cache/synco/datasets), where later runs find them
    download: bool = False
    pretrain_split: Optional[str] = None  # STL-10: unlabeled (default) or train+unlabeled
    class_list: Optional[str] = None  # folders: only these classes (imagenet100: configs/data/imagenet100.txt)
    # groups of views per image, global crops first (synco.data.views): BYOL's asymmetric pair, SwAV's multi-crop;
    # None: two views of data.augmentation at data.image_size
    views: Optional[List[ViewConfig]] = None
    # pretrain on the samples this file lists (indices, or file names for folders), after data.subset: a task of
    # a continual stream (synco continual writes them)
    train_subset_file: Optional[str] = None


@dataclass
class ModelConfig:
    backbone: str = "resnet50"  # a registered backbone (synco.registry.BACKBONES) or timm:<model name>
    small_stem: bool = False  # CIFAR stem for ResNets on small images
    embedding_dim: int = 128  # D, the projection head's output
    mlp: bool = True  # MoCo-v2's MLP head (False: MoCo-v1's linear head)
    bn_splits: int = 1  # split batch norm groups; with shuffle_keys, MoCo's shuffle-BN on one process
    shuffle_keys: bool = True  # several processes: MoCo's shuffle-BN across ranks (docs/distributed.md)
    sync_batchnorm: bool = False  # several processes: SyncBatchNorm in both encoders instead of shuffle-BN
    pretrained: bool = False  # timm backbones: start from timm's pretrained weights (downloaded; e.g. BEiT)


@dataclass
class TrainConfig:
    epochs: int = 200
    batch_size: int = 256  # the global batch over all processes
    lr: float = 0.03  # SGD learning rate at epoch 0
    momentum: float = 0.9  # SGD momentum
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # per-epoch learning-rate factor 0.5 (1 + cos(pi epoch / epochs)), or constant
    lr_warmup_epochs: int = 0  # linear learning-rate warm-up before the schedule (SimCLR, CaSSLe: 10)
    optimizer: str = "sgd"  # sgd (MoCo); lars (timm's LARS: SimCLR, CaSSLe/PNR); adam (HCL); adamw
    exclude_bias_and_norm: bool = False  # biases and normalisation weights: no weight decay, no LARS adaptation
    lars_trust_coefficient: float = 0.001  # eta of LARS (CaSSLe/PNR use 0.02)
    lars_clip: bool = False  # LARC: clip the LARS trust ratio (CaSSLe/PNR: true)
    seed: int = 0  # initial weights, queue, data order, augmentations and synthetic draws
    stop_after: Optional[int] = None  # stop after this many epochs in this invocation (time-sliced jobs; a continual stream counts them across its tasks, so it can stop at a task boundary)
    init_from: Optional[str] = None  # start from this checkpoint's model weights (and queue); fresh optimizer
    log_every: int = 20  # steps between train/loss_step entries in metrics.jsonl
    progress: bool = True  # a progress bar on a terminal (never written into redirected output)


#: torch.compile's modes (``trainer.compile_mode``).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class TrainerConfig:
    accelerator: str = "auto"  # Lightning's values: auto, cpu, cuda/gpu, mps
    devices: Any = 1  # per node; train.batch_size is the global batch, split evenly over all processes
    num_nodes: int = 1  # machines; processes = devices x num_nodes
    precision: str = "32-true"  # Lightning's values: 32-true, bf16-mixed, 16-mixed (GPU), ...
    strategy: str = "auto"  # auto/ddp: DDP without buffer broadcasts (queues agree by construction)
    # torch.compile (Inductor) for training: encoders, loss modules and SynCo's negatives path after the
    # selection (docs/performance.md); eager with one warning line where no compiler works
    compile: bool = False
    compile_mode: str = "default"  # torch.compile's mode: default, reduce-overhead (GPU), max-autotune
    # glibc only: reuse freed large CPU blocks instead of page-faulting them anew (engine/cpu_memory.py)
    reuse_cpu_memory: bool = True
    # Lightning loggers that receive the numeric metrics besides metrics.jsonl: csv, tensorboard, wandb
    loggers: list[str] = field(default_factory=list)
    # Under SLURM: after a stop signal (SIGTERM, SIGUSR1) and its checkpoint, requeue the job with `scontrol requeue`
    # so that it continues by itself (its script must pass --resume; docs/distributed.md)
    requeue: bool = False
    # Seconds a collective operation may wait for the other processes before the job ends with one line
    # naming the rank (torch.distributed's own default: 1800)
    collective_timeout: int = 1800


@dataclass
class EvalConfig:
    knn_k: int = 200  # neighbours of weighted kNN (InstDisc's protocol)
    knn_temperature: float = 0.1  # weights exp(similarity / t)
    feature: str = "backbone"  # backbone: features before the head (default); embedding: the unit head output
    # Images per forward pass during evaluation. 128, not more: on CPUs a larger batch's activations are fresh
    # mmap-ed blocks, page-faulted again every batch unless malloc keeps freed memory (trainer.reuse_cpu_memory,
    # pretraining only): the small CNN's 50k CIFAR-10 bank features took 23 s at 512 and 10 s at 128 without
    # it, 10.6 and 9.9 s with it (same features). The GPU recipes
    # (configs/pretrain/imagenet, configs/continual/imagenet100_*) set their own.
    batch_size: int = 128
    train_subset: Optional[int] = None  # kNN bank / linear-probe training: first n labelled images (None: all)
    test_subset: Optional[int] = None  # kNN queries / linear-probe test: first n test images (None: all)
    baselines: bool = False  # also evaluate the untrained encoder and raw pixels
    every_epochs: Optional[int] = None  # kNN monitor: also evaluate after every n-th epoch
    analysis_every: Optional[int] = 20  # steps between observations of the negatives' statistics (None: off)
    analysis_images: int = 2000  # held-out test images for alignment/uniformity/rank/class concentration


@dataclass
class LinearConfig:
    """``synco linear``: linear probe on frozen features (MoCo's main_lincls protocol by default)."""

    epochs: int = 100
    batch_size: int = 256  # the global batch over all processes
    lr: Optional[float] = None  # None: 10 for imagenet100, else 30 (the paper; MoCo's recommendation)
    momentum: float = 0.9
    weight_decay: float = 0.0
    augment: bool = False  # True: random resized crop + flip every epoch (the paper on ImageNet); False: cached
    feature: Optional[str] = None  # None: eval.feature
    seeds: list[int] = field(default_factory=lambda: [0])  # one probe per seed; mean +- std reported
    out_dir: Optional[str] = None  # None: RUN_DIR/linear


@dataclass
class FinetuneConfig:
    """``synco finetune``: semi-supervised fine-tuning of the whole encoder on a fraction of the labels.

    Defaults follow SimCLR's protocol (Nesterov SGD, lr 0.05 x batch / 256, no weight decay, random
    resized crops and flips, 60 epochs for 1 % and 30 for 10 % of the labels); which protocol MoCHI and
    SynCo used for their semi-supervised numbers is UNVERIFIED.
    """

    fraction: float = 0.01  # of the labelled training images, class-balanced
    subset_seed: int = 0  # which balanced subset
    subset_file: Optional[str] = None  # a list of sample names to use instead (canonical ImageNet lists)
    epochs: Optional[int] = None  # None: 60 for fractions <= 1 %, else 30
    batch_size: int = 256
    lr: Optional[float] = None  # None: 0.05 x batch_size / 256
    # The linear classifier's own learning rate (None: lr). Under (1 - l) CE + l SupCon/SCHaNe the classifier
    # learns from the CE term alone, at (1 - l) of CE's rate: lr / (1 - l) gives it CE's effective rate back
    classifier_lr: Optional[float] = None
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 0.0
    seeds: list[int] = field(default_factory=lambda: [0])  # one fine-tuning per seed; mean +- std reported
    out_dir: Optional[str] = None  # None: RUN_DIR/finetune_<percent>pct (or _<k>shot), _<loss> unless ce
    shots: Optional[int] = None  # k-shot: k labelled images per class instead of finetune.fraction
    # ce; supcon: (1 - l) CE + l SupCon; schane: (1 - l) CE + l SCHaNe (docs/losses.md); simclr: (1 - l) CE + l
    # NT-Xent of two views of every image (a label-free auxiliary term)
    loss: str = "ce"
    # Augmented views of every image per batch, 1 or 2 (None: 2 for simclr, else 1). With 2, CE reads both and an
    # image's other view is a positive of supcon/schane (at 1-shot they have no positive otherwise); twice the passes
    views: Optional[int] = None
    contrastive_weight: float = 0.9  # lambda of supcon/schane/simclr, in [0, 1] (SCHaNe's recommended 0.9)
    temperature: float = 0.1  # t of the contrastive term, on the L2-normalised backbone features
    weighting: str = "anchor"  # schane: hard negatives weighted by similarity to the anchor, or to the positive
    detach_weights: bool = False  # schane: stop the gradient through the hard-negative weights
    # Hold out this many labelled training images (the same number per class, drawn with val_seed) as a
    # validation split, draw the fine-tuning subset from the rest, score every epoch on it and report the test
    # top-1 of the epoch with the best validation top-1 (early stopping). None: no validation split
    val_images: Optional[int] = None
    val_seed: int = 0  # which validation split
    patience: Optional[int] = None  # with val_images: stop after this many epochs without a better validation top-1


@dataclass
class ContinualConfig:
    """``synco continual``: a stream of tasks trained one after the other (docs/continual.md)."""

    tasks: int = 5  # T
    split: str = "class"  # class: the authors' class-incremental split (randperm of the classes, chunked); data: shards
    seed: int = 5  # the split's permutation (5 in CaSSLe's and PNR's code)
    task_classes: Optional[list] = None  # explicit classes per task, e.g. [[0,1],[2,3]]: must partition the classes
    # none: plain fine-tuning from the previous task's weights (the lower bound); cassle: + predictor and contrastive
    # distillation towards the previous task's frozen encoder; pnr: PNR's pseudo-negatives (MoCo-v2+ base)
    regularizer: str = "none"
    distill_weight: float = 1.0  # CaSSLe's lambda
    distill_temperature: float = 0.2  # t_d of the distillation / stability term
    predictor_hidden: int = 2048  # hidden width of the predictor g
    frozen_batchnorm: str = "eval"  # the frozen previous model's batch norm: eval (PNR) or train (CaSSLe's code)
    pseudo_negatives: str = "both"  # pnr: the old model's queue in both terms, or in the plasticity / stability one only
    negative_weight: float = 0.5  # pnr with byol: lambda_neg of the pushed-away other view (0.5 on CIFAR)
    # also R by an offline linear probe (on frozen features, restricted to each task's classes) with this many
    # epochs, and after the last task a probe on all classes (the papers' headline); None: kNN only
    linear_epochs: Optional[int] = None
    # CaSSLe's online linear probe: a classifier on detached backbone features trained with the labels during
    # each task, its accuracy matrix reported beside kNN's and the offline probe's (docs/continual.md)
    online_probe: bool = False
    current_task: Optional[int] = None  # set by synco continual in each task's run (0-based); not a user setting


@dataclass
class Config:
    run_dir: str = "runs/default"  # config.yaml, metrics.jsonl, checkpoints/ and the protocols' results
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    # The registered method's own block (synco.registry.METHODS): its dataclass is chosen by method.name
    # when the configuration is loaded (MoCoConfig for moco_v2/mochi/synco, SimCLRConfig, ...).
    method: Any = field(default_factory=MoCoConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    linear: LinearConfig = field(default_factory=LinearConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    continual: ContinualConfig = field(default_factory=ContinualConfig)


LOGGERS = ("csv", "tensorboard", "wandb")
FINETUNE_LOSSES = ("ce", "supcon", "schane", "simclr")


def validate(cfg: DictConfig) -> None:
    """Check allowed values and ranges; raise :class:`ConfigError` naming the first bad field.

    The general sections are checked here; the ``method`` block by its registered method's ``validate``.
    """
    choice(cfg, "data.dataset", DATASETS.names())
    choice(cfg, "data.augmentation", AUGMENTATIONS)
    choice(cfg, "data.augment_on", AUGMENT_ON)
    if not is_backbone(cfg.model.backbone):
        raise ConfigError(f"model.backbone={cfg.model.backbone!r} is not allowed; choose one of {list_backbones()} "
                          "or timm:<a timm model name>")
    if cfg.model.pretrained and not (cfg.model.backbone.startswith("timm:") or cfg.model.backbone in TIMM_ALIASES):
        raise ConfigError(f"model.pretrained=true loads timm's weights; model.backbone={cfg.model.backbone!r} is not "
                          "a timm backbone (use timm:<model name>, vit_small, deit_small or swin_tiny)")
    choice(cfg, "method.name", METHODS.names())
    choice(cfg, "train.schedule", SCHEDULES)
    choice(cfg, "train.optimizer", OPTIMIZERS)
    choice(cfg, "eval.feature", FEATURES)
    choice(cfg, "trainer.compile_mode", COMPILE_MODES)
    for logger in cfg.trainer.loggers:
        if logger not in LOGGERS:
            raise ConfigError(f"trainer.loggers: {logger!r} is not allowed; choose among {list(LOGGERS)}")
    for key in ("data.image_size", "model.embedding_dim", "model.bn_splits", "trainer.num_nodes",
                "trainer.collective_timeout", "train.batch_size", "train.log_every", "eval.knn_k", "eval.batch_size"):
        at_least(cfg, key, 1)
    for key in ("data.subset", "eval.train_subset", "eval.test_subset", "eval.every_epochs", "train.stop_after",
                "eval.analysis_every"):
        at_least(cfg, key, 1, optional=True)
    for key in ("train.epochs", "data.num_workers", "train.weight_decay", "train.lr_warmup_epochs"):
        at_least(cfg, key, 0)
    for key in ("train.lr", "eval.knn_temperature", "train.lars_trust_coefficient"):
        positive(cfg, key)
    at_least(cfg, "linear.epochs", 0)
    at_least(cfg, "linear.batch_size", 1)
    if cfg.linear.lr is not None:
        positive(cfg, "linear.lr")
    if not 0 < cfg.finetune.fraction <= 1:
        raise ConfigError(f"finetune.fraction={cfg.finetune.fraction} must lie in (0, 1] (0.01 for 1 % of the labels)")
    at_least(cfg, "finetune.batch_size", 1)
    at_least(cfg, "finetune.shots", 1, optional=True)
    choice(cfg, "finetune.loss", FINETUNE_LOSSES)
    at_least(cfg, "continual.tasks", 1)
    choice(cfg, "continual.split", ("class", "data"))
    choice(cfg, "continual.regularizer", ("none", *REGULARIZERS.names()))
    choice(cfg, "continual.frozen_batchnorm", ("eval", "train"))
    choice(cfg, "continual.pseudo_negatives", ("both", "plasticity", "stability"))
    at_least(cfg, "continual.linear_epochs", 1, optional=True)
    if cfg.continual.regularizer != "none":
        family = METHODS.get(cfg.method.name).continual_family
        with_family = [n for n, s in METHODS.items() if s.continual_family is not None]
        forms = REGULARIZERS.get(cfg.continual.regularizer).forms
        if family is None or family not in forms:
            with_family = [n for n in with_family if METHODS.get(n).continual_family in forms]
            raise ConfigError(f"continual.regularizer={cfg.continual.regularizer} has no form for method.name="
                              f"{cfg.method.name}: use one of {with_family} (MoCo bases with method.symmetric=true)")
    choice(cfg, "finetune.weighting", ("anchor", "positive"))
    positive(cfg, "finetune.temperature")
    if cfg.finetune.classifier_lr is not None:
        positive(cfg, "finetune.classifier_lr")
    if not 0 <= cfg.finetune.contrastive_weight <= 1:
        raise ConfigError(f"finetune.contrastive_weight={cfg.finetune.contrastive_weight} must lie in [0, 1] "
                          "(the lambda of (1 - lambda) CE + lambda contrastive)")
    at_least(cfg, "finetune.epochs", 0, optional=True)
    if cfg.finetune.views is not None:
        choice(cfg, "finetune.views", (1, 2))
        if cfg.finetune.loss == "simclr" and cfg.finetune.views == 1:
            raise ConfigError("finetune.loss=simclr needs two views of every image: finetune.views=2 (or unset)")
    at_least(cfg, "finetune.val_images", 1, optional=True)
    at_least(cfg, "finetune.patience", 1, optional=True)
    if cfg.finetune.patience is not None and cfg.finetune.val_images is None:
        raise ConfigError("finetune.patience needs a validation split: set finetune.val_images (e.g. 1000)")
    if not cfg.finetune.seeds:
        raise ConfigError("finetune.seeds must name at least one seed, e.g. finetune.seeds=[0,1,2]")
    if not cfg.linear.seeds:
        raise ConfigError("linear.seeds must name at least one seed, e.g. linear.seeds=[0,1,2]")
    if cfg.linear.feature is not None:
        choice(cfg, "linear.feature", FEATURES)
    if is_streamed(cfg.data.dataset) and cfg.data.augment_on == "batch":
        raise ConfigError(
            f"data.augment_on=batch needs a data set held in memory; {cfg.data.dataset} is read from disk, "
            "set data.augment_on=accelerator (workers decode and crop, the device does the rest) or sample "
            "(torchvision transforms in data.num_workers DataLoader workers)"
        )
    if cfg.data.pretrain_split is not None:
        if cfg.data.dataset != "stl10":
            raise ConfigError(f"data.pretrain_split is for dataset=stl10 only, not {cfg.data.dataset}")
        choice(cfg, "data.pretrain_split", ("unlabeled", "train+unlabeled"))
    if not 0 < cfg.data.crop_min_scale <= 1:
        raise ConfigError(f"data.crop_min_scale={cfg.data.crop_min_scale} must lie in (0, 1]")
    if cfg.model.bn_splits > 1 and cfg.train.batch_size % cfg.model.bn_splits != 0:
        raise ConfigError(
            f"train.batch_size={cfg.train.batch_size} must be a multiple of model.bn_splits={cfg.model.bn_splits}"
        )
    if cfg.model.sync_batchnorm and cfg.model.bn_splits > 1:
        raise ConfigError(
            f"model.sync_batchnorm=true and model.bn_splits={cfg.model.bn_splits} exclude each other: "
            "synchronised batch norm normalises over the whole global batch; set model.bn_splits=1"
        )
    devices = cfg.trainer.devices
    if isinstance(devices, int) and not isinstance(devices, bool):
        processes = devices * cfg.trainer.num_nodes
        if devices < 1:
            raise ConfigError(f"trainer.devices={devices} must be at least 1")
        if cfg.train.batch_size % processes != 0:
            raise ConfigError(
                f"train.batch_size={cfg.train.batch_size} (the global batch) must be a multiple of the "
                f"{processes} processes (trainer.devices x trainer.num_nodes)"
            )
        if cfg.model.bn_splits > 1 and (cfg.train.batch_size // processes) % cfg.model.bn_splits != 0:
            raise ConfigError(
                f"the per-process batch {cfg.train.batch_size // processes} must be a multiple of "
                f"model.bn_splits={cfg.model.bn_splits}"
            )
    problem = check_views(cfg.data)
    if problem:
        raise ConfigError(problem)
    spec = METHODS.get(cfg.method.name)
    views = len(view_specs(cfg.data))
    if views != 2 and not spec.multi_view:
        raise ConfigError(f"data.views gives {views} views per image; method.name={cfg.method.name} trains on exactly 2 "
                          f"(methods that take more: {[n for n, s in METHODS.items() if s.multi_view]})")
    if spec.validate is not None:
        spec.validate(cfg)


def _method_name(base_yaml: str | None, recipe: DictConfig | None, overrides: list[str]) -> str:
    """``method.name`` as the merge will set it (the last of: saved run, recipe, overrides), unvalidated."""
    name = "synco"
    layers = [OmegaConf.create(base_yaml) if base_yaml is not None else None, recipe,
              OmegaConf.from_dotlist(list(overrides))]
    for layer in layers:
        if layer is not None:
            value = OmegaConf.select(layer, "method.name", default=None)
            if value is not None:
                name = value
    if name not in METHODS:
        raise ConfigError(f"method.name={name!r} is not allowed; choose one of {METHODS.names()}")
    return name


#: The recipes that ship with the package (``configs/`` in the repository is a link to this folder).
RECIPES = Path(__file__).resolve().parent / "recipes"
RECIPE_KINDS = ("pretrain", "continual", "finetune", "linear")


def packaged_recipes() -> list[str]:
    """Names of the shipped recipes, as ``synco pretrain NAME`` takes them (e.g. ``cifar10/synco``)."""
    names = []
    for kind in RECIPE_KINDS:
        names += [f"{kind}/{p.relative_to(RECIPES / kind).with_suffix('')}" for p in sorted((RECIPES / kind).rglob("*.yaml"))]
    return names


def resolve_recipe(path: str | Path) -> Path:
    """A recipe file: ``path`` itself when it is a file, else the shipped recipe it names.

    Shipped recipes are named relative to ``synco/recipes`` with or without their kind and suffix:
    ``cifar10/synco``, ``pretrain/cifar10/synco``, ``pretrain/cifar10/synco.yaml``, and the repository's
    ``configs/pretrain/cifar10/synco.yaml`` from any working directory.

    Raises:
        ConfigError: neither a file nor a shipped recipe (the message lists how to see them), or a name that
            fits shipped recipes of several kinds.
    """
    if Path(path).is_file():
        return Path(path)
    name = str(path).removeprefix("configs/").removesuffix(".yaml")
    found = [RECIPES / f"{name}.yaml", *(RECIPES / kind / f"{name}.yaml" for kind in RECIPE_KINDS)]
    found = list(dict.fromkeys(p for p in found if p.is_file()))
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise ConfigError(f"recipe {path} is ambiguous: " + ", ".join(str(p.relative_to(RECIPES)) for p in found))
    raise ConfigError(f"config file {path} does not exist, and no shipped recipe has that name "
                      "(`synco config --recipes` lists them)")


def load_config(path: str | Path | None, overrides: list[str] = (), base_yaml: str | None = None) -> DictConfig:
    """Merge defaults, a saved configuration, the YAML recipe at ``path`` and ``KEY=VALUE`` overrides, then validate.

    ``base_yaml`` is a run's saved configuration (``config.yaml`` or a checkpoint's ``config``), so that
    an evaluation starts from the settings the encoder was trained with.

    Raises:
        ConfigError: for a missing recipe, a malformed override, an unknown key, a wrong type or a
            value out of range; the message names the field.
    """
    cfg = OmegaConf.structured(Config)
    try:
        recipe = None
        if path is not None:
            path = resolve_recipe(path)
            try:
                recipe = OmegaConf.load(path)
            except yaml.YAMLError as err:
                raise ConfigError(f"config file {path} is not valid YAML: {first_line(err)}") from None
            if not isinstance(recipe, DictConfig):
                raise ConfigError(f"config file {path} must hold a mapping of keys (e.g. 'train: {{epochs: 10}}')")
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {item!r} is not KEY=VALUE (e.g. train.epochs=10)")
        if recipe is not None:
            _check_saved_run_location(Path(path), recipe, overrides)
        # The method's own dataclass is the schema of the method block: its keys, types and defaults.
        cfg.method = OmegaConf.structured(METHODS.get(_method_name(base_yaml, recipe, overrides)).config)
        if base_yaml is not None:
            cfg = OmegaConf.merge(cfg, OmegaConf.create(base_yaml))
        if recipe is not None:
            for key in recipe:  # section by section, so that a merge error can name its section
                try:
                    cfg = OmegaConf.merge(cfg, {key: recipe[key]})
                except OmegaConfBaseException as err:
                    where = getattr(err, "full_key", None) or key
                    _raise_if_foreign_method_key(cfg, err)
                    raise ConfigError(f"{path}: invalid value at {where}: {first_line(err)}") from None
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as err:
        _raise_if_foreign_method_key(cfg, err)
        key = getattr(err, "full_key", None)
        raise ConfigError(f"invalid configuration{f' at {key}' if key else ''}: {first_line(err)}") from None
    validate(cfg)
    return cfg


def _check_saved_run_location(path: Path, recipe: DictConfig, overrides) -> None:
    """A run's saved config.yaml used as a recipe must name its own folder as run_dir (or get run_dir=...).

    A copied or moved run directory still names the original run_dir; using it as it is would train into
    (or refuse because of) the original run.
    """
    folder = path.resolve().parent
    is_saved_run = path.name == "config.yaml" and ((folder / "checkpoints").is_dir() or (folder / "metrics.jsonl").exists())
    named = recipe.get("run_dir") if isinstance(recipe, DictConfig) else None
    if not is_saved_run or named is None or any(item.startswith("run_dir=") for item in overrides):
        return
    if Path(named).resolve() != folder:
        raise ConfigError(
            f"{path} is the saved configuration of the run in {folder}, but names run_dir={named} (the run was "
            f"copied or moved); add run_dir={folder} to continue it there with --resume, or run_dir=NEW_FOLDER "
            "to start a new run with its settings"
        )


def _raise_if_foreign_method_key(cfg: DictConfig, err: OmegaConfBaseException) -> None:
    """A key of another method's block (``method.queue_size`` with ``method.name=simclr``): say so."""
    from omegaconf.errors import ConfigKeyError

    key = getattr(err, "full_key", None) or ""
    if isinstance(err, ConfigKeyError) and key == "method.negatives":
        with_negatives = [n for n in METHODS.names() if "negatives" in OmegaConf.structured(METHODS.get(n).config)]
        raise ConfigError(f"method.name={cfg.method.name} makes no synthetic negatives, so method.negatives.* does not "
                          f"apply to it (methods that do: {', '.join(with_negatives)})") from None
    if isinstance(err, ConfigKeyError) and key.startswith("method.") and key.count(".") == 1:
        name = cfg.method.name
        raise ConfigError(f"{key} is not a setting of method.name={name} (its settings: "
                          f"{', '.join(cfg.method.keys())}); a recipe of another method cannot be switched "
                          "with method.name alone") from None


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)
