"""``manage.py gateway_cors_env``: the gateway's GATEWAY_CORS_* settings from django-cors-headers'.

Prints every variable, defaults included, so that the gateway answers preflights and 503s as
django-cors-headers answers Django's requests, e.g. into the gateway container's environment::

    python manage.py gateway_cors_env > gateway-cors.env   # docker run --env-file gateway-cors.env ...
    eval "$(python manage.py gateway_cors_env --format shell)"
    python manage.py gateway_cors_env --format json        # an ECS task definition's "environment"
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from maintenance_gateway_django.cors import MAX_PREFLIGHT_MAX_AGE, CorsSettingError, from_django, gateway_values


class Command(BaseCommand):
    # A system check (a CORS drift, a value the gateway would refuse) must not stand between an
    # operator and the switch.
    requires_system_checks: list[str] = []
    help = "Print the gateway's GATEWAY_CORS_* settings that say what django-cors-headers' CORS_* settings say."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--format",
            choices=("env", "shell", "json"),
            default="env",
            help="env: NAME=value lines (docker --env-file); shell: export lines, quoted; "
            'json: [{"name": ..., "value": ...}] as an ECS container\'s environment',
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            django = from_django(settings)
            values = gateway_values(django)
        except CorsSettingError as exc:
            raise CommandError(f"{exc}; the gateway cannot be given this value", returncode=2) from None
        if django.preflight_max_age > MAX_PREFLIGHT_MAX_AGE:
            self.stderr.write(
                f"CORS_PREFLIGHT_MAX_AGE is {django.preflight_max_age}: the gateway takes at most {MAX_PREFLIGHT_MAX_AGE} "
                "(browsers cache a preflight a day at most, so it says the same)"
            )
        if options["format"] == "json":
            self.stdout.write(json.dumps([{"name": name, "value": value} for name, value in values], indent=2))
        elif options["format"] == "shell":
            self.stdout.write("\n".join(f"export {name}={shlex.quote(value)}" for name, value in values))
        else:
            self.stdout.write("\n".join(f"{name}={value}" for name, value in values))
