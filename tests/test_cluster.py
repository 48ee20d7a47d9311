"""Clusters grow around a verified centre and never chain unrelated articles."""

import numpy as np

from dedup.cluster import Similarity, Thresholds, cluster_component, components, glued

T = Thresholds(jaccard=0.5, containment=0.5, min_shared=8)


def table(pairs: dict[tuple[int, int], Similarity]):
    def sim(a: int, b: int) -> Similarity:
        return pairs.get((min(a, b), max(a, b)), Similarity(0.0, 0.0, 0))

    return sim


def test_components_are_sorted_and_complete() -> None:
    assert components([0, 1, 2, 3, 4], [(3, 4), (0, 2)]) == [[0, 2], [1], [3, 4]]


def test_a_bridge_does_not_chain_two_articles() -> None:
    # 1 is a roundup holding most of article 0 and most of article 2; 0 and 2 share nothing.
    sims = {(0, 1): Similarity(0.45, 0.9, 90), (1, 2): Similarity(0.45, 0.9, 90)}
    clusters = cluster_component([0, 1, 2], [(0, 1), (1, 2)], table(sims))
    assert sorted(map(sorted, clusters)) in ([[0, 1], [2]], [[0], [1, 2]])


def test_members_must_match_the_centre_not_just_each_other() -> None:
    # 0~1~2~3 is a chain of overlapping pairs; 0 and 3 overlap too little to be one article.
    sims = {
        (0, 1): Similarity(0.6, 0.7, 70),
        (1, 2): Similarity(0.6, 0.7, 70),
        (2, 3): Similarity(0.6, 0.7, 70),
        (0, 2): Similarity(0.3, 0.4, 40),
        (1, 3): Similarity(0.3, 0.4, 40),
    }
    edges = [p for p in sims if T.accepts(sims[p])]
    clusters = cluster_component([0, 1, 2, 3], edges, table(sims))
    for members in clusters:
        centre = members[0]
        assert all(T.accepts(table(sims)(centre, m)) for m in members[1:])
    assert len(clusters) >= 2


def test_copies_of_one_article_form_one_cluster() -> None:
    sims = {(a, b): Similarity(0.8, 0.9, 80) for a in range(4) for b in range(a + 1, 4)}
    assert [sorted(c) for c in cluster_component(range(4), list(sims), table(sims))] == [[0, 1, 2, 3]]


def test_truncated_clean_vs_complete_garbled_passes_on_containment() -> None:
    hard = Similarity(jaccard=0.30, containment=0.72, shared=150)
    assert T.accepts(hard)
    assert "containment 0.72" in T.explain(hard)
    assert not T.accepts(Similarity(jaccard=0.30, containment=0.72, shared=5))
    assert not T.accepts(Similarity(jaccard=0.10, containment=0.30, shared=150))


def _reference_components(nodes: list[int], pairs: list[tuple[int, int]]) -> list[list[int]]:
    """Grow each component by walking its pairs (slow and plain)."""
    linked: dict[int, set[int]] = {n: set() for n in nodes}
    for a, b in pairs:
        linked[a].add(b)
        linked[b].add(a)
    seen: set[int] = set()
    out = []
    for n in sorted(linked):
        if n in seen:
            continue
        comp, todo = set(), [n]
        while todo:
            m = todo.pop()
            if m not in comp:
                comp.add(m)
                todo.extend(linked[m] - comp)
        seen |= comp
        out.append(sorted(comp))
    return out


def test_components_are_those_of_the_graph_in_order_of_their_first_node() -> None:
    import random

    import numpy as np

    rng = random.Random(5)
    for _ in range(500):
        nodes = rng.sample(range(200), rng.randint(0, 30))
        pairs = [tuple(rng.sample(nodes, 2)) for _ in range(rng.randint(0, 40))] if len(nodes) > 1 else []
        expected = _reference_components(nodes, pairs)
        assert components(nodes, pairs) == expected
        assert components(np.array(nodes, dtype=np.int64), np.array(pairs, dtype=np.int64)) == expected


def test_glued_asks_texts_twice_the_centres_size_for_5_percent_past_it_and_8_shingles() -> None:
    own = np.arange(1000, 1200)  # 200 shingles past the centre

    def other(shared: int, size: int = 200) -> np.ndarray:
        return np.concatenate([own[:shared], np.arange(5000, 5000 + size - shared)])

    assert glued(50, 250, 250, own, other(9), min_shared=8)  # 9 < 5% of 200
    assert not glued(50, 250, 250, own, other(10), min_shared=8)
    assert glued(50, 100, 250, own, other(0), min_shared=8)  # exactly twice the centre: asked
    assert not glued(50, 99, 250, own, other(0), min_shared=8)  # under twice: never
    small = own[:40]  # 5% of 40 is 2: the floor of 8 shingles decides
    assert glued(10, 50, 50, small, np.concatenate([small[:7], np.arange(9000, 9033)]), min_shared=8)
    assert not glued(10, 50, 50, small, np.concatenate([small[:8], np.arange(9000, 9032)]), min_shared=8)
