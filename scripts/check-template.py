#!/usr/bin/env python3
"""Checks what template.yaml must promise, beyond what cfn-lint checks.

cfn-lint lets a misspelt runtime or a wrong reference through; these are the
properties this project's behaviour depends on.
"""

import sys
from pathlib import Path

import yaml  # PyYAML, installed with cfn-lint


class Loader(yaml.SafeLoader):
    pass


def tagged(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node)
    else:
        value = loader.construct_mapping(node)
    return {suffix: value}


Loader.add_multi_constructor("!", tagged)

template = yaml.load(Path(__file__).resolve().parent.parent.joinpath("template.yaml").read_text(), Loader=Loader)
errors = []


def check(condition, message):
    if not condition:
        errors.append(message)


params = template["Parameters"]
glob = template["Globals"]["Function"]
resources = template["Resources"]
function = resources["WebhookFunction"]
props = function["Properties"]

check(glob["Runtime"] == "provided.al2023", "runtime must be provided.al2023")
check(glob["Handler"] == "bootstrap", "handler must be bootstrap")
check(glob["MemorySize"] == 128, "memory must be 128 MB")
check(glob["Timeout"] < 30, "timeout must stay under API Gateway's 30 s")
check(glob["Architectures"] == [{"Ref": "Architecture"}], "architecture must come from the parameter")
check(params["Architecture"]["Default"] == "arm64", "arm64 must be the default")
check(set(params["Architecture"]["AllowedValues"]) == {"arm64", "x86_64"}, "arm64 and x86_64 allowed")
check("WebhookSecret" not in params, "the webhook secret must not be a template parameter (it lives in SSM)")
check("BotToken" not in params, "the token must not be a template parameter (it lives in SSM)")
check(function["Metadata"]["BuildMethod"] == "rust-cargolambda", "build with rust-cargolambda")
check(function["Metadata"]["BuildProperties"]["Binary"] == "webhook", "build the webhook binary")

env = props["Environment"]["Variables"]
check("TELEGRAM_BOT_TOKEN" not in env, "no token in the function's environment")
check(env.get("TELEGRAM_BOT_TOKEN_PARAMETER") == {"Ref": "BotTokenParameter"}, "token parameter name from the parameter")
check("TELEGRAM_WEBHOOK_SECRET" not in env, "no webhook secret in the function's environment")
for name in ["TELEGRAM_WEBHOOK_SECRET_PARAMETER", "TELEGRAM_BOT_USERNAME", "TELEGRAM_API_BASE_URL"]:
    check(name in env, f"{name} must be set")
check(env["TELEGRAM_WEBHOOK_SECRET_PARAMETER"] == {"Ref": "WebhookSecretParameter"},
      "secret parameter name from the parameter")
check(env.get("BOT_TOKEN_VERSION") == {"Ref": "BotTokenVersion"}
      and env.get("WEBHOOK_SECRET_VERSION") == {"Ref": "WebhookSecretVersion"},
      "the parameters' versions in the configuration, so a rotation replaces every instance")

# The store: DynamoDB by default, off by a parameter; two item actions on the one table.
check(params["Memory"]["Default"] == "DynamoDB" and set(params["Memory"]["AllowedValues"]) == {"DynamoDB", "Off"},
      "the store on by default, and a parameter to turn it off")
table = resources.get("MemoryTable", {})
check(table.get("Condition") == "UseMemory", "the table exists only with the store on")
check(table.get("DeletionPolicy") == "Retain", "deleting the stack keeps the chats' data")
table_props = table.get("Properties", {})
check(table_props.get("BillingMode") == "PAY_PER_REQUEST", "on-demand billing")
check(table_props.get("KeySchema") == [{"AttributeName": "pk", "KeyType": "HASH"}], "partition key pk")
check(table_props.get("TimeToLiveSpecification") == {"AttributeName": "expires_at", "Enabled": True},
      "TTL on expires_at")
check(env.get("BOT_STORE_TABLE") == {"If": ["UseMemory", {"Ref": "MemoryTable"}, ""]},
      "BOT_STORE_TABLE names the table, or is empty with the store off")
memory_statements = []
for policy in props["Policies"]:
    for st in policy["Statement"]:
        if isinstance(st, dict) and "If" in st:
            condition, then, otherwise = st["If"]
            check(condition == "UseMemory" and otherwise == {"Ref": "AWS::NoValue"}, "store access only with the store on")
            memory_statements.append(then)
check(len(memory_statements) == 1, "one statement for the table")
for st in memory_statements:
    check(sorted(st["Action"]) == ["dynamodb:GetItem", "dynamodb:UpdateItem"],
          f"only the item actions the store uses, got {st['Action']}")
    check(st["Resource"] == {"GetAtt": "MemoryTable.Arn"}, "on the one table, not its indexes or others")

# Least privilege: ssm:GetParameters on the two parameters; kms:Decrypt via SSM, for those two only.
statements = [st for policy in props["Policies"] for st in policy["Statement"] if "If" not in st]
actions = sorted(a for st in statements for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"]))
check(actions == ["kms:Decrypt", "ssm:GetParameters"], f"only ssm:GetParameters and kms:Decrypt, got {actions}")
parameter_arns = {":parameter${BotTokenParameter}", ":parameter${WebhookSecretParameter}"}
for st in statements:
    check(st["Effect"] == "Allow" and "*" != st["Resource"], "no wildcard resource")
    if st["Action"] == "ssm:GetParameters":
        ends = {r["Sub"][r["Sub"].index(":parameter"):] for r in st["Resource"]}
        check(ends == parameter_arns and len(st["Resource"]) == 2, "GetParameters on the two parameters only")
    if st["Action"] == "kms:Decrypt":
        condition = st.get("Condition", {}).get("StringEquals", {})
        check(condition.get("kms:ViaService", {}).get("Sub") == "ssm.${AWS::Region}.amazonaws.com",
              "kms:Decrypt only through SSM")
        arns = condition.get("kms:EncryptionContext:PARAMETER_ARN", [])
        ends = {a["Sub"][a["Sub"].index(":parameter"):] for a in arns} if isinstance(arns, list) else set()
        check(ends == parameter_arns, "kms:Decrypt only for the two parameters")

check(set(params["EndpointType"]["AllowedValues"]) == {"HttpApi", "FunctionUrl"}, "both endpoint types")
check(params["EndpointType"]["Default"] == "HttpApi", "HTTP API by default")
api = resources["WebhookApi"]
check(api["Condition"] == "UseHttpApi" and api["Properties"]["RouteKey"] == "POST /webhook", "route POST /webhook")
overrides = resources["WebhookApiOverrides"]["Properties"]["Integration"]
check(overrides["PayloadFormatVersion"] == "2.0", "payload format 2.0")
check(overrides["TimeoutInMillis"] > glob["Timeout"] * 1000, "the gateway must wait longer than the function")
url = resources["WebhookFunctionUrl"]
check(url["Condition"] == "UseFunctionUrl" and url["Properties"]["AuthType"] == "NONE", "a public Function URL")
url_actions = sorted(r["Properties"]["Action"] for r in resources.values()
                     if r["Type"] == "AWS::Lambda::Permission" and r.get("Condition") == "UseFunctionUrl")
check(url_actions == ["lambda:InvokeFunction", "lambda:InvokeFunctionUrl"], "Function URLs need both permissions")
output = template["Outputs"]["WebhookUrl"]["Value"]["If"]
check(output[0] == "UseHttpApi" and output[1]["Sub"].endswith("/webhook") and output[2]["Sub"].endswith("webhook"),
      "WebhookUrl output must point at the route for both endpoint types")

check(params["ReservedConcurrency"]["Default"] == 0, "reserved concurrency off by default")
check(props.get("ReservedConcurrentExecutions", {}).get("If", [None])[0] == "HasReservedConcurrency",
      "reserved concurrency from the parameter")
throttle = resources["WebhookApiOverrides"]["Properties"]["Stage"]["DefaultRouteSettings"]
check(throttle["ThrottlingRateLimit"] > 0 and throttle["ThrottlingBurstLimit"] > 0, "the HTTP API is throttled")

if errors:
    print("template.yaml:\n  " + "\n  ".join(errors), file=sys.stderr)
    sys.exit(1)
print("template.yaml: all checks passed")
