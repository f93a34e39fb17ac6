"""Create the transformed template's resources in moto with boto3, in dependency order.

moto's CloudFormation cannot do this (it rejects the RestApi SAM emits, ignores
``DefinitionSubstitutions`` and layers, and puts state machines in the backend that does not
execute), so each resource type the template uses has a small creator here that returns the
resource's ``Ref`` value and ``Fn::GetAtt`` attributes. Some types are deliberately not created
in moto, because the runtime plays that part itself: API Gateway (served by
:mod:`local_runtime.apigateway`), event source mappings and schedules (run by
:mod:`local_runtime.pollers`) and Lambda permissions (nothing is enforced locally).
Physical names follow CloudFormation's ``<stack>-<LogicalId>-<SUFFIX>`` pattern with a suffix
derived from the logical id, so they are the same on every start.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import secrets
import string
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local_runtime.accounting import RUNTIME, tag_client
from local_runtime.apigateway import RestApiDefinition
from local_runtime.lambdas import FunctionSpec
from local_runtime.pollers import ScheduleSpec, SqsEventSource
from local_runtime.resolver import ACCOUNT_ID, STACK_NAME, Resolver, dependency_order
from local_runtime.template import TemplateError, TransformedTemplate

log = logging.getLogger("local_runtime.provision")


def _dummy_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "The local runtime runs the code from the working tree.\n")
    return buffer.getvalue()


_DUMMY_ZIP = _dummy_zip()


@dataclass(frozen=True)
class ProvisionedResource:
    logical_id: str
    type: str
    ref: Any
    attributes: Mapping[str, Any] = field(default_factory=dict)
    created: bool = True


@dataclass
class Stack:
    """Everything provisioned from one template, and what the runtime must drive itself."""

    template: TransformedTemplate
    resolver: Resolver
    resources: dict[str, ProvisionedResource] = field(default_factory=dict)
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    sqs_sources: list[SqsEventSource] = field(default_factory=list)
    schedules: list[ScheduleSpec] = field(default_factory=list)
    rest_apis: list[RestApiDefinition] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    queue_urls: dict[str, str] = field(default_factory=dict)  # queue ARN -> URL
    seconds: float = 0.0

    def physical_id(self, logical_id: str) -> Any:
        """The ``Ref`` value of a resource (table name, queue URL, state machine ARN...)."""
        return self.resources[logical_id].ref

    def of_type(self, resource_type: str) -> list[ProvisionedResource]:
        """Resources of one type, in the order the SAM template lists them."""
        order = {logical_id: n for n, logical_id in enumerate(self.template.sam["Resources"])}
        found = [r for r in self.resources.values() if r.type == resource_type]
        return sorted(found, key=lambda r: order.get(r.logical_id, len(order)))

    def outputs(self) -> dict[str, Any]:
        """The template's Outputs, resolved (outputs whose condition is false are left out)."""
        values: dict[str, Any] = {}
        for name, output in (self.template.cfn.get("Outputs") or {}).items():
            condition = output.get("Condition")
            if condition and not self.resolver.condition(condition):
                continue
            try:
                values[name] = self.resolver.resolve(output.get("Value"))
            except TemplateError as exc:
                log.debug("output %s not resolvable locally: %s", name, exc)
        return values


def physical_name(logical_id: str, max_length: int = 64, with_stack: bool = True) -> str:
    """A CloudFormation-style generated name, stable for a given logical id."""
    suffix = hashlib.sha256(f"{STACK_NAME}/{logical_id}".encode()).hexdigest()[:12].upper()
    prefix = f"{STACK_NAME}-" if with_stack else ""
    room = max_length - len(prefix) - len(suffix) - 1
    return f"{prefix}{logical_id[:room]}-{suffix}"


def generate_secret_string(spec: Mapping[str, Any]) -> str:
    """What Secrets Manager's ``GenerateSecretString`` would produce, generated locally."""
    length = int(spec.get("PasswordLength", 32))
    excluded = set(str(spec.get("ExcludeCharacters", "")))
    pools = []
    if not _flag(spec.get("ExcludeLowercase")):
        pools.append(string.ascii_lowercase)
    if not _flag(spec.get("ExcludeUppercase")):
        pools.append(string.ascii_uppercase)
    if not _flag(spec.get("ExcludeNumbers")):
        pools.append(string.digits)
    if not _flag(spec.get("ExcludePunctuation")):
        pools.append(string.punctuation)
    if _flag(spec.get("IncludeSpace")):
        pools.append(" ")
    pools = ["".join(c for c in pool if c not in excluded) for pool in pools]
    pools = [pool for pool in pools if pool]
    if not pools:
        raise TemplateError("GenerateSecretString excludes every character")
    alphabet = "".join(pools)
    while True:
        value = "".join(secrets.choice(alphabet) for _ in range(length))
        require_each = spec.get("RequireEachIncludedType", True)
        if not _flag(require_each) or length < len(pools):
            break
        if all(any(c in pool for c in value) for pool in pools):
            break
    template, key = spec.get("SecretStringTemplate"), spec.get("GenerateStringKey")
    if template and key:
        document = json.loads(str(template))
        document[str(key)] = value
        return json.dumps(document)
    return value


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _tags_dict(tags: Any) -> dict[str, str]:
    if isinstance(tags, Mapping):
        return {str(k): str(v) for k, v in tags.items()}
    return {str(t["Key"]): str(t["Value"]) for t in tags or []}


def _pick(props: Mapping[str, Any], *names: str) -> dict[str, Any]:
    return {name: props[name] for name in names if name in props}


Creator = Callable[[str, dict[str, Any]], ProvisionedResource]


class Provisioner:
    """Creates one template's resources in moto; see the module docstring."""

    def __init__(
        self,
        template: TransformedTemplate,
        session: Any,
        endpoint_url: str,
        region: str,
        secret_values: Mapping[str, str],
    ) -> None:
        self.template = template
        self.region = region
        self.secret_values = dict(secret_values)
        self.resolver = Resolver(template.cfn, template.parameters, region)
        self.stack = Stack(template=template, resolver=self.resolver)
        self._session = session
        self._endpoint_url = endpoint_url
        self._clients: dict[str, Any] = {}
        self._layer_dirs: dict[str, Path] = {}
        self._queue_urls = self.stack.queue_urls
        self._function_ids: dict[str, str] = {}
        self._stages: dict[str, str] = {}
        self._creators: dict[str, Creator] = {
            "AWS::DynamoDB::Table": self._table,
            "AWS::SQS::Queue": self._queue,
            "AWS::IAM::Role": self._role,
            "AWS::Lambda::LayerVersion": self._layer,
            "AWS::Lambda::Function": self._function,
            "AWS::Lambda::Permission": self._not_created,
            "AWS::Lambda::Version": self._function_version,
            "AWS::Lambda::Alias": self._function_alias,
            "AWS::Lambda::EventSourceMapping": self._event_source_mapping,
            "AWS::Lambda::EventInvokeConfig": self._event_invoke_config,
            "AWS::StepFunctions::StateMachine": self._state_machine,
            "AWS::SecretsManager::Secret": self._secret,
            "AWS::KMS::Key": self._kms_key,
            "AWS::Logs::LogGroup": self._log_group,
            "AWS::CloudWatch::Alarm": self._alarm,
            "AWS::SNS::Topic": self._topic,
            "AWS::SNS::Subscription": self._subscription,
            "AWS::CloudWatch::Dashboard": self._dashboard,
            "AWS::ApiGateway::RestApi": self._rest_api,
            "AWS::ApiGateway::Stage": self._api_stage,
            "AWS::Events::Rule": self._events_rule,
            "AWS::Scheduler::Schedule": self._scheduler_schedule,
        }

    def client(self, service: str) -> Any:
        if service not in self._clients:
            client = self._session.client(
                service, endpoint_url=self._endpoint_url, region_name=self.region
            )
            self._clients[service] = tag_client(client, RUNTIME)
        return self._clients[service]

    def provision(self) -> Stack:
        """Create every resource whose condition holds, dependencies first."""
        started = time.perf_counter()
        resources = self.template.resources
        for logical_id in dependency_order(resources):
            resource = resources[logical_id]
            condition = resource.get("Condition")
            if condition and not self.resolver.condition(condition):
                log.debug("%s skipped: condition %s is false", logical_id, condition)
                continue
            resource_type = str(resource.get("Type"))
            creator = self._creators.get(resource_type)
            if creator is None:
                if resource_type.startswith("AWS::ApiGateway::"):
                    creator = self._not_created
                else:
                    log.warning(
                        "%s: %s is not supported locally; skipped", logical_id, resource_type
                    )
                    self.stack.skipped[logical_id] = resource_type
                    creator = self._not_created
            properties = self.resolver.resolve(resource.get("Properties", {}))
            try:
                provisioned = creator(logical_id, properties)
            except TemplateError:
                raise
            except Exception as exc:
                raise TemplateError(
                    f"creating {logical_id} ({resource_type}) failed: {exc}"
                ) from exc
            provisioned = ProvisionedResource(
                logical_id,
                resource_type,
                provisioned.ref,
                provisioned.attributes,
                provisioned.created,
            )
            self.stack.resources[logical_id] = provisioned
            self.resolver.refs[logical_id] = provisioned.ref
            self.resolver.attributes[logical_id] = dict(provisioned.attributes)
        self._attach_stages()
        self.stack.seconds = time.perf_counter() - started
        return self.stack

    # -- types the runtime plays itself ---------------------------------------------------

    def _not_created(self, logical_id: str, props: dict[str, Any]) -> ProvisionedResource:
        return ProvisionedResource(logical_id, "", f"{logical_id}-local", {}, created=False)

    def _rest_api(self, logical_id: str, props: dict[str, Any]) -> ProvisionedResource:
        api_id = hashlib.sha256(logical_id.encode()).hexdigest()[:10]
        body = props.get("Body")
        if not isinstance(body, Mapping):
            raise TemplateError(f"{logical_id}: only RestApis with an inline Body can be served")
        self.stack.rest_apis.append(RestApiDefinition(logical_id, api_id, "", body))
        return ProvisionedResource(
            logical_id, "", api_id, {"RootResourceId": api_id[:6]}, created=False
        )

    def _api_stage(self, logical_id: str, props: dict[str, Any]) -> ProvisionedResource:
        self._stages[str(props.get("RestApiId"))] = str(props.get("StageName", "Prod"))
        return ProvisionedResource(logical_id, "", props.get("StageName", "Prod"), created=False)

    def _attach_stages(self) -> None:
        self.stack.rest_apis = [
            RestApiDefinition(
                api.logical_id, api.api_id, self._stages.get(api.api_id, "Prod"), api.body
            )
            for api in self.stack.rest_apis
        ]

    def _event_source_mapping(self, logical_id: str, props: dict[str, Any]) -> ProvisionedResource:
        source_arn = str(props.get("EventSourceArn", ""))
        function_id = self._function_ids.get(str(props.get("FunctionName")))
        if function_id is None:
            raise TemplateError(f"{logical_id}: FunctionName is not a function of the template")
        if source_arn.startswith("arn:aws:sqs:") and source_arn in self._queue_urls:
            self.stack.sqs_sources.append(
                SqsEventSource(
                    logical_id=logical_id,
                    function_id=function_id,
                    queue_arn=source_arn,
                    queue_url=self._queue_urls[source_arn],
                    batch_size=int(props.get("BatchSize", 10)),
                    report_batch_item_failures="ReportBatchItemFailures"
                    in props.get("FunctionResponseTypes", []),
                    enabled=_flag(props.get("Enabled", True)),
                )
            )
        else:
            log.warning("%s: event source %s is not supported locally", logical_id, source_arn)
            self.stack.skipped[logical_id] = "AWS::Lambda::EventSourceMapping"
        return ProvisionedResource(
            logical_id, "", hashlib.sha256(logical_id.encode()).hexdigest()[:32], created=False
        )

    def _schedule(
        self,
        logical_id: str,
        expression: str,
        target: Mapping[str, Any],
        *,
        source: str,
        arn: str,
        enabled: bool,
        timezone: str | None = None,
    ) -> None:
        function_id = self._function_ids.get(str(target.get("Arn")))
        if function_id is None:
            log.warning(
                "%s: schedule target %s is not a local function; skipped",
                logical_id,
                target.get("Arn"),
            )
            return
        self.stack.schedules.append(
            ScheduleSpec(
                logical_id=logical_id,
                expression=expression,
                function_id=function_id,
                arn=arn,
                input=target.get("Input"),
                source=source,
                enabled=enabled,
                timezone=timezone,
            )
        )

    def _events_rule(self, logical_id: str, props: dict[str, Any]) -> ProvisionedResource:
        name = str(props.get("Name") or physical_name(logical_id))
        arn = f"arn:aws:events:{self.region}:{ACCOUNT_ID}:rule/{name}"
        expression = props.get("ScheduleExpression")
        if not expression:
            log.warning("%s: event-pattern rules are not run locally", logical_id)
            self.stack.skipped[logical_id] = "AWS::Events::Rule"
        else:
            enabled = str(props.get("State", "ENABLED")).upper() == "ENABLED"
            for target in props.get("Targets", []):
                self._schedule(
                    logical_id,
                    str(expression),
                    target,
                    source="aws.events",
                    arn=arn,
                    enabled=enabled,
                )
        return ProvisionedResource(logical_id, "", name, {"Arn": arn}, created=False)

    def _scheduler_schedule(self, logical_id: str, props: dict[str, Any]) -> ProvisionedResource:
        name = str(props.get("Name") or physical_name(logical_id))
        group = props.get("GroupName", "default")
        arn = f"arn:aws:scheduler:{self.region}:{ACCOUNT_ID}:schedule/{group}/{name}"
        enabled = str(props.get("State", "ENABLED")).upper() == "ENABLED"
        self._schedule(
            logical_id,
            str(props["ScheduleExpression"]),
            props.get("Target", {}),
            source="aws.scheduler",
            arn=arn,
            enabled=enabled,
            timezone=props.get("ScheduleExpressionTimezone"),
        )
        return ProvisionedResource(logical_id, "", name, {"Arn": arn}, created=False)

    # -- resources created in moto --------------------------------------------------------

    def _table(self, logical_id: str, props: dict[str, Any]) -> ProvisionedResource:
        dynamodb = self.client("dynamodb")
        name = str(props.get("TableName") or physical_name(logical_id, 255))
        billing = str(props.get("BillingMode", "PROVISIONED"))

        def throughput(source: Mapping[str, Any]) -> dict[str, Any]:
            if billing != "PROVISIONED":
                return {}
            value = source.get(
                "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
            )
            return {"ProvisionedThroughput": {k: int(v) for k, v in value.items()}}

        request: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": billing,
            **throughput(props),
            **_pick(props, "LocalSecondaryIndexes", "TableClass", "DeletionProtectionEnabled"),
        }
        if "GlobalSecondaryIndexes" in props:
            request["GlobalSecondaryIndexes"] = [
                {**_pick(index, "IndexName", "KeySchema", "Projection"), **throughput(index)}
                for index in props["GlobalSecondaryIndexes"]
            ]
        if "StreamSpecification" in props:
            request["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        sse = props.get("SSESpecification")
        if sse:
            request["SSESpecification"] = {
                "Enabled": _flag(sse.get("SSEEnabled")),
                **_pick(sse, "SSEType", "KMSMasterKeyId"),
            }
        if props.get("Tags"):
            request["Tags"] = props["Tags"]
        table = dynamodb.create_table(**request)["TableDescription"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl and _flag(ttl.get("Enabled")):
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
        pitr = props.get("PointInTimeRecoverySpecification")
        if pitr and _flag(pitr.get("PointInTimeRecoveryEnabled")):
            dynamodb.update_continuous_backups(
                TableName=name,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
            )
        attributes = {"Arn": table["TableArn"]}
        if "LatestStreamArn" in table:
            attributes["StreamArn"] = table["LatestStreamArn"]
        return ProvisionedResource(logical_id, "", name, attributes)

    def _queue(self, logical_id: str, props: dict[str, Any]) -> ProvisionedResource:
        fifo = _flag(props.get("FifoQueue"))
        name = props.get("QueueName") or physical_name(logical_id, 75 if fifo else 80)
        name = str(name)
        if fifo and not name.endswith(".fifo"):
            name += ".fifo"
        attributes: dict[str, str] = {}
        for key, value in props.items():
            if key in ("QueueName", "Tags"):
                continue
            if key in ("RedrivePolicy", "RedriveAllowPolicy") and isinstance(value, Mapping):
                policy = dict(value)
                if "maxReceiveCount" in policy:
                    policy["maxReceiveCount"] = int(policy["maxReceiveCount"])
                attributes[key] = json.dumps(policy)
            elif isinstance(value, bool):
                attributes[key] = "true" if value else "false"
            else:
                attributes[key] = str(value)
        request: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
        if props.get("Tags"):
            request["tags"] = _tags_dict(props["Tags"])
        url = self.client("sqs").create_queue(**request)["QueueUrl"]
        arn = f"arn:aws:sqs:{self.region}:{ACCOUNT_ID}:{name}"
        self._queue_urls[arn] = url
        return ProvisionedResource(
            logical_id, "", url, {"Arn": arn, "QueueName": name, "QueueUrl": url}
        )

    def _role(self, logical_id: str, props: dict[str, Any]) -> ProvisionedResource:
        iam = self.client("iam")
        name = str(props.get("RoleName") or physical_name(logical_id))
        request: dict[str, Any] = {
            "RoleName": name,
            "AssumeRolePolicyDocument": json.dumps(props.get("AssumeRolePolicyDocument", {})),
            **_pick(props, "Path", "Description"),
        }
        role = iam.create_role(**request)["Role"]
        for policy in props.get("Policies", []):
            # IAM defaults a missing Version to 2008-10-17; moto rejects that, so say 2012.
            document = {"Version": "2012-10-17", **policy["PolicyDocument"]}
            iam.put_role_policy(
                RoleName=name,
                PolicyName=str(policy["PolicyName"]),
                PolicyDocument=json.dumps(document),
            )
        # ManagedPolicyArns: moto has no AWS managed policies to attach, and nothing is
        # enforced locally, so they are not attached.
        return ProvisionedResource(
            logical_id, "", name, {"Arn": role["Arn"], "RoleId": role["RoleId"]}
        )

    def _layer(self, logical_id: str, props: dict[str, Any]) -> ProvisionedResource:
        local = self.template.local_path(props.get("Content"))
        response = self.client("lambda").publish_layer_version(
            LayerName=str(props.get("LayerName") or logical_id),
            Content={"ZipFile": _DUMMY_ZIP},
            **_pick(props, "Description", "CompatibleRuntimes", "CompatibleArchitectures"),
        )
        arn = response["LayerVersionArn"]
        if local is not None:
            # `sam build` puts a Python layer's folder under python/ on sys.path (/opt/python).
            self._layer_dirs[arn] = local / "python" if (local / "python").is_dir() else local
        else:
            log.warning("%s: layer content is not a local folder; not on sys.path", logical_id)
        return ProvisionedResource(logical_id, "", arn, {"LayerVersionArn": arn})

    def _function(self, logical_id: str, props: dict[str, Any]) -> ProvisionedResource:
        name = str(props.get("FunctionName") or physical_name(logical_id))
        code = props.get("Code", {})
        code_dir = self.template.local_path(code)
        if code_dir is None:
            log.warning("%s: code is not a local folder; invocations will fail", logical_id)
        variables = {
            str(k): _text(v)
            for k, v in (props.get("Environment") or {}).get("Variables", {}).items()
        }
        layers = [str(arn) for arn in props.get("Layers", [])]
        local_layers = [arn for arn in layers if arn in self._layer_dirs]
        if len(local_layers) != len(layers):
            log.warning(
                "%s: layers %s are not local; ignored",
                logical_id,
                sorted(set(layers) - set(local_layers)),
            )
        runtime = str(props.get("Runtime", "python3.13"))
        handler = str(props.get("Handler", "app.lambda_handler"))
        timeout = int(props.get("Timeout", 3))
        memory = int(props.get("MemorySize", 128))
        request: dict[str, Any] = {
            "FunctionName": name,
            "Runtime": runtime,
            "Role": str(props["Role"]),
            "Handler": handler,
            "Code": {"ZipFile": _DUMMY_ZIP},
            "Timeout": timeout,
            "MemorySize": memory,
            "Environment": {"Variables": variables},
            "Layers": local_layers,
            **_pick(props, "Description", "Architectures", "TracingConfig"),
        }
        if props.get("Tags"):
            request["Tags"] = _tags_dict(props["Tags"])
        dead_letter_arn = str((props.get("DeadLetterConfig") or {}).get("TargetArn") or "")
        if dead_letter_arn:
            request["DeadLetterConfig"] = {"TargetArn": dead_letter_arn}
            if not dead_letter_arn.startswith("arn:aws:sqs:"):
                log.warning(
                    "%s: dead-letter target %s is not an SQS queue: ignored locally",
                    logical_id,
                    dead_letter_arn,
                )
        arn = self.client("lambda").create_function(**request)["FunctionArn"]
        self.stack.functions[logical_id] = FunctionSpec(
            logical_id=logical_id,
            function_name=name,
            function_arn=arn,
            code_dir=code_dir,
            handler=handler,
            runtime=runtime,
            timeout_seconds=timeout,
            memory_mb=memory,
            region=self.region,
            environment=variables,
            layer_dirs=tuple(self._layer_dirs[arn] for arn in local_layers),
            dead_letter_arn=dead_letter_arn or None,
        )
        self._function_ids[name] = logical_id
        self._function_ids[arn] = logical_id
        return ProvisionedResource(logical_id, "", name, {"Arn": arn})

    def _event_invoke_config(self, logical_id: str, props: dict[str, Any]) -> ProvisionedResource:
        """A function's asynchronous invocation settings, kept on its :class:`FunctionSpec`
        (whatever the ``Qualifier``: locally every version and alias is the function)."""
        function = str(props.get("FunctionName"))
        function_id = self._function_ids.get(function) or self._function_ids.get(
            function.rsplit(":", 1)[0]
        )
        if function_id is None:
            raise TemplateError(f"{logical_id}: FunctionName is not a function of the template")
        spec = self.stack.functions[function_id]
        on_failure = (props.get("DestinationConfig") or {}).get("OnFailure") or {}
        config: dict[str, Any] = {}
        if "MaximumRetryAttempts" in props:
            config["MaximumRetryAttempts"] = int(props["MaximumRetryAttempts"])
        if "MaximumEventAgeInSeconds" in props:
            config["MaximumEventAgeInSeconds"] = int(props["MaximumEventAgeInSeconds"])
        if on_failure.get("Destination"):
            config["DestinationConfig"] = {
                "OnFailure": {"Destination": str(on_failure["Destination"])}
            }
        self.client("lambda").put_function_event_invoke_config(
            FunctionName=spec.function_name, **config
        )
        destination = on_failure.get("Destination")
        self.stack.functions[function_id] = dataclasses.replace(
            spec,
            max_retry_attempts=config.get("MaximumRetryAttempts", spec.max_retry_attempts),
            max_event_age_seconds=config.get(
                "MaximumEventAgeInSeconds", spec.max_event_age_seconds
            ),
            on_failure_arn=str(destination) if destination else None,
        )
        qualifier = str(props.get("Qualifier", "$LATEST"))
        return ProvisionedResource(
            logical_id, "", f"{spec.function_name}|{qualifier}", created=True
        )

    def _function_version(self, logical_id: str, props: dict[str, Any]) -> ProvisionedResource:
        function = str(props.get("FunctionName"))
        arn = (
            function
            if function.startswith("arn:")
            else f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{function}"
        )
        return ProvisionedResource(logical_id, "", f"{arn}:1", {"Version": "1"}, created=False)

    def _function_alias(self, logical_id: str, props: dict[str, Any]) -> ProvisionedResource:
        function = str(props.get("FunctionName"))
        arn = (
            function
            if function.startswith("arn:")
            else f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{function}"
        )
        return ProvisionedResource(logical_id, "", f"{arn}:{props.get('Name')}", created=False)

    def _state_machine(self, logical_id: str, props: dict[str, Any]) -> ProvisionedResource:
        if "DefinitionS3Location" in props:
            path = self.template.local_path(props["DefinitionS3Location"])
            if path is None:
                raise TemplateError(f"{logical_id}: DefinitionUri must be a local file")
            definition = path.read_text("utf-8")
        elif "DefinitionString" in props:
            definition = str(props["DefinitionString"])
        elif "Definition" in props:
            definition = json.dumps(props["Definition"])
        else:
            raise TemplateError(f"{logical_id}: no state machine definition")
        for key, value in (props.get("DefinitionSubstitutions") or {}).items():
            replacement = json.dumps(_text(value))[1:-1]
            definition = definition.replace("${" + str(key) + "}", replacement)
        try:
            json.loads(definition)
        except ValueError as exc:
            raise TemplateError(f"{logical_id}: definition is not valid JSON: {exc}") from exc
        name = str(props.get("StateMachineName") or physical_name(logical_id, 80, with_stack=False))
        request: dict[str, Any] = {
            "name": name,
            "definition": definition,
            "roleArn": str(props.get("RoleArn", f"arn:aws:iam::{ACCOUNT_ID}:role/local")),
            "type": str(props.get("StateMachineType", "STANDARD")),
        }
        if props.get("TracingConfiguration"):
            request["tracingConfiguration"] = {
                "enabled": _flag(props["TracingConfiguration"].get("Enabled"))
            }
        arn = self.client("stepfunctions").create_state_machine(**request)["stateMachineArn"]
        return ProvisionedResource(logical_id, "", arn, {"Arn": arn, "Name": name})

    def _secret(self, logical_id: str, props: dict[str, Any]) -> ProvisionedResource:
        name = str(props.get("Name") or physical_name(logical_id, 256, with_stack=False))
        if logical_id in self.secret_values:
            value = self.secret_values[logical_id]
        elif "SecretString" in props:
            value = str(props["SecretString"])
        else:
            value = generate_secret_string(props.get("GenerateSecretString") or {})
        request: dict[str, Any] = {
            "Name": name,
            "SecretString": value,
            **_pick(props, "Description", "KmsKeyId"),
        }
        if props.get("Tags"):
            request["Tags"] = props["Tags"]
        arn = self.client("secretsmanager").create_secret(**request)["ARN"]
        return ProvisionedResource(logical_id, "", arn, {"Id": arn})

    def _kms_key(self, logical_id: str, props: dict[str, Any]) -> ProvisionedResource:
        kms = self.client("kms")
        request: dict[str, Any] = {
            **_pick(props, "Description", "KeyUsage", "KeySpec"),
        }
        if "KeyPolicy" in props:
            request["Policy"] = json.dumps(props["KeyPolicy"])
        key = kms.create_key(**request)["KeyMetadata"]
        if _flag(props.get("EnableKeyRotation")):
            kms.enable_key_rotation(KeyId=key["KeyId"])
        return ProvisionedResource(
            logical_id, "", key["KeyId"], {"Arn": key["Arn"], "KeyId": key["KeyId"]}
        )

    def _log_group(self, logical_id: str, props: dict[str, Any]) -> ProvisionedResource:
        logs = self.client("logs")
        name = str(props.get("LogGroupName") or physical_name(logical_id, 512))
        logs.create_log_group(logGroupName=name)
        if "RetentionInDays" in props:
            logs.put_retention_policy(
                logGroupName=name, retentionInDays=int(props["RetentionInDays"])
            )
        arn = f"arn:aws:logs:{self.region}:{ACCOUNT_ID}:log-group:{name}:*"
        return ProvisionedResource(logical_id, "", name, {"Arn": arn})

    def _alarm(self, logical_id: str, props: dict[str, Any]) -> ProvisionedResource:
        name = str(props.get("AlarmName") or physical_name(logical_id, 255))
        request: dict[str, Any] = {"AlarmName": name}
        integers = ("Period", "EvaluationPeriods", "DatapointsToAlarm")
        for key, value in props.items():
            if key in integers:
                request[key] = int(value)
            elif key == "Threshold":
                request[key] = float(value)
            elif key != "AlarmName":
                request[key] = value
        self.client("cloudwatch").put_metric_alarm(**request)
        arn = f"arn:aws:cloudwatch:{self.region}:{ACCOUNT_ID}:alarm:{name}"
        return ProvisionedResource(logical_id, "", name, {"Arn": arn})

    def _topic(self, logical_id: str, props: dict[str, Any]) -> ProvisionedResource:
        """An SNS topic in moto (the alarms' actions name it; nothing is delivered locally)."""
        sns = self.client("sns")
        name = str(props.get("TopicName") or physical_name(logical_id, 256))
        request: dict[str, Any] = {"Name": name}
        attributes = {
            key: _text(props[key])
            for key in (
                "DisplayName",
                "KmsMasterKeyId",
                "FifoTopic",
                "ContentBasedDeduplication",
                "SignatureVersion",
                "TracingConfig",
            )
            if key in props
        }
        if attributes:
            request["Attributes"] = attributes
        if props.get("Tags"):
            request["Tags"] = [{"Key": k, "Value": v} for k, v in _tags_dict(props["Tags"]).items()]
        arn = sns.create_topic(**request)["TopicArn"]
        for subscription in props.get("Subscription") or []:
            sns.subscribe(
                TopicArn=arn, Protocol=subscription["Protocol"], Endpoint=subscription["Endpoint"]
            )
        return ProvisionedResource(logical_id, "", arn, {"TopicArn": arn, "TopicName": name})

    def _subscription(self, logical_id: str, props: dict[str, Any]) -> ProvisionedResource:
        request: dict[str, Any] = {
            **_pick(props, "TopicArn", "Protocol", "Endpoint"),
            "ReturnSubscriptionArn": True,
        }
        attributes = {
            key: _text(props[key])
            for key in (
                "FilterPolicy",
                "FilterPolicyScope",
                "RawMessageDelivery",
                "RedrivePolicy",
                "DeliveryPolicy",
            )
            if key in props
        }
        if attributes:
            request["Attributes"] = attributes
        arn = self.client("sns").subscribe(**request)["SubscriptionArn"]
        return ProvisionedResource(logical_id, "", arn, {"Arn": arn})

    def _dashboard(self, logical_id: str, props: dict[str, Any]) -> ProvisionedResource:
        name = str(props.get("DashboardName") or physical_name(logical_id, 255))
        body = props.get("DashboardBody", "{}")
        self.client("cloudwatch").put_dashboard(
            DashboardName=name, DashboardBody=body if isinstance(body, str) else json.dumps(body)
        )
        return ProvisionedResource(logical_id, "", name)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)
