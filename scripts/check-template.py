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
function = template["Resources"]["WebhookFunction"]
props = function["Properties"]

check(glob["Runtime"] == "provided.al2023", "runtime must be provided.al2023")
check(glob["Handler"] == "bootstrap", "handler must be bootstrap")
check(glob["MemorySize"] == 128, "memory must be 128 MB")
check(glob["Timeout"] < 30, "timeout must stay under API Gateway's 30 s")
check(glob["Architectures"] == [{"Ref": "Architecture"}], "architecture must come from the parameter")
check(params["Architecture"]["Default"] == "arm64", "arm64 must be the default")
check(set(params["Architecture"]["AllowedValues"]) == {"arm64", "x86_64"}, "arm64 and x86_64 allowed")
check(params["WebhookSecret"].get("NoEcho") is True, "the webhook secret must be NoEcho")
check(params["BotToken"].get("NoEcho") is True, "the bot token must be NoEcho")
check(function["Metadata"]["BuildMethod"] == "rust-cargolambda", "build with rust-cargolambda")
check(function["Metadata"]["BuildProperties"]["Binary"] == "webhook", "build the webhook binary")
event = props["Events"]["Webhook"]
check(event["Type"] == "HttpApi", "an HTTP API event")
check(event["Properties"]["Method"] == "POST" and event["Properties"]["Path"] == "/webhook",
      "route POST /webhook")
check(event["Properties"].get("TimeoutInMillis", 30000) > glob["Timeout"] * 1000,
      "the gateway must wait longer than the function")
env = props["Environment"]["Variables"]
for name in ["TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET", "TELEGRAM_BOT_USERNAME", "TELEGRAM_API_BASE_URL"]:
    check(name in env, f"{name} must be set")
check(env["TELEGRAM_WEBHOOK_SECRET"] == {"Ref": "WebhookSecret"}, "secret from the parameter")
url = template["Outputs"]["WebhookUrl"]["Value"]
check(isinstance(url, dict) and "${WebhookApi}" in url.get("Sub", "") and url["Sub"].endswith("/webhook"),
      "WebhookUrl output must point at the route")

if errors:
    print("template.yaml:\n  " + "\n  ".join(errors), file=sys.stderr)
    sys.exit(1)
print("template.yaml: all checks passed")
