"""JSON endpoints of the kinds a real site has: reads, a write, a stream, cookies."""

import hashlib
import json
import time

from django.http import JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt


def home(request):
    # The same warning the front end shows, from the gateway's notice: request.maintenance
    # (django-maintenance-gateway's middleware) and its {% maintenance_banner %} tag.
    return render(request, "home.html")


def healthz(request):
    return JsonResponse({"ok": True})


def hello(request):
    return JsonResponse({"message": "hello from Django", "method": request.method})


@csrf_exempt
def echo(request):
    if request.method != "POST":
        return JsonResponse({"error": "POST only"}, status=405)
    try:
        payload = json.loads(request.body or b"null")
    except ValueError:
        return JsonResponse({"error": "not JSON"}, status=400)
    return JsonResponse({"received": payload})


@csrf_exempt
def upload(request):
    """Counts and hashes a request body of any size without holding it."""
    digest = hashlib.sha256()
    size = 0
    while True:
        chunk = request.read(64 * 1024)
        if not chunk:
            break
        size += len(chunk)
        digest.update(chunk)
    return JsonResponse({"bytes": size, "sha256": digest.hexdigest()})


def stream(request):
    """Server-sent events, one every ``interval`` seconds."""
    count = int(request.GET.get("count", "5"))
    interval = float(request.GET.get("interval", "0.2"))

    def events():
        for number in range(count):
            yield f"data: event {number}\n\n".encode()
            time.sleep(interval)

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    return response


def cookies(request):
    response = JsonResponse({"cookies": ["session", "csrftoken", "theme"]})
    response.set_cookie("session", "abc123", httponly=True, samesite="Lax")
    response.set_cookie("csrftoken", "tok456", samesite="Lax")
    response.set_cookie("theme", "dark")
    return response


def request_info(request):
    """What Django saw: lets tests check what the gateway forwarded."""
    headers = {key: value for key, value in request.headers.items()}
    return JsonResponse(
        {
            "method": request.method,
            "path": request.path,
            "full_path": request.get_full_path(),
            "headers": headers,
            "remote_addr": request.META.get("REMOTE_ADDR"),
        }
    )
