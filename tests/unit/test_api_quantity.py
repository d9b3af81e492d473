"""Quantities: parsing exact values, unit conversions, formatting, bad input."""

from fractions import Fraction

import pytest

from api.quantity import (QuantityError, canonical, cpu_millis, format_bytes, format_cpu, memory_bytes,
                          parse_quantity)


@pytest.mark.parametrize("text, value", [
    ("250m", Fraction(1, 4)),
    ("2", Fraction(2)),
    ("0.5", Fraction(1, 2)),
    (".5", Fraction(1, 2)),
    ("64Mi", Fraction(64 * 2**20)),
    ("1Ki", Fraction(1024)),
    ("1G", Fraction(10**9)),
    ("1k", Fraction(1000)),
    ("1.5Gi", Fraction(3 * 2**29)),
    ("1e3", Fraction(1000)),
    ("1E3", Fraction(1000)),
    ("5e-3", Fraction(5, 1000)),
    ("+3", Fraction(3)),
    ("-1", Fraction(-1)),
    (" 100m ", Fraction(1, 10)),
    (3, Fraction(3)),
    (0.25, Fraction(1, 4)),
])
def test_parse_quantity(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1.2.3", "5 Mi", "Mi", "1mi", "1KiB", "1e", "--1", "1Z", True])
def test_invalid_quantities(text):
    with pytest.raises(QuantityError, match="quantities must match"):
        parse_quantity(text)


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_non_finite_numbers_are_invalid(value):
    with pytest.raises(QuantityError):
        parse_quantity(value)


@pytest.mark.parametrize("text, millis", [
    ("250m", 250), ("1", 1000), ("0.1", 100), ("1.5", 1500), ("0.0001", 1), ("2500m", 2500), (2, 2000),
])
def test_cpu_millis_rounds_up(text, millis):
    assert cpu_millis(text) == millis


@pytest.mark.parametrize("text, n", [
    ("64Mi", 64 * 2**20), ("1G", 10**9), ("1.5Gi", 1536 * 2**20), ("1e3", 1000), ("100m", 1), ("128974848", 128974848),
])
def test_memory_bytes(text, n):
    assert memory_bytes(text) == n


@pytest.mark.parametrize("millis, text", [(1000, "1"), (250, "250m"), (2500, "2500m"), (0, "0")])
def test_format_cpu(millis, text):
    assert format_cpu(millis) == text


@pytest.mark.parametrize("n, text", [(64 * 2**20, "64Mi"), (2**30, "1Gi"), (1536, "1536"), (2048, "2Ki"), (0, "0")])
def test_format_bytes(n, text):
    assert format_bytes(n) == text


def test_canonical_keeps_the_text_and_checks_it():
    assert canonical(" 64Mi ") == "64Mi"
    assert canonical(2) == "2"
    with pytest.raises(QuantityError):
        canonical("lots")
