"""Property-based tests of the edges (issue 21): whatever a user types or passes, settings parsing, templates and the
Python API's arguments give a result or a one-line `ClipfitError`, never another exception. Hypothesis draws a
bounded number of examples, derandomized (the same examples on every run), with no example database on disk."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays
from PIL import Image

import clipfit
from clipfit.config import TrainConfig, apply_settings, known_fields, parse_settings
from clipfit.errors import ClipfitError
from clipfit.method import METHODS
from clipfit.recipes import Context

EXAMPLES = settings(max_examples=150, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
CONFIGS = {m: [METHODS.get(m).cls.Config, TrainConfig] for m in ("clipfit", "zeroshot", "coop", "promptsrc", "llu")}
KEYS = sorted({k for classes in CONFIGS.values() for k in known_fields(classes)})

# anything a Python caller might pass
ANY = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=-3, max_value=40),
                st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                st.lists(st.one_of(st.integers(-2, 5), st.text(max_size=6)), max_size=3), st.binary(max_size=4),
                st.just(10**20), st.just("1,2"), st.just("zeroshot,clipfit"), st.just("a {} of {}"))
TEMPLATE = st.one_of(st.text(alphabet="ab {}!:0x", max_size=12), st.text(max_size=12))


def _ok_or_clipfit_error(call) -> None:
    try:
        call()
    except ClipfitError as e:
        assert "\n" not in str(e), str(e)  # one line


@EXAMPLES
@given(method=st.sampled_from(sorted(CONFIGS)),
       pairs=st.lists(st.tuples(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)),
                                st.one_of(st.text(max_size=12), st.sampled_from(["nan", "-inf", "1e308", "10" * 11,
                                                                                   "none", "true", "a {} of {}"]))),
                      max_size=4))
def test_set_strings_parse_or_fail_in_one_line(method, pairs):
    _ok_or_clipfit_error(lambda: parse_settings([f"{k}={v}" for k, v in pairs], CONFIGS[method]))


@EXAMPLES
@given(method=st.sampled_from(sorted(CONFIGS)),
       values=st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), ANY, max_size=4))
def test_typed_settings_resolve_or_fail_in_one_line(method, values):
    _ok_or_clipfit_error(lambda: METHODS.get(method).configs(Context("fewshot", "eurosat", 4), values))
    _ok_or_clipfit_error(lambda: apply_settings([c() for c in CONFIGS[method]], values))


@EXAMPLES
@given(template=TEMPLATE)
def test_a_template_is_usable_or_refused_in_one_line(template):
    from clipfit.data.types import check_template

    try:
        checked = check_template(template)
    except ClipfitError as e:
        assert "\n" not in str(e)
        return
    assert checked.format("CLASS").count("CLASS") >= 1  # exactly one field: the class name goes in, nothing breaks


@EXAMPLES
@given(shots=ANY, seed=ANY, out=st.one_of(st.none(), st.integers(), st.just(""), st.just(" "), st.just("FILE")),
       template=st.one_of(st.none(), TEMPLATE), root=st.one_of(st.none(), ANY), method=st.one_of(st.just("clipfit"), ANY),
       subsample=st.one_of(st.just("all"), ANY), device=st.one_of(st.none(), ANY),
       settings=st.dictionaries(st.sampled_from(KEYS), ANY, max_size=2))
def test_train_arguments_give_one_line(tiny_folder, tmp_path, monkeypatch, shots, seed, out, template, root, method,
                                       subsample, device, settings):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("")  # --out a file: refused once everything before it passed, so nothing trains
    with pytest.raises(ClipfitError) as e:
        clipfit.train(dataset=f"imagefolder:{tiny_folder}", out=out, shots=shots, seed=seed, template=template,
                      root=root, method=method, subsample=subsample, device=device, progress=False, **settings)
    assert "\n" not in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FILE"]


@EXAMPLES
@given(methods=ANY, seeds=ANY, shots=ANY, datasets=st.one_of(st.just("no_such_dataset"), ANY),
       template=st.one_of(st.none(), TEMPLATE), root=st.one_of(st.none(), ANY))
def test_grid_arguments_give_one_line(tmp_path, monkeypatch, methods, seeds, shots, datasets, template, root):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ClipfitError) as e:  # no dataset of these names exists: nothing ever runs
        clipfit.fewshot(datasets=datasets if datasets != "" else "no_such_dataset", out="g", methods=methods,
                        seeds=seeds, shots=shots, template=template, root=root, progress=False)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "g").exists()


@pytest.fixture(scope="module")
def run(tiny_clip, tiny_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("prop") / "run"
    return clipfit.train(tiny_clip, dataset=f"imagefolder:{tiny_folder}", out=out, shots=2, progress=False,
                         epochs=1, batch_size=4, warmup_epochs=0)


IMAGE = st.one_of(ANY, st.builds(lambda w, h: Image.new("RGB", (w, h)), st.integers(0, 3), st.integers(0, 3)),
                  arrays(st.sampled_from([np.uint8, np.float32, np.int64, np.bool_]), array_shapes(max_dims=4, max_side=4)))


@EXAMPLES
@given(images=st.one_of(IMAGE, st.lists(IMAGE, max_size=3)), classes=st.one_of(st.none(), ANY), topk=ANY)
def test_predict_arguments_give_a_result_or_one_line(run, images, classes, topk):
    _ok_or_clipfit_error(lambda: run.predict(images, classes=classes, topk=topk))


@EXAMPLES
@given(run_dir=ANY)
def test_load_of_anything_but_a_run_is_one_line(tmp_path, monkeypatch, run_dir):
    monkeypatch.chdir(tmp_path)  # an empty folder: no run is there
    with pytest.raises(ClipfitError) as e:
        clipfit.load(run_dir)
    assert "\n" not in str(e.value)
