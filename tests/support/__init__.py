"""What several test modules share; test modules import from here, never from one
another or from conftest.py (tests/test_suite_layout.py checks it).

- ``settings``: ``topview(**values)``, the one way a test changes TOPVIEW_CALLBACKS, and
  the test accounts' ``UID`` and ``UID_B``;
- ``processes``, ``recording``, ``worker``: the Celery and Tasks workers, gunicorn and
  Redis the worker tests start, and what their receivers record;
- ``media_server``, ``archive``: a media server on 127.0.0.1, archiving from it;
- ``sending``: the queue of submissions with a real worker killed mid-send (Celery, Tasks);
- ``browser``: Chromium and its offline pages (fixtures, through ``pytest_plugins``);
- ``admin``, ``checks``, ``contract``, ``magic``, ``readme_site``, ``without``: helpers
  of the admin, system-check, contract, fake-media, README and optional-package tests.
"""
