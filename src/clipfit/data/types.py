"""The data model every reader produces and every method consumes: items, tasks, prompt templates. (Reading the
images themselves: `images`.)"""
from __future__ import annotations

import string
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from ..errors import ClipfitError

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True)
class Item:
    """One labelled image. `key` locates it for the task's reader: a path relative to the dataset's image
    directory for file-backed sets, or '<split>/<index>' for array-backed ones. Keys are what a run directory
    records, so a run can be audited and repeated on the very same images."""

    key: str
    label: int
    classname: str


class ImageReader(Protocol):
    def __call__(self, key: str) -> Image.Image: ...


def check_template(template: object, what: str = "template") -> str:
    """`template` if it is a prompt template: text with exactly one `{}` (where the class name goes) and no other
    replacement field (literal braces are written `{{` and `}}`); else a one-line error naming it (`what`: the
    option or setting it came from)."""
    if not isinstance(template, str):
        raise ClipfitError(f"{what} {template!r}: expected text with {{}} where the class name goes")
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template) if name is not None]
    except ValueError as e:
        raise ClipfitError(f"{what} {template!r}: {e}; write {{}} where the class name goes and {{{{ or }}}} for a "
                           "literal brace") from None
    if fields != [("", "", None)]:
        why = ("has no '{}' where the class name goes" if not fields else
               f"has {len(fields)} replacement fields" if len(fields) > 1 else
               f"has '{{{fields[0][0]}{'!' + fields[0][2] if fields[0][2] else ''}{':' + fields[0][1] if fields[0][1] else ''}}}'"
               " instead of '{}'")
        raise ClipfitError(f"{what} {template!r} {why}; write exactly one {{}} where the class name goes ({{{{ and }}}} "
                           "for literal braces)")
    return template


@dataclass
class Task:
    """A classification task: class names, a prompt template, and train/val/test items.

    `groups` maps an item's key to its group (FMoW region, Camelyon17 hospital, iWildCam location) for sets whose
    paper reports per-group metrics; `metrics` names the metrics the dataset's paper reports (engine/metrics.py),
    first the headline one. Both follow the items through `with_splits`, few-shot sampling and class subsets,
    since keys do not change. Episodic sets (Mini-ImageNet, CUB) list every class in `classnames`; each split's
    items carry only that split's classes (`split_labels`)."""

    name: str
    classnames: list[str]
    template: str  # contains '{}' where the class name goes, e.g. "a photo of a {}."
    train: list[Item]
    val: list[Item]
    test: list[Item]
    reader: ImageReader = field(repr=False)
    groups: dict[str, str] | None = field(default=None, repr=False)
    metrics: tuple[str, ...] = ("accuracy",)

    def prompts(self, template: str | None = None) -> list[str]:
        t = template or self.template
        return [t.format(c) for c in self.classnames]

    def with_splits(self, **kw) -> Task:
        return replace(self, **kw)

    def split_labels(self, split: str) -> list[int]:
        """The sorted labels that occur in split 'train', 'val' or 'test' (for episodic sets: that split's classes)."""
        if split not in ("train", "val", "test"):
            raise ClipfitError(f"split must be train, val or test, not {split!r}")
        return sorted({it.label for it in getattr(self, split)})
