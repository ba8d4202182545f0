"""A new user's first hour, as the README tells it: run by `nox -s package`.

In a temporary folder: a new virtualenv; the README's install line run verbatim by a shell
(before the first release it installs `./topview-callbacks`, here a link to this
checkout, so the newest Django that installs with it is what a user gets today); then
`startproject` and the README's example pasted in (tests/support/readme_site.py),
`manage.py check` with no environment variable set (it must report no issue), `migrate`,
and the contract's example notice POSTed to NOTICE_URL with and without its trailing slash
(200 and the contract's acknowledgement, byte for byte, each time). Exits non-zero on any
difference.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import readme_site  # noqa: E402  (the checkout's tests/, not an installed one)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--python", default=sys.executable, help="interpreter for the venv")
    parser.add_argument(
        "--find-links", help="a folder of wheels pip may use (the release's, before PyPI has it)"
    )
    options = parser.parse_args()

    line = readme_site.install_line()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="topview-readme-") as tmp:
        work = Path(tmp)
        subprocess.run([options.python, "-m", "venv", str(work / "venv")], check=True)
        python = work / "venv" / "bin" / "python"
        (work / "topview-callbacks").symlink_to(ROOT, target_is_directory=True)
        env = readme_site.clean_env(python)
        if options.find_links:
            env["PIP_FIND_LINKS"] = options.find_links
        print("== in a new virtualenv:", line, flush=True)
        subprocess.run(["bash", "-c", line], cwd=work, env=env, check=True)
        print(readme_site.run(python, "-m", "django", "--version", cwd=work, env=env).strip())

        site = readme_site.build_site(python, work)
        output = readme_site.run(python, "manage.py", "check", cwd=site, env=env)
        if "System check identified no issues" not in output:
            raise SystemExit(f"manage.py check with no variable set: {output}")
        print("ok: manage.py check, no environment variable set:", output.strip())
        readme_site.run(python, "manage.py", "migrate", "-v0", cwd=site, env=env)
        path = urlsplit(readme_site.notice_url(python, site, env)).path
        with_uid = readme_site.site_env(python, TOPVIEW_UID=readme_site.CONTRACT_UID)
        for url in (path, path.rstrip("/")):
            status, body = readme_site.deliver_contract_example(python, site, url, with_uid)
            if (status, body) != ("200", readme_site.contract_ack()):
                raise SystemExit(f"{url}: {status} {body!r}")
            print(f"ok: the contract's example at {url.replace(path.split('/')[-2], '<token>')}")
    print(f"the README's first hour works ({time.monotonic() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    os.environ.pop("DJANGO_SETTINGS_MODULE", None)
    sys.exit(main())
