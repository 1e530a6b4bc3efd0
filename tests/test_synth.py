"""The procedural image-caption world and its catalogue tasks."""
import numpy as np
import pytest

from clipfit.data import synth as S
from clipfit.data.catalogue import list_datasets, load_task
from clipfit.data.sampling import fewshot, subsample_classes


def test_same_seed_same_batch_and_different_seed_differs():
    a = S.pretraining_batch(64, np.random.default_rng(7))
    b = S.pretraining_batch(64, np.random.default_rng(7))
    c = S.pretraining_batch(64, np.random.default_rng(8))
    assert a.images.shape == (64, 32, 32, 3) and a.images.dtype == np.uint8
    assert np.array_equal(a.images, b.images) and a.captions == b.captions
    assert np.array_equal(a.attributes, b.attributes)
    assert not np.array_equal(a.images, c.images)


def test_captions_name_the_attributes():
    batch = S.pretraining_batch(200, np.random.default_rng(0))
    vocab = set(S.vocabulary())
    for cap, attrs, mentioned in zip(batch.captions, batch.attributes, batch.mentioned):
        words = cap.rstrip(".").split()
        assert set(words) <= vocab
        assert S.SHAPES[attrs[S.SHAPE]] in words  # the shape is always named
        for k, name in enumerate(S.ATTRIBUTES):
            value = S.VALUES[name][attrs[k]]
            word = S.POSITION_PHRASES[value].split()[-1] if name == "position" else value
            assert (word in words) == bool(mentioned[k]), (cap, name)
    # no held-out pair is ever shown in pretraining
    pairs = {(int(s), int(c)) for s, c in batch.attributes[:, :2]}
    assert not pairs & S.HELD_OUT_PAIRS
    assert S.caption(np.array([0, 0, 0, 1, 0])) == "a small red striped circle on the left."


def test_positives_follow_the_mentioned_attributes():
    batch = S.pretraining_batch(100, np.random.default_rng(1))
    pos = batch.positives
    assert pos.diagonal().all()
    i, j = np.nonzero(pos)
    for a, b in zip(i[:300], j[:300]):  # caption b describes image a: every attribute b mentions agrees
        m = batch.mentioned[b]
        assert np.array_equal(batch.attributes[a][m], batch.attributes[b][m])
    # an image of another shape never matches
    other = batch.attributes[:, None, S.SHAPE] != batch.attributes[None, :, S.SHAPE]
    assert not (pos & other).any()


def test_rendering_shows_the_colour_and_the_shift_changes_the_image():
    attrs = np.array([[0, c, 1, 0, 4] for c in range(len(S.COLOURS))])  # large plain circles, middle
    img = S.render(attrs, np.random.default_rng(0)).astype(float) / 255
    centre = img[:, 14:18, 14:18].mean(axis=(1, 2))
    # the object's centre is close to its nominal colour
    assert np.abs(centre - S.COLOUR_RGB).max() < 0.25
    plain = S.render(attrs, np.random.default_rng(3))
    shifted = S.render(attrs, np.random.default_rng(3), S.SHIFTS["stripes"])
    corner = (slice(None), slice(0, 4), slice(0, 4))
    assert np.abs(plain[corner].astype(float) - shifted[corner]).mean() > 20  # the background changed
    # the background of a shifted image varies much more (stripes) than the plain one
    assert shifted[:, :4].std(axis=(1, 2)).mean() > 3 * plain[:, :4].std(axis=(1, 2)).mean()


def test_vocabulary_covers_captions_and_prompts():
    vocab = S.vocabulary()
    assert vocab == sorted(set(vocab))
    for w in ("photo", "red", "circle", "striped", "left", "small"):
        assert w in vocab


@pytest.mark.parametrize("name", ["synth", "synth_shift"])
def test_tasks_register_and_load(name):
    assert name in {e.name for e in list_datasets()}
    task = load_task(name)
    n = len(task.classnames)
    assert n == 32 and len(set(task.classnames)) == n
    assert (len(task.train), len(task.val), len(task.test)) == (64 * n, 16 * n, 50 * n)
    assert "{}" in task.template and task.prompts()[0] == task.template.format(task.classnames[0])
    for w in " ".join(task.classnames).split():
        assert w in S.VALUES["colour"] + S.VALUES["shape"]
    im = task.reader(task.test[5].key)
    assert im.size == (32, 32) and im.mode == "RGB"
    assert all(it.classname == task.classnames[it.label] for it in task.train)
    # deterministic: loading again gives the same images
    again = load_task(name)
    assert np.array_equal(np.asarray(again.reader("train/3")), np.asarray(task.reader("train/3")))
    # works with few-shot sampling and the base/new split
    few = fewshot(task, 4, seed=1)
    assert len(few.train) == 4 * n
    base, new = subsample_classes(task, "base"), subsample_classes(task, "new")
    assert len(base.classnames) == len(new.classnames) == n // 2
    assert set(base.classnames).isdisjoint(new.classnames)


def test_shifted_task_differs_from_plain_task():
    plain, shifted = load_task("synth"), load_task("synth_shift")
    assert plain.classnames == shifted.classnames
    a = np.stack([np.asarray(plain.reader(it.key)) for it in plain.test[:64]]).astype(float)
    b = np.stack([np.asarray(shifted.reader(it.key)) for it in shifted.test[:64]]).astype(float)
    assert b[:, :4].std(axis=(1, 2)).mean() > 3 * a[:, :4].std(axis=(1, 2)).mean()


def test_fading_washes_out_the_colours_and_nothing_else():
    attrs = S.sample_attributes(64, np.random.default_rng(0))
    plain = S.render(attrs, np.random.default_rng(5))
    # saturation 1 is the pretraining world, byte for byte (the other tasks render as before)
    assert np.array_equal(plain, S.render(attrs, np.random.default_rng(5), S.Shift(saturation=1.0)))
    faded = S.render(attrs, np.random.default_rng(5), S.SHIFTS["faded"]).astype(float)
    plain = plain.astype(float)
    # each pixel keeps its grey level; its distance from grey shrinks to the saturation (up to rounding and noise)
    assert np.abs(faded.mean(-1) - plain.mean(-1)).mean() < 1.0
    chroma_plain = plain - plain.mean(-1, keepdims=True)
    chroma_faded = faded - faded.mean(-1, keepdims=True)
    ratio = np.abs(chroma_faded).sum() / np.abs(chroma_plain).sum()
    assert abs(ratio - S.SHIFTS["faded"].saturation) < 0.05, ratio


def test_faded_task_is_synth_forget_s_classes_with_washed_out_colours():
    faded, forget = load_task("synth_faded"), load_task("synth_forget")
    assert faded.classnames == forget.classnames and len(faded.classnames) == 12
    assert [it.label for it in faded.test] == [it.label for it in forget.test]
    img = np.stack([np.asarray(faded.reader(it.key)) for it in faded.test[:120]]).astype(float)
    colourful = np.stack([np.asarray(load_task("synth_conflict").reader(it.key)) for it in faded.test[:120]])
    spread = img.max(-1) - img.min(-1)  # per-pixel colour spread
    assert spread.mean() < 0.5 * (colourful.max(-1).astype(float) - colourful.min(-1)).mean()
