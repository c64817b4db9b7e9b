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
check(env.get("TELEGRAM_BOT_TOKEN_PARAMETER") == {"If": ["HasTokenVersion", {"Sub": "${BotTokenParameter}:${BotTokenVersion}"},
                                                        {"Ref": "BotTokenParameter"}]},
      "the token read at the version the deploy stored")
check("TELEGRAM_WEBHOOK_SECRET" not in env, "no webhook secret in the function's environment")
for name in ["TELEGRAM_WEBHOOK_SECRET_PARAMETER", "TELEGRAM_BOT_USERNAME", "TELEGRAM_API_BASE_URL"]:
    check(name in env, f"{name} must be set")
check(env["TELEGRAM_WEBHOOK_SECRET_PARAMETER"] == {"If": ["HasSecretVersion",
                                                          {"Sub": "${WebhookSecretParameter}:${WebhookSecretVersion}"},
                                                          {"Ref": "WebhookSecretParameter"}]},
      "the secret read at the version the deploy stored")

# The bot's own secrets: one optional parameter, read at its version, and
# nothing in the environment or the policy without it.
check(params["BotSecretsParameter"]["Default"] == "", "no bot secrets by default")
check(params["BotSecretsParameter"]["AllowedPattern"] == "^(/[A-Za-z0-9_.\\-/]+)?$",
      "the bot's secrets parameter: empty, or a name starting with / like the token's")
check(params["BotSecretsVersion"]["Default"] == "0" and params["BotSecretsVersion"]["AllowedPattern"] == "^[0-9]+$",
      "the bot's secrets version: digits, 0 (the latest) by default")
check(template["Conditions"].get("HasBotSecrets") == {"Not": [{"Equals": [{"Ref": "BotSecretsParameter"}, ""]}]},
      "HasBotSecrets: a parameter is named")
check(template["Conditions"].get("HasBotSecretsVersion") == {"Not": [{"Equals": [{"Ref": "BotSecretsVersion"}, "0"]}]},
      "HasBotSecretsVersion: a version is named")
check(env.get("BOT_SECRETS_PARAMETER") == {"If": ["HasBotSecrets",
                                                  {"If": ["HasBotSecretsVersion",
                                                          {"Sub": "${BotSecretsParameter}:${BotSecretsVersion}"},
                                                          {"Ref": "BotSecretsParameter"}]},
                                                  {"Ref": "AWS::NoValue"}]},
      "BOT_SECRETS_PARAMETER: the bot's secrets at the version the deploy stored, and no variable without them")

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
    check(sorted(st["Action"]) == ["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
          f"only the item actions the store uses, got {st['Action']}")
    check(st["Resource"] == {"GetAtt": "MemoryTable.Arn"}, "on the one table, not its indexes or others")

# Least privilege: ssm:GetParameters on the two parameters, and the bot's
# secrets parameter only when the stack names one; kms:Decrypt via SSM, for
# those only.
statements = [st for policy in props["Policies"] for st in policy["Statement"] if "If" not in st]
actions = sorted(a for st in statements for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"]))
check(actions == ["kms:Decrypt", "ssm:GetParameters"], f"only ssm:GetParameters and kms:Decrypt, got {actions}")
parameter_arns = {":parameter${BotTokenParameter}", ":parameter${WebhookSecretParameter}"}
bot_secrets_arn = ":parameter${BotSecretsParameter}"


def parameter_list(arns, what):
    """The ARN ends a list names: the two always there, and the bot's
    secrets behind HasBotSecrets (nothing otherwise); None when it is
    anything else."""
    if not isinstance(arns, list):
        return None
    always, conditional = set(), []
    for arn in arns:
        if isinstance(arn, dict) and "Sub" in arn and ":parameter" in arn["Sub"]:
            always.add(arn["Sub"][arn["Sub"].index(":parameter"):])
        elif isinstance(arn, dict) and "If" in arn:
            condition, then, otherwise = arn["If"]
            check(condition == "HasBotSecrets" and otherwise == {"Ref": "AWS::NoValue"}
                  and isinstance(then, dict) and "Sub" in then,
                  f"{what}: the one conditional ARN is the bot's secrets, and nothing without them")
            if isinstance(then, dict) and "Sub" in then and ":parameter" in then["Sub"]:
                conditional.append(then["Sub"][then["Sub"].index(":parameter"):])
        else:
            return None
    check(len(always) + len(conditional) == len(arns), f"{what}: each ARN once")
    return always, conditional


for st in statements:
    check(st["Effect"] == "Allow" and "*" != st["Resource"], "no wildcard resource")
    if st["Action"] == "ssm:GetParameters":
        arns = parameter_list(st["Resource"], "GetParameters")
        check(arns == (parameter_arns, [bot_secrets_arn]) and len(st["Resource"]) == 3,
              "GetParameters on the two parameters, and the bot's secrets when named, only")
    if st["Action"] == "kms:Decrypt":
        condition = st.get("Condition", {}).get("StringEquals", {})
        check(condition.get("kms:ViaService", {}).get("Sub") == "ssm.${AWS::Region}.amazonaws.com",
              "kms:Decrypt only through SSM")
        arns = parameter_list(condition.get("kms:EncryptionContext:PARAMETER_ARN", []), "kms:Decrypt")
        check(arns == (parameter_arns, [bot_secrets_arn]),
              "kms:Decrypt only for the two parameters, and the bot's secrets when named")

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

# Monitoring: off by default, everything it adds behind its condition, the
# function's permissions unchanged (checked above), the schedule never
# retrying, and the metric lines passing Lambda's log-level filter.
conditions = template["Conditions"]
check(params["Monitoring"]["Default"] == "Off" and set(params["Monitoring"]["AllowedValues"]) == {"On", "Off"},
      "monitoring off by default, and a parameter to turn it on")
check(params["AlarmEmail"]["Default"] == "", "no alarm e-mail by default")
check(conditions["NotifyByEmail"]["And"][0] == {"Condition": "UseMonitoring"}, "e-mail only with monitoring")
check(params["AdminChatId"]["Default"] == "", "no admin chat by default")
check(conditions["NotifyAdminChat"]["And"][0] == {"Condition": "UseMonitoring"}, "the admin chat only with monitoring")
check(conditions["HasAlarmTopic"] == {"Or": [{"Condition": "NotifyByEmail"}, {"Condition": "NotifyAdminChat"}]},
      "a topic when someone is to be told")
monitoring_types = {"AWS::Scheduler::Schedule", "AWS::CloudWatch::Alarm", "AWS::CloudWatch::Dashboard",
                    "AWS::SNS::Topic", "AWS::SNS::Subscription", "AWS::Lambda::EventInvokeConfig", "AWS::IAM::Role"}
for name, resource in resources.items():
    if resource["Type"] in monitoring_types:
        check(resource.get("Condition") in ("UseMonitoring", "NotifyByEmail", "NotifyAdminChat", "HasAlarmTopic"),
              f"{name} only with Monitoring=On")
# Only the alarms' topic may invoke the function through SNS, and only with an admin chat.
chat_permission = resources["AlarmChatPermission"]
check(chat_permission["Condition"] == "NotifyAdminChat"
      and chat_permission["Properties"]["Principal"] == "sns.amazonaws.com"
      and chat_permission["Properties"]["SourceArn"] == {"Ref": "AlarmTopic"},
      "SNS may invoke the function only from the alarms' topic")
check(env.get("BOT_ADMIN_CHAT_ID") == {"If": ["NotifyAdminChat", {"Ref": "AdminChatId"}, ""]},
      "the admin chat from its parameter")
namespace = env.get("METRICS_NAMESPACE", {}).get("If", [None, None, None])
check(namespace[0] == "UseMonitoring" and namespace[2] == "",
      "METRICS_NAMESPACE only with monitoring (each extracted metric is billed)")
check(env.get("RUST_LOG") == {"Ref": "LogLevel"}, "the function filters by LogLevel itself")
check(glob["LoggingConfig"]["ApplicationLogLevel"] == {"If": ["UseMonitoring", "TRACE", {"Ref": "LogLevel"}]},
      "with metrics, Lambda must not drop the INFO metric lines")
schedule = resources["HealthCheckSchedule"]["Properties"]
check(schedule["ScheduleExpression"] == "rate(5 minutes)", "a health check every 5 minutes")
check(schedule["Target"]["RetryPolicy"]["MaximumRetryAttempts"] == 0, "the schedule never retries a run")
check(schedule["Target"]["Arn"] == {"GetAtt": "WebhookFunction.Arn"}, "the schedule runs the same function")
check(resources["HealthCheckInvokeConfig"]["Properties"]["MaximumRetryAttempts"] == 0,
      "Lambda never retries a run either")
role_statements = [st for policy in resources["HealthCheckScheduleRole"]["Properties"]["Policies"]
                   for st in policy["PolicyDocument"]["Statement"]]
check([(st["Action"], st["Resource"]) for st in role_statements]
      == [("lambda:InvokeFunction", {"GetAtt": "WebhookFunction.Arn"})],
      "the schedule's role may only invoke the function")
alarms = {name: r["Properties"] for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
check(set(alarms) == {"ErrorsAlarm", "PendingUpdatesAlarm", "HealthCheckAlarm"}, f"three alarms, got {sorted(alarms)}")
for name, alarm in alarms.items():
    for query in alarm["Metrics"]:
        metric = query.get("MetricStat", {}).get("Metric")
        if metric and metric["Namespace"] != "AWS/Lambda":
            check(metric["Namespace"] == namespace[1], f"{name} reads the namespace the function writes")
            dims = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
            check(dims.get("function") == {"Ref": "WebhookFunction"}, f"{name}: by the function's name")
            # Retryable failures and deliberate 503s must never page.
            check(dims.get("outcome", "configuration_failure") == "configuration_failure",
                  f"{name} counts only configuration failures among outcomes")
    for action in ("AlarmActions", "OKActions"):
        check(alarm[action] == {"If": ["HasAlarmTopic", [{"Ref": "AlarmTopic"}], {"Ref": "AWS::NoValue"}]},
              f"{name} notifies the topic when there is one")
check(alarms["HealthCheckAlarm"]["TreatMissingData"] == "breaching", "a silent health check is an alarm")
error_metrics = {q["MetricStat"]["Metric"]["MetricName"] for q in alarms["ErrorsAlarm"]["Metrics"] if "MetricStat" in q}
check(error_metrics == {"Errors", "Updates", "RecordsSetAside"},
      f"the errors alarm counts failed runs, configuration failures and records set aside, got {sorted(error_metrics)}")
check(alarms["PendingUpdatesAlarm"]["EvaluationPeriods"] * 300 == 900, "pending updates: 15 minutes")

if errors:
    print("template.yaml:\n  " + "\n  ".join(errors), file=sys.stderr)
    sys.exit(1)
print("template.yaml: all checks passed")
