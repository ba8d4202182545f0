from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from topview_callbacks import partitions
from topview_callbacks.dispatch import replay
from topview_callbacks.models import Notice, NoticeState


class Command(BaseCommand):
    help = (
        "Run stored Topview notices through the receivers again (by uuid, or all failed), "
        "where PROCESSING runs them: here, or on the Celery or Tasks queue."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("uuids", nargs="*", help="Notice uuids to replay.")
        parser.add_argument("--failed", action="store_true", help="Replay every failed notice.")

    def handle(self, *args: Any, **options: Any) -> None:
        uuids: list[str] = options["uuids"]
        if not uuids and not options["failed"]:
            raise CommandError("Give notice uuids, or --failed.")
        notices = Notice.objects.none()
        if uuids:
            notices = Notice.objects.filter(**partitions.uuid_filter(uuids))
            missing = set(uuids) - set(notices.values_list("uuid", flat=True))
            if missing:
                raise CommandError(f"No notice with uuid {', '.join(sorted(missing))}.")
        if options["failed"]:
            notices = notices | Notice.objects.filter(state=NoticeState.FAILED)
        failures = 0
        for notice_id, uuid in notices.order_by("received_at").values_list("pk", "uuid"):
            notice = replay(notice_id)
            if notice is None:
                self.stdout.write(self.style.WARNING(f"{uuid}: being processed elsewhere, skipped"))
            elif notice.state == NoticeState.PENDING:
                self.stdout.write(self.style.SUCCESS(f"{uuid}: queued"))
            elif notice.state == NoticeState.FAILED:
                failures += 1
                self.stdout.write(self.style.ERROR(f"{uuid}: failed again: {notice.error_summary}"))
            else:
                self.stdout.write(self.style.SUCCESS(f"{uuid}: {notice.state}"))
        if failures:
            raise CommandError(f"{failures} notice(s) failed again; see their last_error.")
