"""Pass 2's giant groups (``large_groups``): verified in chunks, settled by verified component, with
the same records as the whole group settled at once."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from conftest import scrape_files

from dedup import index, large_groups, parallel, pass1, pass2, readers
from dedup.config import Config
from dedup.frequency import TokenFrequency

SAMPLE = Path(__file__).resolve().parents[1] / "corpora" / "sample"


def _settled(corpus: pass2.Corpus, tasks: list[pass2.Task]) -> tuple[dict[int, bytes], int]:
    records: dict[int, bytes] = {}
    edges = 0
    for results, n_edges in pass2.settle_all(corpus, tasks, parallel.Processes(2)):
        records.update(results)
        edges += n_edges
    return records, edges


def _group_that_falls_apart() -> dict[str, str]:
    """Three copies of an article, four texts that share 13 of its 30 sentences (candidates the
    exact shingles turn down), and three others that carry the copies' "related" line.

    Over all its candidates a copy reaches 8 documents, so that line (in 6) is the
    article's own; over its verified pairs alone it would reach 3, and the line be
    furniture, left out of its shingles: the split group must keep the first reach.
    """
    rng = random.Random(7)
    vocabulary = [f"w{k}" for k in range(4000)]

    def sentences(n: int) -> list[str]:
        return [" ".join(rng.choices(vocabulary, k=12)).capitalize() + "." for _ in range(n)]

    article, line = sentences(30), "Related coverage: the budget talks"
    texts = {f"copy-{k}.txt": "\n".join([*article[: 30 - 2 * k], line]) for k in range(3)}
    texts.update({f"teaser-{k}.txt": "\n".join(article[:13] + sentences(17)) for k in range(4)})
    texts.update({f"other-{k}.txt": "\n".join([*sentences(25), line]) for k in range(3)})
    return texts


def test_a_group_settled_by_its_verified_components_gets_the_records_of_the_whole(write_tree) -> None:
    # The sample's articles, a small scrape with boilerplate and markup, and a group that falls apart.
    inputs = [str(SAMPLE), str(write_tree({**scrape_files(), **_group_that_falls_apart()}))]
    config = Config(jobs=2)
    frequency = TokenFrequency()
    docs, feats, _ = pass1.read_all(readers.discover(inputs), config, frequency)
    bands, rows = index.band_layout(threshold=config.lsh_threshold, num_perm=config.num_perm)

    def corpus() -> pass2.Corpus:
        return pass2.Corpus.of(config, docs, feats, frequency)

    _, pairs, _ = index.candidates(
        feats.matrix(),
        corpus().sizes,
        bands=bands,
        rows=rows,
        jaccard=config.jaccard,
        containment=config.containment,
    )
    _, _, tasks = pass2.group_pairs(pairs, len(feats.contents))
    assert max(len(nodes) for nodes, _ in tasks) >= 3  # groups worth splitting
    whole = _settled(corpus(), tasks)
    assert whole[1] < len(pairs)  # some candidates are not verified: a group falls apart
    for large in (1, 2, 3, 6):
        split_corpus = corpus()
        split = large_groups.split(split_corpus, tasks, parallel.Processes(2), large=large)
        assert sorted(n for nodes, _ in split for n in nodes) == sorted(
            n for nodes, _ in tasks for n in nodes
        )
        assert len(split) > len(tasks)
        assert _settled(split_corpus, split) == whole


def test_a_split_task_holds_whole_verified_components() -> None:
    verified = np.array([[0, 1], [1, 2], [5, 6]], dtype=np.int64)
    comps = [[0, 1, 2], [3], [5, 6]]
    tasks = large_groups.pack(comps, verified, large=3)
    assert [(nodes, p.tolist()) for nodes, p in tasks] == [
        ([0, 1, 2], [[0, 1], [1, 2]]),
        ([3, 5, 6], [[5, 6]]),
    ]


def test_local_order_is_an_order_of_the_pairs_that_loads_fewer_texts_per_chunk() -> None:
    # A long chain listed out of order: in node order every chunk of two pairs holds four texts.
    rng = np.random.default_rng(3)
    labels = rng.permutation(200)
    chain = np.sort(np.stack([labels[:-1], labels[1:]], axis=1), axis=1)
    pairs = chain[np.lexsort((chain[:, 1], chain[:, 0]))]
    order = large_groups.local_order(pairs)
    assert sorted(order.tolist()) == list(range(len(pairs)))

    def loads(ordered: np.ndarray) -> int:
        return sum(len(np.unique(ordered[lo : lo + 2])) for lo in range(0, len(ordered), 2))

    assert loads(pairs[order]) == 3 * (len(pairs) // 2) + len(pairs) % 2 * 2 < loads(pairs)
