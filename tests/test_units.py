import pytest

from edgepipe.units import UnitError, format_size, parse_frequency, parse_size, parse_time


@pytest.mark.parametrize("text,expected", [
    ("512KiB", 512 * 1024), ("512KB", 512_000), ("2MB", 2_000_000), ("2 MiB", 2 * 1024**2),
    ("4096B", 4096), (4096, 4096), ("1.5KiB", 1536), ("1GiB", 1024**3),
])
def test_sizes_parse_binary_and_decimal(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["512 bananas", "KiB", "-1KiB", "1.5B", "", True, [1]])
def test_bad_sizes_are_refused_with_the_units_listed(text):
    with pytest.raises(UnitError):
        parse_size(text)


def test_unknown_unit_message_names_the_valid_units():
    with pytest.raises(UnitError, match="bananas.*KiB"):
        parse_size("512 bananas")


def test_times_need_a_unit():
    assert parse_time("20ms") == pytest.approx(0.02)
    assert parse_time("1.5s") == 1.5
    assert parse_time("500us") == pytest.approx(5e-4)
    with pytest.raises(UnitError, match="bare number"):
        parse_time(20)
    with pytest.raises(UnitError):
        parse_time("20 minutes")


def test_frequency_and_formatting():
    assert parse_frequency("240MHz") == 240e6
    assert format_size(1536) == "1.5 KiB"
    assert format_size(100) == "100 B"
