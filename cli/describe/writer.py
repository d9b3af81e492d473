"""The pieces every `describe` layout shares: the indenting writer, labels, Events.

`Out` is kubectl's PrefixWriter: `w(level, text)` indents by two spaces per
level and writes into one tab writer (cli/printers/tabwriter.py, padding 2),
which lines the values up section by section when the text is finished.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cli.columns import event_first_seen, event_last_seen, get
from cli.printers.tabwriter import TabWriter
from cli.timefmt import now, parse_time, since

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


class Out:
    """kubectl's PrefixWriter: write(level, text) indents by two spaces per level."""

    def __init__(self) -> None:
        self.writer = TabWriter(min_width=0, padding=2)

    def __call__(self, level: int, text: str) -> None:
        self.writer.write("  " * level + text)

    def text(self) -> str:
        return self.writer.flush()


def none_if_empty(value: Any) -> str:
    return "<none>" if value in (None, "", [], {}) else str(value)


def true_false(value: Any) -> str:
    return "True" if value else "False"


def multiline(w: Out, title: str, items: dict[str, str] | None, *, skip: tuple[str, ...] = ()) -> None:
    """`Labels:  app=web` with further pairs on their own lines under the first (sorted)."""
    pairs = sorted((k, v) for k, v in (items or {}).items() if k not in skip)
    if not pairs:
        w(0, f"{title}:\t<none>\n")
        return
    for i, (key, value) in enumerate(pairs):
        w(0, f"{title}:\t{key}={value}\n" if i == 0 else f"\t{key}={value}\n")


def identity(w: Out, meta: dict[str, Any], *, namespaced: bool = True) -> None:
    """Name, Namespace, Labels and Annotations: how kubectl's describers begin."""
    w(0, f"Name:\t{meta.get('name', '')}\n")
    if namespaced:
        w(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    multiline(w, "Labels", meta.get("labels"))
    multiline(w, "Annotations", meta.get("annotations"), skip=(LAST_APPLIED,))


# ---- events ----

def sort_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Oldest first, by last occurrence (kubectl's SortableEvents)."""
    epoch = datetime.min.replace(tzinfo=now().tzinfo)
    return sorted(events, key=lambda e: parse_time(event_last_seen(e)) or epoch)


def event_age(event: dict[str, Any], at: datetime) -> str:
    """`5s`, or `61s (x2 over 6m23s)` for an event seen several times."""
    first = since(event_first_seen(event), at)
    count = int(event.get("count") or 1)
    if count > 1:
        return f"{since(event_last_seen(event), at)} (x{count} over {first})"
    return first


def describe_events(w: Out, events: list[dict[str, Any]], at: datetime) -> None:
    if not events:
        w(0, "Events:\t<none>\n")
        return
    w(0, "Events:\n")
    w(1, "Type\tReason\tAge\tFrom\tMessage\n")
    w(1, "----\t------\t----\t----\t-------\n")
    for e in sort_events(events):
        source = get(e, "source.component") or e.get("reportingComponent") or ""
        w(1, f"{e.get('type', '')}\t{e.get('reason', '')}\t{event_age(e, at)}\t{source}\t"
             f"{str(e.get('message', '')).strip()}\n")


def controlled_by(obj: dict[str, Any]) -> str:
    """`ReplicaSet/web-5d9c` for the owner reference marked as controller, else ""."""
    for ref in get(obj, "metadata.ownerReferences", []):
        if ref.get("controller"):
            return f"{ref.get('kind')}/{ref.get('name')}"
    return ""
