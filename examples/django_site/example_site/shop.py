"""The demo shop's API, as the Angular kit (examples/angular) calls it: a catalogue to read, a
cart to write to, and a checkout on its own path (the part partial maintenance can take down)."""

import json
import time

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

PRODUCTS = [
    {"id": 1, "name": "Espresso cups", "price": "EUR 12.00"},
    {"id": 2, "name": "Moka pot", "price": "EUR 19.50"},
    {"id": 3, "name": "Coffee beans", "price": "EUR 9.90"},
]
PRODUCT_IDS = {product["id"] for product in PRODUCTS}


@require_GET
def products(request):
    return JsonResponse({"products": PRODUCTS})


@csrf_exempt
@require_POST
def cart(request):
    """Adds one product; the cart itself lives in the browser in this demo."""
    try:
        product_id = json.loads(request.body or b"null")["product_id"]
    except (ValueError, TypeError, KeyError):
        return JsonResponse({"error": "send {\"product_id\": N}"}, status=400)
    if isinstance(product_id, bool) or product_id not in PRODUCT_IDS:
        return JsonResponse({"error": "no such product"}, status=400)
    return JsonResponse({"added": product_id})


@csrf_exempt
@require_http_methods(["GET", "POST"])
def checkout(request):
    if request.method == "POST":
        return JsonResponse({"order": f"A-{int(time.time() * 1000) % 1_000_000}"})
    return JsonResponse({"items": 2, "total": "EUR 31.50"})
