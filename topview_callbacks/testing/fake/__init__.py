"""A fake Topview, with no account and no internet (the public names are in ``testing``).

- ``runner``: the tasks as a state machine (``FakeTaskRunner``, ``FakeTask``, ``Chaos``) and
  the callbacks they schedule (``ScheduledCallback``);
- ``api``: ``FakeTopview``, Topview's API over a runner, and ``mock_topview()``, which puts it
  behind ``requests`` with ``responses``;
- ``server``: ``FakeTopviewServer``, the same fake over real HTTP on 127.0.0.1;
- ``media``: the tiny valid MP4/JPEG/PNG/MP3/WAV files the HTTP fake's results name.
"""
