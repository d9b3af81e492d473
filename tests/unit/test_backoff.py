"""api/backoff.py: the one exponential delay sequence."""

from api.backoff import Backoff


def test_doubles_up_to_the_cap_and_starts_over_on_reset():
    b = Backoff(0.1, 0.5)
    assert [b.next() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    b.reset()
    assert b.peek() == 0.1 and b.next() == 0.1
