#!/usr/bin/env bash
# What the test suite needs besides the venv, made ready on this machine (`make test` runs this first):
#   Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 (the tests use the real servers; started when
#   none answers), and Debian's headless Chromium with chromedriver for the browser tests (installed when
#   missing, which needs root and apt). Each step says what it did; a step that cannot be done stops the
#   run with a message naming what to install, rather than leaving tests to fail later.
set -euo pipefail

say() { printf 'test services: %s\n' "$*"; }
answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"; else return 1; fi; }
apt_install() {
  command -v apt-get >/dev/null 2>&1 || return 1
  if [ -z "${_APT_UPDATED:-}" ]; then as_root apt-get update -qq || return 1; _APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! answers 6379; then
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server \
    || { say "Redis is needed on 127.0.0.1:6379: install redis-server"; exit 1; }
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no >/dev/null
  for _ in $(seq 50); do answers 6379 && break; sleep 0.1; done
  say "started Redis on 127.0.0.1:6379"
fi

if ! answers 5432; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    apt_install postgresql || { say "PostgreSQL is needed on 127.0.0.1:5432: install postgresql"; exit 1; }
  fi
  cluster=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  [ -n "$cluster" ] || { say "no PostgreSQL cluster under /etc/postgresql"; exit 1; }
  as_root pg_ctlcluster --skip-systemctl-redirect "$cluster" main start
  for _ in $(seq 100); do answers 5432 && break; sleep 0.1; done
  say "started PostgreSQL $cluster on 127.0.0.1:5432"
fi

if ! command -v chromedriver >/dev/null 2>&1 || ! { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }; then
  say "installing Debian's chromium and chromium-driver for the browser tests"
  apt_install chromium chromium-driver \
    || { say "the browser tests need chromium and chromedriver: apt-get install chromium chromium-driver"; exit 1; }
fi

# docker-compose renders infra/compose.yaml (`config` needs no container engine) for tests/infra
if ! command -v docker-compose >/dev/null 2>&1; then
  say "installing Debian's docker-compose to render infra/compose.yaml (no engine is used)"
  apt_install docker-compose \
    || { say "docker-compose could not be installed: tests/infra skips the render check (apt-get install docker-compose)"; }
fi
