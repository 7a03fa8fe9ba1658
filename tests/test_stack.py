"""config/ecs-stack.yaml checked the way AWS would check it, and read as an ECS engineer would.

cfn-lint checks the template; each resource, rendered with the README's parameters, is
turned into the API calls CloudFormation makes and validated against botocore's service
models; the IAM policies go through parliament; the nginx template is filled as the
official image fills it and given to `nginx -t`. The rest checks what a first deploy
depends on: health-check commands that exist in their images, a start order that follows
health, and the timeout chain.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from parliament import analyze_policy_string

from gateway.server.uvicorn_setup import KEEP_ALIVE_SECONDS
from tests.stack import (
    ACCOUNT,
    NGINX_IMAGE_ENV,
    DEPLOY_PARAMETERS,
    NGINX_TEMPLATE_PATH,
    REGION,
    ROOT,
    STACK_PATH as STACK_FILE,
    RenderedStack,
    api_calls,
    envsubst_like_the_nginx_image,
    load_template,
    render,
    rule_problems,
    task_definition_api,
    validation_errors,
)
from tests.support import BIN, NGINX_MAIN

# What each image has on its PATH for the commands its container runs.
IMAGE_COMMANDS = {
    # The official nginx image (Debian; config/nginx/Dockerfile builds on it): its
    # Dockerfile installs curl and gettext-base next to nginx. There is no wget.
    "nginx": {"sh", "nginx", "curl", "envsubst"},
    # The gateway's image (Dockerfile): python slim, the venv's bin first on PATH.
    "gateway": {"sh", "python", "maintenance-gateway"},
    # The site's Django image: Python and gunicorn.
    "django": {"sh", "python", "gunicorn"},
}


@pytest.fixture(scope="module")
def stack() -> RenderedStack:
    return render()


# A real site's settings (issue 20.4): its environment file, two secrets (one a key of a JSON
# secret), a managed policy for its own AWS calls.
SECRET_PREFIX = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:"
DJANGO_SETTINGS = {
    "DjangoEnvironmentFile": "arn:aws:s3:::shop-config/prod/django.env",
    "DjangoSecret1": f"DATABASE_URL={SECRET_PREFIX}shop-prod/database-url-Qw12Er",
    "DjangoSecret2": f"DJANGO_SECRET_KEY={SECRET_PREFIX}shop-prod/django-As34Df:secret_key::",
    "TaskRolePolicyArns": f"arn:aws:iam::{ACCOUNT}:policy/shop-media,arn:aws:iam::aws:policy/AmazonSESFullAccess",
}


# --- the validators -----------------------------------------------------------------------------------


def test_cfn_lint_passes_on_every_template() -> None:
    templates = sorted((ROOT / "config").rglob("*.yaml")) + sorted((ROOT / "config").rglob("*.yml"))
    assert templates, "no CloudFormation template in config/"
    result = subprocess.run(
        [str(BIN / "cfn-lint"), "--include-checks", "I", "--", *map(str, templates)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_resource_is_a_valid_api_call(stack: RenderedStack) -> None:
    calls = api_calls(stack)
    assert {(c.service, c.operation) for c in calls} >= {
        ("dynamodb", "CreateTable"),
        ("dynamodb", "UpdateContinuousBackups"),
        ("logs", "CreateLogGroup"),
        ("logs", "PutRetentionPolicy"),
        ("iam", "CreateRole"),
        ("iam", "PutRolePolicy"),
        ("elbv2", "CreateTargetGroup"),
        ("elbv2", "ModifyTargetGroupAttributes"),
        ("elbv2", "CreateRule"),
        ("ecs", "RegisterTaskDefinition"),
        ("ecs", "CreateService"),
        ("logs", "PutMetricFilter"),
        ("cloudwatch", "PutMetricAlarm"),
    }
    problems = {str(call): validation_errors(call) for call in calls}
    assert {call: errors for call, errors in problems.items() if errors} == {}


@pytest.mark.parametrize(
    "routing",
    [{"HostHeader": "shop.example.com", "PathPattern": ""}, {"HostHeader": "", "PathPattern": "/shop/*"},
     {"HostHeader": "shop.example.com", "PathPattern": "/api/*"}],
    ids=["host", "path", "host-and-path"],
)
def test_the_listener_rule_is_valid_for_each_way_of_routing(routing: dict[str, str]) -> None:
    stack = render(routing)
    rule = next(c for c in api_calls(stack) if c.operation == "CreateRule")
    assert validation_errors(rule) == []
    fields = {condition["Field"] for condition in rule.params["Conditions"]}
    assert fields == {name for name, key in (("host-header", "HostHeader"), ("path-pattern", "PathPattern")) if routing[key]}


def test_the_model_check_rejects_what_aws_would_reject(stack: RenderedStack) -> None:
    """The validation above can fail: a misspelt property, a wrong enum, a wrong type."""
    broken = copy.deepcopy(stack)
    nginx = next(c for c in broken.properties("TaskDefinition")["ContainerDefinitions"] if c["Name"] == "nginx")
    nginx["DependsOn"][0]["Condition"] = "HEALTH"
    nginx["HealthCheck"]["Retries"] = "three"
    broken.properties("TargetGroup")["HealthCheckPeriod"] = 10
    errors = {str(call): validation_errors(call) for call in api_calls(broken)}
    task = " ".join(errors["TaskDefinition: ecs.RegisterTaskDefinition"])
    assert "'HEALTH' is not one of" in task and "retries" in task
    assert "HealthCheckPeriod: no such member" in " ".join(errors["TargetGroup: elbv2.CreateTargetGroup"])


# What parliament says that is expected: GetAuthorizationToken is how ECS logs in to ECR,
# it takes no resource, and AWS's own task execution policy grants it the same way.
EXPECTED_FINDINGS = {("CREDENTIALS_EXPOSURE", ("ecr:getauthorizationtoken",))}


@pytest.mark.parametrize("site", ["gateway-only", "with-django-settings"])
def test_the_iam_policies_pass_parliament(site: str) -> None:
    stack = render(DJANGO_SETTINGS if site == "with-django-settings" else {})
    findings = set()
    for role in ("ExecutionRole", "TaskRole"):
        for policy in stack.properties(role)["Policies"]:
            analyzed = analyze_policy_string(json.dumps(policy["PolicyDocument"]), include_community_auditors=True)
            findings |= {(f.issue, tuple(f.location.get("actions", ()))) for f in analyzed.findings}
    assert findings == EXPECTED_FINDINGS


def test_parliament_catches_a_bad_policy() -> None:
    analyzed = analyze_policy_string(json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "dynamodb:GetItm", "Resource": "*"}]}
    ))
    assert {f.issue for f in analyzed.findings} >= {"UNKNOWN_ACTION"}


def test_nginx_accepts_the_template_filled_as_the_official_image_fills_it(stack: RenderedStack, tmp_path: Path) -> None:
    environment = {**NGINX_IMAGE_ENV, **stack.environment("nginx")}
    conf = envsubst_like_the_nginx_image(NGINX_TEMPLATE_PATH.read_text(), environment)
    directives = "\n".join(line for line in conf.splitlines() if not line.lstrip().startswith("#"))
    assert "${" not in directives, "a ${VARIABLE} of the template is not set in the nginx container's environment"
    # nginx's own variables are not the container's: envsubst left them alone.
    assert "$proxy_add_x_forwarded_for" in conf and "$http_x_forwarded_proto" in conf
    assert "listen 0.0.0.0:80;" in conf and "server 127.0.0.1:8080;" in conf
    (tmp_path / "default.conf").write_text(conf)
    (tmp_path / "nginx.conf").write_text(NGINX_MAIN.format(prefix=tmp_path))
    result = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_the_official_images_envsubst_leaves_unset_variables_alone() -> None:
    """The way the template is filled can fail: an unset ${NAME} stays, and is caught above."""
    filled = envsubst_like_the_nginx_image("listen ${NGINX_PORT}; root ${UNSET}; set $x $host;", {"NGINX_PORT": "80"})
    assert filled == "listen 80; root ${UNSET}; set $x $host;"


# --- what a first deploy depends on -------------------------------------------------------------------


def health_check_problems(task: dict[str, Any]) -> list[str]:
    """Each container's health check runs a command its image has."""
    problems = []
    for container in task["containerDefinitions"]:
        name = container["name"]
        check = container.get("healthCheck")
        if check is None:
            problems.append(f"{name}: no health check")
            continue
        kind, *command = check["command"]
        if kind == "CMD-SHELL":
            program = command[0].split()[0]
            needed = {"sh", program}
        else:
            assert kind == "CMD", f"{name}: {kind}"
            program = command[0]
            needed = {program}
        missing = needed - IMAGE_COMMANDS[name]
        if missing:
            problems.append(f"{name}: the health check runs {sorted(missing)}, which its image does not have")
    return problems


def start_order_problems(task: dict[str, Any]) -> list[str]:
    """Traffic reaches a container only once the one behind it is healthy."""
    by_name = {c["name"]: c for c in task["containerDefinitions"]}
    expected = {"nginx": "gateway", "gateway": "django"}
    problems = []
    for name, behind in expected.items():
        depends = {d["containerName"]: d["condition"] for d in by_name[name].get("dependsOn", [])}
        if depends.get(behind) != "HEALTHY":
            problems.append(f"{name} starts when {behind} is {depends.get(behind)}, not HEALTHY")
        if "healthCheck" not in by_name[behind]:
            problems.append(f"{behind} has no health check, so HEALTHY never comes")
    return problems


def test_every_health_check_runs_a_command_its_image_has(stack: RenderedStack) -> None:
    assert health_check_problems(task_definition_api(stack)) == []
    nginx_base = re.search(r"^ARG NGINX_IMAGE=(\S+)", (ROOT / "config" / "nginx" / "Dockerfile").read_text(), re.M)
    assert nginx_base and nginx_base.group(1).startswith("nginx:") and "alpine" not in nginx_base.group(1)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "PATH=/opt/gateway/bin:$PATH" in dockerfile and 'ENTRYPOINT ["maintenance-gateway"]' in dockerfile


def test_the_nginx_health_check_goes_through_nginx_to_the_gateway(stack: RenderedStack) -> None:
    command = stack.container("nginx")["HealthCheck"]["Command"]
    assert command[0] == "CMD-SHELL"
    assert "http://127.0.0.1:${NGINX_PORT}/_gateway/health" in command[1]
    assert command[1].startswith("curl -f")  # -f: an HTTP error status fails the check


def test_containers_start_in_order_of_health(stack: RenderedStack) -> None:
    assert start_order_problems(task_definition_api(stack)) == []
    assert stack.container("django")["HealthCheck"]["Command"][:3] == ["CMD", "python", "-c"]


def test_the_load_balancer_sends_traffic_to_nginx_and_checks_the_gateway(stack: RenderedStack) -> None:
    service = stack.properties("Service")
    target_group = stack.properties("TargetGroup")
    nginx_port = stack.container("nginx")["PortMappings"][0]["ContainerPort"]
    assert service["LoadBalancers"] == [{"ContainerName": "nginx", "ContainerPort": nginx_port, "TargetGroupArn": stack.physical["TargetGroup"]["Ref"]}]
    assert target_group["Port"] == nginx_port and target_group["TargetType"] == "ip"
    assert target_group["HealthCheckPath"] == "/_gateway/health" and target_group["Matcher"] == {"HttpCode": "200"}
    # ECS refuses to create a service on a target group no listener forwards to yet.
    assert "ListenerRule" in load_template()["Resources"]["Service"]["DependsOn"]
    deployment = service["DeploymentConfiguration"]
    assert deployment["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
    assert deployment["MinimumHealthyPercent"] == 100 and deployment["MaximumPercent"] == 200


def test_the_client_address_is_counted_from_nginx_and_no_vpc_address_is_trusted(stack: RenderedStack) -> None:
    """Issue 18.7: trusting the VPC's CIDR let any host in it pick its own client address
    (it reaches the ALB on its private address, and the walk past trusted hops skipped it)."""
    import ipaddress

    from gateway.settings import load_settings

    env = stack.environment("gateway")
    settings = load_settings({name: value for name, value in env.items() if name.startswith("GATEWAY_FORWARDED_")})
    # Only nginx, the gateway's one peer inside the task, may speak for the client...
    assert settings.forwarded_allow_ips == (ipaddress.ip_network("127.0.0.1/32"),)
    for private in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"):
        assert not any(network.overlaps(ipaddress.ip_network(private)) for network in settings.forwarded_allow_ips)
    # ...and a written value, not a parameter: nothing given at deploy time can widen it.
    containers = load_template()["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    raw = {item["Name"]: item["Value"] for item in next(c for c in containers if c["Name"] == "gateway")["Environment"]}
    assert raw["GATEWAY_FORWARDED_ALLOW_IPS"] == "127.0.0.1", raw["GATEWAY_FORWARDED_ALLOW_IPS"]
    # The count is the chain: the ALB appends its peer, then nginx's template appends the ALB.
    assert settings.forwarded_hops == 2
    appended = re.findall(r"proxy_set_header\s+X-Forwarded-For\s+(\S+);", NGINX_TEMPLATE_PATH.read_text(), re.I)
    assert appended == ["$proxy_add_x_forwarded_for"]


def test_the_stack_creates_what_the_task_needs_to_start(stack: RenderedStack) -> None:
    task = stack.properties("TaskDefinition")
    log_group = stack.physical["LogGroup"]["Ref"]
    assert stack.properties("LogGroup")["RetentionInDays"]
    for container in task["ContainerDefinitions"]:
        assert container["LogConfiguration"]["Options"]["awslogs-group"] == log_group
    assert task["ExecutionRoleArn"] == stack.physical["ExecutionRole"]["Arn"]
    assert task["TaskRoleArn"] == stack.physical["TaskRole"]["Arn"]


def _statements(stack: RenderedStack, role: str) -> dict[str, dict[str, Any]]:
    (policy,) = stack.properties(role)["Policies"]
    return {statement["Sid"]: statement for statement in policy["PolicyDocument"]["Statement"]}


def test_the_execution_role_reaches_only_the_logs_and_the_two_secrets() -> None:
    stack = render()
    statements = _statements(stack, "ExecutionRole")
    prefix = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:"
    admin, bypass = prefix + "maintenance-gateway/shop-prod/admin-tokens-Xy12Zw", prefix + "maintenance-gateway/shop-prod/bypass-Ab12Cd"
    # Full ARNs, exactly: ECS is given the same ARN the role may read.
    assert statements["ReadTheTaskSecrets"]["Resource"] == [admin, bypass]
    assert statements["WriteTheTaskLogs"]["Resource"] == f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/ecs/shop-prod:log-stream:*"
    wildcard = [sid for sid, statement in statements.items() if statement["Resource"] == "*"]
    assert wildcard == ["AuthenticateToEcr"]
    value_from = {secret["Name"]: secret["ValueFrom"] for secret in stack.container("gateway")["Secrets"]}
    assert value_from == {"GATEWAY_ADMIN_TOKENS": admin, "GATEWAY_BYPASS_SECRET": bypass}
    # Without Django settings, Django gets no secret, no file and the role no more.
    assert stack.container("django")["Secrets"] == [] and "EnvironmentFiles" not in stack.container("django")
    assert "ManagedPolicyArns" not in stack.properties("TaskRole")
    for role in ("ExecutionRole", "TaskRole"):
        (trust,) = stack.properties(role)["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
        assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}


def test_the_task_role_reaches_only_this_sites_items(stack: RenderedStack) -> None:
    (statement,) = _statements(stack, "TaskRole").values()
    assert statement["Resource"] == stack.physical["StateTable"]["Arn"]
    assert statement["Condition"] == {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["shop-prod"]}}
    assert "key=shop-prod&" in stack.environment("gateway")["GATEWAY_STORE"]


# --- the timeout chain ------------------------------------------------------------------------------


def _seconds(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"{pattern} not found"
    return float(match.group(1))


def effective_timeouts(stack: RenderedStack) -> dict[str, float]:
    """Every link of the chain as the deployed files set it: the rendered nginx config, the
    containers' environment and commands, the target group, the gateway's constant."""
    nginx_conf = envsubst_like_the_nginx_image(NGINX_TEMPLATE_PATH.read_text(), {**NGINX_IMAGE_ENV, **stack.environment("nginx")})
    upstream_block = nginx_conf.split("upstream maintenance_gateway {", 1)[1].split("}", 1)[0]
    server_block = nginx_conf.split("server {", 1)[1]
    gateway_env = stack.environment("gateway")
    django_command = stack.container("django")["Command"]
    # gunicorn's flags, or uvicorn's (DjangoServer=uvicorn).
    keep_alive, graceful = ("--keep-alive", "--graceful-timeout") if django_command[0] == "gunicorn" else ("--timeout-keep-alive", "--timeout-graceful-shutdown")
    attributes = {a["Key"]: a["Value"] for a in stack.properties("TargetGroup")["TargetGroupAttributes"]}
    return {
        "LoadBalancerIdle": stack.timeout("LoadBalancerIdle"),
        "NginxClientKeepalive": _seconds(r"\n\s*keepalive_timeout (\d+)s;", server_block),
        "NginxProxyRead": _seconds(r"proxy_read_timeout (\d+)s;", server_block),
        "NginxUpstreamKeepalive": _seconds(r"keepalive_timeout (\d+)s;", upstream_block),
        "GatewayKeepAlive": float(KEEP_ALIVE_SECONDS),
        "GatewayUpstreamRead": float(gateway_env["GATEWAY_UPSTREAM_READ_TIMEOUT"]),
        "GatewayUpstreamIdle": float(gateway_env["GATEWAY_UPSTREAM_IDLE_TIMEOUT"]),
        "GatewayWebSocketPing": float(gateway_env["GATEWAY_WEBSOCKET_PING_INTERVAL"]),
        "DjangoKeepAlive": float(django_command[django_command.index(keep_alive) + 1]),
        "DjangoGracefulTimeout": float(django_command[django_command.index(graceful) + 1]),
        "GatewayDrain": float(gateway_env["GATEWAY_DRAIN_TIMEOUT"]),
        "DeregistrationDelay": float(attributes["deregistration_delay.timeout_seconds"]),
        "StopTimeout": min(float(c["StopTimeout"]) for c in stack.properties("TaskDefinition")["ContainerDefinitions"]),
        "DjangoHealthInterval": float(stack.container("django")["HealthCheck"]["Interval"]),
    }


def django_unhealthy_after(stack: RenderedStack) -> float:
    """How long Django's health check may keep failing before ECS marks the container unhealthy."""
    check = stack.container("django")["HealthCheck"]
    return float(check["Interval"]) * int(check["Retries"])


def chain_problems(t: dict[str, float], unhealthy_after: float | None = None) -> list[str]:
    rules = [
        ("LoadBalancerIdle", "<", "NginxClientKeepalive", "the ALB would reuse a connection nginx is closing"),
        ("NginxUpstreamKeepalive", "<", "GatewayKeepAlive", "nginx would reuse a connection the gateway is closing"),
        ("GatewayUpstreamIdle", "<", "DjangoKeepAlive", "the gateway would reuse a connection gunicorn is closing"),
        ("GatewayUpstreamRead", "<", "NginxProxyRead", "nginx would answer a slow Django with its own 504, no CORS"),
        ("NginxProxyRead", "<", "LoadBalancerIdle", "the ALB would cut a slow answer before nginx's 504"),
        ("GatewayWebSocketPing", "<", "NginxProxyRead", "nginx would cut an idle WebSocket between two pings"),
        ("NginxProxyRead", "<=", "DeregistrationDelay", "a deploy would cut a request the chain allows, while its task drains"),
        ("GatewayDrain", "<=", "DeregistrationDelay", "the ALB would drain a task for less time than the gateway would"),
        ("GatewayDrain", "<", "StopTimeout", "ECS would kill the gateway before its drain ends"),
        ("DjangoGracefulTimeout", "<", "StopTimeout", "ECS would kill gunicorn before its graceful stop ends"),
    ]
    problems = []
    for left, op, right, why in rules:
        holds = t[left] < t[right] if op == "<" else t[left] <= t[right]
        if not holds:
            problems.append(f"{left} {t[left]:g} {op} {right} {t[right]:g} fails: {why}")
    if t["StopTimeout"] > 120:
        problems.append("StopTimeout over 120 s: Fargate's maximum")
    if unhealthy_after is not None and not t["NginxProxyRead"] < unhealthy_after:
        problems.append(
            f"Django's health check gives up after {unhealthy_after:g} s, not after NginxProxyRead {t['NginxProxyRead']:g}: "
            "slow requests in every worker would get the task replaced"
        )
    return problems


@pytest.mark.parametrize("server", ["gunicorn", "uvicorn"])
def test_the_timeout_chain_holds(server: str) -> None:
    stack = render({"DjangoServer": server})
    timeouts = effective_timeouts(stack)
    assert chain_problems(timeouts, django_unhealthy_after(stack)) == []
    # Each link is the mapping's value: the files add nothing of their own.
    mapping = {name: float(value) for name, value in stack.mappings["Timeouts"]["Seconds"].items()}
    assert timeouts == mapping


@pytest.mark.parametrize(
    "link, value",
    [
        ("NginxProxyRead", "45"),
        ("DeregistrationDelay", "20"),
        ("GatewayUpstreamIdle", "5"),
        ("NginxUpstreamKeepalive", "80"),
        ("GatewayWebSocketPing", "60"),
        # Issue 20.6: a 30 s drain cut every request longer than 30 s on every deploy...
        ("DeregistrationDelay", "30"),
        # ...and a 30 s health check (10 s x 3) replaced a task whose workers all served slow requests.
        ("DjangoHealthInterval", "10"),
    ],
)
def test_changing_one_link_alone_breaks_the_chain(link: str, value: str) -> None:
    stack = render(mapping_overrides={("Timeouts", "Seconds", link): value})
    assert chain_problems(effective_timeouts(stack), django_unhealthy_after(stack)) != []


def test_the_timeout_chain_is_set_only_in_the_mapping() -> None:
    """No timeout is written anywhere else: the nginx template and the task definition
    take every one from the Timeouts mapping."""
    template_text = NGINX_TEMPLATE_PATH.read_text()
    for directive in ("keepalive_timeout", "proxy_read_timeout", "proxy_send_timeout"):
        for value in re.findall(rf"^\s*{directive} (\S+);", template_text, re.M):
            assert value.startswith("${"), f"{directive} {value} is written in the template, not taken from the stack"
    raw = load_template()
    referenced: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if list(node) == ["Fn::FindInMap"] and node["Fn::FindInMap"][0] == "Timeouts":
                referenced.add(node["Fn::FindInMap"][2])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(raw["Resources"])
    # The ALB's idle timeout and the gateway's keep-alive are set elsewhere (the ALB, the
    # code); the mapping states them so the chain is checked against them.
    assert referenced == set(raw["Mappings"]["Timeouts"]["Seconds"]) - {"LoadBalancerIdle", "GatewayKeepAlive"}
    assert float(raw["Mappings"]["Timeouts"]["Seconds"]["GatewayKeepAlive"]) == KEEP_ALIVE_SECONDS
    for container in raw["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"]:
        assert container["StopTimeout"] == {"Fn::FindInMap": ["Timeouts", "Seconds", "StopTimeout"]}


# --- the README's commands ----------------------------------------------------------------------------


def parameter_problems(given: dict[str, str]) -> list[str]:
    """What CloudFormation would refuse before creating anything: a missing parameter, or a
    value outside its AllowedPattern, AllowedValues or range."""
    problems = []
    template = load_template()
    for name, spec in template["Parameters"].items():
        if name not in given:
            if "Default" not in spec:
                problems.append(f"{name} is required")
            continue
        value = given[name]
        # A CommaDelimitedList's pattern holds for each item.
        items = value.split(",") if spec["Type"] == "CommaDelimitedList" else [value]
        if "AllowedPattern" in spec and not all(re.fullmatch(spec["AllowedPattern"], item) for item in items):
            problems.append(f"{name}={value} does not match {spec['AllowedPattern']}")
        if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
            problems.append(f"{name}={value} is not one of {spec['AllowedValues']}")
        if "MinValue" in spec and float(value) < float(spec["MinValue"]):
            problems.append(f"{name}={value} is below {spec['MinValue']}")
        if "MaxValue" in spec and float(value) > float(spec["MaxValue"]):
            problems.append(f"{name}={value} is above {spec['MaxValue']}")
    problems += [f"{name} is not a parameter of the stack" for name in set(given) - set(template["Parameters"])]
    if not problems:
        values = {name: given.get(name, str(spec.get("Default", ""))) for name, spec in template["Parameters"].items()}
        problems += rule_problems(template, values)
    return problems


def runbook_text() -> str:
    return (ROOT / "README.md").read_text().split("## Running it on ECS: a runbook", 1)[1].replace("\\\n", " ")


def runbook_variables(runbook: str) -> dict[str, str]:
    """The shell variables the runbook sets before its deploy commands: REGISTRY, and each secret's
    ARN as `create-secret --query ARN --output text` prints it (the name, "-", six characters)."""
    registry = re.search(r"^REGISTRY=(\S+)", runbook, re.M)
    assert registry, "the runbook sets REGISTRY"
    variables = {"REGISTRY": registry.group(1)}
    for variable, name, rest in re.findall(r"^(\w+)=\$\(aws secretsmanager create-secret --name (\S+) (.*)\)$", runbook, re.M):
        assert "--query ARN --output text" in rest, f"{variable}: create-secret must print the ARN, which the stack takes"
        variables[variable] = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-Zx98Yw"
    for variable, name in re.findall(r"^(\w+)=\$\(aws secretsmanager describe-secret --secret-id (\S+) --query ARN --output text\)$", runbook, re.M):
        variables[variable] = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-Vu76Ts"
    for variable, name in re.findall(r"^(\w+)=\$\(aws elbv2 describe-target-groups --names (\S+) .*\)$", runbook, re.M):
        variables[variable] = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/{name}/0123456789abcdef"
    return variables


def runbook_deploys() -> list[dict[str, str]]:
    """Each `aws cloudformation deploy` of the runbook, its --parameter-overrides with the runbook's
    variables filled in."""
    runbook = runbook_text()
    variables = runbook_variables(runbook)
    deploys = []
    for command in re.findall(r"^aws cloudformation deploy .*$", runbook, re.M):
        if command.startswith("aws cloudformation deploy ... "):
            continue  # "as above", in the release steps
        assert "--template-file config/ecs-stack.yaml" in command and "--capabilities CAPABILITY_IAM" in command, command
        overrides = command.split("#", 1)[0].split("--parameter-overrides", 1)[1].split()
        parameters = {}
        for item in overrides:
            name, value = item.split("=", 1)
            parameters[name] = re.sub(r"\$(\w+)", lambda m: variables[m.group(1)], value)
        deploys.append(parameters)
    assert deploys, "the runbook has an `aws cloudformation deploy` command"
    return deploys


def readme_deploy_parameters() -> dict[str, str]:
    return runbook_deploys()[0]


def test_the_readmes_deploy_command_gives_the_stack_what_it_needs() -> None:
    parameters = readme_deploy_parameters()
    assert parameter_problems(parameters) == []
    stack = render(parameters)
    assert all(validation_errors(call) == [] for call in api_calls(stack))


def test_the_tests_deploy_with_valid_parameters() -> None:
    from tests.stack import DEPLOY_PARAMETERS

    assert parameter_problems(DEPLOY_PARAMETERS) == []
    assert parameter_problems({**DEPLOY_PARAMETERS, "SiteKey": "shop prod", "AssignPublicIp": "YES"}) != []


def test_every_deploy_in_the_runbook_is_valid_on_the_stack_it_updates() -> None:
    """The first deploy, then each later one as `aws cloudformation deploy` applies it: the
    parameters it names, the others kept from before."""
    deploys = runbook_deploys()
    current: dict[str, str] = {}
    for parameters in deploys:
        current = {**current, **parameters}
        assert parameter_problems(current) == [], parameters
        assert all(validation_errors(call) == [] for call in api_calls(render(current)))


# --- issue 20: what a real site adopting it meets -----------------------------------------------------


def test_a_secret_given_by_name_or_by_partial_arn_is_refused() -> None:
    """Issue 20.1: a name was sent to ECS as an ARN without the random suffix, and Secrets
    Manager reads a last part of "-" and six characters (admin-tokens) as the suffix of a
    complete ARN: not found, no task started. The stack takes full ARNs only."""
    full = f"{SECRET_PREFIX}maintenance-gateway/shop-prod/admin-tokens-Xy12Zw"
    for parameter in ("AdminTokensSecret", "BypassSecret"):
        assert parameter_problems({**DEPLOY_PARAMETERS, parameter: full}) == []
        for refused in (
            "maintenance-gateway/shop-prod/admin-tokens",  # the README's old bare name
            "maintenance-gateway/shop-prod/bypass",
            f"{SECRET_PREFIX}maintenance-gateway/shop-prod/bypass",  # a partial ARN
            f"{SECRET_PREFIX}maintenance-gateway/shop-prod/bypass-Ab12C",  # five characters
            f"{SECRET_PREFIX}maintenance-gateway/shop-prod/admin-tokens-Xy12Zw:json-key::",
            f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/admin-tokens",
        ):
            assert parameter_problems({**DEPLOY_PARAMETERS, parameter: refused}) != [], refused
    # What cannot be told from its text: the partial ARN of "admin-tokens" is the full ARN of a
    # secret named "admin". Hence the README takes the ARN that create-secret prints.
    assert parameter_problems({**DEPLOY_PARAMETERS, "AdminTokensSecret": f"{SECRET_PREFIX}maintenance-gateway/shop-prod/admin-tokens"}) == []
    assert "--query ARN --output text" in runbook_text()
    # ECS is given exactly what the role may read.
    stack = render()
    given = [secret["ValueFrom"] for secret in stack.container("gateway")["Secrets"]]
    assert given == _statements(stack, "ExecutionRole")["ReadTheTaskSecrets"]["Resource"]


def _forward_weights(stack: RenderedStack) -> dict[str, int]:
    (action,) = stack.properties("ListenerRule")["Actions"]
    assert action["Type"] == "forward" and "TargetGroupArn" not in action
    return {group["TargetGroupArn"]: int(group["Weight"]) for group in action["ForwardConfig"]["TargetGroups"]}


CURRENT_TARGET_GROUP = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/shop-django/0123456789abcdef"


def test_adopting_a_live_site_sends_no_request_to_the_empty_target_group() -> None:
    """Issue 20.2: the rule was created before the service and forwarded to an empty target
    group, so a site already live on the host answered ALB 503s until the new tasks were
    healthy. With the site's current target group the rule is weighted, 0 to the new group on
    the first deploy (it is on the listener, as ECS requires, but gets nothing)."""
    new = render().physical["TargetGroup"]["Ref"]
    first = render({"CurrentTargetGroupArn": CURRENT_TARGET_GROUP})
    assert _forward_weights(first) == {new: 0, CURRENT_TARGET_GROUP: 100}
    assert "ListenerRule" in load_template()["Resources"]["Service"]["DependsOn"]
    for percent in load_template()["Parameters"]["GatewayTrafficPercent"]["AllowedValues"]:
        stack = render({"CurrentTargetGroupArn": CURRENT_TARGET_GROUP, "GatewayTrafficPercent": str(percent)})
        weights = _forward_weights(stack)
        assert weights == {new: int(percent), CURRENT_TARGET_GROUP: 100 - int(percent)}
        rule = next(c for c in api_calls(stack) if c.operation == "CreateRule")
        assert validation_errors(rule) == []
    # A new site, or the cut-over done: the one target group, whatever the percentage says.
    for percent in ("0", "100"):
        assert _forward_weights(render({"GatewayTrafficPercent": percent})) == {new: 1}
    # The runbook moves the weight in steps, watching, and says the way back.
    runbook = runbook_text()
    percents = [deploy.get("GatewayTrafficPercent") for deploy in runbook_deploys() if "GatewayTrafficPercent" in deploy]
    assert percents[:3] == ["0", "10", "100"], percents
    assert "GatewayTrafficPercent=0" in runbook.split("**The way back", 1)[1]


# Fargate's task sizes, as the ECS developer guide's table gives them ("Task CPU and memory").
FARGATE_SIZES = {
    256: [512, 1024, 2048],
    512: list(range(1024, 4097, 1024)),
    1024: list(range(2048, 8193, 1024)),
    2048: list(range(4096, 16385, 1024)),
    4096: list(range(8192, 30721, 1024)),
    8192: list(range(16384, 61441, 4096)),
    16384: list(range(32768, 122881, 8192)),
}


def test_only_task_sizes_fargate_takes_pass_the_parameters() -> None:
    """Issue 20.5: TaskCpu 2048 or 4096 with the default memory (2048), or a memory typed as
    free text, passed cfn-lint and was refused by ECS. The Rules hold every pair to the table."""
    template = load_template()
    spec = template["Parameters"]
    cpus, memories = spec["TaskCpu"]["AllowedValues"], spec["TaskMemory"]["AllowedValues"]
    assert {int(cpu) for cpu in cpus} == set(FARGATE_SIZES)
    assert {int(memory) for memory in memories} == {memory for sizes in FARGATE_SIZES.values() for memory in sizes}
    values = {name: DEPLOY_PARAMETERS.get(name, str(parameter.get("Default", ""))) for name, parameter in spec.items()}
    for cpu in cpus:
        for memory in memories:
            valid = int(memory) in FARGATE_SIZES[int(cpu)]
            refused = rule_problems(template, {**values, "TaskCpu": cpu, "TaskMemory": memory}) != []
            assert refused != valid, (cpu, memory)
    assert parameter_problems({**DEPLOY_PARAMETERS, "TaskCpu": "4096"}) != []  # the default 2048 MiB
    assert parameter_problems({**DEPLOY_PARAMETERS, "TaskMemory": "2 GB"}) != []
    assert parameter_problems(DEPLOY_PARAMETERS) == []


def test_django_health_path_takes_what_the_gateway_takes() -> None:
    """Issue 20.6: the pattern let through "/" and dot-segments, which the gateway refuses in
    GATEWAY_BYPASS_PATHS at start: every task would exit at once."""
    from gateway.settings import parse_paths

    pattern = load_template()["Parameters"]["DjangoHealthPath"]["AllowedPattern"]
    candidates = [
        "/healthz", "/health/", "/api/health", "/.well-known/health", "/health.json", "/a-b_c/d",
        "/", "//", "/.", "/..", "/health/..", "/a/../b", "/a/./b", "/./healthz", "//healthz", "/a//b", "healthz", "/health z", "/a,b",
    ]
    for path in candidates:
        try:
            parse_paths(path)
            gateway_takes = True
        except ValueError:
            gateway_takes = False
        if re.fullmatch(pattern, path):
            assert gateway_takes, f"the stack takes {path!r}, the gateway refuses it at start"
        # Stricter than the gateway only where a URL needs it: no empty segment, no space or comma.
        elif gateway_takes:
            assert "//" in path or " " in path, path
    assert [path for path in candidates if re.fullmatch(pattern, path)] == candidates[:6]
    for path in ("/", "/..", "/a/../b"):
        assert parameter_problems({**DEPLOY_PARAMETERS, "DjangoHealthPath": path}) != []


def test_every_container_logs_without_blocking(stack: RenderedStack) -> None:
    """Issue 20.6: in the default blocking mode a slow CloudWatch Logs stalls every write to
    stdout, and with it the requests."""
    for container in task_definition_api(stack)["containerDefinitions"]:
        options = container["logConfiguration"]["options"]
        assert options["mode"] == "non-blocking" and re.fullmatch(r"\d+m", options["max-buffer-size"]), container["name"]


def test_a_real_django_gets_its_environment_secrets_and_policies() -> None:
    """Issue 20.4: the site's own environment (an .env file in S3), its secrets (each a full
    ARN, or a key of a JSON secret) with the execution role allowed exactly those, and the
    managed policies its code needs on the task role."""
    stack = render(DJANGO_SETTINGS)
    assert all(validation_errors(call) == [] for call in api_calls(stack))
    assert parameter_problems({**DEPLOY_PARAMETERS, **DJANGO_SETTINGS}) == []
    django = stack.container("django")
    assert django["EnvironmentFiles"] == [{"Type": "s3", "Value": "arn:aws:s3:::shop-config/prod/django.env"}]
    assert {s["Name"]: s["ValueFrom"] for s in django["Secrets"]} == {
        "DATABASE_URL": f"{SECRET_PREFIX}shop-prod/database-url-Qw12Er",
        "DJANGO_SECRET_KEY": f"{SECRET_PREFIX}shop-prod/django-As34Df:secret_key::",
    }
    policies = {policy["PolicyName"]: policy["PolicyDocument"]["Statement"] for policy in stack.properties("ExecutionRole")["Policies"]}
    secrets = next(st for st in policies["pull-log-secrets"] if st["Sid"] == "ReadTheTaskSecrets")["Resource"]
    # The JSON key is ECS's, not part of the secret's ARN: the role names the secret itself.
    assert secrets[2:] == [f"{SECRET_PREFIX}shop-prod/database-url-Qw12Er", f"{SECRET_PREFIX}shop-prod/django-As34Df"]
    assert {st["Action"]: st["Resource"] for st in policies["django-environment-file"]} == {
        "s3:GetObject": "arn:aws:s3:::shop-config/prod/django.env",
        "s3:GetBucketLocation": "arn:aws:s3:::shop-config",
    }
    assert stack.properties("TaskRole")["ManagedPolicyArns"] == DJANGO_SETTINGS["TaskRolePolicyArns"].split(",")
    # The gateway's own container gets none of Django's.
    assert "EnvironmentFiles" not in stack.container("gateway")
    assert [s["Name"] for s in stack.container("gateway")["Secrets"]] == ["GATEWAY_ADMIN_TOKENS", "GATEWAY_BYPASS_SECRET"]
    for refused in (
        {"DjangoSecret1": f"DATABASE_URL={SECRET_PREFIX}shop-prod/database-url"},  # a partial ARN
        {"DjangoSecret1": f"1BAD={SECRET_PREFIX}shop-prod/database-url-Qw12Er"},
        {"DjangoEnvironmentFile": "arn:aws:s3:::shop-config/prod/django.txt"},
        {"TaskRolePolicyArns": "AmazonSESFullAccess"},
    ):
        assert parameter_problems({**DEPLOY_PARAMETERS, **refused}) != [], refused


def test_a_channels_site_runs_under_uvicorn_with_the_stacks_command(tmp_path: Path) -> None:
    """Issue 20.4: DjangoServer=uvicorn serves the ASGI app (HTTP and WebSockets) on loopback,
    and passes the container's own health check; the example site stands in for the image."""
    from tests.support import DJANGO_DIR, ServerProcess, base_env, free_port

    port = free_port()
    stack = render(
        {"DjangoServer": "uvicorn", "DjangoAsgiApplication": "example_site.asgi:application"},
        mapping_overrides={("Ports", "Container", "Django"): str(port)},
    )
    django = next(c for c in task_definition_api(stack)["containerDefinitions"] if c["name"] == "django")
    command = django["command"]
    assert command[:5] == ["uvicorn", "--host", "127.0.0.1", "--port", str(port)] and command[-1] == "example_site.asgi:application"
    env = {**base_env(), "PATH": f"{BIN}:{base_env()['PATH']}", "EXAMPLE_CORS_ALLOWED_ORIGINS": "https://app.example.com"}
    server = ServerProcess("stack-uvicorn-django", command, env, DJANGO_DIR, tmp_path)
    try:
        server.wait_for_port(port)
        kind, *check = django["healthCheck"]["command"]
        assert kind == "CMD"
        result = subprocess.run(check, env=env, capture_output=True, text=True, timeout=django["healthCheck"]["timeout"] + 5)
        assert result.returncode == 0, result.stderr + server.log()
    finally:
        code = server.stop()
    # uvicorn finishes its graceful stop, then re-raises the SIGTERM (exit 143 to ECS).
    assert code in (0, -signal.SIGTERM) and "Finished server process" in server.log(), server.log()


def test_the_store_failure_alarm_counts_the_gateways_own_log_line(stack: RenderedStack) -> None:
    """Issue 20.7: a task that cannot read the store keeps serving its last state and says so
    once, in a JSON line; the metric filter must match that line as the gateway writes it."""
    import logging

    from gateway.refresher import StateHolder
    from gateway.server.log_format import JsonFormatter
    from gateway.state import MaintenanceState

    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(JsonFormatter().format(record))

    logger = logging.getLogger("gateway.state")
    handler, level = Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        holder = StateHolder(MaintenanceState(), loaded=True)
        holder.record_failure("ResourceNotFoundException: table not found")
        holder.record_failure("again")  # a streak logs once
        holder.record_success()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    events = [json.loads(line)["event"] for line in lines]
    assert events == ["store_failed", "store_recovered"]

    metric_filter = stack.properties("StoreFailuresMetricFilter")
    assert metric_filter["LogGroupName"] == stack.physical["LogGroup"]["Ref"]
    # CloudWatch's JSON filter syntax, the one form this stack uses: { $.FIELD = "VALUE" }.
    match = re.fullmatch(r'\{ \$\.(\w+) = "([^"]*)" \}', metric_filter["FilterPattern"])
    assert match, metric_filter["FilterPattern"]
    field, wanted = match.groups()

    def matches(line: str) -> bool:
        try:
            event = json.loads(line)
        except ValueError:
            return False  # a JSON filter never matches a line that is not JSON
        return isinstance(event, dict) and event.get(field) == wanted

    assert [matches(line) for line in lines] == [True, False]
    assert not matches('2026-11-26 10:00:00 ERROR gateway.state: store read failed {"event": "store_failed"}')  # GATEWAY_LOG_FORMAT=text
    (transformation,) = metric_filter["MetricTransformations"]
    alarm = stack.properties("StoreFailuresAlarm")
    assert (alarm["Namespace"], alarm["MetricName"]) == (transformation["MetricNamespace"], transformation["MetricName"])
    assert transformation["MetricValue"] == "1" and alarm["Statistic"] == "Sum"
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold" and float(alarm["Threshold"]) == 1
    assert alarm["TreatMissingData"] == "notBreaching" and "AlarmActions" not in alarm
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:ops"
    with_topic = render({"AlarmTopicArn": topic}).properties("StoreFailuresAlarm")
    assert with_topic["AlarmActions"] == with_topic["OKActions"] == [topic]
    # The gateway logs JSON unless told otherwise, and the stack does not tell it.
    from gateway.settings import load_settings

    assert load_settings({k: v for k, v in stack.environment("gateway").items() if k == "GATEWAY_LOG_FORMAT"}).log_format == "json"


# checkov's findings on the stack, each explained beside the resource (Metadata.checkov.skip).
CHECKOV_SKIPPED = {("CKV_AWS_119", "AWS::DynamoDB::Table.StateTable"), ("CKV_AWS_158", "AWS::Logs::LogGroup.LogGroup")}


def test_checkov_passes_with_each_skip_explained() -> None:
    result = subprocess.run(
        [str(BIN / "checkov"), "--file", str(STACK_FILE), "--framework", "cloudformation", "--skip-download", "--output", "json", "--compact"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
    )
    report = json.loads(result.stdout)
    checks = report["results"]
    assert report["summary"]["parsing_errors"] == 0
    assert [(c["check_id"], c["resource"]) for c in checks["failed_checks"]] == []
    skipped = {(c["check_id"], c["resource"]) for c in checks["skipped_checks"]}
    assert skipped == CHECKOV_SKIPPED
    assert all(len(c["check_result"].get("suppress_comment", "")) > 80 for c in checks["skipped_checks"])
    # checkov skips a policy it cannot read without saying so (a statement under Fn::If did
    # that): both roles' policies must have been judged.
    judged = {(c["check_id"], c["resource"]) for c in checks["passed_checks"]}
    for role in ("ExecutionRole", "TaskRole"):
        assert {(check, f"AWS::IAM::Role.{role}") for check in ("CKV_AWS_107", "CKV_AWS_108", "CKV_AWS_109", "CKV_AWS_110", "CKV_AWS_111")} <= judged
