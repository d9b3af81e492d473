"""nft scripts that move the proxy's table from one state to another, each one atomic transaction.

- `full_script`: the whole table from nothing. It opens with `add table` + `delete table`,
  so applied over an existing table (an agent restart, a resync after an error) it
  replaces it in the same transaction: packets see the old table or the new one,
  never none, and Services keep answering while the agent starts.
- `update_script`: only what differs between two fragments of one Service (or between
  nothing and a fragment): new chains and sets first, then changed chains rewritten
  (`flush chain` + its rules), map elements deleted / added, and last the chains and
  sets nobody refers to any more - in that order so every reference is valid at each
  step and the kernel accepts the transaction.
- `hairpin_script`: elements of the hairpin set in and out.

Map elements are written in batches; a key that changes value is deleted and added in
the same transaction.
"""

from __future__ import annotations

from typing import Iterable

from .ruleset import HAIRPIN, Fragment, Ruleset, skeleton

BATCH = 2000


def _elements(verb: str, table: str, name: str, items: list[str]) -> list[str]:
    return [f"{verb} element ip {table} {name} {{ {', '.join(items[i:i + BATCH])} }}"
            for i in range(0, len(items), BATCH)]


def _by_map(elements: Iterable[tuple[tuple[str, str], str | None]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for (name, key), value in elements:
        grouped.setdefault(name, []).append(key if value is None else f"{key} : {value}")
    return grouped


def _hairpin_elements(ips: Iterable[str]) -> list[str]:
    return [f"{ip} . {ip}" for ip in sorted(ips)]


def full_script(table: str, ruleset: Ruleset, *, cluster_cidr: str) -> str:
    t = f"ip {table}"
    lines = [f"add table {t}", f"delete table {t}"]
    lines += skeleton(table, cluster_cidr=cluster_cidr)
    lines += [f"add set {t} {name} {{ {declaration} }}" for name, declaration in sorted(ruleset.sets.items())]
    lines += [f"add chain {t} {name}" for name in sorted(ruleset.chains)]
    for name in sorted(ruleset.chains):
        lines += [f"add rule {t} {name} {rule}" for rule in ruleset.chains[name]]
    for name, items in _by_map(sorted(ruleset.elements.items())).items():
        lines += _elements("add", table, name, items)
    lines += _elements("add", table, HAIRPIN, _hairpin_elements(ruleset.hairpin))
    return "\n".join(lines) + "\n"


def update_script(table: str, changes: Iterable[tuple[Fragment | None, Fragment | None]]) -> list[str]:
    """Commands turning each `old` fragment into its `new` one (None: nothing); [] when nothing differs.

    Phases across all the changes, so a key or name one Service gives up and another
    takes in the same transaction (a cluster IP reused) is deleted before it is added."""
    t = f"ip {table}"
    create: list[str] = []
    rewrite: list[str] = []
    gone: list[tuple[tuple[str, str], None]] = []
    added: list[tuple[tuple[str, str], str]] = []
    remove: list[str] = []
    for old, new in changes:
        old, new = old or Fragment(), new or Fragment()
        create += [f"add set {t} {name} {{ {new.sets[name]} }}" for name in sorted(new.sets) if name not in old.sets]
        create += [f"add chain {t} {name}" for name in sorted(new.chains) if name not in old.chains]
        for name in sorted(new.chains):
            if old.chains.get(name) != new.chains[name]:
                if name in old.chains:
                    rewrite.append(f"flush chain {t} {name}")
                rewrite += [f"add rule {t} {name} {rule}" for rule in new.chains[name]]
        gone += [(key, None) for key, value in old.elements.items() if new.elements.get(key) != value]
        added += [(key, value) for key, value in new.elements.items() if old.elements.get(key) != value]
        for name in sorted(set(old.chains) - set(new.chains)):
            remove += [f"flush chain {t} {name}", f"delete chain {t} {name}"]
        remove += [f"delete set {t} {name}" for name in sorted(set(old.sets) - set(new.sets))]
    lines = create + rewrite
    for name, items in _by_map(sorted(gone)).items():
        lines += _elements("delete", table, name, items)
    for name, items in _by_map(sorted(added)).items():
        lines += _elements("add", table, name, items)
    return lines + remove


def hairpin_script(table: str, *, added: Iterable[str], removed: Iterable[str]) -> list[str]:
    return (_elements("delete", table, HAIRPIN, _hairpin_elements(removed))
            + _elements("add", table, HAIRPIN, _hairpin_elements(added)))
