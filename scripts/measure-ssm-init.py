#!/usr/bin/env python3
"""Measures what reading the token from Parameter Store adds to a cold start.

Starts moto's server on loopback with the token in a SecureString, then
runs the release `webhook` binary as fresh processes, each pointed at a
stub Lambda Runtime API, and times spawn -> first /next request (init):
alternately with TELEGRAM_BOT_TOKEN in the environment and with
TELEGRAM_BOT_TOKEN_PARAMETER read through the AWS SDK, and with both the
token and the webhook secret read (one GetParameters call, as deployed).
Prints medians.

With --cert-bundle PEM it measures instead what a bundle of trusted roots
in SSL_CERT_FILE costs at init (Lambda's own bundle is about 140 roots):
each --webhook binary, as deployed (token and secret from Parameter
Store, the DynamoDB store on), with SSL_CERT_FILE holding the bundle's
first certificate alone, then the whole bundle, runs interleaved.
Loopback only; every wait is bounded.

    scripts/measure-ssm-init.py [RUNS]        (default 20; needs moto_server
                                              on PATH and target/release/webhook)
    scripts/measure-ssm-init.py 15 --cert-bundle /etc/ssl/certs/ca-certificates.crt \
        --webhook /tmp/webhook-before --webhook target/release/webhook
"""

import argparse

import http.server
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456789:AAStandIn-token_for-local-tests-only"
SECRET_PARAMETER = "/measure/webhook-secret"
PARAMETER = "/bench/bot-token"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FirstNext(http.server.BaseHTTPRequestHandler):
    """Notes when the first /next arrives, then holds it until the run ends."""
    arrived = None

    def do_GET(self):
        FirstNext.arrived.set()
        time.sleep(2)
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args):
        pass


def aws_env(endpoint):
    # The Bot API on a closed loopback port: the function may open its
    # connection at start, and nothing may leave the machine.
    closed = free_port()
    return {
        "TELEGRAM_API_BASE_URL": f"http://127.0.0.1:{closed}",
        "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    }


def put_parameter(endpoint, name=None, value=None):
    # moto's JSON API, called directly: no AWS client needed.
    body = json.dumps({"Name": name or PARAMETER, "Value": value or TOKEN, "Type": "SecureString",
                       "Overwrite": True})
    request = urllib.request.Request(endpoint, data=body.encode(), method="POST", headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AmazonSSM.PutParameter",
        "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ssm/aws4_request, SignedHeaders=host, Signature=x",
    })
    urllib.request.urlopen(request, timeout=10).read()


def create_table(endpoint, name):
    body = json.dumps({"TableName": name, "BillingMode": "PAY_PER_REQUEST",
                       "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                       "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}]})
    request = urllib.request.Request(endpoint, data=body.encode(), method="POST", headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.CreateTable",
        "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=x",
    })
    urllib.request.urlopen(request, timeout=10).read()


def init_time(binary, env):
    port = free_port()
    FirstNext.arrived = threading.Event()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), FirstNext)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{port}", AWS_LAMBDA_FUNCTION_NAME="webhook",
               AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128", AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
               RUST_LOG="warn")
    if "TELEGRAM_WEBHOOK_SECRET_PARAMETER" not in env:
        env["TELEGRAM_WEBHOOK_SECRET"] = "local-dev-secret"
    started = time.perf_counter()
    process = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ok = FirstNext.arrived.wait(timeout=20)
    elapsed = time.perf_counter() - started
    process.kill()
    process.wait(timeout=5)
    server.shutdown()
    server.server_close()
    if not ok:
        sys.exit("the function did not reach /next within 20 s")
    return elapsed * 1000


def first_certificate(bundle):
    text = Path(bundle).read_text()
    end = "-----END CERTIFICATE-----"
    return text[:text.index(end) + len(end)] + "\n"


def measure_bundle(binaries, runs, bundle, env_both):
    scratch = Path(os.environ.get("TMPDIR", "/tmp")) / f"measure-certs-{os.getpid()}"
    scratch.mkdir(exist_ok=True)
    one = scratch / "one.pem"
    one.write_text(first_certificate(bundle))
    count = Path(bundle).read_text().count("BEGIN CERTIFICATE")
    times = {(b, f): [] for b in binaries for f in (one, bundle)}
    for _ in range(runs):
        for binary in binaries:
            for cert_file in (one, bundle):
                env = dict(env_both, SSL_CERT_FILE=str(cert_file))
                times[(binary, cert_file)].append(init_time(binary, env))
    for binary in binaries:
        alone = statistics.median(times[(binary, one)])
        whole = statistics.median(times[(binary, bundle)])
        print(f"{binary}: init median {alone:6.2f} ms with one CA, {whole:6.2f} ms with "
              f"{count} roots (+{whole - alone:.2f} ms), {runs} runs each")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="?", type=int, default=20)
    parser.add_argument("--webhook", action="append", type=Path,
                        help="a webhook binary (repeat to compare; default target/release/webhook)")
    parser.add_argument("--cert-bundle", type=Path, help="a PEM bundle of trusted roots")
    args = parser.parse_args()
    runs = max(1, min(args.runs, 1000))
    binaries = args.webhook or [ROOT / "target/release/webhook"]
    for binary in binaries:
        if not binary.exists():
            sys.exit(f"{binary}: build it first: cargo build --release --bin webhook")
    binary = binaries[0]
    port = free_port()
    moto = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("moto did not start")
                time.sleep(0.1)
        put_parameter(endpoint)
        put_parameter(endpoint, SECRET_PARAMETER, "a-secret_for-the-measurement-only-0123456789")
        env_token = dict(aws_env(endpoint), TELEGRAM_BOT_TOKEN=TOKEN)
        env_parameter = dict(aws_env(endpoint), TELEGRAM_BOT_TOKEN_PARAMETER=PARAMETER)
        # As deployed: both in one GetParameters call, each at a version.
        env_both = dict(aws_env(endpoint), TELEGRAM_BOT_TOKEN_PARAMETER=PARAMETER + ":1",
                        TELEGRAM_WEBHOOK_SECRET_PARAMETER=SECRET_PARAMETER + ":1")
        if args.cert_bundle:
            create_table(endpoint, "measure-bot-memory")
            measure_bundle(binaries, runs, args.cert_bundle,
                           dict(env_both, BOT_STORE_TABLE="measure-bot-memory"))
            return
        from_env, from_ssm, both = [], [], []
        for _ in range(runs):
            from_env.append(init_time(binary, env_token))
            from_ssm.append(init_time(binary, env_parameter))
            both.append(init_time(binary, env_both))
        for name, times in (("token in the environment", from_env), ("token from Parameter Store", from_ssm),
                            ("token and secret (deployed)", both)):
            print(f"{name:28} init median {statistics.median(times):7.2f} ms "
                  f"(min {min(times):.2f}, max {max(times):.2f}, {runs} runs)")
        print(f"{'Parameter Store adds':28} {statistics.median(from_ssm) - statistics.median(from_env):7.2f} ms "
              "(median; moto on loopback, so without AWS's network latency)")
    finally:
        moto.terminate()
        moto.wait(timeout=10)


if __name__ == "__main__":
    main()
