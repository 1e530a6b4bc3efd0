"""Recipes in one place, rules on canonical dataset names, presets, and what registration refuses."""
from __future__ import annotations

from dataclasses import dataclass, fields

import pytest

from clipfit import recipes
from clipfit.config import TrainConfig, opt, parse_settings
from clipfit.engine.run import RunSpec, resolve_configs
from clipfit.errors import ClipfitError
from clipfit.method import METHODS, Method, MethodConfig, register_method, register_preset
from clipfit.recipes import Context


def _configs(method: str, dataset: str, protocol: str = "fewshot", shots: int = 16, **settings):
    return resolve_configs(RunSpec(dataset=dataset, method=method, protocol=protocol, shots=shots, settings=settings))


@pytest.mark.parametrize("alias, canonical", [("food", "food101"), ("Food101", "food101")])
def test_aliases_get_the_canonical_datasets_epochs(alias, canonical):
    assert _configs("clipfit", alias)[1].epochs == _configs("clipfit", canonical)[1].epochs == 10
    assert _configs("bitfit", alias)[1].epochs == 10


@pytest.mark.parametrize("alias, canonical", [("textures", "dtd"), ("sun", "sun397")])
def test_aliases_get_the_canonical_datasets_beta(alias, canonical):
    assert _configs("clipfit", alias)[0].beta == _configs("clipfit", canonical)[0].beta == 8.0
    assert _configs("clipfit", "eurosat")[0].beta == 2.0
    assert _configs("clipfit", alias, protocol="base2new")[0].beta == 8.0


def test_precedence_recipe_rules_preset_user():
    mcfg, tcfg = _configs("clipfit", "imagenet")
    assert (tcfg.optimizer, tcfg.lr, tcfg.epochs, mcfg.beta) == ("sgd", 0.002, 10, 2.0)  # recipe, then its rules
    mcfg, tcfg = _configs("clipfit", "imagenet", epochs=3, beta=5.0)
    assert (tcfg.epochs, mcfg.beta) == (3, 5.0)  # the user's settings win
    mcfg, _ = _configs("llu:no_damp", "eurosat", beta=0.25)
    assert mcfg.beta == 0.25  # the user's settings win over a preset's
    assert _configs("llu:no_damp", "eurosat")[0].beta == 1.0 and _configs("llu", "eurosat")[0].beta == 0.5
    _, tcfg = _configs("prompt+ln", "eurosat")
    assert (tcfg.optimizer, tcfg.lr) == ("adamw", 5e-4)  # a preset keeps its base method's recipe


def test_every_recipe_fits_its_methods_under_every_protocol():
    for name in METHODS.list():
        entry = METHODS.get(name)
        for protocol in recipes.PROTOCOLS:
            for dataset in ("imagenet", "food101", "dtd", "eurosat", "imagefolder:x"):
                entry.configs(Context(protocol, dataset, 16), {})  # raises on a setting the method cannot take


def test_no_recipe_number_is_written_twice():
    assert recipes.CLIPFIT.settings["lr"] is recipes.DASSL_SGD.settings["lr"]
    assert TrainConfig().lr == recipes.DASSL_SGD.settings["lr"]
    assert recipes.BITFIT.settings == recipes.CLIPFIT.settings
    assert recipes.LLU.settings["momentum"] == recipes.DASSL_SGD.settings["momentum"]


def test_a_method_setting_that_collides_with_a_training_setting_is_refused():
    @dataclass
    class Bad(MethodConfig):
        lr: float = opt(0.1, "collides with TrainConfig.lr")

    with pytest.raises(TypeError, match="collide"):
        register_method("bad_method")(type("BadMethod", (Method,), {"Config": Bad}))
    assert "bad_method" not in METHODS

    class NotAConfig:
        pass

    with pytest.raises(TypeError, match="MethodConfig"):
        register_method("bad_method2")(type("BadMethod2", (Method,), {"Config": NotAConfig}))


def test_a_recipe_setting_the_method_lacks_is_refused():
    bad = recipes.Recipe("bad", "test", {"no_such_field": 1})
    with pytest.raises(ClipfitError, match="no_such_field"):
        register_method("bad_recipe")(type("BadRecipe", (Method,), {"recipe": bad}))


def test_a_plus_ln_variant_is_one_line_and_a_preset():
    register_preset("zeroshot+ln_test", "zeroshot", "test preset", layernorm=True, layernorm_tower="vision")
    e = METHODS.get("zeroshot+ln_test")
    assert e.cls is METHODS.get("zeroshot").cls and e.config().layernorm and e.config().layernorm_tower == "vision"
    with pytest.raises(ClipfitError, match="unknown setting"):
        register_preset("zeroshot+bad", "zeroshot", "test", no_such=True)
    for name in ("prompt+ln", "adapter+ln", "compacter+ln", "linear_probe+ln"):
        assert METHODS.get(name).preset == {"layernorm": True} and METHODS.get(name).cls is METHODS.get(name[:-3]).cls


def test_command_line_strings_become_typed_values():
    cfgs = [METHODS.get("clipfit").cls.Config, TrainConfig]
    got = parse_settings(["beta=2", "epochs=5", "flip=false", "bias=ffn"], cfgs)
    assert got == {"beta": 2.0, "epochs": 5, "flip": False, "bias": "ffn"} and isinstance(got["beta"], float)
    with pytest.raises(ClipfitError, match="expected int"):
        parse_settings(["epochs=five"], cfgs)
    with pytest.raises(ClipfitError, match="choose one of"):
        parse_settings(["bias=all"], cfgs)
    assert {f.name for f in fields(MethodConfig)} <= set(parse_settings(
        ["init_from=", "layernorm=true", "layernorm_tower=text"], cfgs))
