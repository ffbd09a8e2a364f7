"""A call's timeline: its narrative, its audited changes and its crew alerts' deliveries, merged,
in words, in time order.

Pure: the database reads the narrative and the audit rows (`db/views.record`); this says what
each audit row means to a dispatcher ("M1 on scene", "closed: treated and transported") and puts
everything in one order. An edit writes both an audit row and a narrative line of its own (old →
new), so the timeline shows the narrative's line, not the audit row's twin.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dispatch_tui.rules.lifecycle import label
from dispatch_tui.rules.views import AlertView, AuditView, NarrativeView, TimelineEntry

# Audit actions whose narrative line says it already.
TOLD_IN_NARRATIVE = frozenset({"call_updated", "call_reopened", "caller_attached"})


def merge(
    notes: Iterable[NarrativeView],
    audit: Iterable[AuditView],
    alerts: Iterable[AlertView] = (),
) -> tuple[TimelineEntry, ...]:
    """Narrative entries, audit rows and alert deliveries as one timeline, oldest first (ties:
    as written). An alert appears once it was tried or settled: sent, its last try and what came
    of it, or not sent (overtaken: the unit was stood down first)."""
    entries = [TimelineEntry(n.at, n.kind, n.operator, _note(n), n.id) for n in notes] + [
        TimelineEntry(a.at, "audit", a.operator, describe(a), a.id)
        for a in audit
        if a.action not in TOLD_IN_NARRATIVE
    ]
    entries += [
        TimelineEntry(at, "alert", "alerter", delivery(alert), alert.id)
        for alert in alerts
        if (at := alert.sent_at or alert.last_attempt_at) is not None
    ]
    # Audit rows before narrative lines written at the same instant (a change, then its words).
    return tuple(sorted(entries, key=lambda e: (e.at, e.source != "audit", e.ref)))


def delivery(alert: AlertView) -> str:
    """How a crew alert's delivery went, in words: `alert to M1 sent`, `stand-down alert to M1
    FAILED after 5 tries: exit 1: gateway down`."""
    kind = {"stand_down": "stand-down alert", "reminder": "reminder (not acknowledged)"}
    what = f"{kind.get(alert.kind, 'alert')} to {alert.unit_code}"
    tries = f"{alert.attempts} tries" if alert.attempts != 1 else "1 try"
    why = f": {alert.last_error}" if alert.last_error else ""
    if alert.state == "sent":
        return f"{what} sent" + (f" (after {tries})" if alert.attempts > 1 else "")
    if alert.state == "failed":
        return f"{what} FAILED after {tries}{why}"
    if alert.state == "superseded":
        return f"{what} not sent{why}"
    return f"{what}: try {alert.attempts} failed{why}; trying again"


def _note(entry: NarrativeView) -> str:
    if entry.corrects_id is not None:
        return f"(corrects #{entry.corrects_id}) {entry.text}"
    return entry.text


def describe(entry: AuditView) -> str:
    """An audit row in a few words."""
    d: dict[str, Any] = entry.details
    unit = entry.unit_code or ""
    why = d.get("reason") or ""
    match entry.action:
        case "call_created":
            return f"call taken: P{d.get('priority', '?')} {d.get('nature', '')}".rstrip()
        case "dispatch":
            extra = [
                f"with {d['paramedic']}" if d.get("paramedic") else "",
                f"to {d['hospital']}" if d.get("hospital") else "",
            ]
            added = " (added)" if d.get("added") else ""
            if d.get("diverted_from"):
                added = f" (diverted from {d['diverted_from']})"
            if d.get("queued"):
                added = " (its next call, as it cleared)"
            return " ".join(x for x in [f"{unit} dispatched{added}", *extra] if x)
        case "unit_queued":
            return f"{unit} lined up to come next"
        case "queue_ended":
            return f"{unit}'s next call ended" + (f": {why}" if why else "")
        case "unit_diverted":
            return f"{unit} {why}" if why else f"{unit} diverted"
        case "unit_status":
            to = f" to {entry.hospital_code}" if entry.hospital_code else ""
            old, new = str(d.get("old", "")), str(d.get("new", ""))
            if old == new == "EN_ROUTE":
                return f"{unit} en route (crew's report)"
            return f"{unit} {label(new)}{to}" + (f": {why}" if why else "")
        case "acknowledged":
            return f"{unit} acknowledged the dispatch"
        case "unit_en_route":
            return f"{unit} en route (crew's report)"
        case "unit_cancelled":
            return f"{unit} cancelled" + (f": {why}" if why else "")
        case "unit_released":
            return f"{unit} released" + (f": {why}" if why else "")
        case "call_status":
            return f"call {label(str(d.get('old', '')))} → {label(str(d.get('new', '')))}"
        case "duplicate_overridden":
            others = ", ".join(str(n) for n in d.get("candidates", []))
            return f"taken as a new call though {others} may be the same incident"
        case "call_cancelled":
            return "call cancelled" + (f": {why}" if why else "")
        case "call_closed":
            disposition = d.get("disposition") or ""
            return "call closed" + (f": {disposition}" if disposition else "")
    return entry.action.replace("_", " ")
