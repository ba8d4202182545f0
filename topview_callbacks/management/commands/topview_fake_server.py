from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from topview_callbacks.conf import topview_settings
from topview_callbacks.testing.fake.api import FakeTopview
from topview_callbacks.testing.fake.server import LOOPBACK_HOSTS, FakeTopviewServer


def _range(text: str) -> tuple[float, float]:
    """'2' or '1-5' (seconds) -> (min, max)."""
    low, _, high = text.partition("-")
    try:
        values = (float(low), float(high or low))
    except ValueError:
        raise CommandError(f"Expected seconds like 2 or 1-5, not {text!r}.") from None
    if values[0] < 0 or values[1] < values[0]:
        raise CommandError(f"Expected 0 <= min <= max, not {text!r}.")
    return values


def _share(name: str, value: float) -> float:
    if not 0 <= value <= 1:
        raise CommandError(f"--{name} is a share between 0 and 1, not {value}.")
    return value


def build_server(options: dict[str, Any]) -> FakeTopviewServer:
    """The server the command runs, from its options (also used by the tests)."""
    if options["host"] not in LOOPBACK_HOSTS:
        raise CommandError(f"The fake Topview serves loopback only: {', '.join(LOOPBACK_HOSTS)}.")
    accounts = None
    if not options["any_credentials"]:
        accounts = {a.uid: a.api_key for a in topview_settings.accounts.values() if a.uid}
    fake = FakeTopview(
        accounts=accounts,
        duration=_range(options["duration"]),
        fail_rate=_share("fail-rate", options["fail_rate"]),
        drop=_share("drop", options["drop"]),
        duplicate=_share("duplicate", options["duplicate"]),
        delay=_range(options["delay"]),
        reorder=options["reorder"],
        seed=options["seed"],
        max_unfinished=options.get("max_unfinished"),
    )
    if options.get("lose_answers"):
        fake.lose_answers(options["lose_answers"])
    try:
        return FakeTopviewServer(fake, host=options["host"], port=options["port"])
    except OSError as exc:
        raise CommandError(f"Cannot listen on {options['host']}:{options['port']}: {exc}") from exc


class Command(BaseCommand):
    help = (
        "Run a fake Topview API on 127.0.0.1 for demos and tests: it accepts submits, runs "
        "tasks on timers, POSTs callbacks to their noticeUrl (optionally dropping, "
        "duplicating, delaying and reordering them), answers the query endpoints and "
        "serves the small generated media files its results name (under /media/). "
        "Point TOPVIEW_CALLBACKS['API_BASE_URL'] at it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8765, help="Port (default 8765).")
        parser.add_argument("--host", default="127.0.0.1", help="Loopback address to bind.")
        parser.add_argument(
            "--duration", default="2-8", help="Seconds a task runs: N or MIN-MAX (default 2-8)."
        )
        parser.add_argument(
            "--delay", default="0", help="Seconds from a task's end to its callback: N or MIN-MAX."
        )
        parser.add_argument(
            "--fail-rate", type=float, default=0.1, help="Share of tasks that fail."
        )
        parser.add_argument(
            "--drop", type=float, default=0.0, help="Share of callbacks never sent."
        )
        parser.add_argument(
            "--duplicate", type=float, default=0.0, help="Share of callbacks sent twice."
        )
        parser.add_argument(
            "--reorder", action="store_true", help="Send callbacks due together in random order."
        )
        parser.add_argument("--seed", type=int, help="Random seed, for a reproducible run.")
        parser.add_argument(
            "--any-credentials",
            action="store_true",
            help="Accept any Topview-Uid/API key (default: only the configured accounts').",
        )
        parser.add_argument(
            "--max-unfinished",
            type=int,
            metavar="N",
            help="Answer 4007 while an account has N unfinished tasks (default: no limit).",
        )
        parser.add_argument(
            "--lose-answers",
            type=int,
            default=0,
            metavar="N",
            help="Accept the first N submits and drop their answers (the caller sees a reset).",
        )
        parser.add_argument(
            "--stop-after", type=float, metavar="SECONDS", help="Stop by itself after this long."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        server = build_server(options).start()
        self.stdout.write(
            self.style.SUCCESS(
                f"Fake Topview at {server.url}: run the site with "
                f"TOPVIEW_API_BASE_URL={server.url}. Ctrl-C stops it."
            )
        )
        deadline = time.monotonic() + options["stop_after"] if options["stop_after"] else None
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
        stats = server.fake.stats
        self.stdout.write(
            f"Stopped. Tasks: {len(server.fake.tasks)}; callbacks: {stats['callbacks']} "
            f"(dropped {stats['dropped']}, duplicated {stats['duplicated']}), "
            f"POSTs sent {stats['sent']}, acknowledged {stats['acked']}."
        )
