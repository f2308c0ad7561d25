"""bench/common.py's reading of a target: the "met" column of the bench's table."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

# Loaded by its path, not by putting bench/ on sys.path: bench/irc.py would hide the
# irc package (the IRC client library the IRC tests use) from every later test.
_spec = importlib.util.spec_from_file_location(
    "lab93_bench_common", Path(__file__).resolve().parent.parent / "bench" / "common.py"
)
assert _spec is not None and _spec.loader is not None
bench_common = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench_common  # dataclasses look their module up by name
_spec.loader.exec_module(bench_common)
Figure, table, target_met = bench_common.Figure, bench_common.table, bench_common.target_met


def figure(target: str, ours: list[float], baseline: list[float] = (), better: str = "higher"):
    return Figure("item", "metric", "msg/s", better, list(ours), list(baseline), "base", target)


@pytest.mark.parametrize(
    ("target", "ours", "baseline", "better", "met"),
    [
        (">= 15k", [14_900, 15_100, 15_200], [], "higher", "yes"),
        (">= 15k", [14_900, 14_800, 15_200], [], "higher", "no"),
        ("<= 15 µs", [15.0], [], "lower", "yes"),
        ("<= 15 µs", [15.1], [], "lower", "no"),
        ("<= 5 ms p50", [3.7], [], "lower", "yes"),
        (">= 0.8x bare", [61], [100], "higher", "no"),
        (">= 200k and >= 0.6x bare", [469_000], [766_000], "higher", "yes"),
        (">= 200k and >= 0.8x bare", [469_000], [766_000], "higher", "no"),
        ("<= 1.5x one room", [0.121], [0.087], "lower", "yes"),
        (">= 2x pyre", [17_000], [17_500], "higher", "no"),
        ("0", [0, 0, 0], [], "lower", "yes"),
        ("0", [0, 2, 1], [], "lower", "no"),
        ("<= 1.2M", [1.3e6], [], "lower", "no"),
    ],
)
def test_a_target_is_read_as_a_bound_on_the_median(target, ours, baseline, better, met):
    assert target_met(figure(target, ours, baseline, better)) == met


@pytest.mark.parametrize(
    ("target", "ours", "baseline"),
    [
        ("exact", [1.0], []),  # words, not a bound
        ("bounded", [40.3], []),
        (">= 0.8x bare", [1.0], []),  # a ratio with no baseline measured
        (">= 15k", [], []),  # nothing measured
        ("", [1.0], []),
    ],
)
def test_what_cannot_be_judged_is_left_blank(target, ours, baseline):
    assert target_met(figure(target, ours, baseline)) == ""


def test_the_table_has_a_met_column():
    text = table([figure(">= 15k", [16_000]), figure("<= 1 ms", [2.0], better="lower")])
    head, rule, first, second = text.splitlines()
    assert head.split()[-1] == "met"
    assert first.endswith("yes") and second.endswith("no")
