"""A procedural image-caption world: one object per 32x32 RGB image, described in words.

Every image shows one object with five attributes -- shape, colour, size, pattern and position -- on a dark,
plain background (a random dark tint, a faint gradient and a little noise). Captions name the attributes:
"a photo of a small red striped circle on the left." Each caption mentions the shape and a random subset of the
other attributes; a caption *matches* an image when every attribute it mentions agrees with the image, which is
how the pretraining loss (clipfit.pretrain) finds its positive pairs.

Some shape-colour pairs (`HELD_OUT_PAIRS`) never occur in pretraining, so zero-shot accuracy on them measures
composition of known words into unseen class names. `Shift` describes rendering changes the pretraining never
sees (a striped background, a colour cast, low contrast, noise, washed-out colours); the `synth_shift*` and
`synth_faded` tasks use it.

Everything is deterministic from a seed (NumPy's PCG64 `Generator`) and vectorised: rendering 10,000 images
takes about a second on one core.

The catalogue's tasks on this world (`synth`, `synth_shift`, `synth_faded`, ...) are `readers.synth_tasks`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "ring", "star", "crescent")
COLOURS = ("red", "green", "blue", "yellow", "purple", "pink", "cyan", "white")
COLOUR_RGB = np.array([
    (0.92, 0.12, 0.10),  # red
    (0.10, 0.72, 0.18),  # green
    (0.16, 0.32, 0.98),  # blue
    (0.95, 0.88, 0.10),  # yellow
    (0.60, 0.18, 0.85),  # purple
    (1.00, 0.52, 0.76),  # pink
    (0.10, 0.86, 0.90),  # cyan
    (0.94, 0.94, 0.94),  # white
], dtype=np.float32)
SIZES = ("small", "large")
PATTERNS = ("plain", "striped", "dotted")
POSITIONS = ("left", "right", "top", "bottom", "middle")
POSITION_PHRASES = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom",
                    "middle": "in the middle"}
ATTRIBUTES = ("shape", "colour", "size", "pattern", "position")
VALUES = {"shape": SHAPES, "colour": COLOURS, "size": SIZES, "pattern": PATTERNS, "position": POSITIONS}
SHAPE, COLOUR, SIZE, PATTERN, POSITION = range(5)
PREFIXES = ("a", "a photo of a", "a picture of a")
# Probability that a caption mentions each attribute (the shape is always named).
MENTION_P = (1.0, 0.85, 0.5, 0.5, 0.5)

# Shape-colour pairs (shape index, colour index) never shown in pretraining: 12 of 64, every shape and colour
# held out once or twice, so zero-shot on them tests composition of words seen in other pairs.
HELD_OUT_PAIRS: frozenset[tuple[int, int]] = frozenset(
    [(s, (s + 1) % 8) for s in range(8)] + [(s, (s + 4) % 8) for s in range(0, 8, 2)]
)

IMAGE_SIZE = 32
TEMPLATE = "a photo of a {}."
# Position centres (x, y) in pixels of the 32x32 image.
_CENTRES = np.array([(10.0, 16.0), (22.0, 16.0), (16.0, 10.0), (16.0, 22.0), (16.0, 16.0)], dtype=np.float32)


def vocabulary() -> list[str]:
    """Every word the captions and the class prompts use, sorted (punctuation is tokenised separately)."""
    words = set()
    for p in PREFIXES + tuple(POSITION_PHRASES.values()) + (TEMPLATE.replace("{}", ""),):
        words.update(p.replace(".", " ").split())
    for vals in VALUES.values():
        words.update(vals)
    return sorted(words)


def pair_name(shape: int, colour: int) -> str:
    """Class name of a shape-colour pair: 'red circle'."""
    return f"{COLOURS[colour]} {SHAPES[shape]}"


@dataclass(frozen=True)
class Shift:
    """A rendering change. The default (all off) is the pretraining world.

    background: 'plain' (pretraining) or 'stripes' (straight stripes at a random angle and period).
    stripe_level: brightness range of the second stripe colour (random grey-ish tint per image).
    stripe_period: range of the stripe period in pixels.
    cast: per-channel gain range for a random colour cast per image (1, 1 = none).
    contrast: object-background contrast factor (1 = unchanged; < 1 pulls the object toward the background).
    noise: std of added Gaussian pixel noise (0..1 scale), on top of the pretraining world's own 0.015.
    saturation: colour saturation (1 = unchanged; < 1 mixes each pixel toward its grey level: washed-out colours).
    """

    background: str = "plain"
    stripe_level: tuple[float, float] = (0.35, 0.55)
    stripe_period: tuple[float, float] = (3.0, 6.0)
    cast: tuple[float, float] = (1.0, 1.0)
    contrast: float = 1.0
    noise: float = 0.0
    saturation: float = 1.0


SHIFTS: dict[str, Shift] = {
    "none": Shift(),
    "stripes": Shift(background="stripes"),
    "cast": Shift(cast=(0.45, 1.25)),
    "noise": Shift(noise=0.12),
    "faded": Shift(saturation=0.35),
    "harsh": Shift(background="stripes", stripe_level=(0.6, 0.9), contrast=0.6, noise=0.1),
}


# ----------------------------------------------------------------------------------------------------------
# Attributes and captions


def sample_attributes(n: int, rng: np.random.Generator, pairs: list[tuple[int, int]] | None = None) -> np.ndarray:
    """(n, 5) int64 attribute ids (shape, colour, size, pattern, position); shape-colour drawn from `pairs`
    (default: every pair not held out)."""
    if pairs is None:
        pairs = seen_pairs()
    pairs_a = np.asarray(pairs, dtype=np.int64)
    attrs = np.empty((n, 5), dtype=np.int64)
    attrs[:, :2] = pairs_a[rng.integers(0, len(pairs_a), n)]
    attrs[:, SIZE] = rng.integers(0, len(SIZES), n)
    attrs[:, PATTERN] = rng.integers(0, len(PATTERNS), n)
    attrs[:, POSITION] = rng.integers(0, len(POSITIONS), n)
    return attrs


def seen_pairs() -> list[tuple[int, int]]:
    return [(s, c) for s in range(len(SHAPES)) for c in range(len(COLOURS)) if (s, c) not in HELD_OUT_PAIRS]


def caption(attrs: np.ndarray, mentioned: np.ndarray | None = None, prefix: str = "a") -> str:
    """The caption of one image: '<prefix> [size] [colour] [pattern] <shape> [position].'"""
    a = [int(v) for v in attrs]
    m = [True] * 5 if mentioned is None else [bool(v) for v in mentioned]
    words = [prefix]
    if m[SIZE]:
        words.append(SIZES[a[SIZE]])
    if m[COLOUR]:
        words.append(COLOURS[a[COLOUR]])
    if m[PATTERN]:
        words.append(PATTERNS[a[PATTERN]])
    words.append(SHAPES[a[SHAPE]])
    if m[POSITION]:
        words.append(POSITION_PHRASES[POSITIONS[a[POSITION]]])
    return " ".join(words) + "."


def sample_captions(attrs: np.ndarray, rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    """Random captions for images with `attrs`: (captions, (n, 5) bool mask of the attributes each mentions)."""
    n = len(attrs)
    mentioned = rng.random((n, 5)) < np.asarray(MENTION_P)
    mentioned[:, SHAPE] = True
    prefix = rng.integers(0, len(PREFIXES), n)
    caps = [caption(attrs[i], mentioned[i], PREFIXES[prefix[i]]) for i in range(n)]
    return caps, mentioned


def matches(attrs: np.ndarray, mentioned: np.ndarray) -> np.ndarray:
    """(n, n) bool: [i, j] is True when caption j (attributes attrs[j], mentioning `mentioned[j]`) describes image i."""
    agree = attrs[:, None, :] == attrs[None, :, :]  # [i, j, k]
    return np.all(agree | ~mentioned[None, :, :], axis=-1)


@dataclass
class SynthBatch:
    images: np.ndarray  # (n, 32, 32, 3) uint8
    captions: list[str]
    attributes: np.ndarray  # (n, 5) int64: shape, colour, size, pattern, position
    mentioned: np.ndarray  # (n, 5) bool: which attributes each caption names
    positives: np.ndarray = field(repr=False)  # (n, n) bool: caption j describes image i


def pretraining_batch(n: int, rng: np.random.Generator) -> SynthBatch:
    """n images of seen shape-colour pairs in the pretraining world, with random captions."""
    attrs = sample_attributes(n, rng)
    images = render(attrs, rng)
    caps, mentioned = sample_captions(attrs, rng)
    return SynthBatch(images, caps, attrs, mentioned, matches(attrs, mentioned))


# ----------------------------------------------------------------------------------------------------------
# Rendering


def _inside(shape: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Whether object-frame points (x, y), in units of the object's radius with y up, fall inside `shape`."""
    name = SHAPES[shape]
    if name == "circle":
        return x * x + y * y < 1.0
    if name == "square":
        return np.maximum(np.abs(x), np.abs(y)) < 0.8
    if name == "triangle":
        return (y > -0.75) & (y < 0.95 - 1.95 * np.abs(x))
    if name == "diamond":
        return np.abs(x) + np.abs(y) < 1.0
    if name == "cross":
        ax, ay = np.abs(x), np.abs(y)
        return ((ax < 0.32) & (ay < 0.95)) | ((ay < 0.32) & (ax < 0.95))
    if name == "ring":
        r2 = x * x + y * y
        return (r2 < 1.0) & (r2 > 0.3)
    if name == "star":
        r = np.sqrt(x * x + y * y)
        th = np.arctan2(x, y)  # 0 at the top: one point up
        return r < 0.42 + 0.6 * ((np.cos(5 * th) + 1) / 2) ** 2
    if name == "crescent":
        return (x * x + y * y < 1.0) & ((x - 0.45) ** 2 + (y - 0.15) ** 2 > 0.62)
    raise ValueError(name)


def render(attrs: np.ndarray, rng: np.random.Generator, shift: Shift | None = None, size: int = IMAGE_SIZE,
           supersample: int = 2, chunk: int = 1024) -> np.ndarray:
    """Render (n, size, size, 3) uint8 images of objects with attribute ids `attrs` ((n, 5), see ATTRIBUTES).

    Draws every random nuisance (exact position, radius, rotation, colour jitter, background) from `rng`, in a
    fixed order, so the same attributes and generator state give the same images.
    """
    shift = shift or Shift()
    attrs = np.asarray(attrs, dtype=np.int64)
    out = np.empty((len(attrs), size, size, 3), dtype=np.uint8)
    for start in range(0, len(attrs), chunk):
        out[start:start + chunk] = _render_chunk(attrs[start:start + chunk], rng, shift, size, supersample)
    return out


def _wrap(x: np.ndarray, period: float) -> np.ndarray:
    """x mod period (np.mod is several times slower for floats)."""
    return x - np.floor(x * (1.0 / period)) * period


def _render_chunk(attrs: np.ndarray, rng: np.random.Generator, shift: Shift, size: int, ss: int) -> np.ndarray:
    n = len(attrs)
    f32 = np.float32
    scale = size / IMAGE_SIZE
    # -- nuisances, drawn in a fixed order
    centre = _CENTRES[attrs[:, POSITION]] + rng.uniform(-1.5, 1.5, (n, 2)).astype(f32)
    radius = np.where(attrs[:, SIZE] == 0, rng.uniform(5.0, 6.2, n), rng.uniform(8.0, 9.5, n)).astype(f32)
    angle = rng.uniform(-0.26, 0.26, n).astype(f32)  # about +-15 degrees
    fg = COLOUR_RGB[attrs[:, COLOUR]] * rng.uniform(0.82, 1.08, (n, 1)).astype(f32)
    fg = np.clip(fg + rng.normal(0, 0.035, (n, 3)).astype(f32), 0, 1)
    bg = rng.uniform(0.0, 0.22, (n, 3)).astype(f32)
    grad_dir = rng.uniform(0, 2 * np.pi, n).astype(f32)
    grad_amp = rng.uniform(0.0, 0.08, n).astype(f32)
    pattern_phase = rng.uniform(0, 4, (n, 2)).astype(f32)
    # -- supersampled pixel grid, in 32-pixel units, y down; coverage fractions are box-filtered to `size`
    H = size * ss
    u = (np.arange(H, dtype=f32) + 0.5) / ss / scale
    dx = u[None, None, :] - centre[:, 0, None, None]  # (n, 1, H)
    dy = u[None, :, None] - centre[:, 1, None, None]  # (n, H, 1)
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]

    def box(m: np.ndarray) -> np.ndarray:  # (k, H, H) bool -> (k, size, size, 1) coverage fraction
        m = m.reshape(len(m), size, ss, size, ss)
        acc = np.zeros((len(m), size, size), dtype=f32)
        for i in range(ss):
            for j in range(ss):
                acc += m[:, :, i, :, j]
        return (acc * (1.0 / (ss * ss)))[..., None]

    alpha = np.empty((n, size, size, 1), dtype=f32)  # object coverage
    beta = np.empty((n, size, size, 1), dtype=f32)  # coverage by the object's dark pattern
    pattern = attrs[:, PATTERN][:, None, None]
    for k in range(len(SHAPES)):
        idx = np.nonzero(attrs[:, SHAPE] == k)[0]
        if not len(idx):
            continue
        xp = cos[idx] * dx[idx] - sin[idx] * dy[idx]  # object frame, pixels, y up
        yp = -(sin[idx] * dx[idx] + cos[idx] * dy[idx])
        inv_r = (1.0 / radius[idx])[:, None, None]
        mask = _inside(k, xp * inv_r, yp * inv_r)
        # object pattern (object frame, period 4 px): dark stripes or dark dots
        px = _wrap(xp + pattern_phase[idx, 0, None, None], 4.0) - 2.0
        py = _wrap(yp + pattern_phase[idx, 1, None, None], 4.0) - 2.0
        stripes = py < -0.2
        dots = px * px + py * py < 1.25
        pat = pattern[idx]
        dark = mask & (((pat == 1) & stripes) | ((pat == 2) & dots))
        alpha[idx], beta[idx] = box(mask), box(dark)
    # -- background at output resolution: tint + gradient (+ stripes under a shift)
    v = (np.arange(size, dtype=f32) + 0.5) / scale
    gx = (np.cos(grad_dir)[:, None, None] * (v[None, None, :] - centre[:, 0, None, None])
          + np.sin(grad_dir)[:, None, None] * (v[None, :, None] - centre[:, 1, None, None])) / IMAGE_SIZE
    background = bg[:, None, None, :] + (grad_amp[:, None, None] * gx)[..., None]  # (n, size, size, 3)
    if shift.background == "stripes":
        level = rng.uniform(*shift.stripe_level, (n, 1)).astype(f32)
        tint = np.clip(level * rng.uniform(0.7, 1.3, (n, 3)).astype(f32), 0, 1)
        period = rng.uniform(*shift.stripe_period, n).astype(f32)
        theta = rng.uniform(0, np.pi, n).astype(f32)
        phase = rng.uniform(0, 1, n).astype(f32)
        t = (np.cos(theta)[:, None, None] * dx + np.sin(theta)[:, None, None] * dy) / period[:, None, None]
        gamma = box(_wrap(t + phase[:, None, None], 1.0) < 0.5)
        background = background + gamma * (tint[:, None, None, :] - background)
    elif shift.background != "plain":
        raise ValueError(f"unknown background {shift.background!r}")
    # composite: background where uncovered, the object's colour where covered, darker on its pattern
    obj = fg[:, None, None, :] * (alpha - 0.6 * beta)
    img = background * (1 - alpha) + obj
    if shift.contrast != 1.0:
        img = background + shift.contrast * (img - background)
    if shift.cast != (1.0, 1.0):
        img = img * rng.uniform(*shift.cast, (n, 1, 1, 3)).astype(f32)
    if shift.saturation != 1.0:
        grey = img.mean(axis=-1, keepdims=True)
        img = grey + f32(shift.saturation) * (img - grey)
    img += rng.standard_normal(img.shape, dtype=f32) * f32(0.015 + shift.noise)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
