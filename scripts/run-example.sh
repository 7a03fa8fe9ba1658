#!/usr/bin/env bash
# `make run`: the example Django app under gunicorn on :8000, the gateway on :8080 in front.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin

(cd examples/django_site && exec ../../$bin/gunicorn -c gunicorn.conf.py example_site.wsgi) &
django=$!
trap 'kill $django 2>/dev/null || true; wait $django 2>/dev/null || true' EXIT INT TERM

for _ in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/8000) 2>/dev/null && break
  sleep 0.1
done

echo "Django on http://127.0.0.1:8000, the gateway on http://127.0.0.1:8080 (Ctrl-C stops both)"
echo "Try: curl -i http://127.0.0.1:8080/api/hello   then   $bin/maintenance-gateway on --for 10m"
export GATEWAY_CORS_ALLOWED_ORIGINS="${GATEWAY_CORS_ALLOWED_ORIGINS:-http://localhost:4200,http://127.0.0.1:4200}"
export GATEWAY_CORS_ALLOW_CREDENTIALS="${GATEWAY_CORS_ALLOW_CREDENTIALS:-true}"
export GATEWAY_LOG_FORMAT="${GATEWAY_LOG_FORMAT:-text}"
$bin/maintenance-gateway serve "$@"
