"""Writes shapes.csv, the tabular example's data: 600 synthetic measurements of three
kinds of shape (a made-up table, generated here so that the example needs no download).

    python examples/tabular/make_shapes.py    # the same file every time (seeded)
"""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path

KINDS = ("circle", "square", "triangle")


def rows(n: int = 600, seed: int = 7):
    rng = random.Random(seed)
    for i in range(n):
        kind = KINDS[i % 3]
        size = rng.uniform(1, 10)
        # area and perimeter of each kind at this size, measured with noise; corners counted
        area = {"circle": math.pi * (size / 2) ** 2, "square": size ** 2, "triangle": size ** 2 * 3 ** 0.5 / 4}[kind]
        perimeter = {"circle": math.pi * size, "square": 4 * size, "triangle": 3 * size}[kind]
        corners = {"circle": 0, "square": 4, "triangle": 3}[kind]
        texture = rng.choice(("smooth", "rough", "striped"))
        yield [round(size * rng.gauss(1, 0.05), 3), round(area * rng.gauss(1, 0.15), 3),
               round(perimeter * rng.gauss(1, 0.15), 3), max(0, corners + rng.choice((-1, 0, 0, 0, 1))),
               texture, kind]


if __name__ == "__main__":
    path = Path(__file__).with_name("shapes.csv")
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["size", "area", "perimeter", "corners", "texture", "shape"])
        w.writerows(rows())
    print(f"wrote {path}")
