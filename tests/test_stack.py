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
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from parliament import analyze_policy_string

from gateway.server.uvicorn_setup import KEEP_ALIVE_SECONDS
from tests.stack import (
    ACCOUNT,
    NGINX_IMAGE_ENV,
    NGINX_TEMPLATE_PATH,
    REGION,
    ROOT,
    RenderedStack,
    api_calls,
    envsubst_like_the_nginx_image,
    load_template,
    render,
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


@pytest.mark.parametrize("secrets", ["names", "arns"])
def test_the_iam_policies_pass_parliament(secrets: str) -> None:
    parameters = {}
    if secrets == "arns":
        parameters = {
            "AdminTokensSecret": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:gw/admin-Xy12Zw",
            "BypassSecret": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:gw/bypass-Ab34Cd",
        }
    stack = render(parameters)
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
    by_name = render()
    statements = _statements(by_name, "ExecutionRole")
    secrets = statements["ReadTheGatewaySecrets"]["Resource"]
    prefix = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:"
    # A name gets the six-character suffix every secret ARN ends with; a full ARN is exact.
    assert secrets == [prefix + "maintenance-gateway/shop-prod/admin-tokens-??????", prefix + "maintenance-gateway/shop-prod/bypass-Ab12Cd"]
    assert statements["WriteTheTaskLogs"]["Resource"] == f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/ecs/shop-prod:log-stream:*"
    wildcard = [sid for sid, statement in statements.items() if statement["Resource"] == "*"]
    assert wildcard == ["AuthenticateToEcr"]
    value_from = {secret["Name"]: secret["ValueFrom"] for secret in by_name.container("gateway")["Secrets"]}
    assert value_from == {
        "GATEWAY_ADMIN_TOKENS": prefix + "maintenance-gateway/shop-prod/admin-tokens",
        "GATEWAY_BYPASS_SECRET": prefix + "maintenance-gateway/shop-prod/bypass-Ab12Cd",
    }
    for role in ("ExecutionRole", "TaskRole"):
        (trust,) = by_name.properties(role)["AssumeRolePolicyDocument"]["Statement"]
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
        "DjangoKeepAlive": float(django_command[django_command.index("--keep-alive") + 1]),
        "DjangoGracefulTimeout": float(django_command[django_command.index("--graceful-timeout") + 1]),
        "GatewayDrain": float(gateway_env["GATEWAY_DRAIN_TIMEOUT"]),
        "DeregistrationDelay": float(attributes["deregistration_delay.timeout_seconds"]),
        "StopTimeout": min(float(c["StopTimeout"]) for c in stack.properties("TaskDefinition")["ContainerDefinitions"]),
    }


def chain_problems(t: dict[str, float]) -> list[str]:
    rules = [
        ("LoadBalancerIdle", "<", "NginxClientKeepalive", "the ALB would reuse a connection nginx is closing"),
        ("NginxUpstreamKeepalive", "<", "GatewayKeepAlive", "nginx would reuse a connection the gateway is closing"),
        ("GatewayUpstreamIdle", "<", "DjangoKeepAlive", "the gateway would reuse a connection gunicorn is closing"),
        ("GatewayUpstreamRead", "<", "NginxProxyRead", "nginx would answer a slow Django with its own 504, no CORS"),
        ("NginxProxyRead", "<", "LoadBalancerIdle", "the ALB would cut a slow answer before nginx's 504"),
        ("GatewayWebSocketPing", "<", "NginxProxyRead", "nginx would cut an idle WebSocket between two pings"),
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
    return problems


def test_the_timeout_chain_holds(stack: RenderedStack) -> None:
    timeouts = effective_timeouts(stack)
    assert chain_problems(timeouts) == []
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
    ],
)
def test_changing_one_link_alone_breaks_the_chain(link: str, value: str) -> None:
    stack = render(mapping_overrides={("Timeouts", "Seconds", link): value})
    assert chain_problems(effective_timeouts(stack)) != []


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
    for name, spec in load_template()["Parameters"].items():
        if name not in given:
            if "Default" not in spec:
                problems.append(f"{name} is required")
            continue
        value = given[name]
        if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
            problems.append(f"{name}={value} does not match {spec['AllowedPattern']}")
        if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
            problems.append(f"{name}={value} is not one of {spec['AllowedValues']}")
        if "MinValue" in spec and float(value) < float(spec["MinValue"]):
            problems.append(f"{name}={value} is below {spec['MinValue']}")
        if "MaxValue" in spec and float(value) > float(spec["MaxValue"]):
            problems.append(f"{name}={value} is above {spec['MaxValue']}")
    problems += [f"{name} is not a parameter of the stack" for name in set(given) - set(load_template()["Parameters"])]
    return problems


def readme_deploy_parameters() -> dict[str, str]:
    readme = (ROOT / "README.md").read_text()
    runbook = readme.split("## Running it on ECS: a runbook", 1)[1]
    registry = re.search(r"^REGISTRY=(\S+)", runbook, re.M)
    assert registry, "the runbook sets REGISTRY"
    command = re.search(r"^aws cloudformation deploy .*?(?=\n```)", runbook, re.M | re.S)
    assert command, "the runbook has an `aws cloudformation deploy` command"
    text = command.group(0).replace("\\\n", " ").replace("$REGISTRY", registry.group(1))
    assert "--template-file config/ecs-stack.yaml" in text and "--capabilities CAPABILITY_IAM" in text
    overrides = text.split("--parameter-overrides", 1)[1].split()
    return dict(item.split("=", 1) for item in overrides)


def test_the_readmes_deploy_command_gives_the_stack_what_it_needs() -> None:
    parameters = readme_deploy_parameters()
    assert parameter_problems(parameters) == []
    stack = render(parameters)
    assert all(validation_errors(call) == [] for call in api_calls(stack))


def test_the_tests_deploy_with_valid_parameters() -> None:
    from tests.stack import DEPLOY_PARAMETERS

    assert parameter_problems(DEPLOY_PARAMETERS) == []
    assert parameter_problems({**DEPLOY_PARAMETERS, "SiteKey": "shop prod", "AssignPublicIp": "YES"}) != []
