"""The seed example of the original library's README, emitted by the Python
original (edX event-tracking) through its LoggerBackend into a log file, as
a deployment of it writes its logs (one JSON line per event, `%(message)s`).
For the interop test (eventtracking-cli/tests/interop.rs).

    python emit_seed.py LOG_FILE TIMES_FILE

TIMES_FILE gets, per event, its timestamp as microseconds since the epoch,
computed by Python from the datetime itself: what the import must keep.
"""

import calendar
import logging
import sys

from eventtracking.backends.logger import LoggerBackend
from eventtracking.tracker import Tracker


class TimesBackend:
    """Writes each event's time in microseconds since the epoch."""

    def __init__(self, path):
        self.out = open(path, "w", encoding="utf-8")

    def send(self, event):
        ts = event["timestamp"]
        micros = calendar.timegm(ts.utctimetuple()) * 1_000_000 + ts.microsecond
        self.out.write(f"{micros}\n")
        self.out.flush()


def main():
    log_path, times_path = sys.argv[1], sys.argv[2]
    logger = logging.getLogger("eventtracking.interop")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)

    tracker = Tracker(
        backends={
            "log": LoggerBackend(name="eventtracking.interop"),
            "times": TimesBackend(times_path),
        }
    )
    tracker.enter_context("outer", {"user_id": 10938})
    tracker.emit("navigation.request", {"url": "http://www.edx.org/some/path/1"})
    with tracker.context("inner", {"user_id": 11111, "session_id": "2987lkjdyoioey"}):
        tracker.emit("navigation.request", {"url": "http://www.edx.org/some/path/2"})
    tracker.emit(
        "address.create",
        {"name": "foo", "address": {"postal_code": "90210", "country": "United States"}},
    )
    tracker.exit_context("outer")
    handler.close()


if __name__ == "__main__":
    main()
