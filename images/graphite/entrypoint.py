#!/usr/bin/env python3
"""Configure carbon and graphite-web from the container's settings, then run both.

Settings (environment):
  GRAPHITE_RETENTION  whisper retention of new series (default 10s:6h,1m:7d,10m:5y)
  GRAPHITE_WORKERS    graphite-web (gunicorn) worker processes (default 2)
Everything persistent (whisper files, graphite-web's database and secret key) lives in
/var/lib/graphite, the container's volume: a new container finds the history where it was.
Series created before a retention change keep their old retention (whisper-resize changes them).
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time

STORAGE = "/var/lib/graphite"
RETENTION = re.compile(r"^\d+[smhdwy]?:\d+[smhdwy]?(,\d+[smhdwy]?:\d+[smhdwy]?)*$")
USER = "_graphite"


def schemas(retention: str) -> str:
    if not RETENTION.match(retention):
        raise SystemExit(f"peerlab-graphite: GRAPHITE_RETENTION {retention!r} is not like 10s:6h,1m:7d,10m:5y")
    return ("# Written by peerlab-graphite at container start.\n"
            "[carbon]\npattern = ^carbon\\.\nretentions = 60s:90d\n\n"
            f"[peerlab]\npattern = .*\nretentions = {retention}\n")


def carbon_conf(text: str) -> str:
    """carbon.conf with peerlab's changes: create every new series at once, log to stdout."""
    text = re.sub(r"(?m)^MAX_CREATES_PER_MINUTE\s*=.*$", "MAX_CREATES_PER_MINUTE = inf", text)
    return re.sub(r"(?m)^LOG_DIR\s*=.*$", "LOG_DIR = /var/log/carbon/", text)


def local_settings(secret_key: str) -> str:
    return ("# Written by peerlab-graphite at container start.\n"
            f"SECRET_KEY = {secret_key!r}\n"
            "TIME_ZONE = 'UTC'\n"
            "LOG_ROTATION = False\n"
            "DEFAULT_XFILES_FACTOR = 0\n"
            "GRAPHITE_ROOT = '/usr/share/graphite-web'\n"
            "CONF_DIR = '/etc/graphite'\n"
            f"STORAGE_DIR = '{STORAGE}/whisper'\n"
            "STATIC_ROOT = '/usr/share/graphite-web/static'\n"
            "LOG_DIR = '/var/log/graphite'\n"
            f"INDEX_FILE = '{STORAGE}/search_index'\n"
            f"WHISPER_DIR = '{STORAGE}/whisper'\n"
            "CARBONLINK_HOSTS = ['127.0.0.1:7002']\n"
            "DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3',\n"
            f"                         'NAME': '{STORAGE}/graphite.db'}}}}\n")


def secret_key() -> str:
    """graphite-web's Django secret, generated once and kept in the volume (0600)."""
    path = os.path.join(STORAGE, "secret_key")
    if not os.path.exists(path):
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(48))
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip()


def write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def main() -> None:
    os.makedirs(os.path.join(STORAGE, "whisper"), exist_ok=True)
    for directory in ("/var/log/carbon", "/var/log/graphite"):
        os.makedirs(directory, exist_ok=True)
    write("/etc/carbon/storage-schemas.conf", schemas(os.environ.get("GRAPHITE_RETENTION", "10s:6h,1m:7d,10m:5y")))
    with open("/etc/carbon/carbon.conf", encoding="utf-8") as handle:
        write("/etc/carbon/carbon.conf", carbon_conf(handle.read()))
    write("/etc/graphite/local_settings.py", local_settings(secret_key()))
    subprocess.run(["chown", "-R", f"{USER}:{USER}", STORAGE, "/var/log/carbon", "/var/log/graphite"], check=True)
    subprocess.run(["runuser", "-u", USER, "--", "graphite-manage", "migrate", "--run-syncdb", "--verbosity", "0"],
                   check=True)
    children = [
        subprocess.Popen(["carbon-cache", "--config=/etc/carbon/carbon.conf", "--nodaemon", "--debug", "start"]),
        subprocess.Popen(["gunicorn", "--user", USER, "--group", USER, "--bind", "0.0.0.0:8080",
                          "--workers", os.environ.get("GRAPHITE_WORKERS", "2"), "--access-logfile", "-",
                          "--chdir", "/usr/share/graphite-web", "graphite.wsgi:application"]),
    ]

    def stop(signum: int, _frame: object) -> None:
        for child in children:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # Either process ending ends the container, so the restart policy brings both back.
    while all(child.poll() is None for child in children):
        time.sleep(1)
    stop(signal.SIGTERM, None)
    for child in children:
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
    sys.exit(1)


if __name__ == "__main__":
    main()
