"""Pass 2's groups as arrays (``groups``): the same groups, nodes and pairs as lists of them."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup.cluster import components
from dedup.groups import Groups, group_pairs


def _listed(groups: Groups) -> list[tuple[list[int], list[list[int]]]]:
    return [(nodes, pairs.tolist()) for nodes, pairs in groups]


def _reference(pairs: np.ndarray, nodes: int) -> tuple[list[tuple[list[int], list[list[int]]]], list[int]]:
    """Each component of the pairs with its pairs in their order, and each node's component."""
    comps = components(pairs.ravel().tolist(), [tuple(p) for p in pairs.tolist()])
    comp_of = [-1] * nodes
    for c, comp in enumerate(comps):
        for n in comp:
            comp_of[n] = c
    tasks = [(comp, [p for p in pairs.tolist() if comp_of[p[0]] == c]) for c, comp in enumerate(comps)]
    return tasks, comp_of


pair_lists = st.lists(
    st.tuples(st.integers(0, 30), st.integers(0, 30)).filter(lambda p: p[0] < p[1]), max_size=40
)


@settings(max_examples=200, deadline=None)
@given(pair_lists)
def test_pairs_are_grouped_as_their_components(pairs: list[tuple[int, int]]) -> None:
    array = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    groups, comp_of = group_pairs(array, 31)
    tasks, expected_of = _reference(array, 31)
    assert _listed(groups) == tasks
    assert comp_of.tolist() == expected_of
    assert list(groups.node_lists()) == [nodes for nodes, _ in tasks]
    assert groups.sizes().tolist() == [len(nodes) for nodes, _ in tasks]


@settings(max_examples=200, deadline=None)
@given(pair_lists, st.data())
def test_take_and_joined_are_the_groups_chosen_in_order(
    pairs: list[tuple[int, int]], data: st.DataObject
) -> None:
    groups, _ = group_pairs(np.array(pairs, dtype=np.int64).reshape(-1, 2), 31)
    listed = _listed(groups)
    keep = sorted(data.draw(st.sets(st.integers(0, max(len(groups) - 1, 0)), max_size=len(groups))))
    assert _listed(groups.take(np.array(keep, dtype=np.int64))) == [listed[k] for k in keep]
    cut = data.draw(st.integers(0, len(groups)))
    head, tail = groups.take(np.arange(cut)), groups.take(np.arange(cut, len(groups)))
    assert _listed(Groups.joined([head, Groups.of([]), tail])) == listed
    views = groups.between(0, cut), groups.between(cut, len(groups) + 3)
    assert views[0].nodes is groups.nodes  # not copied
    assert _listed(Groups.joined([views[1], views[0]])) == listed[cut:] + listed[:cut]
    assert _listed(groups.between(cut, cut)) == _listed(groups.between(len(groups) + 1, 9)) == []
    assert _listed(Groups.of(groups)) == listed
    assert _listed(groups[1:]) == listed[1:]  # type: ignore[arg-type]
    # In files, as the workers save them and the driver maps them: the same groups.
    where = Path(tempfile.mkdtemp())
    filed = Groups.joined([views[1], Groups.of([]), views[0]], where / "joined")
    assert _listed(filed) == listed[cut:] + listed[:cut]
    saved = groups.saved(where / "saved")
    mapped = Groups.mapped(where / "saved", groups.texts(), len(groups.pairs), len(groups))
    assert _listed(saved) == _listed(mapped) == listed
    shutil.rmtree(where)


def test_groups_saved_are_mapped_back_and_a_short_file_is_an_os_error(tmp_path: Path) -> None:
    groups, _ = group_pairs(np.array([[0, 2], [2, 5], [1, 3]], dtype=np.int64), 6)
    groups.saved(tmp_path / "g")
    mapped = Groups.mapped(tmp_path / "g", 5, 3, 2)
    assert isinstance(mapped.nodes, np.memmap) and _listed(mapped) == _listed(groups)
    with pytest.raises(FileExistsError):  # into is a new directory
        groups.saved(tmp_path / "g")
    with open(tmp_path / "g" / "pairs", "r+b") as fh:
        fh.truncate(8)
    with pytest.raises(OSError, match="bytes where 48 were written"):
        Groups.mapped(tmp_path / "g", 5, 3, 2)


def test_no_pairs_are_no_groups_and_an_index_past_the_end_is_an_error() -> None:
    groups, comp_of = group_pairs(np.zeros((0, 2), dtype=np.int64), 4)
    assert len(groups) == 0 and list(groups) == [] and comp_of.tolist() == [-1] * 4
    groups, _ = group_pairs(np.array([[0, 2]], dtype=np.int64), 4)
    assert groups[-1][0] == [0, 2]
    with pytest.raises(IndexError):
        groups[1]
