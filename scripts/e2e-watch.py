#!/usr/bin/env python3
"""End-to-end test of the README's local workflow.

Starts the Telegram stand-in and `cargo lambda watch` on free loopback ports,
sends sample events with `cargo lambda invoke --data-file`, and checks the
status each invocation answered and the replies that reached the stand-in.
Every process it starts is stopped on exit, and every wait is bounded.
"""

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Where cargo puts the debug executables: under the triple when a build
# target is named (scripts/test names it, to share one build with sam build).
BUILT = (Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
         / os.environ.get("CARGO_BUILD_TARGET", "") / "debug")
TOKEN = "123456789:AAStandIn-token_for-local-tests-only"
SECRET = "local-dev-secret"
# event -> (status, texts of the replies that must reach the stand-in)
EXPECTED = {
    "start": (200, ["Hello, Ali! I echo what you write. Send /help to see what I can do."]),
    "text": (200, ["You said: Hi!"]),
    "group-command": (200, ["I repeat any text you send me.\n\nCommands:\n/start - say hello\n/help - list the commands"]),
    "other-bot-command": (200, []),
    "edited-message": (200, []),
    "forum-topic": (200, ["You said: Hello from a topic"]),
    "base64-body": (200, ["You said: Hi from base64!"]),
    "function-url-text": (200, ["You said: Hi via a Function URL!"]),
    "wrong-secret": (401, []),
    "missing-secret": (401, []),
    "malformed-body": (200, []),
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, seconds, process, log):
    """A TCP connect, not an HTTP request: any path on watch is an invocation."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"process exited early; its log:\n{Path(log).read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"nothing listened on port {port} within {seconds} s; log:\n{Path(log).read_text()}")


def http(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def post_function_url(port, update, secret):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/lambda-url/webhook/webhook",
        data=json.dumps(update).encode(), method="POST")
    request.add_header("content-type", "application/json")
    request.add_header("x-telegram-bot-api-secret-token", secret)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def update_in(event):
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    try:
        return json.loads(body)
    except ValueError:
        return None


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def main():
    # Logs live outside the source tree: watch rebuilds on any change in it.
    work = Path(tempfile.mkdtemp(prefix="e2e-watch-"))
    # What this script runs itself: the stand-in and the tool. Watch builds
    # the function.
    subprocess.run(["cargo", "build", "--locked", "-p", "telegram-stand-in", "--bin",
                    "telegram-stand-in", "-p", "bot-cli", "--bin", "bot"], cwd=ROOT, check=True)
    stand_in_port, watch_port = free_port(), free_port()
    stand_in_url = f"http://127.0.0.1:{stand_in_port}"
    processes = []
    try:
        stand_in_log = work / "stand-in.log"
        stand_in = subprocess.Popen(
            [BUILT / "telegram-stand-in", "--listen", f"127.0.0.1:{stand_in_port}"],
            stdout=open(stand_in_log, "w"), stderr=subprocess.STDOUT)
        processes.append(stand_in)
        wait_for_port(stand_in_port, 10, stand_in, stand_in_log)

        watch_log = work / "watch.log"
        env = dict(os.environ,
                   TELEGRAM_BOT_TOKEN=TOKEN,
                   TELEGRAM_API_BASE_URL=stand_in_url,
                   TELEGRAM_WEBHOOK_SECRET=SECRET,
                   TELEGRAM_BOT_USERNAME="EchoLambdaBot",
                   CARGO_LAMBDA_COMPILER="cargo")
        watch = subprocess.Popen(
            ["cargo", "lambda", "watch", "--invoke-address", "127.0.0.1",
             "--invoke-port", str(watch_port)],
            cwd=ROOT, env=env, stdout=open(watch_log, "w"), stderr=subprocess.STDOUT,
            start_new_session=True)
        processes.append(watch)
        wait_for_port(watch_port, 30, watch, watch_log)

        failures = []
        for name, (status, texts) in EXPECTED.items():
            path = ROOT / "events" / f"{name}.json"
            update = update_in(json.loads(path.read_text()))
            if update is not None:
                http(f"{stand_in_url}/_stand-in/observe", update)
            before = len(http(f"{stand_in_url}/_stand-in/sent"))
            # The first invocation waits for the debug build.
            try:
                result = subprocess.run(
                    ["cargo", "lambda", "invoke", "webhook", "--invoke-address", "127.0.0.1",
                     "--invoke-port", str(watch_port), "--data-file", str(path),
                     "--output-format", "json"],
                    cwd=ROOT, capture_output=True, text=True, timeout=600)
            except subprocess.TimeoutExpired:
                sys.exit(f"{name}: no answer within 600 s; watch log:\n"
                         f"{watch_log.read_text()[-6000:]}")
            if result.returncode != 0:
                failures.append(f"{name}: invoke failed: {result.stderr.strip()}")
                continue
            answer = json.loads(result.stdout)
            sent = [m["text"] for m in http(f"{stand_in_url}/_stand-in/sent")[before:]]
            if answer.get("statusCode") != status or sent != texts:
                failures.append(f"{name}: got {answer.get('statusCode')} {sent!r}, "
                                f"expected {status} {texts!r}")
            else:
                print(f"ok   {name}: {status}, {len(texts)} repl{'y' if len(texts) == 1 else 'ies'}")
        # A Function URL-style request: watch builds the event itself, as
        # Lambda does for a Function URL.
        update = update_in(json.loads((ROOT / "events/text.json").read_text()))
        update["update_id"] += 1000
        update["message"]["text"] = "Hi over HTTP"
        before = len(http(f"{stand_in_url}/_stand-in/sent"))
        status = post_function_url(watch_port, update, SECRET)
        sent = [m["text"] for m in http(f"{stand_in_url}/_stand-in/sent")[before:]]
        if status != 200 or sent != ["You said: Hi over HTTP"]:
            failures.append(f"function URL request: got {status} {sent!r}")
        else:
            print("ok   function URL request: 200, 1 reply")
        if post_function_url(watch_port, update, "wrong-secret") != 401:
            failures.append("function URL request with a wrong secret was not refused")
        else:
            print("ok   function URL request with a wrong secret: 401")
        # The README's chat with --watch: its own stand-in and watch.
        chat = subprocess.run(
            [BUILT / "bot", "chat", "--watch", "--name", "Ali"], cwd=ROOT,
            input="/start\nHi!\n", capture_output=True, text=True, timeout=600,
            env=dict(os.environ, CARGO_LAMBDA_COMPILER="cargo"))
        expected_chat = ("Hello, Ali! I echo what you write. Send /help to see what I can do.\n"
                         "You said: Hi!\n")
        if chat.returncode != 0 or chat.stdout != expected_chat:
            failures.append(f"bot chat: exit {chat.returncode}, stdout {chat.stdout!r}, "
                            f"stderr {chat.stderr[-2000:]!r}")
        else:
            print("ok   bot chat --watch (webhook through cargo lambda watch): greeting and echo")
        if failures:
            print("\n".join(failures), file=sys.stderr)
            print(f"--- watch log ---\n{watch_log.read_text()[-4000:]}", file=sys.stderr)
            sys.exit(1)
        print(f"e2e-watch: {len(EXPECTED)} events, 2 Function URL requests and a chat answered as expected")
    finally:
        for process in reversed(processes):
            stop(process)

if __name__ == "__main__":
    main()
