"""config/ecs-stack.yaml read as CloudFormation would deploy it, for the tests.

`render` resolves the intrinsic functions the stack uses (Ref, Fn::Sub, Fn::FindInMap,
Fn::If and the conditions, Fn::GetAtt, Fn::Select, Fn::Split, Fn::Join) for one set of
parameters, with physical names and ARNs made up the way AWS makes them. The tests then
look at what ECS, ELB, IAM, DynamoDB and CloudWatch Logs would be asked for, and run the
containers' own commands. `api_calls` turns each resource into the API calls that
CloudFormation makes for it, in botocore's shapes, to be validated against AWS's models.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botocore.session
from botocore.model import Shape
from botocore.validate import ParamValidator
from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parent.parent
STACK_PATH = ROOT / "config" / "ecs-stack.yaml"
NGINX_TEMPLATE_PATH = ROOT / "config" / "nginx" / "default.conf.template"

REGION = "eu-west-1"
ACCOUNT = "123456789012"
STACK_NAME = "shop-prod"

# What the README's `aws cloudformation deploy` passes.
DEPLOY_PARAMETERS = {
    "NginxImage": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/shop-nginx:1.28",
    "GatewayImage": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/maintenance-gateway:0.1.0",
    "DjangoImage": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/shop-django:2026-11-26",
    "DjangoWsgiApplication": "shop.wsgi",
    "ClusterName": "web",
    "VpcId": "vpc-0a1b2c3d4e5f60718",
    "Subnets": "subnet-0a1b2c3d4e5f60001,subnet-0a1b2c3d4e5f60002",
    "SecurityGroup": "sg-0a1b2c3d4e5f60003",
    "ListenerArn": f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:listener/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2",
    "RulePriority": "120",
    "HostHeader": "shop.example.com",
    "SiteKey": "shop-prod",
    "AllowedOrigins": "https://app.example.com",
    # Full ARNs, as `aws secretsmanager create-secret --query ARN --output text` prints them.
    "AdminTokensSecret": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:maintenance-gateway/shop-prod/admin-tokens-Xy12Zw",
    "BypassSecret": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:maintenance-gateway/shop-prod/bypass-Ab12Cd",
}


def load_template() -> dict[str, Any]:
    return json.loads(json.dumps(cfn_yaml.load(str(STACK_PATH))))


class NoValue:
    """AWS::NoValue: the property or list item disappears."""


NO_VALUE = NoValue()

# How each resource type's Ref and Fn::GetAtt come out, as AWS names them.
PHYSICAL: dict[str, Callable[[str], dict[str, str]]] = {
    "AWS::DynamoDB::Table": lambda name: {
        "Ref": f"{STACK_NAME}-{name}-1A2B3C4D5E6F",
        "Arn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{STACK_NAME}-{name}-1A2B3C4D5E6F",
    },
    "AWS::IAM::Role": lambda name: {
        "Ref": f"{STACK_NAME}-{name}-AbCdEf012345",
        "Arn": f"arn:aws:iam::{ACCOUNT}:role/{STACK_NAME}-{name}-AbCdEf012345",
    },
    "AWS::ElasticLoadBalancingV2::TargetGroup": lambda name: {
        "Ref": f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/shop-Targe-1A2B3C4D5E6F/73e2d6bc24d8a067",
        "TargetGroupName": "shop-Targe-1A2B3C4D5E6F",
    },
    "AWS::ElasticLoadBalancingV2::ListenerRule": lambda name: {
        "Ref": f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:listener-rule/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee",
    },
    "AWS::ECS::TaskDefinition": lambda name: {
        "Ref": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{STACK_NAME}:1",
    },
    "AWS::ECS::Service": lambda name: {
        "Ref": f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/web/{STACK_NAME}-{name}-AbCdEf012345",
        "Name": f"{STACK_NAME}-{name}-AbCdEf012345",
    },
    "AWS::Logs::MetricFilter": lambda name: {"Ref": f"{STACK_NAME}-{name}-AbCdEf012345"},
    "AWS::CloudWatch::Alarm": lambda name: {
        "Ref": f"{STACK_NAME}-{name}-AbCdEf012345",
        "Arn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{STACK_NAME}-{name}-AbCdEf012345",
    },
}


@dataclass
class RenderedStack:
    template: dict[str, Any]
    parameters: dict[str, str]
    mappings: dict[str, Any]
    conditions: dict[str, bool] = field(default_factory=dict)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    physical: dict[str, dict[str, str]] = field(default_factory=dict)

    def properties(self, logical_id: str) -> dict[str, Any]:
        return self.resources[logical_id]["Properties"]

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {name: res for name, res in self.resources.items() if res["Type"] == resource_type}

    def container(self, name: str) -> dict[str, Any]:
        definitions = self.properties("TaskDefinition")["ContainerDefinitions"]
        return next(c for c in definitions if c["Name"] == name)

    def environment(self, name: str) -> dict[str, str]:
        return {item["Name"]: item["Value"] for item in self.container(name).get("Environment", [])}

    def timeout(self, name: str) -> float:
        return float(self.mappings["Timeouts"]["Seconds"][name])


def render(
    parameters: Mapping[str, str] | None = None,
    mapping_overrides: Mapping[tuple[str, str, str], str] | None = None,
) -> RenderedStack:
    """The stack as deployed with these parameters (defaults filled), mapping values replaced
    where the tests must (loopback ports)."""
    template = load_template()
    given = {**DEPLOY_PARAMETERS, **(parameters or {})}
    values: dict[str, str] = {}
    for name, spec in template["Parameters"].items():
        if name in given:
            values[name] = given[name]
        elif "Default" in spec:
            values[name] = str(spec["Default"])
        else:
            raise KeyError(f"parameter {name} has no value and no default")
    unknown = set(given) - set(template["Parameters"])
    assert not unknown, f"not parameters of the stack: {unknown}"
    mappings = json.loads(json.dumps(template.get("Mappings", {})))
    for (top, second, key), value in (mapping_overrides or {}).items():
        assert key in mappings[top][second], f"{top}.{second}.{key} is not in the mappings"
        mappings[top][second][key] = value
    stack = RenderedStack(template, values, mappings)
    stack.physical = {name: PHYSICAL[res["Type"]](name) for name, res in template["Resources"].items() if res["Type"] in PHYSICAL}
    for name, res in template["Resources"].items():
        if res["Type"] == "AWS::Logs::LogGroup":
            group = resolve(stack, res["Properties"]["LogGroupName"])
            stack.physical[name] = {"Ref": group, "Arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}:*"}
    for name, expression in template.get("Conditions", {}).items():
        stack.conditions[name] = bool(resolve(stack, expression))
    stack.resources = {name: resolve(stack, res) for name, res in template["Resources"].items()}
    return stack


PSEUDO = {
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::Partition": "aws",
    "AWS::StackName": STACK_NAME,
    "AWS::URLSuffix": "amazonaws.com",
}


def _ref(stack: RenderedStack, name: str) -> Any:
    if name == "AWS::NoValue":
        return NO_VALUE
    if name in PSEUDO:
        return PSEUDO[name]
    if name in stack.parameters:
        kind = stack.template["Parameters"][name]["Type"]
        value = stack.parameters[name]
        return value.split(",") if kind.startswith("List<") or kind == "CommaDelimitedList" else value
    if name in stack.physical:
        return stack.physical[name]["Ref"]
    raise KeyError(f"Ref to unknown {name}")


def _sub(stack: RenderedStack, text: str, variables: Mapping[str, Any]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name in variables:
            return str(variables[name])
        if "." in name:
            resource, attribute = name.split(".", 1)
            return stack.physical[resource][attribute]
        return str(_ref(stack, name))

    return re.sub(r"\$\{([^}]+)\}", replace, text)


def resolve(stack: RenderedStack, node: Any) -> Any:
    if isinstance(node, list):
        items = [resolve(stack, item) for item in node]
        return [item for item in items if item is not NO_VALUE]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (key, arg), = node.items()
        if key == "Ref":
            return _ref(stack, arg)
        if key == "Fn::Sub":
            if isinstance(arg, str):
                return _sub(stack, arg, {})
            text, variables = arg
            return _sub(stack, text, {name: resolve(stack, value) for name, value in variables.items()})
        if key == "Fn::FindInMap":
            top, second, third = (resolve(stack, part) for part in arg)
            return stack.mappings[top][second][third]
        if key == "Fn::GetAtt":
            resource, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
            return stack.physical[resource][attribute]
        if key == "Fn::If":
            condition, when_true, when_false = arg
            return resolve(stack, when_true if stack.conditions[condition] else when_false)
        if key == "Fn::Select":
            index, items = arg
            return resolve(stack, items)[int(index)]
        if key == "Fn::Split":
            separator, text = arg
            return resolve(stack, text).split(separator)
        if key == "Fn::Join":
            separator, items = arg
            return separator.join(str(item) for item in resolve(stack, items))
        if key == "Fn::Equals":
            left, right = (resolve(stack, part) for part in arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not resolve(stack, arg[0])
        if key == "Fn::Or":
            return any(resolve(stack, part) for part in arg)
        if key == "Fn::And":
            return all(resolve(stack, part) for part in arg)
        if key == "Condition":
            return stack.conditions[arg]
        assert not key.startswith("Fn::"), f"the test renderer does not know {key}"
    resolved = {key: resolve(stack, value) for key, value in node.items()}
    return {key: value for key, value in resolved.items() if value is not NO_VALUE}


# --- CloudFormation properties to the API calls CloudFormation makes --------------------------------


@dataclass
class ApiCall:
    resource: str
    service: str
    operation: str
    params: dict[str, Any]
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.resource}: {self.service}.{self.operation}"


_SESSION = botocore.session.get_session()


def input_shape(service: str, operation: str) -> Shape:
    return _SESSION.get_service_model(service).operation_model(operation).input_shape


def to_api(value: Any, shape: Shape, path: str, problems: list[str]) -> Any:
    """A CloudFormation property value in an API shape: members matched by name regardless of
    case (CloudFormation's ContainerDefinitions is ECS's containerDefinitions), scalars
    coerced as CloudFormation coerces them; a property with no member, or a value outside
    the shape's enum, is a problem."""
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            problems.append(f"{path}: expected an object, got {value!r}")
            return value
        members = {name.lower(): name for name in shape.members}
        converted = {}
        for key, item in value.items():
            member = members.get(key.lower())
            if member is None:
                problems.append(f"{path}.{key}: no such member in {shape.name}")
                continue
            converted[member] = to_api(item, shape.members[member], f"{path}.{key}", problems)
        return converted
    if kind == "list":
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {value!r}")
            return value
        return [to_api(item, shape.member, f"{path}[{i}]", problems) for i, item in enumerate(value)]
    if kind == "map":
        return {key: to_api(item, shape.value, f"{path}.{key}", problems) for key, item in value.items()}
    if kind in ("integer", "long") and isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        value = int(value)
    elif kind == "boolean" and isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    elif kind == "string" and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    enum = getattr(shape, "enum", None)
    if enum and value not in enum:
        problems.append(f"{path}: {value!r} is not one of {sorted(enum)}")
    return value


def _call(resource: str, service: str, operation: str, properties: Mapping[str, Any]) -> ApiCall:
    problems: list[str] = []
    params = to_api(dict(properties), input_shape(service, operation), resource, problems)
    return ApiCall(resource, service, operation, params, problems)


def api_calls(stack: RenderedStack) -> list[ApiCall]:
    """What CloudFormation asks each service for, per resource of the stack."""
    calls: list[ApiCall] = []
    for name, resource in stack.resources.items():
        props = copy.deepcopy(resource["Properties"])
        kind = resource["Type"]
        physical = stack.physical.get(name, {})
        if kind == "AWS::DynamoDB::Table":
            recovery = props.pop("PointInTimeRecoverySpecification", None)
            sse = props.pop("SSESpecification", None)
            if sse is not None:
                props["SSESpecification"] = {"Enabled": sse.pop("SSEEnabled"), **sse}
            table = props.setdefault("TableName", physical["Ref"])
            calls.append(_call(name, "dynamodb", "CreateTable", props))
            if recovery is not None:
                calls.append(_call(name, "dynamodb", "UpdateContinuousBackups", {"TableName": table, "PointInTimeRecoverySpecification": recovery}))
        elif kind == "AWS::Logs::LogGroup":
            retention = props.pop("RetentionInDays", None)
            calls.append(_call(name, "logs", "CreateLogGroup", props))
            if retention is not None:
                calls.append(_call(name, "logs", "PutRetentionPolicy", {"LogGroupName": props["LogGroupName"], "RetentionInDays": retention}))
        elif kind == "AWS::IAM::Role":
            policies = props.pop("Policies", [])
            managed = props.pop("ManagedPolicyArns", [])
            role = props.setdefault("RoleName", physical["Ref"])
            props["AssumeRolePolicyDocument"] = json.dumps(props["AssumeRolePolicyDocument"])
            calls.append(_call(name, "iam", "CreateRole", props))
            for policy in policies:
                calls.append(_call(name, "iam", "PutRolePolicy", {"RoleName": role, "PolicyName": policy["PolicyName"], "PolicyDocument": json.dumps(policy["PolicyDocument"])}))
            for arn in managed:
                calls.append(_call(name, "iam", "AttachRolePolicy", {"RoleName": role, "PolicyArn": arn}))
        elif kind == "AWS::ElasticLoadBalancingV2::TargetGroup":
            attributes = props.pop("TargetGroupAttributes", [])
            props.setdefault("Name", physical["TargetGroupName"])
            calls.append(_call(name, "elbv2", "CreateTargetGroup", props))
            if attributes:
                calls.append(_call(name, "elbv2", "ModifyTargetGroupAttributes", {"TargetGroupArn": physical["Ref"], "Attributes": attributes}))
        elif kind == "AWS::ElasticLoadBalancingV2::ListenerRule":
            calls.append(_call(name, "elbv2", "CreateRule", props))
        elif kind == "AWS::ECS::TaskDefinition":
            calls.append(_call(name, "ecs", "RegisterTaskDefinition", props))
        elif kind == "AWS::ECS::Service":
            props.setdefault("ServiceName", physical["Name"])
            calls.append(_call(name, "ecs", "CreateService", props))
        elif kind == "AWS::Logs::MetricFilter":
            props.setdefault("FilterName", physical["Ref"])
            calls.append(_call(name, "logs", "PutMetricFilter", props))
        elif kind == "AWS::CloudWatch::Alarm":
            props.setdefault("AlarmName", physical["Ref"])
            calls.append(_call(name, "cloudwatch", "PutMetricAlarm", props))
        else:
            raise AssertionError(f"{name}: no API mapping for {kind}; add one so it is validated")
    return calls


def rule_problems(template: Mapping[str, Any], values: Mapping[str, str]) -> list[str]:
    """The template's Rules as CloudFormation applies them before it creates anything: each rule
    whose RuleCondition holds (or that has none) must have every Assertion true; the description
    of each one that fails. The rule functions the stack uses: Ref, Fn::Equals, Fn::Not, Fn::Or,
    Fn::And, Fn::Contains."""

    def value(node: Any) -> Any:
        if isinstance(node, list):
            return [value(item) for item in node]
        if not isinstance(node, dict):
            return str(node)
        (key, arg), = node.items()
        if key == "Ref":
            return values[arg]
        if key == "Fn::Equals":
            left, right = (value(part) for part in arg)
            return left == right
        if key == "Fn::Not":
            return not value(arg[0])
        if key == "Fn::Or":
            return any(value(part) for part in arg)
        if key == "Fn::And":
            return all(value(part) for part in arg)
        if key == "Fn::Contains":
            items, item = arg
            return value(item) in value(items)
        raise AssertionError(f"the test's rule evaluator does not know {key}")

    problems = []
    for name, rule in template.get("Rules", {}).items():
        if "RuleCondition" in rule and not value(rule["RuleCondition"]):
            continue
        for assertion in rule["Assertions"]:
            if not value(assertion["Assert"]):
                problems.append(f"{name}: {assertion['AssertDescription']}")
    return problems


def validation_errors(call: ApiCall) -> list[str]:
    """The mapping problems and botocore's ParamValidator report for one call."""
    report = ParamValidator().validate(call.params, input_shape(call.service, call.operation))
    return call.problems + ([report.generate_report()] if report.has_errors() else [])


def task_definition_api(stack: RenderedStack) -> dict[str, Any]:
    """The task definition as ECS's RegisterTaskDefinition takes it (camelCase)."""
    call = next(c for c in api_calls(stack) if c.operation == "RegisterTaskDefinition")
    return call.params


# --- nginx: the template filled as the official image fills it ------------------------------------

# What the official nginx image's own environment holds besides the task's (its ENV lines
# and what Docker sets): envsubst fills these too, so the template must not use them.
NGINX_IMAGE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOSTNAME": "ip-10-20-1-17.eu-west-1.compute.internal",
    "HOME": "/root",
    "NGINX_VERSION": "1.28.0",
    "NJS_VERSION": "0.8.10",
    "NJS_RELEASE": "1~bookworm",
    "PKG_RELEASE": "1~bookworm",
    "DYNPKG_RELEASE": "1~bookworm",
}


def envsubst_like_the_nginx_image(template: str, environment: Mapping[str, str]) -> str:
    """docker-entrypoint.d/20-envsubst-on-templates.sh: `envsubst "$defined_envs"`, where
    defined_envs lists every variable set in the container (matching NGINX_ENVSUBST_FILTER):
    only those are replaced, so nginx's own $variables stay as they are."""
    import subprocess

    filter_pattern = re.compile(environment.get("NGINX_ENVSUBST_FILTER", ""))
    defined = " ".join(f"${{{name}}}" for name in environment if filter_pattern.search(name))
    result = subprocess.run(
        ["envsubst", defined], input=template, env=dict(environment), capture_output=True, text=True, check=True, timeout=10
    )
    return result.stdout


def nginx_conf_on_loopback(nginx_port: int, gateway_port: int) -> str:
    """The nginx config a task of the stack runs, listening on 127.0.0.1:nginx_port in front
    of a gateway on gateway_port."""
    stack = render(mapping_overrides={
        ("Ports", "Container", "Nginx"): str(nginx_port),
        ("Ports", "Container", "Gateway"): str(gateway_port),
        ("Ports", "Listen", "NginxAddress"): "127.0.0.1",
    })
    return envsubst_like_the_nginx_image(NGINX_TEMPLATE_PATH.read_text(), {**NGINX_IMAGE_ENV, **stack.environment("nginx")})
