"""Data and partitionings the bag tests sweep: empty partitions, one partition, one record per
partition, random cuts, skew (one big partition among empty and tiny ones), several seeds."""

import random


def partitionings(data, seed):
    """Ways to cut ``data`` into partitions: ``(description, [list, ...])``."""
    n = len(data)
    rng = random.Random(seed)
    out = [("one", [list(data)]), ("singletons", [[x] for x in data] or [[]])]
    # Random cut points, with repeats (empty partitions) and the ends included.
    cuts = sorted(rng.randint(0, n) for _ in range(rng.randint(1, 9)))
    bounds = [0] + cuts + [n]
    out.append(("random-cuts", [list(data[a:b]) for a, b in zip(bounds, bounds[1:])]))
    # Skew: nearly everything in one partition, empty ones around it.
    k = max(n - 3, 0)
    out.append(("skew", [[], list(data[:k]), [], *[[x] for x in data[k:]], []]))
    out.append(("empty-ends", [[], list(data), []]))
    return out


def make_data(seed, n=None):
    rng = random.Random(seed)
    n = rng.randint(0, 60) if n is None else n
    return [rng.randint(-20, 20) for _ in range(n)]


WORDS = ["apple", "banana", "cherry", "date", "elder", "fig", "grape"]


def make_words(seed, n=None):
    rng = random.Random(seed)
    n = rng.randint(0, 80) if n is None else n
    return [rng.choice(WORDS) for _ in range(n)]
