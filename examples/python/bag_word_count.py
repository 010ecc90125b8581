"""Word count with oxidask.bag, Dask's bag API on oxidask's engine.

Writes a small generated corpus (gzip-compressed text files) to a temporary directory, reads
it back with ``read_text``, splits lines into words with the ``str`` accessor, flattens, and
counts with ``frequencies`` and ``topk`` — then checks every figure against
``collections.Counter`` over the same text read with plain Python. Runs on the threaded
scheduler, then again on a LocalCluster of worker processes.

    python examples/python/bag_word_count.py
"""

import gzip
import os
import random
import tempfile
from collections import Counter

import oxidask as dask
import oxidask.bag as db
from oxidask.distributed import Client, LocalCluster

VOCABULARY = ("the quick brown fox jumps over lazy dog dask bag rust python oxidask "
              "count words lines files partitions tasks workers scheduler graph").split()


def write_corpus(directory, nfiles=4, nlines=2000, seed=42):
    """``nfiles`` gzip text files of random lines; word frequencies follow a Zipf-like law."""
    rng = random.Random(seed)
    weights = [1 / (i + 1) for i in range(len(VOCABULARY))]
    for i in range(nfiles):
        with gzip.open(os.path.join(directory, f"corpus-{i}.txt.gz"), "wt", encoding="utf-8") as f:
            for _ in range(nlines):
                f.write(" ".join(rng.choices(VOCABULARY, weights, k=rng.randint(1, 12))) + "\n")


def plain_python_counts(directory):
    counts = Counter()
    for name in sorted(os.listdir(directory)):
        with gzip.open(os.path.join(directory, name), "rt", encoding="utf-8") as f:
            for line in f:
                counts.update(line.split())
    return counts


def word_count(directory):
    lines = db.read_text(os.path.join(directory, "*.txt.gz"))
    words = lines.str.split().flatten()
    counts = words.frequencies(sort=True)
    top5 = counts.topk(5, key=lambda pair: pair[1])
    total = words.count()
    # One pass over the files computes all three.
    return dask.compute(counts, top5, total)


def main():
    with tempfile.TemporaryDirectory() as directory:
        write_corpus(directory)
        expected = plain_python_counts(directory)

        counts, top5, total = word_count(directory)
        print(f"threaded scheduler: {total} words, {len(counts)} distinct")
        for word, n in top5:
            print(f"  {word:>10} {n}")
        assert dict(counts) == dict(expected), "frequencies differ from collections.Counter"
        assert total == sum(expected.values())
        assert [n for _, n in top5] == [n for _, n in expected.most_common(5)]
        assert [n for _, n in counts] == sorted(expected.values(), reverse=True)
        print("threaded scheduler: matches collections.Counter")

        with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster):
            counts2, top2, total2 = word_count(directory)
        assert dict(counts2) == dict(expected) and total2 == total and top2 == top5
        print("LocalCluster (2 worker processes): matches collections.Counter")


if __name__ == "__main__":
    main()
