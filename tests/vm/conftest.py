"""Fixtures for the VM tests: one bed (bridge + guests) per session, torn down at its end.

- `vm_bed`: the session's `Bed`; skips every VM test with the reason when this machine cannot
  run guests (not root, no qemu, no kernel: run deploy/vm-kernel.sh). Its teardown powers
  every guest off and checks that no qemu process, tap or bridge of the bed is left.
- `machines`: `machines(n)` gives n booted guests (the shared one and more, booted in parallel).
- `machine`: a booted guest for one test. It is the session's shared guest, booted on first
  use and booted again if a test powered it off, and healed if a test partitioned it; tests
  that change the guest's state beyond that clean up after themselves.

Every test here is marked `vm` (slow: a guest boots in ~20 s and runs code 10-50x slower
than this machine); `pytest -m "not vm"` leaves them out of a quick local run.
"""

from __future__ import annotations

from typing import Callable, Iterator

import pytest

from vm.machines import Bed, Machine, skip_reason


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/vm/" in str(item.path):
            item.add_marker(pytest.mark.vm)


@pytest.fixture(scope="session")
def vm_bed() -> Iterator[Bed]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    bed = Bed()
    try:
        yield bed
    finally:
        bed.close()
        assert bed.leftovers() == [], f"VM bed left behind: {bed.leftovers()}"


@pytest.fixture(scope="session")
def _shared_machine(vm_bed: Bed) -> Machine:
    return vm_bed.add(memory_mb=1024)


def _booted(machines: list[Machine]) -> list[Machine]:
    """Boot (in parallel) those of `machines` that are off; all are ready on return."""
    for m in machines:
        if not m.running:
            m.channel = None
            m.start()
    for m in machines:
        if m.channel is None:
            m.wait_ready()
    return machines


@pytest.fixture
def machine(_shared_machine: Machine) -> Iterator[Machine]:
    try:
        yield _booted([_shared_machine])[0]
    finally:
        if _shared_machine.running:
            _shared_machine.heal()


@pytest.fixture
def machines(vm_bed: Bed, _shared_machine: Machine) -> Iterator[Callable[[int], list[Machine]]]:
    """`machines(n)`: n booted guests, the shared one first."""
    def get(count: int) -> list[Machine]:
        while len(vm_bed.machines) < count:
            vm_bed.add(memory_mb=1024)
        return _booted(vm_bed.machines[:count])
    try:
        yield get
    finally:
        for m in vm_bed.machines:
            if m.running:
                m.heal()
