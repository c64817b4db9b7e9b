#!/usr/bin/env python3
"""Measures what reading the token from Parameter Store adds to a cold start.

Starts moto's server on loopback with the token in a SecureString, then
runs the release `webhook` binary as fresh processes, each pointed at a
stub Lambda Runtime API, and times spawn -> first /next request (init):
alternately with TELEGRAM_BOT_TOKEN in the environment and with
TELEGRAM_BOT_TOKEN_PARAMETER read through the AWS SDK, and with both the
token and the webhook secret read (one GetParameters call, as deployed).
Prints medians.
Loopback only; every wait is bounded.

    scripts/measure-ssm-init.py [RUNS]        (default 20; needs moto_server
                                              on PATH and target/release/webhook)
"""

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
    return {
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


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    binary = ROOT / "target/release/webhook"
    if not binary.exists():
        sys.exit("build it first: cargo build --release --bin webhook")
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
