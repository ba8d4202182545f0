import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
application = get_wsgi_application()

if os.environ.get("BENCH_CANDIDATE", "function") in ("statements", "prepared"):
    # A candidate measured beside the shipped path (bench/settings.py): PostgreSQL runs the
    # inline path's statements one by one, as SQLite does.
    from topview_callbacks.processing import recording

    recording.is_postgresql = lambda conn: False  # type: ignore[assignment]
