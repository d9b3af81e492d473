"""Transactions that move the proxy's table from one state to another, each one atomic.

- `full_script`: the whole table from nothing. It opens with `add table` + `delete table`,
  so applied over an existing table (an agent restart, a resync after an error) it
  replaces it in the same transaction: packets see the old table or the new one,
  never none, and Services keep answering while the agent starts.
- `update_ops` (`update_script`: the same as text): only what differs between two fragments
  of one Service (or between nothing and a fragment): new chains and sets first, then changed chains rewritten
  (`flush chain` + its rules), map elements deleted / added, and last the chains and
  sets nobody refers to any more - in that order so every reference is valid at each
  step and the kernel accepts the transaction.
- `hairpin_ops`: elements of the hairpin set in and out.

The incremental ones are lists of `Op`s (`update_ops`, `hairpin_ops`) written either as nft
commands (`Op.text`, for libnftables) or into one netlink batch (`batch`, for
netlink.py: no nft and no nft cache, see there); the same ops in the same order, so the
kernel sees the same transaction either way. The full script is nft text only.

Map elements are written in batches; a key that changes value is deleted and added in
the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from .expressions import dynamic_set_options, element_goto, element_key, rule_expressions
from .netlink import Batch
from .ruleset import HAIRPIN, Fragment, Ruleset, skeleton

BATCH = 2000


@dataclass(frozen=True)
class Op:
    """One command of an incremental transaction, written as nft text (`text`) or into a netlink batch (`encode`)."""
    verb: str                                   # add, flush, delete
    kind: str                                   # chain, rule, set, element
    name: str                                   # the chain, set or map
    rule: str = ""                              # add rule: an expressions.Rule
    declaration: str = ""                       # add set: an expressions.DynamicSet
    elements: tuple[tuple[str, str | None], ...] = ()   # element: (key, value or None)

    def text(self, table: str) -> str:
        head = f"{self.verb} {self.kind} ip {table} {self.name}"
        if self.kind == "rule":
            return f"{head} {self.rule}"
        if self.kind == "set" and self.verb == "add":
            return f"{head} {{ {self.declaration} }}"
        if self.kind == "element":
            items = [key if value is None else f"{key} : {value}" for key, value in self.elements]
            return f"{head} {{ {', '.join(items)} }}"
        return head

    def encode(self, batch: Batch) -> None:
        """Raises expressions.EncodingError for text not built from expressions' pieces."""
        if self.kind == "chain":
            {"add": batch.add_chain, "flush": batch.flush_chain, "delete": batch.delete_chain}[self.verb](self.name)
        elif self.kind == "rule":
            batch.add_rule(self.name, rule_expressions(self.rule, batch))
        elif self.kind == "set" and self.verb == "add":
            batch.add_set(self.name, **dynamic_set_options(self.declaration))  # type: ignore[arg-type]
        elif self.kind == "set":
            batch.delete_set(self.name)
        elif self.verb == "add":
            batch.add_elements(self.name, [(element_key(key), element_goto(value) if value is not None else None)
                                           for key, value in self.elements])
        else:
            batch.delete_elements(self.name, [element_key(key) for key, _ in self.elements])


def _elements(verb: str, name: str, items: list[tuple[str, str | None]]) -> list[Op]:
    return [Op(verb, "element", name, elements=tuple(items[i:i + BATCH])) for i in range(0, len(items), BATCH)]


def _by_map(elements: Iterable[tuple[tuple[str, str], str | None]]) -> dict[str, list[tuple[str, str | None]]]:
    grouped: dict[str, list[tuple[str, str | None]]] = {}
    for (name, key), value in elements:
        grouped.setdefault(name, []).append((key, value))
    return grouped


def _hairpin_elements(ips: Iterable[str]) -> list[tuple[str, str | None]]:
    return [(f"{ip} . {ip}", None) for ip in sorted(ips)]


def _texts(table: str, ops: list[Op]) -> list[str]:
    return [op.text(table) for op in ops]


def full_script(table: str, ruleset: Ruleset, *, cluster_cidr: str) -> str:
    t = f"ip {table}"
    lines = [f"add table {t}", f"delete table {t}"]
    lines += skeleton(table, cluster_cidr=cluster_cidr)
    lines += [f"add set {t} {name} {{ {declaration} }}" for name, declaration in sorted(ruleset.sets.items())]
    lines += [f"add chain {t} {name}" for name in sorted(ruleset.chains)]
    for name in sorted(ruleset.chains):
        lines += [f"add rule {t} {name} {rule}" for rule in ruleset.chains[name]]
    for name, items in _by_map(sorted(ruleset.elements.items())).items():
        lines += _texts(table, _elements("add", name, items))
    lines += _texts(table, _elements("add", HAIRPIN, _hairpin_elements(ruleset.hairpin)))
    return "\n".join(lines) + "\n"


def update_ops(changes: Iterable[tuple[Fragment | None, Fragment | None]]) -> list[Op]:
    """Commands turning each `old` fragment into its `new` one (None: nothing); [] when nothing differs.

    Phases across all the changes, so a key or name one Service gives up and another
    takes in the same transaction (a cluster IP reused) is deleted before it is added."""
    create: list[Op] = []
    rewrite: list[Op] = []
    gone: list[tuple[tuple[str, str], None]] = []
    added: list[tuple[tuple[str, str], str]] = []
    remove: list[Op] = []
    for old, new in changes:
        old, new = old or Fragment(), new or Fragment()
        create += [Op("add", "set", name, declaration=new.sets[name]) for name in sorted(new.sets)
                   if name not in old.sets]
        create += [Op("add", "chain", name) for name in sorted(new.chains) if name not in old.chains]
        for name in sorted(new.chains):
            if old.chains.get(name) != new.chains[name]:
                if name in old.chains:
                    rewrite.append(Op("flush", "chain", name))
                rewrite += [Op("add", "rule", name, rule=rule) for rule in new.chains[name]]
        gone += [(key, None) for key, value in old.elements.items() if new.elements.get(key) != value]
        added += [(key, value) for key, value in new.elements.items() if old.elements.get(key) != value]
        for name in sorted(set(old.chains) - set(new.chains)):
            remove += [Op("flush", "chain", name), Op("delete", "chain", name)]
        remove += [Op("delete", "set", name) for name in sorted(set(old.sets) - set(new.sets))]
    ops = create + rewrite
    for name, items in _by_map(sorted(gone)).items():
        ops += _elements("delete", name, items)
    for name, items in _by_map(sorted(added)).items():
        ops += _elements("add", name, items)
    return ops + remove


def hairpin_ops(*, added: Iterable[str], removed: Iterable[str]) -> list[Op]:
    return (_elements("delete", HAIRPIN, _hairpin_elements(removed))
            + _elements("add", HAIRPIN, _hairpin_elements(added)))


def update_script(table: str, changes: Iterable[tuple[Fragment | None, Fragment | None]]) -> list[str]:
    """update_ops as nft commands."""
    return _texts(table, update_ops(changes))


def batch(table: str, ops: Iterable[Op]) -> Batch:
    """`ops` as one netlink batch (netlink.py); raises expressions.EncodingError if one cannot be encoded."""
    out = Batch(table)
    for op in ops:
        op.encode(out)
    return out
