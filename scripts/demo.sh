#!/usr/bin/env bash
# Sets up and serves the example project on http://127.0.0.1:8000 (SQLite, no services):
# virtualenv, install (the package and its dependencies only: scripts/bootstrap.sh demo),
# migrate, a local-only admin login (admin / admin), one sample notice per product sent
# to the running server, and the full loop without a Topview account: a fake Topview on
# 127.0.0.1:8765 runs submitted tasks (answering 4007 past 10 unfinished), drops 30% of its
# callbacks, and the polling fallback (topview_reconcile every 10 s) finds those outcomes;
# 20 more are queued (enqueue) and sent as outcomes free slots. Archiving is on: the fake serves
# small generated MP4/JPEG/PNG/MP3 files for its results, and topview_archive_media (every
# 10 s, the cron job of an inline project) copies them into ./media/, listed on each
# task's admin page. Ctrl-C stops it all.
#
# PORT (default 8000) moves the site, FAKE_TOPVIEW_PORT (default 8765) the fake Topview;
# every URL and command the script prints uses them. --dry-run prints those and exits,
# installing and starting nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
port=${PORT:-8000}
fake_port=${FAKE_TOPVIEW_PORT:-8765}
export DJANGO_SETTINGS_MODULE=example_project.settings
export TOPVIEW_NOTICE_URL=${TOPVIEW_NOTICE_URL:-http://127.0.0.1:$port/topview/notice/}
export TOPVIEW_API_BASE_URL=${TOPVIEW_API_BASE_URL:-http://127.0.0.1:$fake_port}
export TOPVIEW_POLL_AFTER=${TOPVIEW_POLL_AFTER:-5}
export TOPVIEW_ARCHIVE_MEDIA=${TOPVIEW_ARCHIVE_MEDIA:-1}
# Demo only: lets archiving fetch from the fake Topview on 127.0.0.1 over http (settings.py).
export TOPVIEW_DEMO=1

commands() {
  # The commands to try while the demo runs; each names the ports it needs, so that
  # they work from another shell, where PORT and FAKE_TOPVIEW_PORT are not set.
  cat <<MSG
  Send a notice:   .venv/bin/python manage.py topview_send_test_notice --biz-type VOICE_CLONE --url $TOPVIEW_NOTICE_URL
  Submit a task:   TOPVIEW_API_BASE_URL=$TOPVIEW_API_BASE_URL TOPVIEW_NOTICE_URL=$TOPVIEW_NOTICE_URL .venv/bin/python manage.py topview_submit VOICE_CLONE name=Ann
MSG
}

if [ "${1:-}" = "--dry-run" ]; then
  echo "  The example project would run at http://127.0.0.1:$port/admin/ and the fake Topview at $TOPVIEW_API_BASE_URL."
  commands
  exit 0
fi

scripts/bootstrap.sh demo
$py manage.py migrate -v0
# A demo login for this local SQLite database only; never do this on a real site.
DJANGO_SUPERUSER_PASSWORD=admin $py manage.py createsuperuser --noinput \
  --username admin --email admin@example.com >/dev/null 2>&1 || true

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT INT TERM
$py manage.py topview_fake_server --port "$fake_port" --duration 2-6 --fail-rate 0.2 \
  --drop 0.3 --duplicate 0.2 --reorder --max-unfinished 10 &
pids+=($!)
$py manage.py runserver "127.0.0.1:$port" --noreload &
pids+=($!)
for _ in $(seq 1 100); do
  $py -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/topview/notice/')" \
    2>/dev/null && break
  sleep 0.2
done

first_run=$($py -c 'import django; django.setup()
from topview_callbacks.models import Notice; print(int(not Notice.objects.exists()))')
if [ "$first_run" = 1 ]; then
  for biz in M2V_PREVIEW M2V_EXPORT VOICE_CLONE VOICE_TEXT2VOICE COMMON_TASK_TEXT2IMAGE \
             COMMON_TASK_IMAGE2VIDEO PRODUCT_AVATAR_IMAGE2VIDEO SCRAPER; do
    $py manage.py topview_send_test_notice --biz-type "$biz" >/dev/null
  done
  $py manage.py topview_send_test_notice --biz-type COMMON_TASK_TEXT2VIDEO --status fail >/dev/null
  echo "Sent 9 sample notices to $TOPVIEW_NOTICE_URL"
fi
# The full loop: tasks submitted through the client to the fake Topview.
for n in 1 2 3 4 5 6; do
  $py manage.py topview_submit VOICE_CLONE "name=Demo voice $n" originVoiceFileId=demo-file
done
$py manage.py topview_submit COMMON_TASK_TEXT2IMAGE "prompt=A red bicycle" generatingCount=1
$py manage.py topview_submit PRODUCT_AVATAR_IMAGE2VIDEO "prompt=She rides the red bicycle"
# The queue: 20 submissions queued in one transaction, sent at most MAX_UNFINISHED (10)
# of the account's tasks at a time, the rest as outcomes free slots (the fake Topview
# would answer 4007 past 10).
$py manage.py topview_submit COMMON_TASK_TEXT2IMAGE "prompt=A blue bicycle" \
  --enqueue 20 --reference demo-queue
# Polling fallback for the callbacks the fake Topview dropped, then the downloads of the
# outputs (inline processing never downloads in the request): cron would run both.
(while sleep 10; do
  $py manage.py topview_reconcile >/dev/null 2>&1 || true
  $py manage.py topview_send_queued >/dev/null 2>&1 || true
  $py manage.py topview_archive_media >/dev/null 2>&1 || true
done) &
pids+=($!)
cat <<MSG

  The example project is running: http://127.0.0.1:$port/admin/  (login: admin / admin)
  A fake Topview runs at $TOPVIEW_API_BASE_URL; outcomes of the 8 submitted tasks arrive
  within ~15 s, by callback or, for dropped callbacks, by polling, and the 20 queued ones
  (reference demo-queue) go out as slots free up, within a minute; their output files
  are archived into ./media/ within ~10 s more (each task's admin page lists them; the
  sample notices' files, on Topview's CDN, are refused: the demo fetches from 127.0.0.1 only).
$(commands)
  Stop with Ctrl-C.

MSG
wait "${pids[1]}"
