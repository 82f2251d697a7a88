"""What crosses between interpreters, natively or by pickle, and what is refused."""

from __future__ import annotations

import enum
import fractions
import math
import sys
import threading

import pytest
import workloads

import interpreters_aio as interpreters
from interpreters_aio import NotShareableError

NATIVE_VALUES = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    2**63,
    -(2**64) - 1,
    10**5000,  # beyond the int/str digit limit: hex keeps it exact
    -(7**3000),
    1.5,
    -0.0,
    math.inf,
    1e308,
    3 + 4j,
    "",
    "héllo wörld ✓ 𝄞",
    "\ud800 lone surrogate \udfff",
    b"",
    b"\x00\xff" * 100,
    (),
    (1, "a", (2.0, None)),
    [],
    [1, [2, [3, [4]]]],
    {},
    {"a": 1, 2: [3], (4, 5): {"nested": b"x"}},
    set(),
    {1, "two", (3, 4)},
    frozenset({1, frozenset({2})}),
]


@pytest.mark.parametrize("value", NATIVE_VALUES, ids=lambda v: type(v).__name__)
def test_native_values_round_trip_exactly(interp, value):
    assert interpreters.is_shareable(value)
    back = interp.call(workloads.identity, value)
    assert type(back) is type(value)
    assert back == value
    if isinstance(value, float):
        assert math.copysign(1, back) == math.copysign(1, value)


def test_nan_round_trips(interp):
    assert math.isnan(interp.call(workloads.identity, math.nan))


def test_values_are_copies(interp):
    data = [1, 2, 3]
    interp.prepare_main(data=data)
    interp.exec("data.append(4)")
    assert data == [1, 2, 3]
    assert interp.call(workloads.main_eval, "data") == [1, 2, 3, 4]


def test_dict_order_is_kept(interp):
    value = {k: k for k in ["z", "a", "m", "b"]}
    assert list(interp.call(workloads.identity, value)) == ["z", "a", "m", "b"]


def test_bigger_containers(interp):
    data = (list(range(1000)), {str(i): i for i in range(100)})
    assert interp.call(workloads.identity, data) == data


class Color(enum.IntEnum):
    RED = 1


@pytest.mark.parametrize(
    "value",
    [fractions.Fraction(1, 3), Color.RED, workloads.Point(1, 2), range(3), bytearray(b"ab")],
    ids=lambda v: type(v).__name__,
)
def test_other_objects_go_by_pickle(interp, value):
    assert not interpreters.is_shareable(value)
    back = interp.call(workloads.identity, value)
    assert back == value
    assert type(back) is type(value)


def test_subclasses_of_native_types_keep_their_type(interp):
    class MyList(list):
        pass

    assert not interpreters.is_shareable(Color.RED)
    assert not interpreters.is_shareable(MyList())
    assert not interpreters.is_shareable([1, Color.RED])


def test_pickle_per_leaf_inside_native_containers(interp):
    value = {"plain": [1, 2], "odd": fractions.Fraction(2, 3)}
    assert interp.call(workloads.identity, value) == value


@pytest.mark.parametrize(
    "value, shareable",
    [
        ((1, (2, (3,))), True),
        ([1, {"a": {2, 3}}], True),
        ([1, {"a": object()}], False),
        ({"k": [b"x", (None, frozenset({1.5}))]}, True),
        ({(1, 2): [3, [4, [5, threading.Lock]]]}, False),
    ],
)
def test_is_shareable_looks_inside_containers(value, shareable):
    assert interpreters.is_shareable(value) is shareable


def test_unpicklable_argument_names_the_object(interp):
    with pytest.raises(NotShareableError, match=r"lock.*not shareable.*pickl"):
        interp.call(workloads.identity, threading.Lock())
    assert interp.call(workloads.add, 1) == 11  # interpreter still usable


def test_not_shareable_error_is_a_type_error():
    assert issubclass(NotShareableError, TypeError)


def test_unpicklable_result_names_the_problem(interp):
    with pytest.raises(NotShareableError, match=r"result.*lock"):
        interp.call(workloads.return_lock)
    assert interp.call(workloads.add, 1) == 11


def test_object_whose_class_is_missing_in_target(interp, tmp_path, monkeypatch):
    # Importable here (its folder joins sys.path after the interpreter was
    # made), so it pickles; the target cannot import it to unpickle.
    (tmp_path / "only_here_mod.py").write_text("class OnlyHere:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import only_here_mod

    with pytest.raises(NotShareableError, match=r"rebuilt in the target.*only_here_mod"):
        interp.prepare_main(x=only_here_mod.OnlyHere())
    interp.exec("pass")


def test_reference_cycle_is_refused_clearly(interp):
    cyclic: list = [1]
    cyclic.append(cyclic)
    assert not interpreters.is_shareable(cyclic)
    with pytest.raises(NotShareableError, match="contains itself"):
        interp.call(workloads.identity, cyclic)
    loop: dict = {}
    loop["self"] = {"inner": loop}
    with pytest.raises(NotShareableError, match="contains itself"):
        interp.prepare_main(loop=loop)


def test_shared_but_acyclic_references_are_fine(interp):
    leaf = [1, 2]
    value = [leaf, leaf, {"again": leaf}]
    assert interpreters.is_shareable(value)
    assert interp.call(workloads.identity, value) == value


def test_deep_nesting_is_refused_clearly(interp):
    depth = interpreters._core.MAX_DEPTH
    ok: list = []  # depth - 1 lists, inside the call's args tuple: depth levels
    for _ in range(depth - 2):
        ok = [ok]
    assert interp.call(workloads.identity, ok) == ok
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    assert not interpreters.is_shareable(deep)
    with pytest.raises(NotShareableError, match="nested more than"):
        interp.call(workloads.identity, deep)


def test_deep_nesting_of_pickled_objects_fails_cleanly(interp):
    deep = workloads.Point(0, 0)
    for _ in range(100_000):
        deep = workloads.Point(deep, 0)
    with pytest.raises(NotShareableError, match="RecursionError"):
        interp.call(workloads.identity, deep)


def test_huge_payload(interp):
    blob = b"x" * (64 * 1024 * 1024)
    assert interp.call(len, blob) == len(blob)


def test_mutation_during_conversion_is_safe(interp):
    class Mutator:
        def __init__(self, target):
            self.target = target

        def __reduce__(self):
            self.target.clear()  # shrink the list being converted
            return (int, (7,))

    data: list = []
    data.extend([Mutator(data), 1, 2, 3])
    back = interp.call(workloads.identity, data)
    # A default build reads the list in place, as the pickler changes it; a
    # free-threaded one copies it first (no GIL keeps other threads out), so
    # it sends the list as it was when the call began.
    free_threaded = not getattr(sys, "_is_gil_enabled", lambda: True)()
    assert back == ([7, 1, 2, 3] if free_threaded else [7])
    assert data == []


def test_module_level_functions_travel_by_name_without_pickle(interp):
    assert interp.call(len, (1, 2)) == 2
    assert interp.call(workloads.add, 1) == 11
    assert interp.call(workloads.main_eval, "'pickle' in __import__('sys').modules") is False
    assert not interpreters.is_shareable(len)  # a reference, not data
