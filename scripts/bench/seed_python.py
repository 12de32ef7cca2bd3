"""The seed workload on the Python original (edX event-tracking), for
scripts/bench-seed: COUNT cycles of the README's example (enter `outer`,
emit, a scoped `inner` with an emit, emit, exit `outer`) into a backend that
drops every event (the original's equivalent of a `discard` backend).

    python seed_python.py COUNT
"""

import sys

from eventtracking.tracker import Tracker


class NullBackend:
    """Accepts and drops every event."""

    def send(self, event):
        pass


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    tracker = Tracker(backends={"null": NullBackend()})
    for _ in range(count):
        tracker.enter_context("outer", {"user_id": 10938})
        tracker.emit("navigation.request", {"url": "http://www.edx.org/some/path/1"})
        with tracker.context("inner", {"user_id": 11111, "session_id": "2987lkjdyoioey"}):
            tracker.emit("navigation.request", {"url": "http://www.edx.org/some/path/2"})
        tracker.emit(
            "address.create",
            {"name": "foo", "address": {"postal_code": "90210", "country": "United States"}},
        )
        tracker.exit_context("outer")


if __name__ == "__main__":
    main()
