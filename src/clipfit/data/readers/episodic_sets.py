"""The two episodic few-shot sets of the LayerNorm-tuning paper ("How to Adapt Your Large-Scale Vision-and-Language
Model", Sec. 4.5 and Table 5), read from --root. Their splits have disjoint classes: train = the base classes,
val = the validation classes, test = the novel classes. `Task.classnames` lists every class, ordered train classes,
then val classes, then test classes, so each split's labels are one contiguous range (`Task.split_labels(split)`;
`sampling.keep_classes` makes a task of one split's classes).

Mini-ImageNet (Vinyals et al., 2016; the split of Ravi & Larochelle, 2017: 64 / 16 / 20 classes, 600 images each,
38,400 / 9,600 / 12,000 images):

    root/mini_imagenet/train.csv, val.csv, test.csv   ('filename,label' rows; label = WordNet id)
    root/mini_imagenet/images/<filename>             (or images/<wnid>/<filename>; decided by the first row)

  Classes within a split are sorted by WordNet id. Class names: CLIP's ImageNet class names (openai/CLIP,
  notebooks/Prompt_Engineering_for_ImageNet.ipynb) for the 100 WordNet ids (MINI_IMAGENET_NAMES).
  Template 'a photo of a {}.'.

CUB-200-2011 (Wah et al., 2011), as distributed:

    root/CUB_200_2011/images.txt ('<image id> <path>'), image_class_labels.txt ('<image id> <class id>'),
                      classes.txt ('<class id> <NNN.Folder_name>'), images/<path>

  Split by class (100 / 50 / 50 classes, 5,891 / 2,932 / 2,965 images, the counts of Table 5): the class
  partition of the FEAT code base (Ye et al., 2020; Sha-Lab/FEAT data/cub/split/), which follows Hilliard et al.
  (2018) in drawing the classes at random (CUB_SPLIT, class ids). Class names: the folder name without its number,
  '_' -> ' '. Template 'a photo of a {}, a type of bird.'. Images are not cropped to their bounding boxes.
"""
from __future__ import annotations

from pathlib import Path

from ...errors import ClipfitError
from ..dataset_registry import register_dataset
from ..images import FileReader
from ..sources import dataset_folder
from ..types import Item, Task
from .tables import as_int, read_csv, read_pairs

SPLITS = ("train", "val", "test")
MINI_TEMPLATE = "a photo of a {}."
CUB_TEMPLATE = "a photo of a {}, a type of bird."

MINI_IMAGENET_NAMES = {
    # train: 64 classes
    "n01532829": "house finch", "n01558993": "American robin", "n01704323": "triceratops",
    "n01749939": "green mamba", "n01770081": "harvestman", "n01843383": "toucan", "n01910747": "jellyfish",
    "n02074367": "dugong", "n02089867": "Treeing Walker Coonhound", "n02091831": "Saluki",
    "n02101006": "Gordon Setter", "n02105505": "Komondor", "n02108089": "Boxer", "n02108551": "Tibetan Mastiff",
    "n02108915": "French Bulldog", "n02111277": "Newfoundland dog", "n02113712": "Miniature Poodle",
    "n02120079": "Arctic fox", "n02165456": "ladybug", "n02457408": "three-toed sloth",
    "n02606052": "rock beauty fish", "n02687172": "aircraft carrier", "n02747177": "trash can",
    "n02795169": "barrel", "n02823428": "beer bottle", "n02966193": "carousel", "n03017168": "bell or wind chime",
    "n03047690": "clogs", "n03062245": "cocktail shaker", "n03207743": "dishcloth", "n03220513": "dome",
    "n03337140": "filing cabinet", "n03347037": "fire screen", "n03400231": "frying pan", "n03476684": "hair clip",
    "n03527444": "holster", "n03676483": "lipstick", "n03838899": "oboe", "n03854065": "pipe organ",
    "n03888605": "parallel bars", "n03908618": "pencil case", "n03924679": "photocopier", "n03998194": "prayer rug",
    "n04067472": "fishing casting reel", "n04243546": "slot machine", "n04251144": "snorkel",
    "n04258138": "solar thermal collector", "n04275548": "spider web", "n04296562": "stage", "n04389033": "tank",
    "n04435653": "tile roof", "n04443257": "tobacco shop", "n04509417": "unicycle", "n04515003": "upright piano",
    "n04596742": "wok", "n04604644": "split-rail fence", "n04612504": "sailboat",
    "n06794110": "traffic or street sign", "n07584110": "consomme", "n07697537": "hot dog", "n07747607": "orange",
    "n09246464": "cliff", "n13054560": "bolete", "n13133613": "corn cob",
    # val: 16 classes
    "n01855672": "goose", "n02091244": "Ibizan Hound", "n02114548": "Alaskan tundra wolf", "n02138441": "meerkat",
    "n02174001": "rhinoceros beetle", "n02950826": "cannon", "n02971356": "cardboard box / carton",
    "n02981792": "catamaran", "n03075370": "combination lock", "n03417042": "garbage truck",
    "n03535780": "gymnastic horizontal bar", "n03584254": "iPod", "n03770439": "miniskirt", "n03773504": "missile",
    "n03980874": "poncho", "n09256479": "coral reef",
    # test: 20 classes
    "n01930112": "nematode", "n01981276": "red king crab", "n02099601": "Golden Retriever",
    "n02110063": "Alaskan Malamute", "n02110341": "Dalmatian", "n02116738": "African wild dog", "n02129165": "lion",
    "n02219486": "ant", "n02443484": "black-footed ferret", "n02871525": "bookstore", "n03127925": "crate",
    "n03146219": "cuirass", "n03272010": "electric guitar", "n03544143": "hourglass", "n03775546": "mixing bowl",
    "n04146614": "school bus", "n04149813": "scoreboard", "n04418357": "front curtain", "n04522168": "vase",
    "n07613480": "trifle",
}

CUB_SPLIT = {
    "train": (3, 5, 6, 8, 9, 11, 13, 15, 17, 19, 20, 23, 25, 27, 28, 31, 34, 38, 41, 44, 45, 46, 47, 52, 55, 56, 57,
              60, 61, 62, 63, 64, 67, 72, 74, 75, 76, 81, 84, 87, 90, 91, 93, 94, 97, 98, 99, 102, 107, 108, 109, 110,
              112, 113, 114, 119, 123, 124, 125, 126, 127, 130, 131, 132, 135, 137, 138, 139, 140, 142, 144, 145, 146,
              147, 150, 151, 153, 154, 155, 160, 161, 164, 169, 171, 176, 178, 179, 180, 181, 182, 183, 184, 185, 186,
              188, 190, 195, 196, 197, 198),
    "val": (1, 2, 4, 7, 12, 14, 16, 21, 24, 36, 42, 43, 49, 50, 51, 53, 58, 65, 66, 69, 70, 77, 79, 85, 86, 92, 95, 96,
            101, 103, 105, 106, 111, 117, 120, 121, 122, 136, 156, 157, 159, 162, 163, 165, 168, 172, 187, 192, 199,
            200),
    "test": (10, 18, 22, 26, 29, 30, 32, 33, 35, 37, 39, 40, 48, 54, 59, 68, 71, 73, 78, 80, 82, 83, 88, 89, 100, 104,
             115, 116, 118, 128, 129, 133, 134, 141, 143, 148, 149, 152, 158, 166, 167, 170, 173, 174, 175, 177, 189,
             191, 193, 194),
}


def _episodic_task(name: str, classes: dict[str, list[str]], names: dict[str, str], template: str, base: Path,
                   items: dict[str, list[tuple[str, str]]]) -> Task:
    """classes: split -> its class ids in label order; items: split -> (key, class id)."""
    order = [c for s in SPLITS for c in classes[s]]
    label = {c: i for i, c in enumerate(order)}
    classnames = [names[c] for c in order]
    splits = {s: [Item(k, label[c], names[c]) for k, c in items[s]] for s in SPLITS}
    return Task(name=name, classnames=classnames, template=template, reader=FileReader(base), **splits)


# ------------------------------------------------------------------------------------------------ Mini-ImageNet


@register_dataset("mini_imagenet", aliases=("miniimagenet",), template=MINI_TEMPLATE,
                  help="Mini-ImageNet (Ravi's csv splits; 64 base / 16 val / 20 novel classes)")
def build_mini_imagenet(root: str | None) -> Task:
    base = dataset_folder(root, "mini_imagenet")
    rows = {s: read_csv(base / f"{s}.csv", ("filename", "label"), "'filename,label' rows of Ravi & Larochelle's split")
            for s in SPLITS}
    seen: dict[str, str] = {}
    for s in SPLITS:
        for i, r in enumerate(rows[s]):
            w = r["label"].strip()
            if w not in MINI_IMAGENET_NAMES:
                raise ClipfitError(f"{base / f'{s}.csv'}, row {i + 2}: {w!r} is not one of Mini-ImageNet's 100 WordNet ids")
            if seen.setdefault(w, s) != s:
                raise ClipfitError(f"class {w} is in both {seen[w]}.csv and {s}.csv; the splits must have disjoint classes")
    first = next((r for s in SPLITS for r in rows[s]), None)
    if first is None:
        raise ClipfitError(f"{base}: train.csv, val.csv and test.csv list no images")
    nested = not (base / "images" / first["filename"]).is_file() and (base / "images" / first["label"] / first["filename"]).is_file()

    def key(r: dict[str, str]) -> str:
        return f"images/{r['label']}/{r['filename']}" if nested else f"images/{r['filename']}"

    classes = {s: sorted({r["label"].strip() for r in rows[s]}) for s in SPLITS}
    items = {s: [(key(r), r["label"].strip()) for r in rows[s]] for s in SPLITS}
    return _episodic_task("mini_imagenet", classes, MINI_IMAGENET_NAMES, MINI_TEMPLATE, base, items)


# ---------------------------------------------------------------------------------------------------------- CUB


@register_dataset("cub", aliases=("cub200",), template=CUB_TEMPLATE, help="CUB-200-2011 birds (100 base / 50 val / 50 novel classes)")
def build_cub(root: str | None) -> Task:
    base = dataset_folder(root, "cub")
    classes_txt = read_pairs(base / "classes.txt", "<class id> <NNN.Class_name>", "CUB-200-2011's class list")
    names = {}
    for n, (cid, folder) in enumerate(classes_txt, 1):
        names[str(as_int(cid, base / "classes.txt", f"line {n}"))] = folder.partition(".")[2].replace("_", " ").strip() or folder
    missing = [c for s in SPLITS for c in CUB_SPLIT[s] if str(c) not in names]
    if missing:
        raise ClipfitError(f"{base / 'classes.txt'} lacks class id(s) {', '.join(map(str, missing[:5]))}; expected CUB's 200 classes 1..200")
    paths = dict(read_pairs(base / "images.txt", "<image id> <relative path>", "CUB-200-2011's image list"))
    split_of = {str(c): s for s in SPLITS for c in CUB_SPLIT[s]}
    items: dict[str, list[tuple[str, str]]] = {s: [] for s in SPLITS}
    labels_txt = base / "image_class_labels.txt"
    for n, (image_id, cid) in enumerate(read_pairs(labels_txt, "<image id> <class id>", "CUB-200-2011's image labels"), 1):
        cid = str(as_int(cid, labels_txt, f"line {n}"))
        if image_id not in paths:
            raise ClipfitError(f"{labels_txt}, line {n}: image id {image_id} is not in {base / 'images.txt'}")
        if cid not in split_of:
            raise ClipfitError(f"{labels_txt}, line {n}: class id {cid} is not one of CUB's 1..200")
        items[split_of[cid]].append((f"images/{paths[image_id]}", cid))
    classes = {s: [str(c) for c in sorted(CUB_SPLIT[s])] for s in SPLITS}
    return _episodic_task("cub", classes, names, CUB_TEMPLATE, base, items)
