"""Lay out the shared real datasets in MVTec AD layout, with symlinks (no copies).

    python bench/make_mvtec_links.py ../shared/datasets bench/out/mvtec

creates ``OUT/casting`` and ``OUT/magnetic-tile``. Magnetic tile follows the
datasets README split rule: sorted MT_Free names, index % 5 == 0 -> test/good,
the rest -> train/good; every defective image is a test image with its mask.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(src.resolve())


def casting(src: Path, out: Path) -> None:
    for split, folder, target in (
        ("train", "ok_front", "train/good"),
        ("test", "ok_front", "test/good"),
        ("test", "def_front", "test/defect"),
    ):
        for image in sorted((src / split / folder).glob("*.jpeg")):
            _link(image, out / target / image.name)


def magnetic_tile(src: Path, out: Path) -> None:
    free = sorted((src / "MT_Free" / "Imgs").glob("*.jpg"))
    for index, image in enumerate(free):
        _link(image, out / ("test/good" if index % 5 == 0 else "train/good") / image.name)
    for folder in sorted(src.glob("MT_*")):
        if folder.name == "MT_Free":
            continue
        defect = folder.name.removeprefix("MT_").lower()
        for image in sorted((folder / "Imgs").glob("*.jpg")):
            _link(image, out / "test" / defect / image.name)
            _link(image.with_suffix(".png"), out / "ground_truth" / defect / f"{image.stem}_mask.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", type=Path, help="folder holding casting/ and magnetic-tile/")
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    for name, build in (("casting", casting), ("magnetic-tile", magnetic_tile)):
        target = args.out / name
        shutil.rmtree(target, ignore_errors=True)
        build(args.datasets / name, target)
        print(f"{target}: {sum(1 for _ in target.rglob('*.*'))} links")


if __name__ == "__main__":
    main()
