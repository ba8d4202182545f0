#!/usr/bin/env bash
# Sets up and serves the example project on http://127.0.0.1:8000 (SQLite, no services):
# virtualenv, install, migrate, a local-only admin login (admin / admin), and one sample
# notice of each bizType sent to the running server so the admin has data. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
py=.venv/bin/python
port=${PORT:-8000}
export DJANGO_SETTINGS_MODULE=example_project.settings
export TOPVIEW_NOTICE_URL=${TOPVIEW_NOTICE_URL:-http://127.0.0.1:$port/topview/notice/}

$py manage.py migrate -v0
# A demo login for this local SQLite database only; never do this on a real site.
DJANGO_SUPERUSER_PASSWORD=admin $py manage.py createsuperuser --noinput \
  --username admin --email admin@example.com >/dev/null 2>&1 || true

$py manage.py runserver "127.0.0.1:$port" --noreload &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 50); do
  $py -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/topview/notice/')" \
    2>/dev/null && break
  sleep 0.2
done

if [ "$($py -c 'import django; django.setup(); from topview_callbacks.models import Notice; print(Notice.objects.count())')" = 0 ]; then
  for biz in M2V_PREVIEW M2V_EXPORT VOICE_CLONE VOICE_TEXT2VOICE COMMON_TASK_TEXT2IMAGE \
             COMMON_TASK_IMAGE2VIDEO PRODUCT_AVATAR_IMAGE2VIDEO SCRAPER; do
    $py manage.py topview_send_test_notice --biz-type "$biz" >/dev/null
  done
  $py manage.py topview_send_test_notice --biz-type COMMON_TASK_TEXT2VIDEO --status fail >/dev/null
  echo "Sent 9 sample notices to http://127.0.0.1:$port/topview/notice/"
fi
cat <<MSG

  The example project is running: http://127.0.0.1:$port/admin/  (login: admin / admin)
  Send another notice:  .venv/bin/python manage.py topview_send_test_notice --biz-type VOICE_CLONE
  Stop with Ctrl-C.

MSG
wait $server
