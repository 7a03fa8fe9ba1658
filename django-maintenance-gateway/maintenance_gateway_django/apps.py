from __future__ import annotations

from django.apps import AppConfig


class MaintenanceGatewayConfig(AppConfig):
    name = "maintenance_gateway_django"
    label = "maintenance_gateway"
    verbose_name = "Maintenance gateway"

    def ready(self) -> None:
        from maintenance_gateway_django import checks  # noqa: F401 - registers the system check
