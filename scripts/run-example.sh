#!/usr/bin/env bash
# `make run`: the example Django app under gunicorn on :8000 (HTTP) and under uvicorn on :8001
# (its Channels WebSockets), the gateway on :8080 in front of both.
# EXAMPLE_DJANGO_PORT, EXAMPLE_ASGI_PORT and the gateway's own flags (--port ...) move them.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/.venv/bin
django_port="${EXAMPLE_DJANGO_PORT:-8000}"
asgi_port="${EXAMPLE_ASGI_PORT:-8001}"

(cd examples/django_site && EXAMPLE_BIND="127.0.0.1:$django_port" exec "$bin/gunicorn" -c gunicorn.conf.py example_site.wsgi) &
django=$!
(cd examples/django_site && exec "$bin/uvicorn" example_site.asgi:application --host 127.0.0.1 --port "$asgi_port" --log-level warning) &
asgi=$!
trap 'kill $django $asgi 2>/dev/null || true; wait $django $asgi 2>/dev/null || true' EXIT INT TERM

for port in "$django_port" "$asgi_port"; do
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
done

echo "Django on http://127.0.0.1:$django_port (WebSockets on :$asgi_port), the gateway on http://127.0.0.1:8080 (Ctrl-C stops all)"
echo "Try: curl -i http://127.0.0.1:8080/api/hello   then   $bin/maintenance-gateway on --for 10m"
echo "WebSockets: ws://127.0.0.1:8080/ws/echo/ and ws://127.0.0.1:8080/ws/ticks/ (an event every 100 ms)"
export GATEWAY_UPSTREAM_URL="${GATEWAY_UPSTREAM_URL:-http://127.0.0.1:$django_port}"
export GATEWAY_WEBSOCKET_UPSTREAM_URL="${GATEWAY_WEBSOCKET_UPSTREAM_URL:-http://127.0.0.1:$asgi_port}"
export GATEWAY_CORS_ALLOWED_ORIGINS="${GATEWAY_CORS_ALLOWED_ORIGINS:-http://localhost:4200,http://127.0.0.1:4200}"
export GATEWAY_CORS_ALLOW_CREDENTIALS="${GATEWAY_CORS_ALLOW_CREDENTIALS:-true}"
export GATEWAY_LOG_FORMAT="${GATEWAY_LOG_FORMAT:-text}"
"$bin/maintenance-gateway" serve "$@"
