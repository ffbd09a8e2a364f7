"""Addresses as typed and as compared (rules/addresses.py): parsed, normalised, checked, settled."""

from __future__ import annotations

import pytest

from dispatch_tui.rules.addresses import (
    AddressMatch,
    AddressRow,
    StreetLine,
    address_row,
    completion_prefix,
    house_number,
    normalise_address,
    parse,
    settle,
    street_key,
    street_line,
    typo_variants,
)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("12 Commerce Blvd", "12 commerce boulevard"),
        ("12 Main St", "12 MAIN STREET"),
        ("12 N Main St", "12 North Main Street"),
        ("12 N. Main St.", "12 n main st"),
        ("12 W Maple St, Riverton", "12 W Maple St"),
        ("12 W Maple St, Riverton OH 43299", "12 west maple street"),
        ("Riverton Mall, 240 E Commerce Blvd", "240 East Commerce Boulevard"),
        ("12 First Ave", "12 1st Avenue"),
        ("12 N Main St Apt 4", "12 North Main Street, Apartment 4"),
    ],
)
def test_one_address_written_two_ways_is_one_address(one: str, other: str) -> None:
    assert normalise_address(one) == normalise_address(other)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("12 N Main St", "12 S Main St"),  # the other side of the baseline
        ("12 Main St", "14 Main St"),
        ("12 Main St Apt 4", "12 Main St Apt 5"),
        ("12 Main St", "12 Main Ave"),
    ],
)
def test_different_places_stay_different(one: str, other: str) -> None:
    assert normalise_address(one) != normalise_address(other)


def test_what_is_not_an_address_is_compared_by_all_its_words() -> None:
    assert normalise_address("car crash on Highway 9 near exit 4") == (
        "car crash on hwy 9 near exit 4"
    )
    assert normalise_address("Riverside Dr & 5th St") == "riverside dr 5th st"  # a junction
    assert normalise_address("") == ""


def test_a_typed_address_is_read_as_its_parts() -> None:
    typed = parse("16 North Quarry Road Apt 2, Hilltown OH 43300")
    assert typed is not None
    assert (typed.number, typed.street, typed.street_key, typed.unit) == (
        "16",
        "North Quarry Road",
        "n quarry rd",
        "Apt 2",
    )
    assert (typed.city, typed.state, typed.postcode, typed.house) == ("Hilltown", "OH", "43300", 16)
    # The key a typed street is looked up by is the one the gazetteer stores for it.
    assert typed.street_key == street_key("N. QUARRY RD")


def test_a_street_without_a_number_parses_and_a_description_does_not() -> None:
    street = parse("W Maple St")
    assert street is not None and street.number is None and street.street_key == "w maple st"
    assert parse("car crash on Highway 9 near exit 4") is None
    assert parse("Riverside Dr & 5th St") is None  # a junction is no address point
    assert parse("") is None


def test_house_numbers_are_their_leading_whole_number() -> None:
    assert [house_number(n) for n in ("123", "123A", "123-125", "A1", "")] == [
        123,
        123,
        123,
        None,
        None,
    ]


def test_one_transposed_pair_of_letters_is_among_the_variants() -> None:
    assert "w maple st" in typo_variants("w mpale st")
    assert "w maple st" in typo_variants("w maple ts")
    assert "w maple st" not in typo_variants("w mapel ts")  # two slips are not one
    assert typo_variants("w aa") == []  # swapping two alike letters changes nothing


def test_completion_reads_the_number_and_the_street_as_typed_so_far() -> None:
    prefix = completion_prefix("402 w ma")
    assert prefix is not None and prefix.number == "402"
    assert prefix.patterns == ("w ma%", "% w ma%")
    # An unfinished type word may become one the key has short: `str` is `street`, `st`.
    typed = completion_prefix("402 West Maple Str")
    assert typed is not None and "w maple st%" in typed.patterns
    # After a comma comes the city: the street is what completes.
    city = completion_prefix("402 W Maple St, Riv")
    assert city is not None and city.patterns[0] == "w maple st%"
    street = completion_prefix("maple")
    assert street is not None and street.number is None
    assert completion_prefix("40") is None  # a number still being typed
    assert completion_prefix("") is None


def test_rows_of_gis_data_are_checked_and_say_why_they_are_refused() -> None:
    row = address_row("12", "N Quarry Rd", "40.1", "-83.1", city="Hilltown", key="q1")
    assert isinstance(row, AddressRow)
    assert (row.street_key, row.house, row.source_key, row.unit) == ("n quarry rd", 12, "q1", None)
    assert address_row("12", "N Quarry Rd", "abc", "-83.1") == "bad coordinates"
    assert address_row("12", "N Quarry Rd", "0", "0") == "bad coordinates"
    assert address_row("12", "N Quarry Rd", "nan", "-83.1") == "bad coordinates"
    assert address_row("12", "N Quarry Rd", "91", "-83.1") == "bad coordinates"
    assert address_row("12", " ", "40.1", "-83.1") == "no street"
    assert address_row("", "N Quarry Rd", "40.1", "-83.1") == "no number"
    assert address_row("12", "x" * 201, "40.1", "-83.1") == "too long"


def test_a_row_without_an_id_is_kept_by_its_address() -> None:
    one = address_row("12", "N Quarry Rd", "40.1", "-83.1", city="Hilltown")
    moved = address_row("12", "North Quarry Road", "40.2", "-83.2", city="HILLTOWN")
    assert isinstance(one, AddressRow) and isinstance(moved, AddressRow)
    assert one.source_key == moved.source_key  # loaded again with a better position: changed


def test_street_lines_are_checked() -> None:
    line = street_line("Mill Ln", [[-83.11, 40.1], [-83.109, 40.1001]], key="s2")
    assert isinstance(line, StreetLine) and line.box == (40.1, 40.1001, -83.11, -83.109)
    assert street_line("Mill Ln", [[-83.11, 40.1]]) == "line of fewer than 2 points"
    assert street_line("Mill Ln", [[-83.11, 95], [-83.1, 40]]) == "bad coordinates"
    assert street_line("Mill Ln", "nonsense") == "bad coordinates"
    assert street_line("", [[-83.11, 40.1], [-83.1, 40.1]]) == "no street"


def match(label: str, lat: float, lon: float, score: float, quality: str = "exact") -> AddressMatch:
    return AddressMatch(None, label, "12", label, None, None, None, lat, lon, score, quality)


def test_an_address_found_exactly_is_verified() -> None:
    settled = settle(
        [match("12 W Maple St", 40.0, -83.0, 1.0), match("12 E Maple", 40, -82.9, 0.7)]
    )
    assert settled.verified and settled.position == (40.0, -83.0)


def test_two_places_as_likely_leave_the_call_without_a_position() -> None:
    settled = settle(
        [match("12 W Maple St", 40, -83.0, 0.85), match("12 E Maple St", 40, -82.9, 0.85)]
    )
    assert (settled.position, settled.verified) == (None, False)
    assert settled.why.startswith("ambiguous")
    # Two points of one building (a unit and the building) are one place.
    same = settle(
        [match("12 Main St", 40, -83.0, 1.0), match("12 Main St #2", 40.0001, -83.0, 1.0)]
    )
    assert same.verified


def test_a_number_placed_between_its_neighbours_gives_a_position_unverified() -> None:
    settled = settle([match("13 W Maple St", 40.0, -83.0, 0.8, "interpolated")])
    assert settled.position == (40.0, -83.0) and not settled.verified


def test_nothing_found_or_too_unlike_is_unverified_without_a_position() -> None:
    assert settle([]).position is None
    assert settle([match("12 Mill Ln", 40.0, -83.0, 0.3)]).position is None
    assert not settle([]).verified
