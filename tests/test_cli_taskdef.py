"""``maintenance-gateway ecs-task-definition``: an existing task definition given a gateway.

The input is what ``aws ecs describe-task-definition`` prints for a typical Django service
(checked against botocore's DescribeTaskDefinition output shape, so it is a shape AWS gives);
the output must be what RegisterTaskDefinition takes (botocore's input shape), and its nginx
and gateway containers the ones config/ecs-stack.yaml defines.
"""

from __future__ import annotations

import copy
import io
import json
import subprocess
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from gateway.cli import taskdef
from gateway.cli.commands import main
from tests.stack import ACCOUNT, REGION, render, task_definition_api
from tests.support import BIN, base_env

ECS = botocore.session.get_session().get_service_model("ecs")
SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:"
ADMIN_TOKENS = SECRET + "maintenance-gateway/shop-prod/admin-tokens-Xy12Zw"
BYPASS = SECRET + "maintenance-gateway/shop-prod/bypass-Ab12Cd"
STORE = f"dynamodb://shop-maintenance?key=shop-prod&region={REGION}"
NGINX_IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/shop-nginx:1.28"
GATEWAY_IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/maintenance-gateway:0.1.0"

# `aws ecs describe-task-definition --task-definition shop-prod --include TAGS` for a Django
# service as a team runs it before the gateway: one container on 8000, the ALB in front.
DESCRIBED: dict[str, Any] = {
    "taskDefinition": {
        "taskDefinitionArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/shop-prod:41",
        "containerDefinitions": [
            {
                "name": "web",
                "image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/shop-django:2026-11-26",
                "cpu": 0,
                "portMappings": [{"containerPort": 8000, "hostPort": 8000, "protocol": "tcp", "name": "web-8000-tcp", "appProtocol": "http"}],
                "essential": True,
                "command": ["gunicorn", "--bind", "0.0.0.0:8000", "--worker-class", "gthread", "--keep-alive", "5", "shop.wsgi"],
                "environment": [{"name": "DJANGO_SETTINGS_MODULE", "value": "shop.settings.prod"}],
                "mountPoints": [],
                "volumesFrom": [],
                "secrets": [{"name": "DATABASE_URL", "valueFrom": SECRET + "shop-prod/database-url-Qw12Er"}],
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {"awslogs-group": "/ecs/shop-prod", "awslogs-region": REGION, "awslogs-stream-prefix": "ecs"},
                },
                "systemControls": [],
            }
        ],
        "family": "shop-prod",
        "taskRoleArn": f"arn:aws:iam::{ACCOUNT}:role/shop-prod-task",
        "executionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/shop-prod-execution",
        "networkMode": "awsvpc",
        "revision": 41,
        "volumes": [],
        "status": "ACTIVE",
        "requiresAttributes": [
            {"name": "com.amazonaws.ecs.capability.logging-driver.awslogs"},
            {"name": "ecs.capability.execution-role-awslogs"},
            {"name": "ecs.capability.secrets.asm.environment-variables"},
            {"name": "ecs.capability.task-eni"},
        ],
        "placementConstraints": [],
        "compatibilities": ["EC2", "FARGATE"],
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "1024",
        "memory": "2048",
        "runtimePlatform": {"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},
        "registeredAt": "2026-11-26T10:00:00.000000+00:00",
        "registeredBy": f"arn:aws:sts::{ACCOUNT}:assumed-role/deploy/ci",
    },
    "tags": [{"key": "team", "value": "shop"}],
}
REQUIRED = [
    "--nginx-image", NGINX_IMAGE, "--gateway-image", GATEWAY_IMAGE, "--store", STORE,
    "--admin-tokens-secret", ADMIN_TOKENS, "--bypass-secret", BYPASS,
]


def convert(document: dict[str, Any], *flags: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any, str]:
    """The command in this process, the document on stdin: (exit code, stdout's JSON or None, stderr)."""
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(document)))
    code = main(["ecs-task-definition", "--from", "-", *REQUIRED, *flags])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


@pytest.fixture
def converted(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, Any], str]:
    code, revision, err = convert(DESCRIBED, "--allowed-origins", "https://app.example.com", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    return revision, err


def by_name(revision: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in revision["containerDefinitions"]}


def test_the_input_is_what_describe_task_definition_prints() -> None:
    report = ParamValidator().validate(DESCRIBED, ECS.operation_model("DescribeTaskDefinition").output_shape)
    assert not report.has_errors(), report.generate_report()


def test_the_new_revision_is_what_register_task_definition_takes(converted: tuple[dict[str, Any], str]) -> None:
    revision, _ = converted
    report = ParamValidator().validate(revision, ECS.operation_model("RegisterTaskDefinition").input_shape)
    assert not report.has_errors(), report.generate_report()
    # Exactly the fields describe adds are dropped: botocore's TaskDefinition less the input.
    read_only = set(ECS.shape_for("TaskDefinition").members) - set(ECS.operation_model("RegisterTaskDefinition").input_shape.members)
    assert set(taskdef.READ_ONLY_FIELDS) == read_only
    assert not read_only & set(revision)
    kept = {k: v for k, v in DESCRIBED["taskDefinition"].items() if k not in read_only and k != "containerDefinitions"}
    assert {k: v for k, v in revision.items() if k not in ("containerDefinitions", "tags")} == kept
    assert revision["tags"] == DESCRIBED["tags"]


def test_nginx_and_the_gateway_are_placed_in_front_of_django_as_the_stack_places_them(converted: tuple[dict[str, Any], str]) -> None:
    revision, _ = converted
    containers = by_name(revision)
    assert list(containers) == ["nginx", "gateway", "web"]
    web = containers["web"]
    original = DESCRIBED["taskDefinition"]["containerDefinitions"][0]
    # Django keeps all it had; it gains the stack's health check (it had none) and stopTimeout.
    assert {k: v for k, v in web.items() if k not in ("healthCheck", "stopTimeout")} == original
    assert web["stopTimeout"] == 30
    assert containers["gateway"]["dependsOn"] == [{"containerName": "web", "condition": "HEALTHY"}]
    assert containers["nginx"]["dependsOn"] == [{"containerName": "gateway", "condition": "HEALTHY"}]

    stack = {c["name"]: c for c in task_definition_api(render({"AllowedOrigins": "https://app.example.com"}))["containerDefinitions"]}
    assert web["healthCheck"] == stack["django"]["healthCheck"]
    for name in ("nginx", "gateway"):
        ours, theirs = copy.deepcopy(containers[name]), copy.deepcopy(stack[name])
        for container in (ours, theirs):
            container.pop("image")
            options = container.pop("logConfiguration")["options"]
            assert options["mode"] == "non-blocking" and options["max-buffer-size"] == "25m"
            assert options["awslogs-stream-prefix"] == name
            for dependency in container.get("dependsOn", []):
                dependency["containerName"] = dependency["containerName"].replace("web", "django")
        assert containers[name]["logConfiguration"]["options"]["awslogs-group"] == "/ecs/shop-prod"
        if name == "gateway":
            environment = {item["name"]: item["value"] for item in ours["environment"]}
            assert environment["GATEWAY_STORE"] == STORE
            assert environment["GATEWAY_UPSTREAM_URL"] == "http://127.0.0.1:8000"
            for container in (ours, theirs):
                container["environment"] = [item for item in container["environment"] if item["name"] != "GATEWAY_STORE"]
                container["secrets"] = [secret["name"] for secret in container["secrets"]]
            assert [s["valueFrom"] for s in containers["gateway"]["secrets"]] == [ADMIN_TOKENS, BYPASS]
        assert ours == theirs, name


def test_the_commands_values_are_the_stacks_own() -> None:
    stack = render()
    seconds = {name: int(value) for name, value in stack.mappings["Timeouts"]["Seconds"].items()}
    assert {name: seconds[name] for name in taskdef.TIMEOUTS} == taskdef.TIMEOUTS
    assert taskdef.NGINX_PORT == int(stack.mappings["Ports"]["Container"]["Nginx"])
    assert taskdef.GATEWAY_PORT == int(stack.mappings["Ports"]["Container"]["Gateway"])
    assert taskdef.DEFAULT_CORS_ALLOW_HEADERS == stack.template["Parameters"]["CorsAllowHeaders"]["Default"]
    assert taskdef.SECRET_ARN.pattern == stack.template["Parameters"]["AdminTokensSecret"]["AllowedPattern"].strip("^$")


def test_stderr_says_what_the_roles_the_target_group_and_the_service_still_need(converted: tuple[dict[str, Any], str]) -> None:
    _, err = converted
    statement = json.loads(err.split("needs this statement for the gateway (the role is shared: Django gets it too):\n", 1)[1].split("\n  - ", 1)[0])
    assert statement == {
        "Sid": "ReadAndChangeThisSitesMaintenanceState",
        "Effect": "Allow",
        "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"],
        "Resource": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/shop-maintenance",
        "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["shop-prod"]}},
    }
    # The same statement the stack gives its task role.
    (stack_statement,) = render().properties("TaskRole")["Policies"][0]["PolicyDocument"]["Statement"]
    assert statement["Action"] == stack_statement["Action"] and statement["Condition"].keys() == stack_statement["Condition"].keys()
    for said in (
        f"arn:aws:iam::{ACCOUNT}:role/shop-prod-task",
        f"secretsmanager:GetSecretValue on {ADMIN_TOKENS} and {BYPASS}",
        "IP targets on port 80 (nginx's, not Django's 8000)",
        "containerName nginx, containerPort 80",
        "deregistration_delay.timeout_seconds 60",
        "bind Django to 127.0.0.1:8000 and drop its port mapping",
    ):
        assert said in err, said
    # Django's keep-alive (5 s) outlasts the gateway's idle timeout: nothing to say about it.
    assert "keep an idle connection" not in err


def test_an_existing_health_check_is_kept_and_a_short_one_named(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    document = copy.deepcopy(DESCRIBED)
    web = document["taskDefinition"]["containerDefinitions"][0]
    web["healthCheck"] = {"command": ["CMD-SHELL", "curl -f http://127.0.0.1:8000/up || exit 1"], "interval": 10, "timeout": 5, "retries": 3}
    web["command"] = ["gunicorn", "--bind", "0.0.0.0:8000", "shop.wsgi"]  # gunicorn's default keep-alive, 2 s
    code, revision, err = convert(document, "--django-health-path", "/up", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    assert by_name(revision)["web"]["healthCheck"] == web["healthCheck"]
    environment = {item["name"]: item["value"] for item in by_name(revision)["gateway"]["environment"]}
    assert environment["GATEWAY_BYPASS_PATHS"] == "/up"
    assert "gives up after 30 s" in err and "gunicorn's default is 2 s" in err


@pytest.mark.parametrize(
    "change, flags, said",
    [
        (lambda td: td.update(networkMode="bridge"), (), "networkMode is 'bridge'"),
        (lambda td: td["containerDefinitions"].append({"name": "gateway", "image": "x"}), (), "already has a container named 'gateway'"),
        (lambda td: td["containerDefinitions"].append({"name": "worker", "image": "x", "portMappings": [{"containerPort": 9000}]}), (), "give --django-container"),
        (lambda td: td["containerDefinitions"][0].update(portMappings=[{"containerPort": 80}]), (), "Django listens on 80"),
        (lambda td: None, ("--django-container", "celery"), "no container named 'celery'"),
    ],
    ids=["bridge", "converted-already", "two-candidates", "django-on-80", "unknown-container"],
)
def test_a_task_definition_that_cannot_take_a_gateway_is_refused_with_the_reason(
    change: Any, flags: tuple[str, ...], said: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    document = copy.deepcopy(DESCRIBED)
    change(document["taskDefinition"])
    code, revision, err = convert(document, *flags, monkeypatch=monkeypatch, capsys=capsys)
    assert (code, revision) == (2, None)
    assert said in err, err


def test_a_secret_by_name_and_a_store_of_one_task_are_refused() -> None:
    """The trap of issue 20.1 here too: a name or partial ARN would be sent to ECS as it is."""
    for secret in ("maintenance-gateway/shop-prod/admin-tokens", SECRET + "maintenance-gateway/shop-prod/bypass"):
        result = subprocess.run(
            [str(BIN / "maintenance-gateway"), "ecs-task-definition", "--from", "-", *REQUIRED[:-2], "--bypass-secret", secret],
            input=json.dumps(DESCRIBED), capture_output=True, text=True, timeout=30, env=base_env(),
        )
        assert result.returncode == 2 and "is not a secret's full ARN" in result.stderr, result.stderr
    result = subprocess.run(
        [str(BIN / "maintenance-gateway"), "ecs-task-definition", "--from", "-", *REQUIRED[:4], "--store", "file:/tmp/state.json", *REQUIRED[6:]],
        input=json.dumps(DESCRIBED), capture_output=True, text=True, timeout=30, env=base_env(),
    )
    assert result.returncode == 2 and "dynamodb://" in result.stderr, result.stderr


def test_input_nested_too_deep_or_too_big_is_refused_with_a_sentence(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    from tests.support import BIN, base_env

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    big = tmp_path / "big.json"
    big.write_text('{"taskDefinition": {"x": "' + "y" * (2 << 20) + '"}}')
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"taskDefinition": {"family": "shop", "networkMode": "awsvpc", "containerDefinitions": [1, null]}}')
    for source, said in ((deep, "nested too deep"), (big, "larger than"), (wrong, "--from")):
        result = subprocess.run(
            [str(BIN / "maintenance-gateway"), "ecs-task-definition", "--from", str(source), "--nginx-image", "n", "--gateway-image", "g",
             "--store", "dynamodb://shop-state?key=k&region=eu-west-1",
             "--admin-tokens-secret", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:admin-tokens-AbCdEf",
             "--bypass-secret", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bypass-AbCdEf"],
            env=base_env(), capture_output=True, text=True, timeout=60,
        )
        assert result.returncode != 0 and said in result.stderr and "Traceback" not in result.stderr, result.stderr
