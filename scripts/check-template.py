#!/usr/bin/env python3
"""Checks what template.yaml must promise, beyond what cfn-lint checks.

cfn-lint lets a misspelt runtime or a wrong reference through; these are the
properties this project's behaviour depends on.
"""

import itertools
import re
import json
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
# The webhook's own timeout: under the gateway's 30 s behind an HTTP API,
# under Telegram's 60 s wait behind a Function URL (Telegram delivers again
# after 60 s: WebhookActor::create_connection's idle timeout).
timeout = props["Timeout"]["If"]
check(timeout[0] == "UseFunctionUrl" and timeout[1] < 60 and timeout[2] < 30,
      "the webhook's timeout must end before Telegram's 60 s (Function URL) or the gateway's 30 s")
check(glob["Architectures"] == [{"Ref": "Architecture"}], "architecture must come from the parameter")
check(params["Architecture"]["Default"] == "arm64", "arm64 must be the default")
check(set(params["Architecture"]["AllowedValues"]) == {"arm64", "x86_64"}, "arm64 and x86_64 allowed")
check("WebhookSecret" not in params, "the webhook secret must not be a template parameter (it lives in SSM)")
check("BotToken" not in params, "the token must not be a template parameter (it lives in SSM)")
check(function["Metadata"]["BuildMethod"] == "rust-cargolambda", "build with rust-cargolambda")
check(function["Metadata"]["BuildProperties"]["Binary"] == "webhook", "build the webhook binary")

# Both functions share one configuration (Globals).
check("Environment" not in props, "the webhook's configuration is the functions' shared one")
env = glob["Environment"]["Variables"]
# The assistant: off unless a model is named; its key is among the bot's
# secrets, never in the environment.
check(params["AssistantModel"]["Default"] == "", "the assistant is off by default")
check(env["ASSISTANT_MODEL"] == {"If": ["UseAssistant", {"Ref": "AssistantModel"}, {"Ref": "AWS::NoValue"}]},
      "ASSISTANT_MODEL only when a model is named")
check("ASSISTANT_API_KEY" not in env, "no assistant key in the function's environment")
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
check(table.get("DeletionPolicy") == "RetainExceptOnCreate", "deleting the stack keeps the chats' data, a failed first deploy leaves no table")
table_props = table.get("Properties", {})
check(table_props.get("BillingMode") == "PAY_PER_REQUEST", "on-demand billing")
check(table_props.get("KeySchema") == [{"AttributeName": "pk", "KeyType": "HASH"}], "partition key pk")
check(table_props.get("TimeToLiveSpecification") == {"AttributeName": "expires_at", "Enabled": True},
      "TTL on expires_at")
check(env.get("BOT_STORE_TABLE") == {"If": ["UseMemory", {"Ref": "MemoryTable"}, ""]},
      "BOT_STORE_TABLE names the table, or is empty with the store off")
# The functions' shared permissions are one managed policy; the webhook has
# no other but the queue's.
check(props["Policies"] == [{"Ref": "BotPolicy"}], "the webhook's permissions are the shared policy's")
bot_policy = resources["BotPolicy"]
check(bot_policy["Type"] == "AWS::IAM::ManagedPolicy", "the shared permissions are a managed policy")
bot_statements = bot_policy["Properties"]["PolicyDocument"]["Statement"]
memory_statements = []
for st in bot_statements:
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
statements = [st for st in bot_statements if "If" not in st]
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

# Slow work off the webhook: off by default, everything behind UseQueue,
# and IAM grown by exactly what is used.
check(params["Queue"]["Default"] == "Off" and set(params["Queue"]["AllowedValues"]) == {"On", "Off"},
      "the queue off by default, and a parameter to turn it on")
check(template["Conditions"].get("UseQueue") == {"Equals": [{"Ref": "Queue"}, "On"]}, "UseQueue: Queue On")
rule = template.get("Rules", {}).get("QueueNeedsMemory", {})
check(rule.get("Assertions", [{}])[0].get("Assert") == {"Equals": [{"Ref": "Memory"}, "DynamoDB"]},
      "the queue needs the store: its protocol is in the chats' records")
queue_resources = {"SlowQueue", "DeadLetters", "WorkerFunction", "WorkerFunctionLogs", "WorkerTrigger",
                   "WebhookQueuePolicy"}
for name, resource in resources.items():
    is_queue = resource["Type"] in ("AWS::SQS::Queue", "AWS::Lambda::EventSourceMapping") or name in queue_resources
    check(not is_queue or resource.get("Condition") == "UseQueue", f"{name} only with Queue=On")
check(queue_resources <= set(resources), f"the queue's resources, got {sorted(queue_resources - set(resources))} missing")
slow = resources["SlowQueue"]["Properties"]
dead = resources["DeadLetters"]["Properties"]
check(slow["FifoQueue"] is True and dead["FifoQueue"] is True, "FIFO queues: a chat's updates in order")
check(slow["ContentBasedDeduplication"] is False, "the webhook names each update; no content-based deduplication")
check(slow["RedrivePolicy"]["deadLetterTargetArn"] == {"GetAtt": "DeadLetters.Arn"}
      and slow["RedrivePolicy"]["maxReceiveCount"] >= 5,
      "at least 5 receives before the dead-letter queue (AWS's advice for a Lambda trigger)")
check(env.get("BOT_QUEUE_MAX_RECEIVES") == {"If": ["UseQueue", str(slow["RedrivePolicy"]["maxReceiveCount"]),
                                                   {"Ref": "AWS::NoValue"}]},
      "the worker knows the queue's maxReceiveCount, so its last try")
check(env.get("BOT_QUEUE_URL") == {"If": ["UseQueue", {"Ref": "SlowQueue"}, {"Ref": "AWS::NoValue"}]},
      "BOT_QUEUE_URL only with the queue on")
worker_timeouts = params["WorkerTimeout"]["AllowedValues"]
check(all(120 <= t <= 180 for t in worker_timeouts), "the worker's timeout: 2 to 3 minutes")
check(slow["VisibilityTimeout"] == {"FindInMap": ["WorkerVisibility", {"Ref": "WorkerTimeout"}, "Seconds"]},
      "the visibility timeout follows the worker's timeout")
for t in worker_timeouts:
    check(template["Mappings"]["WorkerVisibility"][str(t)]["Seconds"] >= 6 * t,
          f"visibility timeout at least 6 times the worker's timeout ({t} s)")
worker = resources["WorkerFunction"]
check(worker["Metadata"] == function["Metadata"], "the worker is the same binary")
check(worker["Properties"]["Timeout"] == {"Ref": "WorkerTimeout"}, "the worker's own timeout")
trigger = resources["WorkerTrigger"]["Properties"]
check(trigger["EventSourceArn"] == {"GetAtt": "SlowQueue.Arn"} and trigger["FunctionName"] == {"Ref": "WorkerFunction"},
      "the queue triggers the worker")
check(trigger["BatchSize"] == 1 and trigger["FunctionResponseTypes"] == ["ReportBatchItemFailures"],
      "one message per invocation, failures reported per message")
worker_policies = worker["Properties"]["Policies"]
check(worker_policies[0] == {"Ref": "BotPolicy"} and len(worker_policies) == 2,
      "the worker: the shared policy, and its queue statements")
worker_grants = sorted((a, json.dumps(st["Resource"])) for st in worker_policies[1]["Statement"]
                       for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"]))
check(worker_grants == sorted([("sqs:DeleteMessage", '{"GetAtt": "SlowQueue.Arn"}'),
                               ("sqs:GetQueueAttributes", '{"GetAtt": "SlowQueue.Arn"}'),
                               ("sqs:ReceiveMessage", '{"GetAtt": "SlowQueue.Arn"}'),
                               ("sqs:SendMessage", '{"GetAtt": "DeadLetters.Arn"}')]),
      f"the worker: the trigger's three actions on the queue, sending to the dead letters, nothing else; got {worker_grants}")
send = resources["WebhookQueuePolicy"]["Properties"]
check(send["Roles"] == [{"Ref": "WebhookFunctionRole"}]
      and [(st["Action"], st["Resource"]) for st in send["PolicyDocument"]["Statement"]]
      == [("sqs:SendMessage", {"GetAtt": "SlowQueue.Arn"})],
      "the webhook may only send to the queue")

check(set(params["EndpointType"]["AllowedValues"]) == {"HttpApi", "FunctionUrl"}, "both endpoint types")
check(params["EndpointType"]["Default"] == "HttpApi", "HTTP API by default")
api = resources["WebhookApi"]
check(api["Condition"] == "UseHttpApi" and api["Properties"]["RouteKey"] == "POST /webhook", "route POST /webhook")
overrides = resources["WebhookApiOverrides"]["Properties"]["Integration"]
check(overrides["PayloadFormatVersion"] == "2.0", "payload format 2.0")
check(overrides["TimeoutInMillis"] > timeout[2] * 1000, "the gateway must wait longer than the function")
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
                    "AWS::SNS::Topic", "AWS::SNS::Subscription", "AWS::Lambda::EventInvokeConfig", "AWS::IAM::Role",
                    "AWS::Lambda::Alias"}
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
# An invoke config covers every asynchronous invoke of the version or alias
# it names, SNS's too: the schedule's no-retry config must name an alias of
# the same function ($LATEST) that only the schedule invokes, so that the
# alarms' messages, which invoke the function itself, keep Lambda's retries.
alias = resources.get("HealthCheckAlias", {})
alias_props = alias.get("Properties", {})
check(alias.get("Type") == "AWS::Lambda::Alias" and alias_props.get("FunctionName") == {"Ref": "WebhookFunction"}
      and alias_props.get("FunctionVersion") == "$LATEST",
      "the schedule's alias: the same function, at $LATEST (no version to publish)")
check(schedule["Target"]["Arn"] == {"Ref": "HealthCheckAlias"}, "the schedule runs the same function, through its alias")
invoke_configs = {name: r["Properties"] for name, r in resources.items() if r["Type"] == "AWS::Lambda::EventInvokeConfig"}
check(list(invoke_configs) == ["HealthCheckInvokeConfig"], f"one invoke config, the schedule's, got {sorted(invoke_configs)}")
for name, config in invoke_configs.items():
    check(config.get("FunctionName") == {"Ref": "WebhookFunction"} and config.get("Qualifier") == alias_props.get("Name")
          and "HealthCheckAlias" in [resources[name].get("DependsOn")],
          f"{name} is the schedule's alias's alone, never $LATEST's (the alarms' messages would lose their retries)")
check(invoke_configs.get("HealthCheckInvokeConfig", {}).get("MaximumRetryAttempts") == 0,
      "Lambda never retries a run either")
check("EventInvokeConfig" not in props and "EventInvokeConfig" not in glob and "AutoPublishAlias" not in props,
      "no invoke config on the function itself (SAM would put it on $LATEST or the published alias)")
check(resources["AlarmChatSubscription"]["Properties"]["Endpoint"] == {"GetAtt": "WebhookFunction.Arn"},
      "the alarms' topic invokes the function itself, with Lambda's default retries, not the schedule's alias")
role_statements = [st for policy in resources["HealthCheckScheduleRole"]["Properties"]["Policies"]
                   for st in policy["PolicyDocument"]["Statement"]]
check([(st["Action"], st["Resource"]) for st in role_statements]
      == [("lambda:InvokeFunction", {"Ref": "HealthCheckAlias"})],
      "the schedule's role may only invoke the function, through the alias")
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
    check(alarm.get("TreatMissingData") != "breaching",
          f"{name}: missing data breaching puts a new alarm in ALARM before its first data point, and pages")
    check("InsufficientDataActions" not in alarm, f"{name}: waiting for data pages nobody")


# The health-check alarm, played through the cases that matter by
# CloudWatch's documented rules: metric math as "Metric math syntax and
# functions" defines IF, FILL and comparisons (beside a real value a
# missing one counts as 0), and alarm evaluation as "How alarm state is
# evaluated when data is missing" does (3-of-3 of 5-minute periods read
# over the last 5). Where the documents leave a case open (what FILL makes
# of a metric without a single data point in range, whether REPEAT fills
# before the first one), every reading must give the same answer.
class Undetermined(Exception):
    pass


def metric_math(expression, series, fill_empty, repeat_leading):
    """The series `expression` makes of `series` (id -> values or None)."""
    tokens = re.findall(r">=|<=|==|!=|[<>(),]|[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?|\S", expression)
    at = [0]

    def peek():
        return tokens[at[0]] if at[0] < len(tokens) else None

    def take(expected=None):
        token = peek()
        if token is None or (expected is not None and token != expected):
            raise Undetermined(f"{expression}: expected {expected or 'more'} at {token!r}")
        at[0] += 1
        return token

    def pairwise(a, b, op):
        if not isinstance(a, list) and not isinstance(b, list):
            return float(op(a, b))
        if not isinstance(a, list) or not isinstance(b, list):
            series_, scalar = (a, b) if isinstance(a, list) else (b, a)
            return [None if v is None else float(op(v, scalar) if series_ is a else op(scalar, v)) for v in series_]
        return [None if x is None and y is None else float(op(x or 0, y or 0)) for x, y in zip(a, b)]

    def fill(values, by):
        if all(v is None for v in values):
            return [by] * len(values) if by != "REPEAT" and fill_empty else values
        if by != "REPEAT":
            return [by if v is None else v for v in values]
        out, last = [], next(v for v in values if v is not None) if repeat_leading else None
        for v in values:
            last = v if v is not None else last
            out.append(last)
        return out

    def if_(cond, then, otherwise):
        # IF(TS, TS|S, TS|S), as documented point by point.
        if not isinstance(cond, list):
            raise Undetermined(f"{expression}: IF on a scalar")
        def at_(value, i):
            return value[i] if isinstance(value, list) else value

        out = []
        for i, c in enumerate(cond):
            if c is None:
                out.append(None)  # no condition point: dropped
            elif c:
                out.append(0.0 if at_(then, i) is None else at_(then, i))
            else:
                out.append(None if otherwise is None else at_(otherwise, i))
        return out

    def primary():
        token = take()
        if token == "(":
            value = disjunction()
            take(")")
            return value
        if re.fullmatch(r"\d+(?:\.\d+)?", token):
            return float(token)
        if token in ("IF", "FILL"):
            take("(")
            args = [disjunction() if peek() != "REPEAT" else take()]
            while peek() == ",":
                take(",")
                args.append(disjunction() if peek() != "REPEAT" else take())
            take(")")
            if token == "FILL" and len(args) == 2:
                return fill(*args)
            if token == "IF" and len(args) in (2, 3):
                return if_(args[0], args[1], args[2] if len(args) == 3 else None)
            raise Undetermined(f"{expression}: {token} with {len(args)} arguments")
        if token in series:
            return series[token]
        raise Undetermined(f"{expression}: {token!r} is not modelled here")

    comparisons = {">=": lambda x, y: x >= y, "<=": lambda x, y: x <= y, ">": lambda x, y: x > y,
                   "<": lambda x, y: x < y, "==": lambda x, y: x == y, "!=": lambda x, y: x != y}

    def comparison():
        left = primary()
        if peek() in comparisons:
            op = comparisons[take()]
            return pairwise(left, primary(), op)
        return left

    def conjunction():
        value = comparison()
        while peek() in ("AND", "&&"):
            take()
            value = pairwise(value, comparison(), lambda x, y: bool(x) and bool(y))
        return value

    def disjunction():
        value = conjunction()
        while peek() in ("OR", "||"):
            take()
            value = pairwise(value, conjunction(), lambda x, y: bool(x) or bool(y))
        return value

    value = disjunction()
    if peek() is not None:
        raise Undetermined(f"{expression}: {peek()!r} left over")
    return value


def alarm_state(alarm, reports, state, fill_empty, repeat_leading):
    """The state `alarm` goes to from `state` with `reports`, one per period
    (oldest first): a dict of metric name -> value, or None for no report."""
    series = {}
    for query in alarm["Metrics"]:
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]["MetricName"]
            series[query["Id"]] = [None if r is None else r.get(metric) for r in reports]
    pending = [q for q in alarm["Metrics"] if "Expression" in q]
    while pending:
        ready = [q for q in pending if all(i in series or i not in {p["Id"] for p in pending}
                                            for i in re.findall(r"[a-z][A-Za-z0-9_]*", q["Expression"]))]
        if not ready:
            raise Undetermined(f"{[q['Id'] for q in pending]} refer to one another")
        for q in ready:
            series[q["Id"]] = metric_math(q["Expression"], series, fill_empty, repeat_leading)
            pending.remove(q)
    returned = [q["Id"] for q in alarm["Metrics"] if q.get("ReturnData", True)]
    if len(returned) != 1 or alarm["ComparisonOperator"] != "GreaterThanOrEqualToThreshold":
        raise Undetermined("one returned series, compared with >=")
    points = series[returned[0]]
    n, m = alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]
    real = [v for v in points if v is not None]
    breaches = [v >= alarm["Threshold"] for v in real]
    treat = alarm.get("TreatMissingData", "missing")
    if len(real) >= n:
        return "ALARM" if sum(breaches[-n:]) >= m else "OK"
    if not real:
        return {"missing": "INSUFFICIENT_DATA", "ignore": state, "breaching": "ALARM", "notBreaching": "OK"}[treat]
    if treat in ("breaching", "notBreaching"):
        return "ALARM" if sum(breaches) + (n - len(real)) * (treat == "breaching") >= m else "OK"
    if not any(breaches):
        return "OK"
    raise Undetermined(f"{points} with missing data {treat}")


healthy, check_failed, elsewhere = ({"HealthCheckFailed": 0, "WebhookUrlMatches": 1}, {"HealthCheckFailed": 1},
                                    {"HealthCheckFailed": 0, "WebhookUrlMatches": 0})
health_cases = [
    # (what happened, the last 5 periods' reports, state before, states allowed after)
    ("a new alarm, before the first check (a new stack, or monitoring switched on)",
     [None] * 5, "INSUFFICIENT_DATA", {"INSUFFICIENT_DATA"}),
    ("a new alarm, after the first check", [None] * 4 + [healthy], "INSUFFICIENT_DATA", {"OK"}),
    ("a new alarm whose first three checks find another URL", [None] * 2 + [elsewhere] * 3, "INSUFFICIENT_DATA",
     {"ALARM"}),
    ("checks that report a healthy webhook", [healthy] * 5, "OK", {"OK"}),
    ("a period without a report: the latest, or one late", [healthy] * 4 + [None], "OK", {"OK"}),
    ("two failed checks", [healthy] * 3 + [check_failed] * 2, "OK", {"OK"}),
    ("three failed checks in a row", [healthy] * 2 + [check_failed] * 3, "OK", {"ALARM"}),
    ("three checks finding another URL", [healthy] * 2 + [elsewhere] * 3, "OK", {"ALARM"}),
    ("checks that fell silent 15 minutes ago", [healthy] * 2 + [None] * 3, "OK", {"ALARM"}),
    ("checks silent for longer than the range", [None] * 5, "ALARM", {"ALARM"}),
    ("checks that report again after a silence", [None] * 4 + [healthy], "ALARM", {"OK"}),
]
health_alarm = alarms["HealthCheckAlarm"]
check((health_alarm["EvaluationPeriods"], health_alarm["DatapointsToAlarm"]) == (3, 3)
      and {q["MetricStat"]["Period"] for q in health_alarm["Metrics"] if "MetricStat" in q} == {300},
      "health check: 3 periods of 5 minutes in a row (the cases below read 5 periods, as CloudWatch does for these)")
for (what, reports, before, allowed), fill_empty, repeat_leading in itertools.product(
        health_cases, (False, True), (False, True)):
    try:
        after = alarm_state(health_alarm, reports, before, fill_empty, repeat_leading)
    except Undetermined as e:
        after = f"undetermined ({e})"
    check(after in allowed, f"HealthCheckAlarm, {what}: {after} from {before}, expected {' or '.join(sorted(allowed))}"
          f" (FILL on a metric without data {'fills' if fill_empty else 'stays empty'}, REPEAT before the first"
          f" value {'fills' if repeat_leading else 'does not'})")


# The alarms' subscriptions drop a new alarm's first OK (INSUFFICIENT_DATA
# to OK: not news) and pass every change to ALARM and every recovery.
def sns_filter_passes(policy, message):
    for key, condition in policy.items():
        if key == "$or":
            if not any(sns_filter_passes(p, message) for p in condition):
                return False
        elif not (isinstance(condition, list) and all(isinstance(c, str) for c in condition)):
            raise Undetermined(f"filter {key}: {condition} is not modelled here")
        elif message.get(key) not in condition:
            return False
    return True


subscriptions = {name: r["Properties"] for name, r in resources.items() if r["Type"] == "AWS::SNS::Subscription"}
check(set(subscriptions) == {"AlarmEmailSubscription", "AlarmChatSubscription"},
      f"two subscriptions to the alarms, got {sorted(subscriptions)}")
for name, subscription in subscriptions.items():
    check(subscription.get("FilterPolicyScope") == "MessageBody", f"{name} filters on the alarm's message")
    for old, new in itertools.permutations(["OK", "ALARM", "INSUFFICIENT_DATA"], 2):
        if new == "INSUFFICIENT_DATA":
            continue  # no alarm has InsufficientDataActions (checked above)
        wanted = not (old == "INSUFFICIENT_DATA" and new == "OK")
        try:
            passes = sns_filter_passes(subscription.get("FilterPolicy", {}), {"OldStateValue": old, "NewStateValue": new})
        except Undetermined as e:
            passes = str(e)
        check(passes == wanted, f"{name}: {old} to {new} {'must' if wanted else 'must not'} be told, got {passes}")
error_metrics = {q["MetricStat"]["Metric"]["MetricName"] for q in alarms["ErrorsAlarm"]["Metrics"] if "MetricStat" in q}
check(error_metrics == {"Errors", "Updates", "RecordsSetAside"},
      f"the errors alarm counts failed runs, configuration failures and records set aside, got {sorted(error_metrics)}")
check(alarms["PendingUpdatesAlarm"]["EvaluationPeriods"] * 300 == 900, "pending updates: 15 minutes")

if errors:
    print("template.yaml:\n  " + "\n  ".join(errors), file=sys.stderr)
    sys.exit(1)
print("template.yaml: all checks passed")
