"""``ecs-task-definition``: a team's existing ECS task definition, with nginx and the gateway put in
front of its Django container, as a new revision to register.

It reads what ``aws ecs describe-task-definition`` prints and writes what
``aws ecs register-task-definition --cli-input-json`` takes: the read-only fields describe adds
are dropped, the containers the team has are kept as they are, and nginx and the gateway are
added the way config/ecs-stack.yaml defines them (ports, ``dependsOn`` HEALTHY, health checks,
``stopTimeout``, the gateway's environment and secrets, the timeout chain);
tests/test_cli_taskdef.py holds the two to each other. What the command cannot do itself (the
roles, the target group, the service) it says on stderr.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from typing import Any, TextIO

from gateway.cli.output import shown
from gateway.errors import ConfigError
from gateway.settings import parse_origins, parse_paths, parse_store, parse_tokens_list
from gateway.stores import parse_store_url

# What describe-task-definition answers beside what register-task-definition takes (botocore's
# ECS model: the members of TaskDefinition that RegisterTaskDefinition's input does not have).
READ_ONLY_FIELDS = (
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
    "deleteRequestedAt",
)

# config/ecs-stack.yaml's values (its Ports and Timeouts mappings, its health checks).
NGINX_PORT = 80
GATEWAY_PORT = 8080
TIMEOUTS = {
    "NginxClientKeepalive": 65,
    "NginxProxyRead": 55,
    "NginxUpstreamKeepalive": 60,
    "GatewayUpstreamRead": 50,
    "GatewayUpstreamIdle": 4,
    "GatewayWebSocketPing": 20,
    "GatewayDrain": 25,
    "StopTimeout": 30,
    "DeregistrationDelay": 60,
    "DjangoHealthInterval": 20,
}
HEALTH_RETRIES = 3
LOG_BUFFER = "25m"
DEFAULT_CORS_ALLOW_HEADERS = "accept,authorization,content-type,user-agent,x-csrftoken,x-requested-with"
# The stack's secret parameters' pattern: a full ARN, with the six characters Secrets Manager adds.
SECRET_ARN = re.compile(r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}")
ROLE_ARN = re.compile(r"arn:(aws[a-z-]*):iam::([0-9]{12}):role/.+")
NEW_CONTAINERS = ("nginx", "gateway")


class TaskDefinitionError(ValueError):
    """Why the task definition cannot be given a gateway; the message names what to change."""


def _secret_arn(text: str) -> str:
    value = text.strip()
    if not SECRET_ARN.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"{ascii(value[:200])} is not a secret's full ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-AbCdEf): "
            "ECS takes a name or a partial ARN as a complete ARN, and a name ending in - and six characters is then not found"
        )
    return value


def _store(text: str) -> str:
    try:
        value = parse_store(text)
    except (ValueError, ConfigError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if parse_store_url(value)[0] != "dynamodb":
        raise argparse.ArgumentTypeError("the tasks of a service share one state: give the dynamodb:// store (dynamodb://TABLE?key=KEY&region=REGION)")
    return value


def _checked(parse: Any) -> Any:
    def check(text: str) -> str:
        try:
            parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text.strip()

    return check


def _health_path(text: str) -> str:
    value = _checked(parse_paths)(text)
    if "," in value or "//" in value or " " in value:
        raise argparse.ArgumentTypeError(f"{ascii(value)} is not one URL path")
    return str(value)


def add_taskdef_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    summary = "print a task definition with nginx and the gateway in front of its Django container"
    parser = commands.add_parser(
        "ecs-task-definition",
        help=summary,
        description=(
            "Print a task definition with nginx and the gateway in front of its Django container. "
            "Reads `aws ecs describe-task-definition` output; prints JSON for "
            "`aws ecs register-task-definition --cli-input-json file://...`, with nginx and the gateway as "
            "config/ecs-stack.yaml runs them, and on stderr what the roles, the target group and the service still need."
        ),
    )
    parser.add_argument("--from", dest="source", required=True, metavar="FILE", help="describe-task-definition's JSON, or - for stdin")
    parser.add_argument("--nginx-image", required=True, metavar="IMAGE", help="the image built from config/nginx/Dockerfile")
    parser.add_argument("--gateway-image", required=True, metavar="IMAGE", help="the image built from the Dockerfile")
    parser.add_argument("--store", required=True, type=_store, metavar="URL", help="GATEWAY_STORE: dynamodb://TABLE?key=KEY&region=REGION")
    parser.add_argument("--admin-tokens-secret", required=True, type=_secret_arn, metavar="ARN", help="the full ARN of the secret holding GATEWAY_ADMIN_TOKENS")
    parser.add_argument("--bypass-secret", required=True, type=_secret_arn, metavar="ARN", help="the full ARN of the secret holding GATEWAY_BYPASS_SECRET")
    parser.add_argument("--django-container", metavar="NAME", help="the Django container (default: the only one with a port mapping)")
    parser.add_argument("--django-port", type=int, metavar="PORT", help="the port Django listens on (default: its first port mapping)")
    parser.add_argument(
        "--django-health-path", type=_health_path, default="/healthz", metavar="PATH",
        help="a Django URL answering 200 with no database query, for a Django without a health check (default /healthz)",
    )
    parser.add_argument("--allowed-origins", type=_checked(parse_origins), default="", metavar="ORIGINS", help="GATEWAY_CORS_ALLOWED_ORIGINS (Django's CORS_ALLOWED_ORIGINS)")
    parser.add_argument("--cors-allow-credentials", choices=("true", "false"), default="false", help="GATEWAY_CORS_ALLOW_CREDENTIALS (default false)")
    parser.add_argument(
        "--cors-allow-headers", type=_checked(parse_tokens_list), default=DEFAULT_CORS_ALLOW_HEADERS, metavar="HEADERS",
        help="GATEWAY_CORS_ALLOW_HEADERS (default the stack's)",
    )


def _pairs(items: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in items]


def _log_configuration(django: dict[str, Any], prefix: str) -> dict[str, Any] | None:
    """Django's awslogs settings for a new container: the same group, its own stream prefix,
    non-blocking (a slow CloudWatch Logs must not stall the container's writes)."""
    current = django.get("logConfiguration")
    if not isinstance(current, dict) or current.get("logDriver") != "awslogs":
        return None
    options = {**current.get("options", {}), "awslogs-stream-prefix": prefix, "mode": "non-blocking", "max-buffer-size": LOG_BUFFER}
    return {"logDriver": "awslogs", "options": options}


def nginx_container(image: str, django: dict[str, Any]) -> dict[str, Any]:
    t = TIMEOUTS
    container: dict[str, Any] = {
        "name": "nginx",
        "image": image,
        "essential": True,
        "portMappings": [{"containerPort": NGINX_PORT, "protocol": "tcp"}],
        "environment": _pairs([
            ("NGINX_LISTEN_ADDRESS", "0.0.0.0"),
            ("NGINX_PORT", str(NGINX_PORT)),
            ("GATEWAY_PORT", str(GATEWAY_PORT)),
            ("NGINX_CLIENT_KEEPALIVE_TIMEOUT", str(t["NginxClientKeepalive"])),
            ("NGINX_PROXY_READ_TIMEOUT", str(t["NginxProxyRead"])),
            ("NGINX_UPSTREAM_KEEPALIVE_TIMEOUT", str(t["NginxUpstreamKeepalive"])),
        ]),
        "dependsOn": [{"containerName": "gateway", "condition": "HEALTHY"}],
        "healthCheck": {
            "command": ["CMD-SHELL", "curl -fsS -o /dev/null --max-time 3 http://127.0.0.1:${NGINX_PORT}/_gateway/health || exit 1"],
            "interval": 10, "timeout": 5, "retries": 3, "startPeriod": 5,
        },
        "stopTimeout": t["StopTimeout"],
    }
    logs = _log_configuration(django, "nginx")
    if logs is not None:
        container["logConfiguration"] = logs
    return container


def gateway_container(args: argparse.Namespace, django: dict[str, Any], django_port: int, health_path: str) -> dict[str, Any]:
    t = TIMEOUTS
    container: dict[str, Any] = {
        "name": "gateway",
        "image": args.gateway_image,
        "essential": True,
        "command": ["serve"],
        "environment": _pairs([
            ("GATEWAY_PORT", str(GATEWAY_PORT)),
            ("GATEWAY_UPSTREAM_URL", f"http://127.0.0.1:{django_port}"),
            ("GATEWAY_STORE", args.store),
            ("GATEWAY_REFRESH_INTERVAL", "2"),
            ("GATEWAY_FAIL_MODE", "open"),
            ("GATEWAY_FORWARDED_ALLOW_IPS", "127.0.0.1"),
            ("GATEWAY_FORWARDED_HOPS", "2"),
            ("GATEWAY_CORS_ALLOWED_ORIGINS", args.allowed_origins),
            ("GATEWAY_CORS_ALLOW_CREDENTIALS", args.cors_allow_credentials),
            ("GATEWAY_CORS_ALLOW_HEADERS", args.cors_allow_headers),
            ("GATEWAY_BYPASS_PATHS", health_path),
            ("GATEWAY_UPSTREAM_READ_TIMEOUT", str(t["GatewayUpstreamRead"])),
            ("GATEWAY_UPSTREAM_IDLE_TIMEOUT", str(t["GatewayUpstreamIdle"])),
            ("GATEWAY_DRAIN_TIMEOUT", str(t["GatewayDrain"])),
            ("GATEWAY_WEBSOCKET_PING_INTERVAL", str(t["GatewayWebSocketPing"])),
        ]),
        "secrets": [
            {"name": "GATEWAY_ADMIN_TOKENS", "valueFrom": args.admin_tokens_secret},
            {"name": "GATEWAY_BYPASS_SECRET", "valueFrom": args.bypass_secret},
        ],
        "dependsOn": [{"containerName": django["name"], "condition": "HEALTHY"}],
        "healthCheck": {"command": ["CMD", "maintenance-gateway", "healthcheck"], "interval": 10, "timeout": 5, "retries": 3, "startPeriod": 10},
        "stopTimeout": t["StopTimeout"],
    }
    logs = _log_configuration(django, "gateway")
    if logs is not None:
        container["logConfiguration"] = logs
    return container


def django_health_check(port: int, path: str) -> dict[str, Any]:
    """The stack's check for Django: urllib, since the image has Python; as long as the slowest
    request the chain allows, since the check waits behind the traffic in the same workers."""
    probe = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}{path}', timeout=3)"
    return {"command": ["CMD", "python", "-c", probe], "interval": TIMEOUTS["DjangoHealthInterval"], "timeout": 5, "retries": HEALTH_RETRIES, "startPeriod": 60}


def _find_django(containers: list[dict[str, Any]], name: str | None) -> dict[str, Any]:
    names = [str(c.get("name")) for c in containers]
    if name is not None:
        for container in containers:
            if container.get("name") == name:
                return container
        raise TaskDefinitionError(f"no container named {ascii(name)}; the task definition has {', '.join(map(ascii, names))}")
    serving = [c for c in containers if c.get("portMappings")]
    if len(serving) == 1:
        return serving[0]
    which = "none has" if not serving else f"{', '.join(ascii(c.get('name')) for c in serving)} have"
    raise TaskDefinitionError(f"give --django-container: of {', '.join(map(ascii, names))}, {which} a port mapping")


def _django_port(django: dict[str, Any], given: int | None) -> int:
    mappings = django.get("portMappings") or []
    mapped = mappings[0].get("containerPort") if mappings and isinstance(mappings[0], dict) else None
    port = given if given is not None else mapped
    if not isinstance(port, int):
        raise TaskDefinitionError(f"container {ascii(django.get('name'))} has no port mapping: give --django-port")
    if not 0 < port < 65536:
        raise TaskDefinitionError(f"--django-port {port} is not a port")
    if port in (NGINX_PORT, GATEWAY_PORT):
        raise TaskDefinitionError(
            f"Django listens on {port}, which nginx ({NGINX_PORT}) or the gateway ({GATEWAY_PORT}) takes in the task: "
            "move Django to another port (gunicorn --bind 127.0.0.1:8000) first"
        )
    return port


def _keeps_connections_long_enough(command: Any) -> bool:
    """Whether Django's command keeps an idle connection open longer than the gateway's idle timeout."""
    if not isinstance(command, list):
        return False
    for flag in ("--keep-alive", "--timeout-keep-alive"):
        if flag in command[:-1]:
            try:
                return float(command[command.index(flag) + 1]) > TIMEOUTS["GatewayUpstreamIdle"]
            except ValueError:
                return False
    return False


def _table_arn(store: str, role_arn: str | None) -> tuple[str, str]:
    """The table's ARN (the account and partition from the task's role, when it has one) and the key."""
    from gateway.stores.dynamodb import DynamoDBLocation

    location = DynamoDBLocation.parse(store)
    match = ROLE_ARN.fullmatch(role_arn or "")
    partition, account = match.groups() if match else ("aws", "ACCOUNT")
    return f"arn:{partition}:dynamodb:{location.region or 'REGION'}:{account}:table/{location.table}", location.key


def convert(document: Any, args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """The new revision (register-task-definition's input) and what the team must still do."""
    if not isinstance(document, dict):
        raise TaskDefinitionError("expected the JSON object `aws ecs describe-task-definition` prints")
    definition = document.get("taskDefinition", document)
    if not isinstance(definition, dict) or not isinstance(definition.get("containerDefinitions"), list):
        raise TaskDefinitionError("no taskDefinition.containerDefinitions in the input: give `aws ecs describe-task-definition --task-definition FAMILY` output")
    revision = {key: copy.deepcopy(value) for key, value in definition.items() if key not in READ_ONLY_FIELDS}
    tags = document.get("tags")
    if isinstance(tags, list) and tags:
        revision["tags"] = tags
    if revision.get("networkMode") != "awsvpc":
        raise TaskDefinitionError(
            f"networkMode is {ascii(revision.get('networkMode'))}: nginx, the gateway and Django reach each other on 127.0.0.1, "
            "which awsvpc gives (every Fargate task has it); use awsvpc"
        )
    containers: list[dict[str, Any]] = revision["containerDefinitions"]
    taken = [c.get("name") for c in containers if c.get("name") in NEW_CONTAINERS]
    if taken:
        raise TaskDefinitionError(f"the task definition already has a container named {ascii(taken[0])}: has it been given a gateway already?")
    django = _find_django(containers, args.django_container)
    port = _django_port(django, args.django_port)
    used = {m.get("containerPort") for c in containers for m in c.get("portMappings") or [] if isinstance(m, dict)}
    for needed in (NGINX_PORT, GATEWAY_PORT):
        if needed in used:
            raise TaskDefinitionError(f"a container of the task maps port {needed}, which nginx or the gateway needs")

    notes: list[str] = []
    health_path = args.django_health_path
    if "healthCheck" not in django:
        django["healthCheck"] = django_health_check(port, health_path)
        notes.append(
            f"Django had no health check: it is now GET http://127.0.0.1:{port}{health_path} with Python's urllib; "
            f"that URL must answer 200 with no database query, and 127.0.0.1 be in ALLOWED_HOSTS (--django-health-path for another)"
        )
    else:
        check = django["healthCheck"]
        given_up = float(check.get("interval", 30)) * int(check.get("retries", 3))
        if given_up <= TIMEOUTS["NginxProxyRead"]:
            notes.append(
                f"Django's own health check gives up after {given_up:g} s (interval x retries), less than the {TIMEOUTS['NginxProxyRead']} s "
                "a request may take: when slow requests fill its workers the task is replaced; make it 20 s x 3"
            )
        notes.append(f"Django's health check is kept as it was; GATEWAY_BYPASS_PATHS lets {health_path} through in maintenance (--django-health-path)")
    django.setdefault("stopTimeout", TIMEOUTS["StopTimeout"])
    if not _keeps_connections_long_enough(django.get("command")):
        notes.append(
            f"Django must keep an idle connection open longer than the gateway's {TIMEOUTS['GatewayUpstreamIdle']} s "
            "(gunicorn --keep-alive 5 with gthread workers; gunicorn's default is 2 s; uvicorn's is 5 s), or the gateway reuses one it is closing: a 502 now and then"
        )
    if _log_configuration(django, "django") is None:
        notes.append("Django does not log with awslogs: nginx and the gateway were given no log configuration; add one")
    elif django["logConfiguration"].get("options", {}).get("mode") != "non-blocking":
        notes.append("Django's awslogs is blocking: a slow CloudWatch Logs stalls its writes and its requests (options mode: non-blocking, max-buffer-size: 25m)")
    revision["containerDefinitions"] = [nginx_container(args.nginx_image, django), gateway_container(args, django, port, health_path), *containers]

    table, key = _table_arn(args.store, revision.get("taskRoleArn") or revision.get("executionRoleArn"))
    statement = {
        "Sid": "ReadAndChangeThisSitesMaintenanceState",
        "Effect": "Allow",
        "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"],
        "Resource": table,
        "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [key]}},
    }
    role = revision.get("taskRoleArn")
    notes.append(
        f"the task role ({role or 'none yet: add taskRoleArn'}) needs this statement for the gateway (the role is shared: Django gets it too):\n"
        + json.dumps(statement, indent=2)
    )
    notes.append(
        f"the execution role ({revision.get('executionRoleArn') or 'none yet: add executionRoleArn'}) needs secretsmanager:GetSecretValue on "
        f"{args.admin_tokens_secret} and {args.bypass_secret} (and kms:Decrypt on their key if it is your own)"
    )
    notes.append(
        f"a new target group: IP targets on port {NGINX_PORT} (nginx's, not Django's {port}), health check GET /_gateway/health answering 200, "
        f"deregistration_delay.timeout_seconds {TIMEOUTS['DeregistrationDelay']}; the service's load balancer is then "
        f"containerName nginx, containerPort {NGINX_PORT}; move traffic to it with weights on the listener rule (README: the cut-over)"
    )
    notes.append(f"the tasks' security group must let the load balancer in on port {NGINX_PORT}")
    notes.append(
        f"once the cut-over is done, bind Django to 127.0.0.1:{port} and drop its port mapping, so that nothing reaches it past the gateway"
    )
    if revision.get("memory") is not None:
        notes.append("the task's memory now holds nginx and the gateway too (about 200 MiB together): check the task size")
    return revision, notes


# `aws ecs describe-task-definition` output is a few KiB (ECS takes at most 64 KiB of it back).
MAX_SOURCE_CHARACTERS = 1 << 20


def read_source(source: str, stdin: TextIO) -> Any:
    try:
        if source == "-":
            text = stdin.read(MAX_SOURCE_CHARACTERS + 1)
        else:
            with open(source, encoding="utf-8") as handle:
                text = handle.read(MAX_SOURCE_CHARACTERS + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskDefinitionError(f"--from {source}: {getattr(exc, 'strerror', None) or exc}") from None
    if len(text) > MAX_SOURCE_CHARACTERS:
        raise TaskDefinitionError(f"--from {source}: larger than {MAX_SOURCE_CHARACTERS} characters: not a task definition")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deep" if isinstance(exc, RecursionError) else str(exc)
        raise TaskDefinitionError(f"--from {source}: not JSON ({reason})") from None


def run(args: argparse.Namespace) -> int:
    from gateway.cli.parser import EXIT_OK, EXIT_USAGE

    try:
        revision, notes = convert(read_source(args.source, sys.stdin), args)
    except TaskDefinitionError as exc:
        print(f"maintenance-gateway: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (TypeError, AttributeError, ValueError) as exc:
        # A field of the wrong JSON type somewhere in the input (a container that is no object,
        # a null in a command): not the describe-task-definition output the command takes.
        print(f"maintenance-gateway: --from {args.source}: not a task definition ({type(exc).__name__}: {shown(str(exc))[:200]})", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(revision, indent=2, default=str))
    print("maintenance-gateway: the new revision is on stdout (aws ecs register-task-definition --cli-input-json file://FILE); still to do:", file=sys.stderr)
    for note in notes:
        print(f"  - {note}", file=sys.stderr)
    return EXIT_OK
