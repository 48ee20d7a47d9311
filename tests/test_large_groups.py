"""Pass 2's giant groups (``large_groups``): verified in chunks, settled by verified component, with
the same records as the whole group settled at once."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from conftest import scrape_files
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup import groups, index, large_groups, pair_verdicts, parallel, pass1, pass2, readers
from dedup.cluster import labelled
from dedup.config import Config
from dedup.frequency import TokenFrequency
from dedup.pass2 import Reach

SAMPLE = Path(__file__).resolve().parents[1] / "corpora" / "sample"


def _settled(corpus: pass2.Corpus, tasks: Sequence[groups.Task]) -> tuple[dict[int, bytes], int]:
    records: dict[int, bytes] = {}
    edges = 0
    for results, n_edges, _ in pass2.settle_all(corpus, tasks, parallel.Processes(2)):
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
    tasks, _ = groups.group_pairs(pairs, len(feats.contents))
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
    members, starts = np.array([0, 1, 2, 3, 5, 6]), np.array([0, 3, 4, 6])
    tasks = large_groups.pack(members, starts, verified, large=3)
    assert [(nodes, p.tolist()) for nodes, p in tasks] == [
        ([0, 1, 2], [[0, 1], [1, 2]]),
        ([3, 5, 6], [[5, 6]]),
    ]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 12))
def test_pack_gathers_what_a_dict_per_text_gathered(seed: int, large: int) -> None:
    # The reference is pack as it was, with a dict from each text to its component.
    rng = np.random.default_rng(seed)
    nodes = np.sort(rng.choice(500, size=int(rng.integers(1, 60)), replace=False))
    pairs = np.sort(rng.choice(nodes, size=(int(rng.integers(0, 50)), 2)), axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    members, starts = labelled(nodes, pairs)
    comps = [members[a:b].tolist() for a, b in itertools.pairwise(starts.tolist())]
    kept = [c for c in comps if rng.random() < 0.7]  # as a cron run leaves out judged components
    where = {n: c for c, comp in enumerate(kept) for n in comp}
    of_pair = np.array([where.get(a, -1) for a in pairs[:, 0].tolist()], dtype=np.int64)
    expected, first = [], 0
    while first < len(kept):
        last, size = first, 0
        while last < len(kept) and (size == 0 or size + len(kept[last]) <= large):
            size, last = size + len(kept[last]), last + 1
        texts = sorted(n for comp in kept[first:last] for n in comp)
        expected.append((texts, pairs[(of_pair >= first) & (of_pair < last)].tolist()))
        first = last
    flat = np.array([n for c in kept for n in c], dtype=np.int64)
    bounds = np.cumsum([0, *map(len, kept)])
    got = large_groups.pack(flat, bounds, pairs, large)
    assert [(n, p.tolist()) for n, p in got] == expected


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 9)), max_size=30), st.lists(st.integers(0, 45)))
def test_reach_answers_as_a_dict_keeping_first_values(added: list[tuple[int, int]], asked: list[int]) -> None:
    reach, reference = Reach(), {}
    for lo in range(0, len(added), 7):  # added a few at a time, as groups are split
        batch = dict(added[lo : lo + 7])
        reach.add(np.array(list(batch), dtype=np.int64), np.array(list(batch.values()), dtype=np.int64))
        reference = {**batch, **reference}
    assert len(reach) == len(reference)
    assert reach.known(asked) == {n: reference[n] for n in asked if n in reference}
    for n in asked:
        assert (n in reach) == (n in reference)
        if n in reference:
            assert reach[n] == reference[n]
        else:
            with pytest.raises(KeyError):
                reach[n]


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


class CountingEngine:
    """Forked workers, counting the candidate pairs given to the verifier."""

    def __init__(self) -> None:
        self.verified = 0

    def ordered(self, stage, tasks, *, window_per_worker, per_call=1, weight=None):
        def counted():
            for task in tasks:
                if isinstance(stage, large_groups.Verifier):
                    self.verified += len(task)
                yield task

        return parallel.Processes(2).ordered(
            stage, counted(), window_per_worker=window_per_worker, per_call=per_call, weight=weight
        )


def _split_setup(
    write_tree, more: dict[str, str] | None = None
) -> tuple[Callable[[], pass2.Corpus], Sequence[groups.Task]]:
    inputs = [str(write_tree({**scrape_files(), **_group_that_falls_apart(), **(more or {})}))]
    config = Config(jobs=2)
    frequency = TokenFrequency()
    docs, feats, _ = pass1.read_all(readers.discover(inputs), config, frequency)
    bands, rows = index.band_layout(threshold=config.lsh_threshold, num_perm=config.num_perm)
    _, pairs, _ = index.candidates(
        feats.matrix(),
        feats.sizes.numbers(),
        bands=bands,
        rows=rows,
        jaccard=config.jaccard,
        containment=config.containment,
    )
    tasks, _ = groups.group_pairs(pairs, len(feats.contents))
    return lambda: pass2.Corpus.of(config, docs, feats, frequency), tasks


def _listed(tasks: Sequence[groups.Task]) -> list[tuple[list[int], list[list[int]]]]:
    return [(list(nodes), pairs.tolist()) for nodes, pairs in tasks]


def test_a_later_split_verifies_only_the_pairs_of_texts_compared_otherwise(write_tree) -> None:
    corpus, tasks = _split_setup(write_tree)
    big = [(nodes, pairs) for nodes, pairs in tasks if len(nodes) > 2]
    assert big  # a group to split
    first, memo = CountingEngine(), pair_verdicts.PairVerdicts()
    split = large_groups.split(corpus(), tasks, first, large=2, memo=memo)
    assert first.verified == sum(len(pairs) for _, pairs in big)

    # The next run: its state's verdicts; the same texts, compared alike: nothing verified again.
    again = CountingEngine()
    kept = pair_verdicts.PairVerdicts.loads(memo.dumps())
    assert _listed(large_groups.split(corpus(), tasks, again, large=2, memo=kept)) == _listed(split)
    assert again.verified == 0

    # A candidate pair gone: its two texts reach fewer documents, so their lines may count
    # otherwise; every pair of either is verified again, and only those.
    nodes, pairs = big[0]
    a, b = pairs[0].tolist()
    fewer = groups.Groups.of([(n, p[1:]) if n == nodes else (n, p) for n, p in tasks])
    changed = CountingEngine()
    large_groups.split(corpus(), fewer, changed, large=2, memo=pair_verdicts.PairVerdicts.loads(memo.dumps()))
    assert changed.verified == int(np.isin(pairs[1:], [a, b]).any(axis=1).sum()) > 0


def test_a_verdict_is_taken_again_once_a_line_of_one_of_its_texts_is_counted_past_its_limit(
    write_tree,
) -> None:
    """A line of a text is furniture once more documents than the text's reach hold it: the verdicts
    on its pairs rest on its lines' counts, so when arrivals count one past its limit (``freq_bounds``)
    every pair of that text is verified again, and only those."""
    make, tasks = _split_setup(write_tree)
    corpus = make()
    corpus.bounded = True
    memo = pair_verdicts.PairVerdicts()
    large_groups.split(corpus, tasks, CountingEngine(), large=2, memo=memo)
    stored = pair_verdicts.PairVerdicts.loads(memo.dumps())
    assert stored.bounds is not None and len(stored.bounds)
    pairs = next(p for n, p in tasks if len(n) > 2)
    texts, keys = large_groups.text_keys(corpus, pairs)
    holds = np.flatnonzero(np.isin(keys, stored.bounds.owners))
    assert len(holds)
    node, owner = int(texts[holds[0]]), keys[holds[0]]
    run = int(np.flatnonzero(stored.bounds.owners == owner)[0])
    first = int(stored.bounds.sizes[:run].sum())
    line, limit = stored.bounds.keys[first], int(stored.bounds.limits[first])

    again = CountingEngine()
    large_groups.split(make(), tasks, again, large=2, memo=pair_verdicts.PairVerdicts.loads(memo.dumps()))
    assert again.verified == 0  # counts as they were: every verdict holds
    for _ in range(limit + 1 - int(corpus.frequency.get(np.array([line]))[0])):
        corpus.frequency.add(np.array([line], dtype=np.uint64))  # arrivals holding that line
    later = CountingEngine()
    large_groups.split(make(), tasks, later, large=2, memo=pair_verdicts.PairVerdicts.loads(memo.dumps()))
    # That text, and any other holding the line with a limit as low.
    owners = np.repeat(stored.bounds.owners, stored.bounds.sizes.astype(np.int64))
    crossed = owners[(stored.bounds.keys == line) & (stored.bounds.limits <= limit)]
    stale = [int(texts[k]) for k in np.flatnonzero(np.isin(keys, crossed))]
    assert node in stale
    touching = sum(int(np.isin(p, stale).any(axis=1).sum()) for n, p in tasks if len(n) > 2)
    assert later.verified == touching > 0


def test_a_text_whose_reach_grows_keeps_its_verdicts_till_the_reach_passes_a_line_it_left_out(
    write_tree, monkeypatch
) -> None:
    """A text's lines are compared less those counted over its reach (furniture). Arrivals among its
    candidates grow its reach every night; its lines, and so its verdicts and its component's
    records, change only once the reach passes the count of a line it left out."""
    # The article's first sentence quoted in eight notes too: in 15 documents, over the reach of
    # any text of the group, so furniture, left out of each.
    line = _group_that_falls_apart()["copy-0.txt"].split("\n")[0]
    more = {
        f"note-{k}.txt": f"Note {k} on the weather in town {k * 7}.\n{line}\nEnd of note {k}."
        for k in range(8)
    }
    make, tasks = _split_setup(write_tree, more)
    corpus = make()
    corpus.bounded = True
    memo = pair_verdicts.PairVerdicts()
    large_groups.split(corpus, tasks, CountingEngine(), large=2, memo=memo)
    pairs = next(p for n, p in tasks if len(n) > 2)
    texts, keys = large_groups.text_keys(corpus, pairs)
    lo, hi = pair_verdicts.PairVerdicts.loads(memo.dumps()).windows.get(keys)
    left_out = np.flatnonzero(hi < large_groups.FOREVER)
    assert len(left_out) and (hi[left_out] > lo[left_out]).all()
    node, lo, hi = int(texts[left_out[0]]), int(lo[left_out[0]]), int(hi[left_out[0]])
    touching = int(np.isin(pairs, [node]).any(axis=1).sum())
    real = pass2.reaches

    def night(over: int) -> tuple[int, int]:
        """A run where ``node``'s reach makes ``over``: (pairs verified, its furniture for ``known``)."""

        def grown(corpus: pass2.Corpus, nodes: np.ndarray, pairs: np.ndarray) -> np.ndarray:
            reach = real(corpus, nodes, pairs)
            return np.where(nodes == node, over, reach)

        seen: list[int] = []
        corpus = make()

        def known(comps: list[list[int]]) -> list[bool]:
            if any(node in comp for comp in comps):  # (its group's call)
                seen.extend(corpus.furniture.of(np.array([node])).tolist())
            return [False] * len(comps)

        monkeypatch.setattr(large_groups, "reaches", grown)
        engine = CountingEngine()
        stored = pair_verdicts.PairVerdicts.loads(memo.dumps())
        large_groups.split(corpus, tasks, engine, large=2, memo=stored, known=known)
        return engine.verified, seen[0]

    assert night(lo) == (0, lo)
    assert night(hi - 1) == (0, lo)  # the same lines: no pair verified again, the same fingerprint
    assert night(hi) == (touching, hi)  # the line comes back: every pair of the text, and only those
    assert night(lo - 1) == (touching, lo - 1)  # a reach that fell: a line it kept may be left out


def test_a_verified_component_the_state_holds_is_not_settled_again(write_tree) -> None:
    make, tasks = _split_setup(write_tree)
    whole, _ = _settled(make(), tasks)
    held: set[int] = set()

    def known(comps: list[list[int]]) -> list[bool]:  # the state holds the first component with two texts
        if not held:
            held.update(next((comp for comp in comps if len(comp) > 1), []))
        return [comp[0] in held for comp in comps]

    corpus = make()
    split = large_groups.split(corpus, tasks, parallel.Processes(2), large=2, known=known)
    assert held
    settled = sorted(n for nodes, _ in split for n in nodes)
    assert settled == sorted(set(n for nodes, _ in tasks for n in nodes) - held)
    records, _ = _settled(corpus, split)
    held_docs = {d for n in held for d in corpus.members(n)}
    assert records == {d: r for d, r in whole.items() if d not in held_docs}


def test_stored_pair_verdicts_round_trip_and_unreadable_ones_are_none() -> None:
    memo = pair_verdicts.PairVerdicts()
    memo.record(np.array([7, 3], dtype=np.uint64), np.array([True, False]))
    memo.record(np.array([11], dtype=np.uint64), np.array([True]))
    loaded = pair_verdicts.PairVerdicts.loads(memo.dumps())
    assert loaded.lookup(np.array([3, 7, 11, 5], dtype=np.uint64)).tolist() == [0, 1, 1, -1]
    seven = np.array([7], dtype=np.uint64)
    for damaged in (None, b"", memo.dumps()[:-3], b"XXXX" + memo.dumps()[4:]):
        assert pair_verdicts.PairVerdicts.loads(damaged).lookup(seven).tolist() == [-1]


def test_cron_runs_over_split_groups_give_a_full_runs_verdicts(write_tree, tmp_path, monkeypatch) -> None:
    import sqlite3

    from conftest import read_manifest

    from dedup import run

    monkeypatch.setattr(large_groups, "LARGE", 2)  # every group of three texts or more is split
    files = {**scrape_files(), **_group_that_falls_apart()}
    root = write_tree(files)
    state = Config(jobs=2, state=str(tmp_path / "state"))

    def verdicts(out: Path, keys: tuple[str, ...]) -> list[tuple]:
        return [tuple(r.get(k) for k in keys) for r in read_manifest(out) if r["status"] != "gone"]

    run([str(root)], tmp_path / "out", state)
    # A copy of another text: the group that falls apart, split again, keeps its stored records
    # and verifies none of its pairs again; only the new pair is verified.
    lines = files["other-0.txt"].split("\n")
    lines[3] = "A wholly different sentence stands here now."
    (root / "other-again.txt").write_text("\n".join(lines))
    counts = run([str(root)], tmp_path / "out", state).counts
    full = run([str(root)], tmp_path / "full", Config(jobs=2)).counts
    assert counts["new"] == 1 and counts["verified_pairs"] == 1 < full["verified_pairs"]
    whole = ("path", "cluster", "canonical", "duplicate_of", "score", "reason", "similarity")
    assert verdicts(tmp_path / "out", whole) == verdicts(tmp_path / "full", whole)
    db = sqlite3.connect(tmp_path / "state" / "state.sqlite")
    (stored,) = db.execute("SELECT length(value) FROM blobs WHERE key = 'split_pair_verdicts'").fetchone()
    db.close()
    assert stored > 12  # the verdicts of the split groups' pairs, for the next run

    # A teaser gone: the copies reach fewer documents. (Scores may differ from a full run's:
    # the stored token counts still hold a gone document's; clusters and canonicals do not.)
    (root / "teaser-0.txt").unlink()
    assert run([str(root)], tmp_path / "out", state).counts["gone"] == 1
    run([str(root)], tmp_path / "full2", Config(jobs=2))
    chosen = ("path", "cluster", "canonical", "duplicate_of")
    assert verdicts(tmp_path / "out", chosen) == verdicts(tmp_path / "full2", chosen)


def test_cron_nights_whose_arrivals_grow_a_reach_past_a_line_left_out_give_a_full_runs_verdicts(
    write_tree, tmp_path, monkeypatch
) -> None:
    """Six of the article's sentences are quoted in twelve notes: counted in 15 documents, over the
    copies' reach (7), they are furniture, left out of them. Four teasers arrive, the article's
    sentences in one long line (not counted as lines): candidates of the copies, reach 11. Then
    copies of one teaser: the copies' reach grows with no new pair of theirs and no count of
    their lines moving, first within the window their lines hold for (14), then past the quoted
    sentences' count (16), which come back into them and move their similarities. Every night's
    records are a full run's."""
    from conftest import read_manifest

    from dedup import run

    monkeypatch.setattr(large_groups, "LARGE", 2)  # every group of three texts or more is split
    group = _group_that_falls_apart()
    article = group["copy-0.txt"].split("\n")[:30]

    def own(tag: str, n: int) -> list[str]:
        words = [f"{tag}w{j}" for j in range(12 * n)]
        return [" ".join(words[12 * j : 12 * j + 12]) + "." for j in range(n)]

    quoted = {f"note-{k}.txt": "\n".join(article[20:26] + own(f"n{k}", 20)) for k in range(12)}
    root = write_tree({**scrape_files(), **group, **quoted})
    state = Config(jobs=2, state=str(tmp_path / "state"))
    run([str(root)], tmp_path / "out", state)
    whole = ("path", "status", "cluster", "canonical", "duplicate_of", "score", "reason", "similarity")

    def records(out: Path) -> list[tuple]:
        return [tuple(r.get(k) for k in whole) for r in read_manifest(out)]

    nights = [{f"later-{k}.txt": " ".join(article[1:14] + own(f"t{k}", 17)) for k in range(4)}]
    teaser = nights[0]["later-0.txt"]
    nights += [{f"again-{k}.txt": teaser for k in range(3)}, {f"again-{k}.txt": teaser for k in range(3, 5)}]
    similarities = []
    for night, files in enumerate(nights):
        for name, text in files.items():
            (root / name).write_text(text)
        run([str(root)], tmp_path / "out", state)
        run([str(root)], tmp_path / f"full-{night}", Config(jobs=2))
        assert records(tmp_path / "out") == records(tmp_path / f"full-{night}")
        similarities.append(
            {r["path"]: r["similarity"] for r in read_manifest(tmp_path / "out")}["copy-2.txt"]
        )
    assert similarities[0] == similarities[1] != similarities[2]  # the sentences back in the third night


def test_a_component_settled_within_a_texts_window_holds_its_records_for_the_whole_window(
    write_tree, tmp_path, monkeypatch
) -> None:
    """(Found by a second reader.) T is an article with a line L of its own (in 4 notes too: 5
    documents) and a line quoted in 20 notes (furniture); P a shorter copy, Q a teaser (one long
    line) in three copies. Night 1: T's reach 6, L kept, its window [6, 21). Night 2: a copy of P
    and two of Q grow T's reach to 9, in its window: T is not read, its component {T, P} (a new
    copy of P) is settled again. Night 3: three copies of Q gone (T's reach back to 6) and two more
    notes with L (7 > 6): L is now left out of T. The component's records were kept with L in them
    when their limits were set at reach 9; set at the reach that stands for T's lines (6), they
    are taken again."""
    from conftest import read_manifest

    from dedup import run

    monkeypatch.setattr(large_groups, "LARGE", 2)
    rng = random.Random(11)
    vocabulary = [f"w{k}" for k in range(5000)]

    def sentences(n: int) -> list[str]:
        return [" ".join(rng.choices(vocabulary, k=12)).capitalize() + "." for _ in range(n)]

    article = sentences(30)
    own, quoted = "Line of its own about the harbour lights.", "Read more about the harbour in our weekly."
    p, q = "\n".join(article[:28]), " ".join(article[:13] + sentences(17))

    def note(line: str) -> str:
        return "\n".join([*sentences(5), line, *sentences(5)])

    files = {"t.txt": "\n".join([*article, own, quoted]), "p-0.txt": p, "p-1.txt": p}
    files |= {f"q-{k}.txt": q for k in range(3)} | {f"fnote-{k}.txt": note(quoted) for k in range(20)}
    files |= {f"lnote-{k}.txt": note(own) for k in range(4)}
    root = write_tree(files)
    state = Config(jobs=2, state=str(tmp_path / "state"))
    whole = ("path", "status", "cluster", "canonical", "duplicate_of", "score", "reason", "similarity")

    def records(out: Path) -> list[tuple]:
        return [tuple(r.get(k) for k in whole) for r in read_manifest(out) if r["status"] != "gone"]

    run([str(root)], tmp_path / "out", state)
    for name, text in {"p-2.txt": p, "q-3.txt": q, "q-4.txt": q}.items():
        (root / name).write_text(text)
    run([str(root)], tmp_path / "out", state)
    for k in range(3):
        (root / f"q-{k}.txt").unlink()
    for k in (4, 5):
        (root / f"lnote-{k}.txt").write_text(note(own))
    run([str(root)], tmp_path / "out", state)
    run([str(root)], tmp_path / "full", Config(jobs=2))
    assert records(tmp_path / "out") == records(tmp_path / "full")


def test_a_pages_bytes_in_an_html_and_a_txt_file_are_two_texts_with_their_own_verdicts(
    write_tree, tmp_path, monkeypatch
) -> None:
    # The same bytes as a page (its main text extracted) and as plain text (all of it): two texts
    # with the same sha256 and the same candidates. Their pairs with a third text must not share a
    # stored verdict, or the next run (nothing changed in that group) regroups them.
    import random

    from conftest import read_manifest

    from dedup import run

    monkeypatch.setattr(large_groups, "LARGE", 2)
    rng = random.Random(7)
    vocabulary = [f"{a}{b}" for a in "bcdfghjklmnprstvz" for b in ("ane", "ore", "ist", "umo", "eka", "ilo")]

    def sentences(n: int) -> list[str]:
        return [" ".join(rng.choices(vocabulary, k=14)).capitalize() + "." for _ in range(n)]

    article, menu, other = sentences(14), sentences(22), sentences(22)
    page = (
        "<html><head><title>Storm report</title></head><body><div class='menu'>"
        + "".join(f"<p>{s}</p>" for s in menu)
        + "</div><article>"
        + "".join(f"<p>{s}</p>" for s in article)
        + "</article></body></html>\n"
    )
    root = write_tree({"page.html": page, "page.txt": page, "x.txt": "\n\n".join(article + other) + "\n"})
    state = Config(jobs=1, state=str(tmp_path / "state"))
    run([str(root)], tmp_path / "out", state)
    (root / "unrelated.txt").write_text("\n\n".join(sentences(10)))
    run([str(root)], tmp_path / "out", state)
    run([str(root)], tmp_path / "full", Config(jobs=1))

    def verdicts(out: Path) -> dict[str, tuple]:
        keys = ("cluster", "canonical", "duplicate_of", "similarity")
        return {r["path"]: tuple(r.get(k) for k in keys) for r in read_manifest(out)}

    assert verdicts(tmp_path / "out") == verdicts(tmp_path / "full")


def test_a_call_of_pass_2_holds_few_texts_however_many_groups(write_tree, monkeypatch) -> None:
    # The pieces of a split group went 64 to a call: a giant group's records all in flight at once.
    make, tasks = _split_setup(write_tree)
    corpus = make()
    split = large_groups.split(corpus, tasks, parallel.Processes(2), large=2)
    whole, _ = _settled(corpus, split)
    monkeypatch.setattr(pass2, "TEXTS_PER_CALL", 3)
    calls: list[list[groups.Task]] = []

    class Spy:
        def ordered(self, stage, tasks, *, window_per_worker, per_call=1, weight=None):
            for call in parallel.bundles(tasks, per_call, weight):
                calls.append(call)
                yield from map(stage, call)

    records = {d: r for results, *_ in pass2.settle_all(corpus, split, Spy()) for d, r in results}  # type: ignore[arg-type]
    assert len(calls) > 1 and sum(len(call) for call in calls) == len(split)
    assert all(len(call) == 1 or sum(len(nodes) for nodes, _ in call) <= 3 for call in calls)
    assert records == whole
