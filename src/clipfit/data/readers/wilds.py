"""Three WILDS datasets (Koh et al., 2021) read from the folders the WILDS package downloads, with the official
(out-of-distribution) splits, as the LayerNorm-tuning paper ("How to Adapt Your Large-Scale Vision-and-Language
Model", Table 5) uses them. The wilds package is not needed; the rules below are the ones its dataset classes apply.

    root/fmow_v1.1/rgb_metadata.csv, country_code_mapping.csv, images/rgb_img_<row>.png
    root/camelyon17_v1.0/metadata.csv, patches/patient_<p>_node_<n>/patch_patient_<p>_node_<n>_x_<x>_y_<y>.png
    root/iwildcam_v2.0/metadata.csv, categories.csv, train/<filename>

FMoW (62 land-use classes; 76,863 / 19,915 / 22,108): rows with split 'seq' are left out; train = split 'train'
taken before 2013, val (OOD) = split 'val' taken in 2013-2015, test (OOD) = split 'test' taken in 2016 or later
(timestamps in UTC); other rows (the in-distribution val/test) are not used. The image of data row i (0-based,
sequestered rows counted) is images/rgb_img_<i>.png. Region (the group) = the 'region' of the row's country_code
in country_code_mapping.csv ('alpha-3' column), 'Other' when it has none; worst-region accuracy ignores 'Other'.
Class names: WILDS' 62 categories, '_' -> ' '. Template (ours): 'a satellite photo of {}.'.

Camelyon17 (2 classes; 302,436 / 34,904 / 85,054): label = 'tumor'; hospital ('center') 1 is validation (OOD),
hospital 2 is test, hospitals 0, 3 and 4 with split 0 are train (their split-1 rows, the in-distribution
validation, are not used). Group = 'hospital <center>'. Class names and template: CLIP's for PatchCamelyon
(openai/CLIP data/prompts.md): 'lymph node', 'lymph node containing metastatic tumor tissue';
'this is a photo of {}'.

iWildCam (182 classes; 129,809 / 14,961 / 42,791): train/val/test = rows whose 'split' is train/val/test (val
and test are the OOD splits; id_val and id_test are not used); label = 'y'. Class names: 'name' of each label
in categories.csv (rows with y = 99999 are categories absent from the data). Group = 'location <location_remapped>'.
Template (ours): 'a camera trap photo of {}.'. Its paper metric is macro F1 (engine/metrics.py).
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from ...errors import ClipfitError
from ..dataset_registry import register_dataset
from ..images import FileReader
from ..sources import dataset_folder
from ..types import Item, Task
from .tables import as_int, read_csv

FMOW_CATEGORIES = (
    "airport", "airport_hangar", "airport_terminal", "amusement_park", "aquaculture", "archaeological_site", "barn",
    "border_checkpoint", "burial_site", "car_dealership", "construction_site", "crop_field", "dam",
    "debris_or_rubble", "educational_institution", "electric_substation", "factory_or_powerplant", "fire_station",
    "flooded_road", "fountain", "gas_station", "golf_course", "ground_transportation_station", "helipad",
    "hospital", "impoverished_settlement", "interchange", "lake_or_pond", "lighthouse", "military_facility",
    "multi-unit_residential", "nuclear_powerplant", "office_building", "oil_or_gas_facility", "park",
    "parking_lot_or_garage", "place_of_worship", "police_station", "port", "prison", "race_track", "railway_bridge",
    "recreational_facility", "road_bridge", "runway", "shipyard", "shopping_mall", "single-unit_residential",
    "smokestack", "solar_farm", "space_facility", "stadium", "storage_tank", "surface_mine", "swimming_pool",
    "toll_booth", "tower", "tunnel_opening", "waste_disposal", "water_treatment_facility", "wind_farm", "zoo",
)
FMOW_OOD_TEST_YEAR = 2016  # test: taken in this year or later
FMOW_OOD_VAL_YEAR = 2013  # val: taken from this year up to the test year
OTHER_REGION = "Other"
CAMELYON_VAL_HOSPITAL, CAMELYON_TEST_HOSPITAL = 1, 2
CAMELYON_CLASSES = ["lymph node", "lymph node containing metastatic tumor tissue"]
IWILDCAM_ABSENT = 99999  # categories.csv's y for categories that have no image
FMOW_TEMPLATE = "a satellite photo of {}."
CAMELYON_TEMPLATE = "this is a photo of {}"
IWILDCAM_TEMPLATE = "a camera trap photo of {}."

WILDS = "as the WILDS package downloads it"


def _task(name: str, classnames: list[str], template: str, base: Path, rows: list[tuple[str | None, int, str, str]],
          metrics: tuple[str, ...]) -> Task:
    """rows: (split, label, key, group); split None = not used."""
    splits: dict[str, list[Item]] = {"train": [], "val": [], "test": []}
    groups: dict[str, str] = {}
    for split, label, key, group in rows:
        if split is not None:
            splits[split].append(Item(key, label, classnames[label]))
            groups[key] = group
    return Task(name=name, classnames=classnames, template=template, reader=FileReader(base), groups=groups,
                metrics=metrics, **splits)


# --------------------------------------------------------------------------------------------------------- FMoW


def _utc(ts: str, path: Path, n: int) -> datetime:
    ts = ts.strip()
    try:
        t = datetime.fromisoformat(ts[:-1] + "+00:00" if ts.endswith("Z") else ts)  # Python 3.10 reads no 'Z'
    except ValueError:
        raise ClipfitError(f"{path}, row {n}: timestamp {ts!r} is not an ISO date") from None
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def _fmow_split(split: str, t: datetime) -> str | None:
    test_start = datetime(FMOW_OOD_TEST_YEAR, 1, 1, tzinfo=timezone.utc)
    val_start = datetime(FMOW_OOD_VAL_YEAR, 1, 1, tzinfo=timezone.utc)
    if split == "test":
        return "test" if t >= test_start else None
    if split == "val":
        return "val" if val_start <= t < test_start else None
    if split == "train":
        return "train" if t < val_start else None
    return None


@register_dataset("fmow", template=FMOW_TEMPLATE,
                  help="WILDS FMoW satellite images (62 classes, OOD val/test by year; worst-region accuracy)")
def build_fmow(root: str | None) -> Task:
    base = dataset_folder(root, "fmow")
    meta_path, map_path = base / "rgb_metadata.csv", base / "country_code_mapping.csv"
    meta = read_csv(meta_path, ("split", "category", "country_code", "timestamp"), f"FMoW's image metadata {WILDS}")
    regions = {r["alpha-3"]: r["region"] for r in read_csv(map_path, ("alpha-3", "region"), f"FMoW's country -> region table {WILDS}")}
    index = {c: i for i, c in enumerate(FMOW_CATEGORIES)}
    rows = []
    for i, r in enumerate(meta):
        if r["split"] == "seq":
            continue
        if r["category"] not in index:
            raise ClipfitError(f"{meta_path}, row {i + 2}: category {r['category']!r} is not one of FMoW's 62")
        split = _fmow_split(r["split"], _utc(r["timestamp"], meta_path, i + 2))
        rows.append((split, index[r["category"]], f"images/rgb_img_{i}.png", regions.get(r["country_code"]) or OTHER_REGION))
    classnames = [c.replace("_", " ") for c in FMOW_CATEGORIES]
    return _task("fmow", classnames, FMOW_TEMPLATE, base, rows, ("accuracy", "worst_region_accuracy"))


# --------------------------------------------------------------------------------------------------- Camelyon17


@register_dataset("camelyon17", template=CAMELYON_TEMPLATE, help="WILDS Camelyon17 tissue patches (2 classes; test = hospital 2)")
def build_camelyon17(root: str | None) -> Task:
    base = dataset_folder(root, "camelyon17")
    path = base / "metadata.csv"
    meta = read_csv(path, ("patient", "node", "x_coord", "y_coord", "tumor", "center", "split"),
                    f"Camelyon17's patch metadata {WILDS}")
    rows = []
    for i, r in enumerate(meta):
        where = f"row {i + 2}"
        node, x, y, label, center, split = (as_int(r[c], path, where)
                                            for c in ("node", "x_coord", "y_coord", "tumor", "center", "split"))
        p = r["patient"]
        if label not in (0, 1):
            raise ClipfitError(f"{path}, {where}: tumor must be 0 or 1, not {label}")
        use = ("val" if center == CAMELYON_VAL_HOSPITAL else "test" if center == CAMELYON_TEST_HOSPITAL
               else "train" if split == 0 else None)
        key = f"patches/patient_{p}_node_{node}/patch_patient_{p}_node_{node}_x_{x}_y_{y}.png"
        rows.append((use, label, key, f"hospital {center}"))
    return _task("camelyon17", list(CAMELYON_CLASSES), CAMELYON_TEMPLATE, base, rows, ("accuracy",))


# ----------------------------------------------------------------------------------------------------- iWildCam


@register_dataset("iwildcam", template=IWILDCAM_TEMPLATE, help="WILDS iWildCam camera-trap images (182 classes; macro F1)")
def build_iwildcam(root: str | None) -> Task:
    base = dataset_folder(root, "iwildcam")
    cat_path, meta_path = base / "categories.csv", base / "metadata.csv"
    names: dict[int, str] = {}
    for i, r in enumerate(read_csv(cat_path, ("y", "name"), f"iWildCam's label -> name table {WILDS}")):
        y = as_int(r["y"], cat_path, f"row {i + 2}")
        if y != IWILDCAM_ABSENT:
            names[y] = r["name"].strip()
    if sorted(names) != list(range(len(names))) or not names:
        raise ClipfitError(f"{cat_path}: the labels y must be 0..n-1 (besides {IWILDCAM_ABSENT}); found {len(names)} others")
    classnames = [names[y] for y in range(len(names))]
    meta = read_csv(meta_path, ("split", "y", "filename", "location_remapped"), f"iWildCam's image metadata {WILDS}")
    rows = []
    for i, r in enumerate(meta):
        y = as_int(r["y"], meta_path, f"row {i + 2}")
        if not 0 <= y < len(classnames):
            raise ClipfitError(f"{meta_path}, row {i + 2}: label {y} is not in {cat_path.name} (0..{len(classnames) - 1})")
        split = r["split"] if r["split"] in ("train", "val", "test") else None
        rows.append((split, y, f"train/{r['filename']}", f"location {r['location_remapped']}"))
    return _task("iwildcam", classnames, IWILDCAM_TEMPLATE, base, rows, ("macro_f1", "accuracy"))
