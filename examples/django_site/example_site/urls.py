from django.urls import path

from example_site import shop, views

urlpatterns = [
    path("", views.home),
    path("healthz", views.healthz),
    path("api/hello", views.hello),
    path("api/echo", views.echo),
    path("api/upload", views.upload),
    path("api/stream", views.stream),
    path("api/cookies", views.cookies),
    path("api/request-info", views.request_info),
    path("api/products", shop.products),
    path("api/cart", shop.cart),
    path("api/checkout/", shop.checkout),
]
