#!/usr/bin/env bash
# `make run`: the example Django app under gunicorn on :8000 (HTTP) and under uvicorn on :8001
# (its Channels WebSockets), the gateway on :8080 in front of both.
# EXAMPLE_DJANGO_PORT and EXAMPLE_ASGI_PORT move Django; GATEWAY_PORT / GATEWAY_HOST (or the
# gateway's own flags passed to this script: --port 9090 ...) move the gateway.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/.venv/bin
# Absolute: the command the banner suggests reads the same file from any directory.
export GATEWAY_STORE="${GATEWAY_STORE:-file:$PWD/maintenance-state.json}"
django_port="${EXAMPLE_DJANGO_PORT:-8000}"
asgi_port="${EXAMPLE_ASGI_PORT:-8001}"

# The gateway's address as it will listen: a flag passed through wins over its variable.
gateway_host="${GATEWAY_HOST:-127.0.0.1}"
gateway_port="${GATEWAY_PORT:-8080}"
gateway_port_setting=GATEWAY_PORT
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --port) gateway_port="${args[i + 1]:-}"; gateway_port_setting=--port ;;
    --port=*) gateway_port="${args[i]#--port=}"; gateway_port_setting=--port ;;
    --host) gateway_host="${args[i + 1]:-}" ;;
    --host=*) gateway_host="${args[i]#--host=}" ;;
  esac
done
# A port is digits only: " 18101", "8_080" and "+80" would pass to a server that reads them as
# numbers while the checks below, which match digits, would skip them.
for pair in "$django_port:EXAMPLE_DJANGO_PORT" "$asgi_port:EXAMPLE_ASGI_PORT" "$gateway_port:$gateway_port_setting"; do
  port="${pair%:*}" setting="${pair##*:}"
  if ! [[ "$port" =~ ^[0-9]{1,5}$ ]] || ((10#$port < 1 || 10#$port > 65535)); then
    printf 'run-example: %s must be a port number 1..65535, not %q\n' "$setting" "$port" >&2
    exit 2
  fi
done
# Two of these servers on one port: the second would fail to bind, or answer for the first.
if ((10#$django_port == 10#$asgi_port)); then
  echo "run-example: EXAMPLE_DJANGO_PORT and EXAMPLE_ASGI_PORT are the same port ($django_port); give each server its own" >&2
  exit 2
fi
for pair in "$django_port:EXAMPLE_DJANGO_PORT" "$asgi_port:EXAMPLE_ASGI_PORT"; do
  if ((10#${pair%%:*} == 10#$gateway_port)); then
    echo "run-example: ${pair#*:} and $gateway_port_setting are the same port ($gateway_port); give each server its own" >&2
    exit 2
  fi
done
case "$gateway_host" in
  0.0.0.0 | "::" | "") url_host=127.0.0.1 ;;  # listening everywhere: reachable on loopback
  *:*) url_host="[$gateway_host]" ;;          # an IPv6 address
  *) url_host="$gateway_host" ;;
esac
gateway_url="http://$url_host:$gateway_port"

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Something already on a port would answer in place of the server started here, silently.
for pair in "$django_port:EXAMPLE_DJANGO_PORT" "$asgi_port:EXAMPLE_ASGI_PORT" "$gateway_port:$gateway_port_setting"; do
  port="${pair%%:*}" setting="${pair#*:}"
  if [[ "$port" =~ ^[0-9]+$ ]] && answers "$port"; then
    echo "run-example: port $port is in use by another program; free it or choose another port with $setting" >&2
    exit 1
  fi
done

(cd examples/django_site && EXAMPLE_BIND="127.0.0.1:$django_port" exec "$bin/gunicorn" -c gunicorn.conf.py example_site.wsgi) &
django=$!
(cd examples/django_site && exec "$bin/uvicorn" example_site.asgi:application --host 127.0.0.1 --port "$asgi_port" --log-level warning) &
asgi=$!
trap 'kill $django $asgi 2>/dev/null || true; wait $django $asgi 2>/dev/null || true' EXIT INT TERM

# Each server is up when its port answers while its own process is still alive: a port that
# answers after the process died belongs to someone else.
wait_for() {
  local name=$1 pid=$2 port=$3 setting=$4
  for _ in $(seq 300); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "run-example: $name did not start (see its output above); its port is $port ($setting)" >&2
      exit 1
    fi
    if answers "$port"; then
      if kill -0 "$pid" 2>/dev/null; then return 0; fi
      echo "run-example: $name did not start, and another program answers on port $port; choose another port with $setting" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "run-example: $name did not start within 30 s on port $port ($setting)" >&2
  exit 1
}
wait_for "Django (gunicorn)" "$django" "$django_port" EXAMPLE_DJANGO_PORT
wait_for "Django's ASGI server (uvicorn)" "$asgi" "$asgi_port" EXAMPLE_ASGI_PORT

ws_url="ws://$url_host:$gateway_port"
echo "Django on http://127.0.0.1:$django_port (WebSockets on :$asgi_port), the gateway on $gateway_url (Ctrl-C stops all)"
printf -v store_assignment 'GATEWAY_STORE=%q' "$GATEWAY_STORE"  # quoted only when the path needs it
echo "Try: curl -i $gateway_url/api/hello   then   $store_assignment $bin/maintenance-gateway on --for 10m"
echo "WebSockets: $ws_url/ws/echo/ and $ws_url/ws/ticks/ (an event every 100 ms)"
export GATEWAY_UPSTREAM_URL="${GATEWAY_UPSTREAM_URL:-http://127.0.0.1:$django_port}"
export GATEWAY_WEBSOCKET_UPSTREAM_URL="${GATEWAY_WEBSOCKET_UPSTREAM_URL:-http://127.0.0.1:$asgi_port}"
# The gateway's CORS settings say what Django's (django-cors-headers) say, so the preflights it
# answers in maintenance allow what Django allows (the demo's X-Client-Version header
# included): django-maintenance-gateway derives them. A GATEWAY_CORS_* given to make run wins.
cors_env=$(cd examples/django_site && "$bin/python" manage.py gateway_cors_env)
while IFS='=' read -r name value; do
  [[ -v $name ]] || export "$name=$value"
done <<<"$cors_env"
export GATEWAY_LOG_FORMAT="${GATEWAY_LOG_FORMAT:-text}"
"$bin/maintenance-gateway" serve "$@"
