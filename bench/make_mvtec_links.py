"""Lay out the shared real datasets in MVTec AD layout, with symlinks (no copies).

    python bench/make_mvtec_links.py ../shared/datasets bench/out/mvtec

creates ``OUT/casting`` and ``OUT/magnetic-tile``. Magnetic tile follows the
datasets README split rule: sorted MT_Free names, index % 5 == 0 -> test/good,
the rest -> train/good; every defective image is a test image with its mask.

``--by-tile`` (needs the project's environment) also creates ``OUT/magnetic-tile-by-tile``, split by
physical tile instead: MT_Free holds about six photographs of each tile, one per lighting
(``expN``, with ``num`` a few dozen apart), so the README rule puts other photographs of most good
test tiles into the training set. Photographs whose thumbnails agree (cosine >= 0.9, see
``near_copies.py``) and whose numbers lie within 300 are one tile; every photograph of every 5th tile
(in name order) is a good test image, and every photograph of every 10th other tile goes to
``calibration/good``, for ``qcflow fit anomaly --calibration-good``.
"""

from __future__ import annotations

import argparse
import re
import shutil
from collections.abc import Callable
from functools import partial
from pathlib import Path

SAME_TILE_COSINE = 0.9
SAME_TILE_NUMBERS = 300


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


def magnetic_tile(src: Path, out: Path, by_tile: bool = False) -> None:
    free = sorted((src / "MT_Free" / "Imgs").glob("*.jpg"))
    tile = tile_of(free) if by_tile else list(range(len(free)))
    in_name_order = list(dict.fromkeys(tile))
    role = {t: "test/good" if n % 5 == 0 else "train/good" for n, t in enumerate(in_name_order)}
    if by_tile:  # every 10th tile's photographs calibrate (--calibration-good OUT/calibration/good)
        role |= {t: "calibration/good" for n, t in enumerate(in_name_order) if n % 10 == 1}
    for image, t in zip(free, tile, strict=True):
        _link(image, out / role[t] / image.name)
    for folder in sorted(src.glob("MT_*")):
        if folder.name == "MT_Free":
            continue
        defect = folder.name.removeprefix("MT_").lower()
        for image in sorted((folder / "Imgs").glob("*.jpg")):
            _link(image, out / "test" / defect / image.name)
            _link(image.with_suffix(".png"), out / "ground_truth" / defect / f"{image.stem}_mask.png")


def tile_of(photos: list[Path]) -> list[int]:
    """The physical tile of each MT_Free photograph, numbered 0..T-1 (see the module's docstring)."""
    import numpy as np
    from near_copies import thumbnail
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    thumbs = np.stack([thumbnail(p) for p in photos])
    numbers = np.array([int(re.search(r"num_(\d+)", p.name).group(1)) for p in photos])  # type: ignore[union-attr]
    same = (thumbs @ thumbs.T >= SAME_TILE_COSINE) & (np.abs(numbers[:, None] - numbers) < SAME_TILE_NUMBERS)
    _, labels = connected_components(csr_matrix(same), directed=False)
    return [int(label) for label in labels]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", type=Path, help="folder holding casting/ and magnetic-tile/")
    parser.add_argument("out", type=Path)
    parser.add_argument("--by-tile", action="store_true", help="also magnetic-tile-by-tile (see above)")
    args = parser.parse_args()
    layouts: list[tuple[str, str, Callable[[Path, Path], None]]] = [
        ("casting", "casting", casting),
        ("magnetic-tile", "magnetic-tile", magnetic_tile),
    ]
    if args.by_tile:
        layouts.append(("magnetic-tile", "magnetic-tile-by-tile", partial(magnetic_tile, by_tile=True)))
    for source, name, build in layouts:
        target = args.out / name
        shutil.rmtree(target, ignore_errors=True)
        build(args.datasets / source, target)
        print(f"{target}: {sum(1 for _ in target.rglob('*.*'))} links")


if __name__ == "__main__":
    main()
