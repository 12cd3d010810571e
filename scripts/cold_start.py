"""Cold-start figures for `scripts/bench-cold-start` (run that script, not this file).

One local HTTP server stands in for both Lambda's Runtime API and the two AWS APIs ingest
calls (Secrets Manager GetSecretValue, SQS SendMessageBatch). Each run starts a fresh
process and records two moments, measured from process start:

* first poll   -- the process asks the Runtime API for work: Lambda's init phase ends here.
* first answer -- the process posts its answer to the invocation the first poll received
                  (for ingest: a signed two-event webhook, read the connections secret,
                  queue both events, answer 202).

The first poll is what the target compares (docs/ingest.md, "Cold start"). The first
answer keeps that honest: work moved out of init into the first request shows up there.
"""

import base64
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# `--smoke` (used by scripts/test on debug builds): two runs each, checks only, no figures.
SMOKE = sys.argv[1] == "--smoke"
RUNS = 2 if SMOKE else int(sys.argv[1])
INGEST, HELLO = sys.argv[2], sys.argv[3]
FIXTURE = sys.argv[4]

CONNECTION = "hr-generic"
SIGNING_KEY = os.urandom(24)
CONNECTIONS_SECRET = json.dumps({
    "connections": {
        CONNECTION: {"source": "generic", "secret": "whsec_" + base64.b64encode(SIGNING_KEY).decode()},
    }
})
with open(FIXTURE, "rb") as fixture:
    WEBHOOK_BODY = fixture.read()


def function_url_event():
    """A Function URL (API Gateway v2 shape) invocation carrying a freshly signed webhook."""
    webhook_id, timestamp = "msg_cold_start", str(int(time.time()))
    signed = f"{webhook_id}.{timestamp}.".encode() + WEBHOOK_BODY
    signature = base64.b64encode(hmac.new(SIGNING_KEY, signed, hashlib.sha256).digest()).decode()
    path = f"/webhooks/{CONNECTION}"
    return json.dumps({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {
            "content-type": "application/json", "host": "cold-start.lambda-url.us-east-1.on.aws",
            "webhook-id": webhook_id, "webhook-timestamp": timestamp,
            "webhook-signature": f"v1,{signature}",
        },
        "requestContext": {
            "accountId": "anonymous", "apiId": "cold-start", "domainName": "cold-start.lambda-url.us-east-1.on.aws",
            "domainPrefix": "cold-start", "requestId": "cold-start", "routeKey": "$default", "stage": "$default",
            "time": "22/Nov/2026:00:00:00 +0000", "timeEpoch": 0,
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                     "userAgent": "cold-start-bench"},
        },
        "body": WEBHOOK_BODY.decode(), "isBase64Encoded": False,
    }).encode()


class Run:
    """What one process did, in perf_counter nanoseconds."""

    def __init__(self):
        self.first_poll = None
        self.answered = threading.Event()
        self.answer_at = None
        self.answer = None

    def record(self, answer):
        self.answer_at = time.perf_counter_ns()
        self.answer = answer
        self.answered.set()


class StandIn(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if not self.path.endswith("/runtime/invocation/next"):
            return self.reply(404, b"{}")
        run = self.server.run
        if run.first_poll is not None:
            time.sleep(5)  # one invocation per process; it is killed before this ends
            return
        run.first_poll = time.perf_counter_ns()
        self.reply(200, function_url_event(), {
            "Lambda-Runtime-Aws-Request-Id": "cold-start-1",
            "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 30_000),
            "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:000000000000:function:cold-start",
            "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
        })

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if "/runtime/" in self.path:  # the invocation's response, or an init or invocation error
            answered = self.path.endswith("/response")
            self.server.run.record(json.loads(body) if answered else {"runtime_error": body.decode(errors="replace")})
            return self.reply(202, b"{}")
        target = self.headers.get("x-amz-target", "")
        if target == "secretsmanager.GetSecretValue":
            return self.reply(200, json.dumps({
                "ARN": "arn:aws:secretsmanager:us-east-1:000000000000:secret:ingest/connections",
                "Name": "ingest/connections", "VersionId": "v1", "SecretString": CONNECTIONS_SECRET,
            }).encode(), {"content-type": "application/x-amz-json-1.1"})
        if target == "AmazonSQS.SendMessageBatch":
            entries = json.loads(body)["Entries"]
            return self.reply(200, json.dumps({"Successful": [{
                "Id": entry["Id"], "MessageId": f"m-{entry['Id']}",
                "MD5OfMessageBody": hashlib.md5(entry["MessageBody"].encode()).hexdigest(),
            } for entry in entries], "Failed": []}).encode(), {"content-type": "application/x-amz-json-1.0"})
        self.reply(400, json.dumps({"__type": "UnknownOperation", "message": target}).encode())

    def reply(self, status, body, headers=None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    """One per process under test, so a killed process's late poll cannot take the next
    process's invocation."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), StandIn)
        self.run = Run()

    def handle_error(self, request, client_address):
        # The process under test is killed mid-poll: broken connections are expected.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


base_env = dict(os.environ)
# Lambda's AL2023 images hold one root bundle and no hashed certificate directory, and set
# neither SSL_CERT_FILE nor SSL_CERT_DIR. A Debian machine's /etc/ssl/certs also holds a
# hashed link per root, which the AWS SDK's TLS setup reads file by file. To measure what
# Lambda pays, the processes see only the bundle; KEEP_CERT_ENV=1 keeps this machine's own.
if os.environ.get("KEEP_CERT_ENV") != "1":
    base_env.pop("SSL_CERT_DIR", None)
    base_env.pop("SSL_CERT_FILE", None)
    if os.path.exists("/etc/ssl/certs/ca-certificates.crt"):
        base_env["SSL_CERT_FILE"] = "/etc/ssl/certs/ca-certificates.crt"


def function_env(address):
    return base_env | {
        "AWS_LAMBDA_RUNTIME_API": address,
        "AWS_LAMBDA_FUNCTION_NAME": "cold-start", "AWS_LAMBDA_FUNCTION_VERSION": "1",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL": f"http://{address}",
        "QUEUE_URL": f"http://{address}/000000000000/ingest.fifo",
        "CONNECTIONS_SECRET_ID": "ingest/connections",
    }


def cold_start(binary, check_answer):
    """(ms to first poll, ms to first answer) for one fresh process."""
    server = Server()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = function_env(f"127.0.0.1:{server.server_address[1]}")
    run = server.run
    log = tempfile.TemporaryFile()
    started = time.perf_counter_ns()
    process = subprocess.Popen([binary], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        if not run.answered.wait(10):
            log.seek(0)
            sys.exit(f"{binary} never answered its first invocation (polled: {run.first_poll is not None}, exit: {process.poll()}); its output:\n{log.read().decode(errors='replace')}")
        check_answer(run.answer)
        return (run.first_poll - started) / 1e6, (run.answer_at - started) / 1e6
    finally:
        process.kill()
        process.wait()
        log.close()
        server.shutdown()
        server.server_close()


def ingest_accepted_both(answer):
    if answer.get("statusCode") != 202 or json.loads(answer.get("body", "{}")).get("accepted") != 2:
        sys.exit(f"ingest did not accept the webhook: {answer}")


def hello_echoed(answer):
    if answer.get("rawPath") != f"/webhooks/{CONNECTION}":
        sys.exit(f"hello did not echo its event: {answer}")


functions = {"ingest": (INGEST, ingest_accepted_both), "hello": (HELLO, hello_echoed)}
samples = {name: [] for name in functions}
for binary, check in functions.values():  # warm the page cache; not counted
    cold_start(binary, check)
for _ in range(RUNS):
    for name, (binary, check) in functions.items():  # alternate: machine drift hits both alike
        samples[name].append(cold_start(binary, check))


def describe(values):
    values = sorted(values)
    p90 = values[int(round(0.9 * (len(values) - 1)))]
    return f"median {statistics.median(values):6.2f} ms   p90 {p90:6.2f} ms   min {values[0]:6.2f} ms"


if SMOKE:
    print(f"cold-start harness: ingest answered 202 to a signed webhook from a fresh process, {RUNS + 1} times")
    sys.exit(0)

print(f"{RUNS} runs each; times from process start")
for name, (binary, _) in functions.items():
    print(f"{name:<7} size {os.path.getsize(binary) / 1e6:5.1f} MB")
    print(f"  first poll    {describe([poll for poll, _ in samples[name]])}")
    print(f"  first answer  {describe([answer for _, answer in samples[name]])}")
ratio = statistics.median(p for p, _ in samples["ingest"]) / statistics.median(p for p, _ in samples["hello"])
print(f"cold start (first poll) ingest/hello, medians: {ratio:.2f}x   (target <= 1.5x)")
