# Load the Celery app when Django starts, so @shared_task binds to it. The example project
# also runs without Celery installed (inline processing).
try:
    from example_project.celery import app as celery_app
except ModuleNotFoundError as exc:  # pragma: no cover - Celery is an optional extra
    if exc.name != "celery":
        raise
    celery_app = None

__all__ = ["celery_app"]
