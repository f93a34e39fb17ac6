"""`make coldstart`: how long each function's INIT takes, side by side with a bare handler.

Each sample is a fresh Python process that imports the handler module the way Lambda's INIT
does (``import app`` with the function's folder and the layer on the path), in the environment
the function gets when deployed: template.yaml's Globals and the function's own variables,
plus what Lambda itself sets (``LAMBDA_TASK_ROOT``, ``AWS_EXECUTION_ENV``, the region,
credentials...). ``POWERTOOLS_TRACE_DISABLED`` is not set, as in Lambda. The bare handler
imports boto3 and creates one DynamoDB table resource, in the API function's environment.

The whole process is timed (interpreter start-up included), the functions take turns in each
round so that a busy machine slows them all alike, and the figures are medians: of the
samples, and of the ratios of each sample to the bare handler's of the same round. These are
figures, not a test:
``tests/infra/test_import_graph.py`` pins what each handler may import.

    python -m bench.coldstart [--samples N] [FUNCTION ...] [--importtime FUNCTION]

``--importtime`` prints, for one function (or ``bare``), the slowest modules of one import
as ``python -X importtime`` measures them (cumulative microseconds).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from local_runtime.template import load_yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
LAYER = ROOT / "layers" / "paycore"
STACK = "paycore"
REGION = "us-east-1"
ACCOUNT = "123456789012"
BARE = "bare"
BARE_HANDLER = '''"""A bare handler: boto3 and one DynamoDB table resource."""

import os

import boto3

table = boto3.resource("dynamodb").Table(os.environ["TRADE_TABLE_NAME"])


def lambda_handler(event, context):
    return table.name
'''
# Which environment the bare handler is measured in.
BARE_LIKE = "ApiFunction"


# -- the deployed environment, read from template.yaml --------------------------------------


class _Resolver:
    """Resolves the intrinsics the template's environment variables use, with parameter
    defaults and made-up but deployed-looking names for the resources."""

    def __init__(self, template: Mapping[str, Any]) -> None:
        self.parameters = {
            name: str(spec.get("Default", ""))
            for name, spec in (template.get("Parameters") or {}).items()
        }
        self.conditions = template.get("Conditions") or {}
        self.resources = template.get("Resources") or {}

    def ref(self, name: str) -> str | None:
        pseudo = {
            "AWS::NoValue": None,
            "AWS::StackName": STACK,
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        kind = str(self.resources.get(name, {}).get("Type", ""))
        physical = f"{STACK}-{name}-0123ABCD"
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{physical}"
        if kind == "AWS::Serverless::StateMachine":
            return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{physical}"
        if kind == "AWS::SecretsManager::Secret":
            return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{physical}"
        return physical

    def condition(self, name: str) -> bool:
        return bool(self.value(self.conditions[name]))

    def value(self, node: Any) -> Any:
        if not isinstance(node, dict) or len(node) != 1:
            return node
        ((key, arg),) = node.items()
        resolved: Any = node
        match key:
            case "Ref":
                resolved = self.ref(str(arg))
            case "Condition":
                resolved = self.condition(str(arg))
            case "Fn::If":
                resolved = self.value(arg[1] if self.condition(arg[0]) else arg[2])
            case "Fn::Not":
                resolved = not self.value(arg[0])
            case "Fn::Equals":
                resolved = self.value(arg[0]) == self.value(arg[1])
            case "Fn::GetAtt":
                resolved = f"{self.ref(arg[0])}-{arg[1]}"
            case "Fn::Sub":
                resolved = re.sub(r"\$\{([^}]+)\}", lambda m: str(self.ref(m.group(1))), str(arg))
        return resolved


def deployed_environments() -> dict[str, dict[str, str]]:
    """Per function logical id, its folder name and the variables it gets in Lambda."""
    template = load_yaml(TEMPLATE.read_text())
    resolver = _Resolver(template)
    globals_function = template.get("Globals", {}).get("Function", {})
    shared = globals_function.get("Environment", {}).get("Variables", {})
    environments: dict[str, dict[str, str]] = {}
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource["Properties"]
        own = properties.get("Environment", {}).get("Variables", {})
        variables = {}
        for name, node in {**shared, **own}.items():
            value = resolver.value(node)
            if value is not None:
                variables[name] = str(value)
        memory = properties.get("MemorySize", globals_function.get("MemorySize", 128))
        runtime = properties.get("Runtime", globals_function.get("Runtime", "python3"))
        variables.update(
            _lambda_variables(logical_id, Path(properties["CodeUri"]), memory, runtime)
        )
        environments[logical_id] = variables
    return environments


def _lambda_variables(logical_id: str, code: Path, memory: Any, runtime: str) -> dict[str, str]:
    """What Lambda sets for every function (a tracing function included)."""
    name = f"{STACK}-{logical_id}-0123ABCD"
    return {
        "LAMBDA_TASK_ROOT": str(ROOT / code),
        "LAMBDA_RUNTIME_DIR": str(Path(sys.executable).parent),
        "_HANDLER": "app.lambda_handler",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]0123456789abcdef",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "ASIAEXAMPLEEXAMPLE00",
        "AWS_SECRET_ACCESS_KEY": "example-secret-access-key",
        "AWS_SESSION_TOKEN": "example-session-token",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000",
        "TZ": ":UTC",
        "LANG": "en_US.UTF-8",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": f"{ROOT / code}:{LAYER}",
    }


# -- measuring -------------------------------------------------------------------------------


def _function_name(logical_id: str, environment: Mapping[str, str]) -> str:
    return Path(environment["LAMBDA_TASK_ROOT"]).name if logical_id != BARE else BARE


def _command(extra: tuple[str, ...] = ()) -> list[str]:
    # The runtime imports the handler's module by name from LAMBDA_TASK_ROOT.
    return [sys.executable, *extra, "-c", "import app"]


def _sample(environment: Mapping[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        _command(), env=dict(environment), check=True, cwd=environment["LAMBDA_TASK_ROOT"]
    )
    return time.perf_counter() - started


def environments_to_measure(bare_dir: Path) -> dict[str, dict[str, str]]:
    """The bare handler first, then every function of the template, by folder name."""
    deployed = deployed_environments()
    bare = dict(deployed[BARE_LIKE])
    bare.update(LAMBDA_TASK_ROOT=str(bare_dir), PYTHONPATH=str(bare_dir))
    measured = {BARE: bare}
    for logical_id, environment in sorted(deployed.items()):
        measured[_function_name(logical_id, environment)] = environment
    return measured


def measure(samples: int, only: Sequence[str] = ()) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory(prefix="paycore-bare-") as folder:
        (Path(folder) / "app.py").write_text(BARE_HANDLER)
        environments = {
            name: environment
            for name, environment in environments_to_measure(Path(folder)).items()
            if not only or name in (BARE, *only)
        }
        for environment in environments.values():  # compile the .pyc files; not counted
            _sample(environment)
        times: dict[str, list[float]] = {name: [] for name in environments}
        for _ in range(samples):
            for name, environment in environments.items():
                times[name].append(_sample(environment))
    return times


def report(times: Mapping[str, list[float]]) -> str:
    """Median and fastest time per function, and the median of its ratios to the bare handler
    sample of the same round (rounds on a busy machine are slowed alike)."""
    width = max(len(name) for name in times) + 1
    lines = [f"{'function':<{width}} {'median':>8} {'min':>8} {'ratio':>6}"]
    for name, samples in times.items():
        ratios = [sample / bare for sample, bare in zip(samples, times[BARE], strict=True)]
        lines.append(
            f"{name:<{width}} {statistics.median(samples) * 1000:>6.0f}ms "
            f"{min(samples) * 1000:>6.0f}ms {statistics.median(ratios):>5.2f}x"
        )
    return "\n".join(lines)


def importtime(function: str, top: int = 25) -> str:
    """The slowest imports of one sample, cumulative, as ``-X importtime`` reports them."""
    with tempfile.TemporaryDirectory(prefix="paycore-bare-") as folder:
        (Path(folder) / "app.py").write_text(BARE_HANDLER)
        environment = environments_to_measure(Path(folder))[function]
        done = subprocess.run(
            _command(("-X", "importtime")),
            env=environment,
            cwd=environment["LAMBDA_TASK_ROOT"],
            capture_output=True,
            text=True,
            check=True,
        )
    rows = []
    for line in done.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    rows.sort(reverse=True)
    return "\n".join(f"{micros:>9} us {module}" for micros, module in rows[:top])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("functions", nargs="*", help="only these (folder names); default all")
    parser.add_argument("--samples", type=int, default=7, help="fresh processes per function")
    parser.add_argument("--importtime", metavar="FUNCTION", help="one import's slowest modules")
    args = parser.parse_args(argv)
    if args.importtime:
        print(importtime(args.importtime))
        return 0
    print(f"INIT of each function, median of {args.samples} fresh processes, against a bare")
    print("handler (boto3 + one DynamoDB table resource); budget: 1.50x\n")
    print(report(measure(args.samples, args.functions)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
