"""Grouping face embeddings by person: Chinese Whispers over the cosine graph.

The graph has one node per face and an edge between two faces whose cosine
similarity is at least the model's threshold (the embedder's calibrated
``default_threshold``, FAR = 1e-3 on pairs), weighted by that similarity.
Edges come from :func:`neighbours`, a blocked exact top-k: it holds one
``block x n`` score matrix at a time (never all pairs), so 100k faces of
dimension 128 need ~100 MB per block of 256 rows and finish in minutes on
two cores.

:func:`chinese_whispers` is Biemann's algorithm (2006, "Chinese Whispers:
an efficient graph clustering algorithm"), the one dlib ships as
``dlib.chinese_whispers_clustering`` for face descriptors: every node starts
in its own cluster; in each pass the nodes, in a random order, take the label
with the largest sum of edge weights among their neighbours. A face with no
edge stays a singleton. Knobs: ``threshold`` (higher = purer, more clusters),
``k`` (neighbours kept per face: a person with more than ``k`` faces still
joins up through chains of neighbours), ``iterations`` (passes; dlib uses
100, the labels usually settle in under 20) and ``seed`` (the visiting
order, so a run is reproducible).

A model's verification threshold is calibrated at FAR = 1e-3 per *pair*;
a folder of n faces has n(n-1)/2 pairs, so for thousands of faces it lets
through thousands of false edges and Chinese Whispers chains people
together. ``likeness cluster`` therefore links faces at the model's
strictest operating point (``far-1e-4``,
:func:`likeness.operating_points.strictest`). On LFW DevTest (3,900 faces,
docs/BENCHMARKS.md#clustering) that is what separates people: BCubed F
0.84 for v7d at its far-1e-4 threshold 0.7701 against 0.52 at cosine
0.6481, its pooled verification threshold before (dlib-resnet's
descriptors: 0.94 at cosine 0.94 against 0.67 at its 0.9241).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Rows of the score matrix computed at once by :func:`neighbours`.
BLOCK_ROWS = 256
DEFAULT_K = 32
DEFAULT_ITERATIONS = 100


@dataclass(frozen=True)
class Graph:
    """Undirected weighted edges ``(a[i], b[i], weight[i])`` with a < b;
    ``size`` nodes (faces) numbered 0..size-1."""

    size: int
    a: np.ndarray
    b: np.ndarray
    weight: np.ndarray


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32); a zero row stays zero."""
    data = np.asarray(vectors, dtype=np.float32)
    if data.ndim != 2:
        raise ValueError(f"expected a 2-D array of embeddings, got shape {data.shape}")
    norms = np.linalg.norm(data, axis=1, keepdims=True)
    return data / np.where(norms > 0, norms, 1.0)


def neighbours(vectors: np.ndarray, threshold: float, k: int = DEFAULT_K) -> Graph:
    """The cosine graph: each face linked to its (up to) ``k`` most similar
    other faces whose cosine similarity is >= ``threshold``."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    unit = unit_rows(vectors)
    n = unit.shape[0]
    keep = min(k, n - 1)
    if keep < 1:
        return Graph(n, *(np.empty(0, dtype=t) for t in (np.int64, np.int64, np.float32)))
    pairs_a: list[np.ndarray] = []
    pairs_b: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    for start in range(0, n, BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, n)
        scores = unit[start:stop] @ unit.T
        rows = np.arange(stop - start)
        scores[rows, rows + start] = -np.inf  # no self edge
        top = np.argpartition(-scores, keep - 1, axis=1)[:, :keep]
        top_scores = np.take_along_axis(scores, top, axis=1)
        hit = top_scores >= threshold
        src = (rows[:, None] + start).repeat(keep, axis=1)[hit]
        dst = top[hit]
        pairs_a.append(np.minimum(src, dst))
        pairs_b.append(np.maximum(src, dst))
        weights.append(top_scores[hit].astype(np.float32))
    a = np.concatenate(pairs_a)
    b = np.concatenate(pairs_b)
    w = np.concatenate(weights)
    # An edge found from both ends appears twice; keep one.
    _, first = np.unique(a * n + b, return_index=True)
    return Graph(n, a[first], b[first], w[first])


def chinese_whispers(
    graph: Graph, iterations: int = DEFAULT_ITERATIONS, seed: int = 0
) -> np.ndarray:
    """A cluster label per node (0..clusters-1, numbered by first node);
    stops early once a pass changes no label."""
    n = graph.size
    labels = np.arange(n)
    adjacency: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    for a, b, w in zip(graph.a.tolist(), graph.b.tolist(), graph.weight.tolist(), strict=True):
        adjacency[a].append((b, w))
        adjacency[b].append((a, w))
    rng = np.random.default_rng(seed)
    linked = [i for i in range(n) if adjacency[i]]
    for _ in range(iterations):
        changed = False
        for node in rng.permutation(linked).tolist():
            votes: dict[int, float] = {}
            for other, w in adjacency[node]:
                label = int(labels[other])
                votes[label] = votes.get(label, 0.0) + w
            best = max(votes.items(), key=lambda item: (item[1], -item[0]))[0]
            if best != labels[node]:
                labels[node] = best
                changed = True
        if not changed:
            break
    _, first_seen = np.unique(labels, return_index=True)
    order = np.argsort(first_seen)
    remap = np.empty(labels.max() + 1 if n else 0, dtype=np.int64)
    remap[np.unique(labels)[order]] = np.arange(len(order))
    return remap[labels] if n else labels


def cluster(
    vectors: np.ndarray,
    threshold: float,
    *,
    k: int = DEFAULT_K,
    iterations: int = DEFAULT_ITERATIONS,
    seed: int = 0,
) -> np.ndarray:
    """A cluster label per row of ``vectors`` (faces x dim): Chinese Whispers
    over the cosine graph at ``threshold``."""
    return chinese_whispers(neighbours(vectors, threshold, k), iterations, seed)
