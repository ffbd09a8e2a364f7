"""Checks on what a user types, shared by the CLI, the command bar and the intake form.

Everything here is pure: it either returns a clean value or raises `InvalidInput` with one line a
dispatcher can act on. The length limits are stated here, and the tables' CHECK constraints are
built from them, so an accepted value always fits its column.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass

from dispatch_tui.rules.errors import InvalidInput

# Lengths shared with the tables' CHECK constraints (db/models.py builds them from these).
CODE_MAX = 16
NAME_MAX = 120
PHONE_MAX = 32
NATURE_MAX = 200
LOCATION_MAX = 300
NOTES_MAX = 4000
NARRATIVE_MAX = 2000
REASON_MAX = 200

UNIT_CODE = re.compile(r"^[A-Z0-9-]{1,16}$")
HOSPITAL_CODE = UNIT_CODE
CALL_NUMBER = re.compile(r"^C-?(\d{1,9})$")
USERNAME = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")
PHONE = re.compile(r"^\+?[0-9 ()./-]{3,32}$")
DETERMINANT = re.compile(r"^(\d{1,2})-([A-EO])-(\d{1,2}[A-Z]?)$")
REQUEST_ID_MAX = 64
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

# MPDS determinant level -> desk priority (Echo/Delta critical, Charlie/Bravo emergent, Alpha
# lower acuity, Omega non-acute; DOMAIN.md). Bravo is emergent but below Charlie: P3.
LEVEL_PRIORITY = {"E": 1, "D": 1, "C": 2, "B": 3, "A": 4, "O": 4}


def _echo(value: object) -> str:
    """`_echo(value)`, safe for integers too large to print."""
    try:
        return _short(str(value))
    except ValueError:
        return "a huge number"


def _short(value: str, limit: int = 24) -> str:
    """Echo a bad value back without flooding the one-line message (or the terminal)."""
    value = "".join(ch if ch.isprintable() else "?" for ch in value[: limit + 1])
    return value if len(value) <= limit else value[: limit - 1] + "…"


def unit_code(value: str) -> str:
    code = value.strip().upper()
    if not UNIT_CODE.match(code):
        raise InvalidInput(f"'{_short(value)}' is not a unit number (like M12)")
    return code


def hospital_code(value: str) -> str:
    code = value.strip().upper()
    if not HOSPITAL_CODE.match(code):
        raise InvalidInput(f"'{_short(value)}' is not a hospital code (like MERCY)")
    return code


def call_number(value: str) -> str:
    """Accept `C-1042`, `c1042` or plain `1042`; return the canonical `C-1042`."""
    text = value.strip().upper()
    if text.isdigit():
        text = "C-" + text
    match = CALL_NUMBER.match(text)
    if not match:
        raise InvalidInput(f"'{_short(value)}' is not a call number (like C-1042)")
    return f"C-{int(match.group(1))}"


def username(value: str) -> str:
    name = value.strip()
    if not USERNAME.match(name):
        raise InvalidInput(f"'{_short(value)}' is not a user name (letters, digits, . _ -)")
    return name


def request_id(value: str) -> str:
    """A write's request id (`--request-id`): what a retry repeats so that it is done once."""
    rid = value.strip()
    if not REQUEST_ID.match(rid):
        raise InvalidInput(
            f"'{_short(value)}' is not a request id (1 to {REQUEST_ID_MAX} of letters, digits, . _ : -)"
        )
    return rid


def text_field(label: str, value: str, limit: int, *, required: bool = False) -> str:
    """Trim, refuse control characters and over-long text; keep any printable Unicode."""
    clean = value.strip()
    if required and not clean:
        raise InvalidInput(f"{label} is required")
    if len(clean) > limit:
        raise InvalidInput(f"{label} is too long ({len(clean)} characters, at most {limit})")
    for ch in clean:
        if unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") and ch not in "\t":
            raise InvalidInput(f"{label} contains a control character (U+{ord(ch):04X})")
    return clean.replace("\t", " ")


def priority(value: int | str) -> int:
    try:
        number = int(str(value).strip().upper().removeprefix("P"))
    except ValueError:
        raise InvalidInput(f"priority '{_echo(value)}' is not 1–4") from None
    if not 1 <= number <= 4:
        raise InvalidInput(f"priority {number} is not 1–4")
    return number


def determinant(value: str) -> str:
    text = value.strip().upper()
    match = DETERMINANT.match(text)
    if not match:
        raise InvalidInput(f"'{_short(value)}' is not an MPDS determinant (like 10-D-1)")
    return text


def priority_for_determinant(code: str) -> int:
    match = DETERMINANT.match(code)
    assert match is not None
    return LEVEL_PRIORITY[match.group(2)]


def coordinate(lat: float | str, lon: float | str) -> tuple[float, float]:
    try:
        la, lo = float(lat), float(lon)
    except (TypeError, ValueError, OverflowError):
        if any(isinstance(v, str) and "," in v for v in (lat, lon)):  # 40,02: a decimal comma
            raise InvalidInput(
                "write latitude and longitude with a decimal point (like 40.02 -82.99)"
            ) from None
        raise InvalidInput("latitude and longitude must be numbers (like 40.02 -82.99)") from None
    if (
        not (math.isfinite(la) and math.isfinite(lo))
        or not -90 <= la <= 90
        or not -180 <= lo <= 180
    ):
        raise InvalidInput(f"position {la}, {lo} is out of range (lat ±90, lon ±180)")
    return la, lo


def beds(value: int | str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise InvalidInput(f"beds '{_echo(value)}' is not a whole number") from None
    if not 0 <= number <= 10_000:
        raise InvalidInput(f"beds {number} is out of range (0–10000)")
    return number


def _given(value: object) -> bool:
    """A field was filled in (an empty or blank string counts as not given)."""
    return value is not None and not (isinstance(value, str) and not value.strip())


@dataclass(frozen=True, slots=True)
class CallIntake:
    """A new call as the intake form or `call new` supplies it, before validation."""

    nature: str
    location: str = ""
    place: str = ""
    priority: int | str | None = None
    determinant: str = ""
    caller_name: str = ""
    caller_phone: str = ""
    notes: str = ""
    lat: float | str | None = None
    lon: float | str | None = None
    # The intake form's answer (`DispatchService.answer`): the call is received when answered.
    answered: int | None = None


@dataclass(frozen=True, slots=True)
class CleanIntake:
    nature: str
    location: str
    place: str
    priority: int
    determinant: str | None
    caller_name: str
    caller_phone: str
    notes: str
    position: tuple[float, float] | None


def intake(raw: CallIntake) -> CleanIntake:
    """Validate a new call; the place lookup itself happens in the service, against the DB."""
    nature = text_field("nature", raw.nature, NATURE_MAX, required=True)
    location = text_field("location", raw.location, LOCATION_MAX)
    place = text_field("place", raw.place, NAME_MAX)
    if not location and not place:
        raise InvalidInput("a location or a named place is required")
    code = determinant(raw.determinant) if raw.determinant.strip() else None
    if raw.priority is not None and _given(raw.priority):
        prio = priority(raw.priority)
    elif code is not None:
        prio = priority_for_determinant(code)
    else:
        raise InvalidInput("priority is required (1–4), or an MPDS determinant to derive it")
    phone = text_field("caller phone", raw.caller_phone, PHONE_MAX)
    if phone and not PHONE.match(phone):
        raise InvalidInput(f"caller phone '{_short(phone)}' is not a phone number")
    has_lat, has_lon = _given(raw.lat), _given(raw.lon)
    if has_lat != has_lon:
        raise InvalidInput("give both latitude and longitude, or neither")
    position = coordinate(raw.lat, raw.lon) if has_lat and has_lon else None  # type: ignore[arg-type]
    return CleanIntake(
        nature=nature,
        location=location,
        place=place,
        priority=prio,
        determinant=code,
        caller_name=text_field("caller name", raw.caller_name, NAME_MAX),
        caller_phone=phone,
        notes=text_field("notes", raw.notes, NOTES_MAX),
        position=position,
    )


@dataclass(frozen=True, slots=True)
class CallerReport:
    """What another caller about an open call said: who, their number, what and where."""

    caller_name: str
    caller_phone: str
    said: str  # nature, location and notes as given, joined


def caller_report(raw: CallIntake) -> CallerReport:
    """An intake form's fields as another caller's report on an open call: no priority or
    location needed (the call has them), each field checked as a new call's is."""
    phone = text_field("caller phone", raw.caller_phone, PHONE_MAX)
    if phone and not PHONE.match(phone):
        raise InvalidInput(f"caller phone '{_short(phone)}' is not a phone number")
    parts = (
        text_field("nature", raw.nature, NATURE_MAX),
        text_field("location", raw.location, LOCATION_MAX)
        or text_field("place", raw.place, NAME_MAX),
        text_field("notes", raw.notes, NOTES_MAX),
    )
    return CallerReport(
        text_field("caller name", raw.caller_name, NAME_MAX),
        phone,
        "; ".join(p for p in parts if p),
    )


def note(value: str) -> str:
    """A narrative entry: one line or many, printable, at most NARRATIVE_MAX characters."""
    return text_field("note", value, NARRATIVE_MAX, required=True)


def reason(label: str, value: str, *, required: bool = False) -> str:
    """Why: a cancel, an out-of-service, a re-open."""
    return text_field(label, value, REASON_MAX, required=required)


@dataclass(frozen=True, slots=True)
class CallChanges:
    """An edit of an open call as `call update` or the desk supplies it, before validation.
    None (or a blank string) leaves a field as it is."""

    priority: int | str | None = None
    determinant: str | None = None
    nature: str | None = None
    location: str | None = None
    place: str | None = None
    lat: float | str | None = None
    lon: float | str | None = None
    caller_name: str | None = None
    caller_phone: str | None = None


@dataclass(frozen=True, slots=True)
class CleanChanges:
    """Only the fields to change, clean. `place`: a named place to look up (it gives the
    location and the coordinates unless they are given too)."""

    values: dict[str, object]
    place: str | None = None


# The fields an edit may change, as the call's columns are named, in the order they are told.
EDITABLE = (
    "priority",
    "determinant",
    "nature",
    "location_text",
    "lat",
    "lon",
    "caller_name",
    "caller_phone",
)


def changes(raw: CallChanges) -> CleanChanges:
    """Validate an edit: each given field as intake validates it; at least one field."""
    values: dict[str, object] = {}
    if _given(raw.determinant):
        values["determinant"] = determinant(str(raw.determinant))
    if _given(raw.priority):
        values["priority"] = priority(raw.priority)  # type: ignore[arg-type]
    elif "determinant" in values:
        # A new determinant brings its priority, as at intake, unless one is given.
        values["priority"] = priority_for_determinant(str(values["determinant"]))
    if _given(raw.nature):
        values["nature"] = text_field("nature", str(raw.nature), NATURE_MAX, required=True)
    place = text_field("place", str(raw.place), NAME_MAX) if _given(raw.place) else None
    if _given(raw.location):
        if place:
            raise InvalidInput("give a location or a named place, not both")
        values["location_text"] = text_field(
            "location", str(raw.location), LOCATION_MAX, required=True
        )
    has_lat, has_lon = _given(raw.lat), _given(raw.lon)
    if has_lat != has_lon:
        raise InvalidInput("give both latitude and longitude, or neither")
    if has_lat:
        values["lat"], values["lon"] = coordinate(raw.lat, raw.lon)  # type: ignore[arg-type]
    if raw.caller_name is not None and raw.caller_name.strip():
        values["caller_name"] = text_field("caller name", raw.caller_name, NAME_MAX)
    if _given(raw.caller_phone):
        phone = text_field("caller phone", str(raw.caller_phone), PHONE_MAX)
        if not PHONE.match(phone):
            raise InvalidInput(f"caller phone '{_short(phone)}' is not a phone number")
        values["caller_phone"] = phone
    if not values and not place:
        raise InvalidInput(
            "name something to change: --priority, --determinant, --nature, --location or "
            "--place, --lat and --lon, --caller, --phone"
        )
    return CleanChanges(values, place)


# What a call's close may say happened (NEMSIS eDisposition wording); a centre may set its own.
DISPOSITIONS = (
    "treated and transported",
    "treated and released",
    "patient refused care",
    "no patient found",
    "dead at scene",
    "cancelled en route",
    "standby only",
    "assist, no treatment",
    "transferred to another unit",
)


def disposition(value: str, allowed: tuple[str, ...] = DISPOSITIONS) -> str:
    """One of `allowed`, as it is written there: typed whole or as the start of one only, in
    any case. Refused when empty, unknown or ambiguous, with the list."""
    typed = " ".join(value.split()).lower()
    choices = ", ".join(allowed)
    if not typed:
        raise InvalidInput(f"a close needs a disposition: {choices}")
    exact = [d for d in allowed if d.lower() == typed]
    matches = exact or [d for d in allowed if d.lower().startswith(typed)]
    if len(matches) == 1:
        return matches[0]
    what = "matches several" if matches else "is not a disposition"
    raise InvalidInput(f"'{_short(value, 40)}' {what}; one of: {choices}")
