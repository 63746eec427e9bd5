#!/usr/bin/env bash
# Install the system packages the test suite needs when they are missing (Debian, as root);
# elsewhere, say what is missing and how to get it.
set -euo pipefail
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
  || { command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; } || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
# scripts/with-services.sh starts a throwaway RabbitMQ node for the RabbitMQ relay and Celery tests.
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || command -v rabbitmq-server >/dev/null 2>&1 || missing+=(rabbitmq-server)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)  # promtool checks deploy/prometheus/alerts.yml
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing: ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --no-upgrade "${missing[@]}" >/dev/null
else
  echo "missing system packages: ${missing[*]} (Debian: apt-get install ${missing[*]}; macOS: brew install postgresql redis chromium rabbitmq)" >&2
  exit 1
fi
