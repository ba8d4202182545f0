from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from topview_callbacks.client import TopviewClient
from topview_callbacks.exceptions import TopviewConfigurationError, TopviewError
from topview_callbacks.logs import redact


def check_notice_url(url: str | None = None, account: str | None = None) -> str:
    """Ask Topview to validate the callback URL; returns the URL checked, raises on refusal."""
    client = TopviewClient(account)
    url = url or client.account.notice_url
    if not url:
        raise CommandError("No URL given and NOTICE_URL is not set in TOPVIEW_CALLBACKS.")
    client.check_notice_url(url)
    return url


class Command(BaseCommand):
    help = (
        "Ask Topview whether it accepts a callback URL (default: NOTICE_URL) as noticeUrl. "
        "The path token is printed as <token>: this output ends up in shells and CI logs."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("url", nargs="?", help="The URL to check (default: NOTICE_URL).")
        parser.add_argument("--account", help="Name of the account in ACCOUNTS (default: default).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            url = check_notice_url(options["url"], options["account"])
        except TopviewConfigurationError as exc:
            # CommandError prints one line, no traceback, and exits non-zero.
            raise CommandError(redact(f"Check your settings: {exc}")) from exc
        except TopviewError as exc:
            # Topview's message may quote the URL it refused.
            raise CommandError(redact(f"Topview did not accept the notice URL: {exc}")) from exc
        self.stdout.write(self.style.SUCCESS(f"Topview accepted {redact(url)} as a notice URL."))
