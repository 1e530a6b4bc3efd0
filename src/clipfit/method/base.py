"""The Method interface (which parameters train, what modules are added, the loss, the recipe), the method
registry, and presets (a name for a method with some settings fixed, e.g. 'prompt+ln')."""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Generic, TypeVar, cast

import torch
import torch.nn.functional as F
from torch import nn

from .. import recipes
from ..backbone import Backbone, parameter_group
from ..config import TrainConfig, apply_settings, check_config, opt
from ..errors import ClipfitError
from ..progress import warn
from ..recipes import Context, Recipe
from ..registry import Registry
from .shared import ZeroShotAnchor

LN_GROUPS = {
    "both": ["text_layernorm", "vision_layernorm"],
    "text": ["text_layernorm"],
    "vision": ["vision_layernorm"],
}

INIT_FROM_HELP = ("run directory of a first stage (e.g. a `layernorm` run) whose tuned backbone weights initialise "
                  "this run (LayerNorm tuning paper: 'fine-tuned LayerNorm as initialization'); '' = the pre-trained "
                  "weights")


@dataclass
class MethodConfig:
    """Settings every method has: two-stage training and LayerNorm tuning alongside the method's own parameters."""

    init_from: str = opt("", INIT_FROM_HELP)
    layernorm: bool = opt(False, "also tune LayerNorms together with this method's parameters (the '+ln' presets: "
                                 "the LayerNorm tuning paper's 'Normal' combination, CLIPFit Table 4's '+UL')")
    layernorm_tower: str = opt("both", "LayerNorms tuned when layernorm=true: of both encoders, or only of the "
                                       "image (vision) or text encoder", tuple(LN_GROUPS))


NoConfig = MethodConfig  # a method with no settings of its own


@dataclass
class TowerConfig(MethodConfig):
    """A method that tunes parameter groups of one or both encoders (`GroupTuning`)."""

    tower: str = opt("both", "encoders tuned", ("both", "text", "vision"))
C = TypeVar("C", bound=MethodConfig)  # a method's config class


@dataclass(frozen=True)
class MethodEntry:
    """What a method name stands for: a method class and, for a preset, the settings the name fixes."""

    name: str
    cls: type[Method[Any]]
    preset: Mapping[str, Any]
    help: str

    @property
    def base(self) -> str:
        return self.cls.name

    def config(self) -> MethodConfig:
        """The method config this name starts from: the class defaults with the preset's settings."""
        cfg = self.cls.Config()
        apply_settings([cfg], self.preset, what=f"preset {self.name}")
        return cfg

    def configs(self, ctx: Context, settings: Mapping[str, Any]) -> tuple[MethodConfig, TrainConfig]:
        """(method config, training config) for a run: defaults < recipe < recipe rules < preset < `settings`."""
        mcfg, tcfg = self.cls.Config(), TrainConfig()
        apply_settings([mcfg, tcfg], self.cls.recipe.resolve(ctx), what=f"recipe {self.cls.recipe.name}:")
        apply_settings([mcfg], self.preset, what=f"preset {self.name}")
        apply_settings([mcfg, tcfg], settings, what="setting")
        return mcfg, tcfg


METHODS: Registry[MethodEntry] = Registry("method")
M = TypeVar("M", bound="type[Method[Any]]")


def register_method(name: str) -> Callable[[M], M]:
    """Class decorator: register a Method under `name`. Refuses a method setting that a training setting already
    names, and a recipe whose settings the method cannot take."""

    def deco(cls: M) -> M:
        if not (isinstance(cls.Config, type) and issubclass(cls.Config, MethodConfig)):
            raise TypeError(f"method {name!r}: its Config must derive from MethodConfig")
        clash = {f.name for f in fields(cls.Config)} & {f.name for f in fields(TrainConfig)}
        if clash:
            raise TypeError(f"method {name!r}: settings {sorted(clash)} collide with training settings")
        apply_settings([cls.Config(), TrainConfig()], cls.recipe.settings, what=f"recipe {cls.recipe.name}:")
        cls.name = name
        METHODS.add(name, MethodEntry(name, cls, {}, (cls.__doc__ or "").strip().splitlines()[0]))
        return cls

    return deco


def register_preset(name: str, base: str, help: str, **settings: Any) -> None:
    """Register `name` as method `base` with `settings` fixed (e.g. 'prompt+ln' = prompt with layernorm=true)."""
    entry = METHODS.get(base)
    apply_settings([entry.cls.Config()], settings, what=f"preset {name}")
    METHODS.add(name, MethodEntry(name, entry.cls, {**entry.preset, **settings}, help))


@dataclass
class Step:
    """One training step as it passes through the method: the engine fills the batch, its features and logits (the
    forward pass, under the run's autocast), then calls the method's `forward_teacher`, `loss` and `backward` with
    it. What a method keeps from one of these calls for the next lives here, not on the method."""

    inputs: torch.Tensor  # images [B, 3, H, W], or cached frozen image features [B, D] when training on features
    labels: torch.Tensor  # [B]
    text: torch.Tensor  # class text features [C, D] (`text_features`)
    image: torch.Tensor  # image features [B, D] (`image_features`, or `adapt_image_features` of cached ones)
    logits: torch.Tensor  # [B, C] (`logits`)
    teacher: dict[str, torch.Tensor] = field(default_factory=dict)  # the frozen model's outputs (`forward_teacher`)
    terms: dict[str, torch.Tensor] = field(default_factory=dict)  # loss terms a method's `backward` combines itself
    loss: torch.Tensor | None = None  # the total `loss` returned, set by the engine before `backward`


class Method(nn.Module, Generic[C]):
    """A way of adapting a CLIP backbone. A method is a subclass `Method[ItsConfig]` whose `Config` is that
    `MethodConfig` dataclass; it overrides `build` (choose or add trainable parameters) and, when needed, the features
    (`text_features`, `image_features`, `adapt_image_features`), `logits`, the training step's `forward_teacher`,
    `loss` and `backward` (each given the `Step`), and the loop's hooks (`on_train_start`, `on_epoch_end`,
    `on_train_end`). A method that distils toward zero-shot CLIP's class text features sets `anchor`
    (`ZeroShotAnchor`) in `build`: it is captured when training starts.

    `init_weights` (backbone parameter name -> tensor) are copied into the backbone before `build`: the engine reads
    them from the first stage of a two-stage run (`init_from`); they are saved with this run's weights.
    `layer_change` (backbone parameter name -> its recorded change ||p - p0||^2) is what the engine read from the run
    that a `layers_from` setting names, for methods that rank layers by it (CLIPFit's topK layers).

    How the engine trains a method follows from six flags (class attributes or properties; docs/extending.md):

    flag                 meaning                                                            default
    closed_form          fitted by `fit_features` on cached frozen features: no SGD, no    False
                         epochs
    image_tower_frozen   nothing that trains changes `frozen_image_features`, and the       no image-tower parameter
                         image side is `adapt_image_features(frozen_image_features(x))`:    trains and `image_features`
                         the engine trains on image features cached once per view           is not overridden
                         (`feature_cache`); the same result without augmentation
    trains_on_features   the method can only train on cached features (it builds           False
                         something from them in `on_features`)
    feature_views        cached views per training image: 0 = one un-augmented view,       the config's `views`, else
                         N = N augmented views; None = the `feature_views` setting          None
    view_per_epoch       with N views, epoch e trains on view e mod N (True) or on all N    True
                         views (False)
    text_is_static       nothing that trains changes the class text features: the engine    no trainable parameter of
                         computes them once per epoch, without gradients                    the text tower or of the
                                                                                            method's own modules
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    recipe: ClassVar[Recipe] = recipes.DASSL_SGD  # training recipe (clipfit.recipes); each method names its own
    mergeable: ClassVar[bool] = True  # tuned weights are the backbone's own parameters: `export --merged` works
    class_agnostic: bool = True  # can classify classes never trained on (base-to-new "new")
    closed_form: ClassVar[bool] = False  # fitted by `fit_features` on cached frozen features (no SGD, no epochs)
    # logits at evaluation are logit_scale x image_features @ text_features.T, so either tower's features can be
    # swapped for zero-shot CLIP's (`clipfit analyze --towers`); False for logits built otherwise
    feature_logits: ClassVar[bool] = True
    # the setting that weights each term of `loss` (as its parts name them), named when the loss becomes non-finite
    term_weights: ClassVar[dict[str, str]] = {}
    anchor: ZeroShotAnchor | None = None  # set in `build` by a method that distils toward zero-shot text features
    classnames: list[str]

    def __init__(self, backbone: Backbone, classnames: Sequence[str], template: str | Sequence[str],
                 cfg: C | None = None, init_weights: Mapping[str, torch.Tensor] | None = None,
                 layer_change: Mapping[str, float] | None = None):
        super().__init__()
        self.backbone = backbone
        self.cfg: C = cfg if cfg is not None else cast(C, self.Config())
        check_config(self.cfg)  # a config built or changed in Python is checked as the settings of a run are
        self.templates = [template] if isinstance(template, str) else list(template)
        self.layer_change = layer_change
        backbone.requires_grad_(False)
        self._init_names: list[str] = []  # backbone parameters taken from an earlier run
        if init_weights:
            self._copy_into_backbone(init_weights)
        self.build()
        if self.cfg.layernorm:
            if self.closed_form:
                raise ClipfitError(f"method {self.name!r} is fitted in closed form on frozen features; layernorm=true "
                                   "cannot train LayerNorms with it (use linear_probe+ln)")
            self.unfreeze(*LN_GROUPS[self.cfg.layernorm_tower])
        self.set_classes(classnames)

    @classmethod
    def agnostic_for(cls, cfg: Any) -> bool:
        """Whether this method with settings `cfg` can classify classes it was not trained on (default:
        `class_agnostic`; CoOp's class-specific context depends on a setting)."""
        return cls.class_agnostic

    # -- what trains -------------------------------------------------------------------------------------------
    def build(self) -> None:
        """Unfreeze backbone parameters and/or add modules. Default: nothing trains (zero-shot)."""

    def reset_parameters(self) -> None:
        """(Re-)initialise the method's own new modules from the global RNG. The engine calls it right after
        seeding, so the initialisation is a function of the run's seed. Default: nothing to initialise."""

    def unfreeze(self, *groups: str) -> None:
        params = dict(self.backbone.model.named_parameters())
        for g in groups:
            for n in parameter_group(self.backbone.model, g):
                params[n].requires_grad_(True)

    def trainable(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.named_parameters() if p.requires_grad}

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.trainable().values())

    @property
    def text_tower_trains(self) -> bool:
        """True when a parameter of the text encoder or of its projection is trainable."""
        return any(p.requires_grad for p in self.backbone.tower_parameters("text"))

    @property
    def text_is_static(self) -> bool:
        """True when nothing that trains affects the class text features (the engine then caches them).

        Default: no trainable parameter of the text tower and no trainable parameter outside the backbone (a
        method whose own modules do not touch the text features says so by overriding this)."""
        if self.text_tower_trains:
            return False
        return not any(p.requires_grad for n, p in self.named_parameters() if not n.startswith("backbone."))

    @property
    def backbone_trains(self) -> bool:
        """True when some backbone parameter is trainable (gradients must flow through CLIP)."""
        return any(p.requires_grad for p in self.backbone.model.parameters())

    # -- training on cached features (no back-propagation through CLIP) ---------------------------------------
    @property
    def image_tower_frozen(self) -> bool:
        """True when nothing that trains changes `frozen_image_features` and the image side is
        `adapt_image_features(frozen_image_features(x))`: the engine then encodes each training image once per
        cached augmented view and trains on those features (`TrainConfig.feature_cache`), with the same result
        as encoding the images every step when augmentation is off. Default: no trainable parameter in the image
        encoder or its projection, and `image_features` not overridden (deep prompts change the image path)."""
        frozen = not any(p.requires_grad for p in self.backbone.tower_parameters("vision"))
        return frozen and type(self).image_features is Method.image_features

    @property
    def trains_on_features(self) -> bool:
        """True when the method can only train on cached features (it builds something from them in
        `on_features`, e.g. Tip-Adapter's keys); others with `image_tower_frozen` do so unless told otherwise."""
        return False

    @property
    def feature_views(self) -> int | None:
        """Views per training image in the feature cache: 0 = one un-augmented view (eval transform), N > 0 =
        N randomly augmented views (train transform). The method config's `views` when it has one, else None
        (the engine's `feature_views` setting applies)."""
        views = getattr(self.cfg, "views", None)
        return None if views is None else int(views)

    @property
    def view_per_epoch(self) -> bool:
        """With N > 1 cached views per image: True = each epoch trains on one view of every image (view e mod N),
        so that an epoch is one pass over the training set as it is on images (the N views stand in for fresh
        augmentations); False = every epoch trains on all N views."""
        return True

    def on_features(self, feats: torch.Tensor, labels: torch.Tensor) -> None:
        """Called with the cached training features [N, D] and labels [N] before training on features. With V
        views (`feature_views`) the rows are view-major: row v * n + i is view v of training image i."""

    def size_for(self, n_train: int) -> None:
        """Allocate what grows with the training set for `n_train` training images (Tip-Adapter-F: one trainable
        key per image); `clipfit params --shots K` counts with it. Default: nothing grows."""

    def fit_features(self, train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor | None,
                     val_y: torch.Tensor | None) -> dict[str, Any]:
        """Closed-form / solver fit on cached features (closed_form methods). Returns at least
        {'val_accuracy': float | None} and may add 'history' (one record per candidate) and other fields."""
        raise NotImplementedError(f"method {self.name!r} is not fitted in closed form")

    def select_on_validation(self, val_x: torch.Tensor | None, val_y: torch.Tensor | None) -> dict[str, Any]:
        """Called after the epoch loop of a method that trains on features, with the cached validation features
        (None without a validation split): a method may choose settings on validation here (Tip-Adapter-F: its
        alpha and beta). Returns what it chose, recorded in metrics.json 'selected' ('history': lines for the log;
        'val_accuracy': replaces the kept checkpoint's). Default: nothing to choose."""
        return {}

    # -- classes and features ----------------------------------------------------------------------------------
    def set_classes(self, classnames: Sequence[str]) -> None:
        """Set the classes to classify (their prompts are built from the templates)."""
        self.classnames = list(classnames)
        self._tokens = [self.backbone.tokenize([t.format(c) for c in self.classnames]) for t in self.templates]
        warn_same_prompts(self.classnames, *[(tok["input_ids"], tok["attention_mask"]) for tok in self._tokens])

    def text_features(self) -> torch.Tensor:
        """Normalised class features [C, D] (mean over templates when there are several)."""
        feats = [self.backbone.encode_text(tok) for tok in self._tokens]
        return feats[0] if len(feats) == 1 else F.normalize(torch.stack(feats).mean(0), dim=-1)

    def frozen_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """What the frozen backbone gives for an image (what a feature cache holds): normalised projected features."""
        return self.backbone.encode_image(pixel_values)

    def adapt_image_features(self, feats: torch.Tensor) -> torch.Tensor:
        """The method's own transformation of `frozen_image_features` (default: none)."""
        return feats

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.adapt_image_features(self.frozen_image_features(pixel_values))

    @property
    def uses_dataset_template(self) -> bool:
        """True when the class prompts come from the dataset's template (so another dataset's template may replace
        it); False when the method fixes its own prompts (a template ensemble, learned context)."""
        return True

    def logits(self, image_feats: torch.Tensor, text_feats: torch.Tensor) -> torch.Tensor:
        """The model's own scores: exp(logit_scale) * cos, plus the logit bias of families that have one (SigLIP)."""
        return self.backbone.logits(image_feats, text_feats)

    # -- training ----------------------------------------------------------------------------------------------
    def on_train_start(self) -> None:
        """Called once before the first step: captures the zero-shot `anchor` when there is one. Subclasses that
        store something of their own (e.g. frozen weights to compare with) call super()."""
        if self.anchor is not None:
            self.anchor.capture()

    def forward_teacher(self, step: Step) -> None:
        """Called in the forward pass of each training step, after `logits` and under the same autocast: a method
        that distils from the frozen model puts its outputs for this batch in `step.teacher` for `loss` (ProGrad:
        the zero-shot logits; PromptSRC: the frozen image features). Default: nothing."""

    def loss(self, step: Step) -> tuple[torch.Tensor, dict[str, float]]:
        """The step's loss and its terms by name (logged, and named with `term_weights` when it is not finite)."""
        ce = F.cross_entropy(step.logits.float(), step.labels)  # fp32 whatever the autocast precision of the logits
        return ce, {"ce": float(ce.detach())}

    def backward(self, step: Step) -> None:
        """Fill the trainable parameters' `.grad` from the step's loss (a method that combines the gradients of
        its loss terms itself, e.g. ProGrad, overrides this)."""
        assert step.loss is not None, "the engine sets step.loss before backward"
        step.loss.backward()

    def on_epoch_end(self, epoch: int, epochs: int) -> None:
        """Called after the last step of each epoch (1-based `epoch` of `epochs`), before validation."""

    def on_train_end(self) -> None:
        """Called once after the last epoch, before the kept checkpoint is chosen."""

    # -- tuned weights -----------------------------------------------------------------------------------------
    def merge_into_backbone(self) -> None:
        """Fold the method into the backbone's own parameters, so that the plain backbone computes the method's
        logits (`export --merged`). Nothing to do when the tuned weights are backbone parameters; a mergeable
        method with modules of its own (CLIP-LoRA: W + s B A) overrides this."""
        if not self.mergeable:
            raise ClipfitError(f"method {self.name!r} adds modules of its own; its weights cannot be merged into a "
                               "plain CLIP checkpoint")

    def _copy_into_backbone(self, weights: Mapping[str, torch.Tensor]) -> None:
        """Copy backbone weights (parameter name -> tensor) in; they are saved with this run (`stored_state`)."""
        params = dict(self.backbone.model.named_parameters())
        with torch.no_grad():
            for n, t in weights.items():
                if n not in params:
                    raise ClipfitError(f"weight {n} is not a parameter of this model")
                if params[n].shape != t.shape:
                    raise ClipfitError(f"weight {n} has shape {tuple(t.shape)}, this model needs {tuple(params[n].shape)}")
                params[n].copy_(t.to(params[n].dtype))
        self._init_names = sorted(set(self._init_names) | set(weights))

    def stored_state(self) -> dict[str, torch.Tensor]:
        """Tensors that belong to a trained method but are not trained by gradient (e.g. stored training features,
        weights taken from an earlier run); saved with the trainable ones. Subclasses extend the dict of `super()`."""
        params = dict(self.backbone.model.named_parameters())
        return {f"backbone.model.{n}": params[n].detach() for n in self._init_names if not params[n].requires_grad}

    def load_stored_state(self, state: dict[str, torch.Tensor]) -> set[str]:
        """Take what `stored_state` saved from `state`; returns the keys used (the others are 'unexpected').
        Subclasses add the keys they use to those of `super()`."""
        params = dict(self.backbone.model.named_parameters())
        frozen = {k: t for k, t in state.items()
                  if k.startswith("backbone.model.") and k.removeprefix("backbone.model.") in params
                  and not params[k.removeprefix("backbone.model.")].requires_grad}
        self._copy_into_backbone({k.removeprefix("backbone.model."): t for k, t in frozen.items()})
        return set(frozen)

    def tuned_state(self) -> dict[str, torch.Tensor]:
        out = {n: p.detach().clone() for n, p in self.trainable().items()}
        for n, t in self.stored_state().items():
            out.setdefault(n, t.detach().clone())
        return out

    def load_tuned(self, state: dict[str, torch.Tensor]) -> None:
        own = self.trainable()
        missing = set(own) - set(state)
        rest = {k: v for k, v in state.items() if k not in own}
        used = self.load_stored_state(rest) if rest else set()
        unexpected = set(rest) - set(used)
        if missing or unexpected:
            raise ClipfitError(
                f"tuned weights do not fit method {self.name!r}: missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}"
            )
        with torch.no_grad():
            for n, p in own.items():
                if p.shape != state[n].shape:
                    raise ClipfitError(f"tuned weight {n} has shape {tuple(state[n].shape)}, model needs {tuple(p.shape)}")
                p.copy_(state[n].to(p.dtype))


def warn_same_prompts(classnames: Sequence[str], *tokens: tuple[torch.Tensor, torch.Tensor]) -> None:
    """One warning line when classes get the same prompt tokens under every template (`tokens`: (ids [C, T], mask
    [C, T]) per template): names cut at the text encoder's length, or words the tokenizer does not know, make
    classes the model cannot tell apart. Called where the prompts are tokenized, once per class list."""
    if not tokens or tokens[0][0].is_meta:
        return
    groups: dict[tuple[tuple[int, ...], ...], list[str]] = {}
    for i, c in enumerate(classnames):
        key = tuple(tuple(ids[i][mask[i].bool()].tolist()) for ids, mask in tokens)
        groups.setdefault(key, []).append(c)
    same = [g for g in groups.values() if len(g) > 1]
    if same:
        short = lambda c: repr(c if len(c) <= 40 else f"{c[:18]}...{c[-18:]}")  # noqa: E731
        more = f" (and {len(same) - 1} more group(s))" if len(same) > 1 else ""
        warn(f"classes {', '.join(map(short, same[0][:3]))}{' ...' if len(same[0]) > 3 else ''} get the same prompt "
             f"tokens{more}: the model cannot tell them apart (names cut at the text encoder's length, words the "
             "tokenizer does not know, or the same name twice); shorten or reword them")


G = TypeVar("G", bound=TowerConfig)


class GroupTuning(Method[G]):
    """A method that tunes existing parameter groups of the backbone (`backbone.parameter_group` names), chosen by
    its config's `tower` setting: GROUPS maps each `tower` value to the groups it unfreezes."""

    GROUPS: ClassVar[dict[str, list[str]]] = {}

    def build(self) -> None:
        self.unfreeze(*self.GROUPS[self.cfg.tower])


def build_method(name: str, backbone: Backbone, classnames: Sequence[str], template: str | Sequence[str],
                 cfg: MethodConfig | None = None, init_weights: Mapping[str, torch.Tensor] | None = None,
                 layer_change: Mapping[str, float] | None = None) -> Method[Any]:
    """An instance of method `name` (a preset name gives its base class; `cfg` None: the name's own config).
    `init_weights`, `layer_change`: see `Method` (the engine reads them from the runs the settings name)."""
    entry = METHODS.get(name)
    return entry.cls(backbone, classnames, template, cfg if cfg is not None else entry.config(), init_weights,
                     layer_change)


def parse_layers(spec: str, n: int, setting: str, ranking: Sequence[float] | None = None) -> list[int]:
    """The 0-based layers of `n` that a layer setting names: 'all', or comma-separated items: K (1-based), A-B,
    'last', 'lastK' (the last K), 'topK' (the K with the largest `ranking`: each layer's recorded change)."""
    spec = spec.strip().lower()
    if spec == "all":
        return list(range(n))
    out: set[int] = set()
    for item in (x.strip() for x in spec.split(",") if x.strip()):
        try:
            if item == "last":
                out.add(n - 1)
            elif item.startswith("last"):
                out.update(range(max(0, n - int(item[4:])), n))
            elif item.startswith("top"):
                if ranking is None:
                    raise ClipfitError(f"setting {setting}={spec}: '{item}' ranks layers by their recorded change; "
                                       "also set layers_from=RUN_DIR, a run trained with record=change")
                k = int(item[3:])
                rank = ranking
                out.update(sorted(range(n), key=lambda i: -rank[i])[:k])
            elif "-" in item:
                a, b = (int(x) for x in item.split("-", 1))
                out.update(range(a - 1, b))
            else:
                out.add(int(item) - 1)
        except ValueError:
            raise ClipfitError(f"setting {setting}={spec}: {item!r} is not a layer; write e.g. 1,12 or 1-6 or last3 "
                               "or top6") from None
    bad = sorted(i + 1 for i in out if not 0 <= i < n)
    if bad or not out:
        raise ClipfitError(f"setting {setting}={spec}: layers are 1 to {n}" + (f", not {bad[0]}" if bad else ""))
    return sorted(out)


def block_index(name: str) -> int | None:
    """The encoder block a parameter belongs to (0-based), from its name ('...layers.3....'), or None."""
    m = re.search(r"\.layers\.(\d+)\.", name)
    return int(m.group(1)) if m else None


def keep_layers(method: Method[Any], layers: list[list[str]], spec: str, setting: str,
                change: Mapping[str, float] | None = None) -> None:
    """Freeze every parameter of `layers` (backbone parameter names, one list per layer in depth order) except those
    of the layers `spec` names (`parse_layers`; 'topK' ranks layers by the summed recorded `change`)."""
    ranking = [sum(change.get(n, 0.0) for n in names) for names in layers] if change is not None else None
    chosen = set(parse_layers(spec, len(layers), setting, ranking))
    params = dict(method.backbone.model.named_parameters())
    for i, names in enumerate(layers):
        if i not in chosen:
            for n in names:
                params[n].requires_grad_(False)


def parameter_group_of(model: nn.Module, module: nn.Module) -> list[str]:
    """The names (in `model`) of `module`'s own parameters."""
    ids = {id(p) for p in module.parameters(recurse=False)}
    return [n for n, p in model.named_parameters() if id(p) in ids]
