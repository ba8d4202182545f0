from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from topview_callbacks import health


class Command(BaseCommand):
    help = (
        "Check the Topview pipeline: stuck, failed and overdue work, silence, rejected "
        "deliveries. Exit code 0 ok, 1 warning, 2 critical (for monitoring: Nagios, cron, "
        "Kubernetes). Thresholds: TOPVIEW_CALLBACKS['HEALTH']."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--json", action="store_true", help="Print one JSON object instead of text."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        findings = health.check()
        level = health.worst(findings)
        if options["json"]:
            report = {
                "status": level.name.lower(),
                "checks": [finding.as_dict() for finding in findings],
            }
            self.stdout.write(json.dumps(report, indent=2))
        else:
            styles = {
                health.Level.OK: self.style.SUCCESS,
                health.Level.WARNING: self.style.WARNING,
                health.Level.CRITICAL: self.style.ERROR,
            }
            for finding in findings:
                label = styles[finding.level](f"{finding.level.name:8}")
                self.stdout.write(f"{label} {finding.name}: {finding.summary}")
            self.stdout.write(f"Topview pipeline: {styles[level](level.name)}")
        if level:
            sys.exit(int(level))
