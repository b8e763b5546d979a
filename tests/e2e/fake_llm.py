#!/usr/bin/env python3
"""A fake model provider for the end-to-end tests (standard library only).

It speaks two APIs the way the real services do:

* OpenAI chat completions: ``POST {prefix}/chat/completions`` with
  ``Authorization: Bearer <key>``; answers ``chat.completion`` objects with
  ``choices[0].message.content`` and ``usage``; errors as
  ``{"error": {"message", "type", "param", "code"}}`` (a wrong key is echoed
  masked, as OpenAI does, so that tests can check the client hides it).
* Amazon Bedrock Converse: ``POST {prefix}/model/{model id}/converse``; the
  SigV4 ``Authorization`` header is verified for real (canonical request,
  string to sign and signing key recomputed from the known test credentials,
  the path encoded once more as AWS does for every service but S3); a wrong
  signature, key id, session token, service or stale date is refused with 403
  and the ``x-amzn-ErrorType`` header. Answers carry ``toolUse`` output when
  the request forces a tool, else a text block; ``usage.inputTokens`` and
  ``usage.outputTokens``.

Every request to either API is appended to a JSON-lines log (``--log``) before
it is answered: time, method, path, headers (names lower-cased), body (text and
parsed JSON), which API, the model, the status sent and the behaviour used.

Behaviours, chosen per run (``--mode`` / ``FAKE_LLM_MODE``) or at any time
through the control endpoint, for every request or for the next N only:

==================  =========================================================
``ok``              a valid summary (a scripted one when ``answer`` is set)
``429``             429 with ``Retry-After: <retry_after>`` (omitted if null)
``500``             500 with the provider's server error body
``delay``           sleeps ``delay`` seconds (longer than the client timeout),
                    then answers ``ok``
``malformed``       200, but the model's answer is not JSON
``malformed_body``  200 whose HTTP body itself is cut-off JSON
``off_schema``      200 with JSON that misses fields and has wrong types
``script``          200 with ``answer`` (an object, or a string sent verbatim)
``error``           ``status`` with the provider error ``code``/``type``/``message``
==================  =========================================================

Control (not logged): ``POST /_fake/control`` with a JSON object:
``{"mode": "429", "count": 2, "retry_after": 1}`` queues the behaviour for the
next 2 requests; without ``count`` it becomes the default; ``{"queue": [...]}``
replaces the queue with a list of behaviours. ``POST /_fake/reset`` restores
the start-up state, ``GET /_fake/control`` shows it, ``GET /_fake/requests``
returns the log records.

Run: ``python3 tests/e2e/fake_llm.py --port P --log FILE`` (port 0 picks one;
the first line on stdout says which). From pytest::

    from fake_llm import FakeLLM
    with FakeLLM(log_path=tmp / "llm.jsonl") as llm:
        env.update(llm.env())           # AWS_* for Bedrock, pointing here
        llm.set("429", count=2)
        ...; llm.requests()
"""

import argparse
import copy
import datetime
import hashlib
import hmac
import json
import os
import posixpath
import re
import signal
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OPENAI_KEY = "sk-test-fakellm-0123456789abcdefABCDEF"
AWS_ACCESS_KEY_ID = "AKIAFAKELLMTEST00001"
AWS_SECRET_ACCESS_KEY = "fAkE/LlM+SecretKey/0123456789abcdefghijKL"
AWS_REGION = "us-east-1"

MODES = ("ok", "429", "500", "delay", "malformed", "malformed_body", "off_schema", "script",
         "error")
BODY_MAX = 64 << 20
SIGV4_SKEW = 5 * 60  # seconds, as AWS allows
SCHEMA_FIELDS = ("title", "short_description", "detailed_description", "risk_level",
                 "risk_score", "risk_reasons", "commands_of_interest", "needs_review")

RISKS = (
    (r"(curl|wget)\b[^\n]*\|\s*(sudo\s+)?(ba|z|da)?sh\b", "a download piped to a shell", 85),
    (r"base64\s+(-d|--decode)[^\n]*\|\s*(ba)?sh", "decodes data and runs it", 85),
    (r"/dev/tcp/|\bnc\b[^\n]*\s-e\s|\bncat\b[^\n]*--exec", "a reverse shell", 95),
    (r"/etc/shadow", "reads the shadow file", 80),
    (r"\.aws/credentials|id_rsa\b|\.ssh/id_", "reads credentials or keys", 70),
    (r"history\s+-c|HISTFILE=/dev/null|rm[^\n]*\.bash_history", "clears shell history", 75),
    (r"\bsudo\b|\bsu\s+-|\bsetuid\b|chmod\s+[ugo]*\+s", "changes privileges", 50),
)


def _level(score):
    return "critical" if score >= 80 else "high" if score >= 50 else "medium" if score >= 25 \
        else "low"


def default_answer(text):
    """A deterministic, schema-valid summary of whatever text the request carried."""
    reasons, commands, score = [], [], 5
    for pattern, reason, s in RISKS:
        for m in re.finditer(pattern, text):
            line_start = text.rfind("\n", 0, m.start()) + 1
            line_end = text.find("\n", m.end())
            line = text[line_start:line_end if line_end >= 0 else len(text)].strip()
            if reason not in reasons:
                reasons.append(reason)
            if line and line not in commands and len(commands) < 10:
                commands.append(line[:300])
            score = max(score, s)
    lines = text.count("\n") + 1
    return {
        "title": "Risky interactive session" if reasons else "Routine interactive session",
        "short_description": "A shell session of %d transcript lines%s." %
                             (lines, ": " + "; ".join(reasons) if reasons else ""),
        "detailed_description": "The fake model read %d characters in %d lines." %
                                (len(text), lines),
        "risk_level": _level(score),
        "risk_score": score,
        "risk_reasons": reasons,
        "commands_of_interest": commands,
        "needs_review": score >= 50,
    }


OFF_SCHEMA_ANSWER = {
    "title": "Session",
    "risk_level": "severe",
    "risk_score": 250,
    "summary": {"nested": {"risk_reasons": ["not here"]}},
}
MALFORMED_ANSWER = 'Here is the summary you asked for: {title: "Session", risk_level: low,'


# ---------------------------------------------------------------- SigV4 (AWS's side of it)

def _hmac(key, msg):
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def _remove_dot_segments(path):
    if not path:
        return "/"
    out = posixpath.normpath(path)
    if out.startswith("//"):
        out = "/" + out.lstrip("/")
    if path.endswith("/") and not out.endswith("/"):
        out += "/"
    return out


def sigv4_canonical_uri(raw_path):
    """The path as AWS signs it for every service but S3: the path as sent, encoded again."""
    return urllib.parse.quote(_remove_dot_segments(raw_path), safe="/~")


def sigv4_canonical_query(raw_query):
    pairs = []
    for part in raw_query.split("&") if raw_query else []:
        if not part:
            continue
        k, _, v = part.partition("=")
        pairs.append((urllib.parse.quote(urllib.parse.unquote(k), safe="-_.~"),
                      urllib.parse.quote(urllib.parse.unquote(v), safe="-_.~")))
    return "&".join("%s=%s" % kv for kv in sorted(pairs))


def sigv4_signing_key(secret, date, region, service):
    k = _hmac(("AWS4" + secret).encode("utf-8"), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


class SigV4Error(Exception):
    def __init__(self, error_type, message):
        super().__init__(message)
        self.error_type = error_type
        self.message = message


AUTH_RE = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/"
                     r"aws4_request,\s*SignedHeaders=([a-z0-9;_.-]+),\s*Signature=([0-9a-f]{64})$")


def sigv4_verify(method, raw_path, raw_query, headers, body, creds, service="bedrock", now=None):
    """Check a request's SigV4 Authorization as AWS would; raise SigV4Error when refused.

    headers: a list of (name, value) as received; creds: access_key_id,
    secret_access_key, session_token (None: none may be sent), region (None: any).
    """
    hmap = {}
    for name, value in headers:
        hmap.setdefault(name.lower(), []).append(value)
    auth = hmap.get("authorization", [None])[0]
    if not auth:
        raise SigV4Error("MissingAuthenticationTokenException", "Missing Authentication Token")
    m = AUTH_RE.match(auth.strip())
    if not m:
        raise SigV4Error("IncompleteSignatureException",
                         "Authorization header requires 'Credential', 'Signature' and "
                         "'SignedHeaders' parameters. Authorization=" + auth.split(" ")[0])
    key_id, scope_date, region, scope_service, signed, signature = m.groups()
    if key_id != creds["access_key_id"]:
        raise SigV4Error("UnrecognizedClientException",
                         "The security token included in the request is invalid.")
    token = hmap.get("x-amz-security-token", [None])[0]
    if (creds.get("session_token") or None) != (token or None):
        raise SigV4Error("UnrecognizedClientException",
                         "The security token included in the request is invalid.")
    amz_date = hmap.get("x-amz-date", [None])[0]
    if not amz_date or not re.match(r"^\d{8}T\d{6}Z$", amz_date):
        raise SigV4Error("IncompleteSignatureException", "Missing or bad X-Amz-Date header.")
    when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    if abs((now if now is not None else time.time()) - when) > SIGV4_SKEW:
        raise SigV4Error("InvalidSignatureException",
                         "Signature expired: %s is now earlier or later than the server "
                         "time allows (5 min.)" % amz_date)
    if scope_date != amz_date[:8]:
        raise SigV4Error("InvalidSignatureException",
                         "Date in Credential scope does not match YYYYMMDD from ISO-8601 "
                         "version of date from HTTP: '%s' != '%s'" % (scope_date, amz_date[:8]))
    if scope_service != service:
        raise SigV4Error("InvalidSignatureException",
                         "Credential should be scoped to correct service: '%s'." % service)
    if creds.get("region") and region != creds["region"]:
        raise SigV4Error("InvalidSignatureException",
                         "Credential should be scoped to a valid region.")
    names = signed.split(";")
    if "host" not in names or "x-amz-date" not in names:
        raise SigV4Error("InvalidSignatureException",
                         "Signed headers must include host and x-amz-date.")
    canon_headers = ""
    for name in names:
        if name not in hmap:
            raise SigV4Error("InvalidSignatureException",
                             "Signed header '%s' is not in the request." % name)
        canon_headers += "%s:%s\n" % (name, ",".join(" ".join(v.strip().split())
                                                     for v in hmap[name]))
    payload_hash = hmap.get("x-amz-content-sha256", [None])[0] or \
        hashlib.sha256(body).hexdigest()
    canonical = "\n".join((method, sigv4_canonical_uri(raw_path), sigv4_canonical_query(raw_query),
                           canon_headers, signed, payload_hash))
    scope = "%s/%s/%s/aws4_request" % (scope_date, region, scope_service)
    to_sign = "\n".join(("AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode("utf-8")).hexdigest()))
    key = sigv4_signing_key(creds["secret_access_key"], scope_date, region, scope_service)
    expected = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise SigV4Error("InvalidSignatureException",
                         "The request signature we calculated does not match the signature "
                         "you provided. Check your AWS Secret Access Key and signing method. "
                         "Consult the service documentation for details.\n\nThe Canonical "
                         "String for this request should have been\n'%s'\n\nThe String-to-Sign "
                         "should have been\n'%s'\n" % (canonical, to_sign))
    return {"access_key_id": key_id, "region": region, "signed_headers": names}


# ---------------------------------------------------------------- request checks

class ApiError(Exception):
    def __init__(self, status, message, code=None, etype="invalid_request_error", param=None):
        super().__init__(message)
        self.status, self.message, self.code, self.etype, self.param = \
            status, message, code, etype, param


def check_strict_schema(schema, where="()"):
    """OpenAI's rules for strict json_schema: objects close and require every property."""
    if not isinstance(schema, dict):
        raise ApiError(400, "Invalid schema: In context=%s, schema must be an object." % where,
                       param="response_format")
    if schema.get("type") == "object":
        props = schema.get("properties")
        if not isinstance(props, dict):
            raise ApiError(400, "Invalid schema for response_format: In context=%s, "
                           "'properties' is required." % where, param="response_format")
        if schema.get("additionalProperties") is not False:
            raise ApiError(400, "Invalid schema for response_format: In context=%s, "
                           "'additionalProperties' is required to be supplied and to be false."
                           % where, param="response_format")
        missing = [k for k in props if k not in (schema.get("required") or [])]
        if missing:
            raise ApiError(400, "Invalid schema for response_format: In context=%s, 'required' "
                           "is required to be supplied and to be an array including every key "
                           "in properties. Missing '%s'." % (where, missing[0]),
                           param="response_format")
        for k, v in props.items():
            check_strict_schema(v, "%s, 'properties', '%s'" % (where, k))
    if schema.get("type") == "array" and "items" in schema:
        check_strict_schema(schema["items"], "%s, 'items'" % where)


def check_openai_request(req):
    if not isinstance(req, dict):
        raise ApiError(400, "We could not parse the JSON body of your request.")
    if not isinstance(req.get("model"), str) or not req["model"]:
        raise ApiError(400, "you must provide a model parameter", param="model")
    msgs = req.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise ApiError(400, "'messages' must be a non-empty array", param="messages")
    for i, msg in enumerate(msgs):
        if not isinstance(msg, dict) or msg.get("role") not in ("system", "developer", "user",
                                                                "assistant", "tool"):
            raise ApiError(400, "Invalid value for 'messages[%d].role'." % i,
                           param="messages[%d].role" % i)
        if not isinstance(msg.get("content"), (str, list)):
            raise ApiError(400, "Invalid type for 'messages[%d].content'." % i,
                           param="messages[%d].content" % i)
    temp = req.get("temperature", 1)
    if not isinstance(temp, (int, float)) or isinstance(temp, bool) or not 0 <= temp <= 2:
        raise ApiError(400, "Invalid 'temperature': must be a number from 0 to 2.",
                       param="temperature", code="decimal_above_max_value")
    rf = req.get("response_format")
    if rf is not None:
        if not isinstance(rf, dict) or rf.get("type") not in ("text", "json_object",
                                                              "json_schema"):
            raise ApiError(400, "Invalid 'response_format.type'.", param="response_format")
        if rf["type"] == "json_schema":
            js = rf.get("json_schema")
            if not isinstance(js, dict) or not re.match(r"^[a-zA-Z0-9_-]{1,64}$",
                                                        str(js.get("name", ""))):
                raise ApiError(400, "Invalid 'response_format.json_schema.name'.",
                               param="response_format")
            if not isinstance(js.get("schema"), dict):
                raise ApiError(400, "Missing 'response_format.json_schema.schema'.",
                               param="response_format")
            if js.get("strict"):
                check_strict_schema(js["schema"])


def check_bedrock_request(req):
    def bad(msg):
        raise ApiError(400, msg, code="ValidationException")
    if not isinstance(req, dict):
        bad("Malformed input request, please reformat your input and try again.")
    msgs = req.get("messages")
    if not isinstance(msgs, list) or not msgs:
        bad("A conversation must start with a user message. Try again with a conversation "
            "that starts with a user message.")
    for msg in msgs:
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant") or \
                not isinstance(msg.get("content"), list) or not msg["content"]:
            bad("Malformed input request: messages must have a role and a content list.")
    system = req.get("system", [])
    if not isinstance(system, list) or any(not isinstance(b, dict) for b in system):
        bad("Malformed input request: system must be a list of content blocks.")
    inf = req.get("inferenceConfig", {})
    if not isinstance(inf, dict):
        bad("Malformed input request: inferenceConfig must be an object.")
    if "maxTokens" in inf and (not isinstance(inf["maxTokens"], int) or inf["maxTokens"] < 1):
        bad("The value at inferenceConfig.maxTokens must be at least 1.")
    if "temperature" in inf and (not isinstance(inf["temperature"], (int, float)) or
                                 not 0 <= inf["temperature"] <= 1):
        bad("The value at inferenceConfig.temperature must be between 0 and 1.")
    tc = req.get("toolConfig")
    if tc is None:
        return None
    tools = tc.get("tools") if isinstance(tc, dict) else None
    if not isinstance(tools, list) or not tools:
        bad("The toolConfig field must be defined with at least one tool.")
    names = []
    for t in tools:
        spec = t.get("toolSpec") if isinstance(t, dict) else None
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or \
                not isinstance(spec.get("inputSchema", {}).get("json"), dict):
            bad("Malformed input request: toolSpec needs a name and inputSchema.json.")
        names.append(spec["name"])
    choice = tc.get("toolChoice")
    if isinstance(choice, dict) and "tool" in choice:
        name = (choice["tool"] or {}).get("name")
        if name not in names:
            bad("The tool named in toolChoice is not in toolConfig.tools.")
        return name
    return names[0]


def _text_of(req, api):
    """The request's prompt text (system and user), for the default answer and the log."""
    system, user = [], []
    if api == "openai":
        for msg in req.get("messages", []):
            content = msg.get("content")
            if isinstance(content, list):
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            (system if msg.get("role") in ("system", "developer") else user).append(
                content or "")
    else:
        system = [b.get("text", "") for b in req.get("system", []) if isinstance(b, dict)]
        for msg in req.get("messages", []):
            user += [b.get("text", "") for b in msg.get("content", []) if isinstance(b, dict)]
    return "\n".join(system), "\n".join(user)


# ---------------------------------------------------------------- the server

class FakeLLM:
    """The fake provider; start() serves in a thread, stop() ends it."""

    def __init__(self, port=0, log_path=None, host="127.0.0.1", openai_key=OPENAI_KEY,
                 aws_access_key_id=AWS_ACCESS_KEY_ID,
                 aws_secret_access_key=AWS_SECRET_ACCESS_KEY, aws_session_token=None,
                 aws_region=AWS_REGION, mode="ok", retry_after=1, delay=30.0, answer=None):
        self.host, self._port, self.log_path = host, port, log_path
        self.openai_key = openai_key
        self.creds = {"access_key_id": aws_access_key_id,
                      "secret_access_key": aws_secret_access_key,
                      "session_token": aws_session_token, "region": aws_region}
        self._initial = {"mode": mode, "retry_after": retry_after, "delay": delay,
                         "answer": answer}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._records = []
        self._log = None
        self._httpd = None
        self._thread = None
        self.reset()

    # -- behaviour
    def reset(self):
        with self._lock:
            self._default = self._behaviour(self._initial)
            self._queue = []

    @staticmethod
    def _behaviour(spec, base=None):
        b = dict(base or {"mode": "ok", "retry_after": 1, "delay": 30.0, "answer": None,
                          "status": 400, "code": None, "type": "invalid_request_error",
                          "message": "The request was refused."})
        for k, v in spec.items():
            if k in ("count", "queue"):
                continue
            if k not in b:
                raise ValueError("unknown setting %r" % k)
            b[k] = v
        if b["mode"] not in MODES:
            raise ValueError("unknown mode %r (one of %s)" % (b["mode"], ", ".join(MODES)))
        return b

    def set(self, mode=None, count=None, **params):
        """The behaviour for the next `count` requests, or from now on when count is None."""
        spec = dict(params)
        if mode is not None:
            spec["mode"] = str(mode)
        self.control(dict(spec, **({"count": count} if count is not None else {})))

    def control(self, spec):
        with self._lock:
            if "queue" in spec:
                self._queue = [self._behaviour(s, self._default) for s in spec["queue"]]
            elif spec.get("count") is not None:
                self._queue += [self._behaviour(spec, self._default)] * int(spec["count"])
            else:
                self._default = self._behaviour(spec, self._default)
            return self.state()

    def state(self):
        return {"default": self._default, "queue": list(self._queue)}

    def _next(self):
        with self._lock:
            return self._queue.pop(0) if self._queue else dict(self._default)

    # -- records
    def _record(self, rec):
        with self._lock:
            self._records.append(rec)
            if self._log:
                self._log.write(json.dumps(rec) + "\n")
                self._log.flush()

    def requests(self, api=None):
        """The requests received so far (optionally only "openai" or "bedrock" ones)."""
        with self._lock:
            recs = copy.deepcopy(self._records)
        return [r for r in recs if api is None or r["api"] == api]

    # -- lifecycle
    @property
    def port(self):
        return self._httpd.server_address[1] if self._httpd else self._port

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    @property
    def openai_base_url(self):
        return self.url + "/v1"

    def env(self):
        """Variables that point an AWS client (the collector) here with the test credentials."""
        env = {"AWS_ENDPOINT_URL_BEDROCK_RUNTIME": self.url,
               "AWS_ACCESS_KEY_ID": self.creds["access_key_id"],
               "AWS_SECRET_ACCESS_KEY": self.creds["secret_access_key"],
               "AWS_DEFAULT_REGION": self.creds["region"] or AWS_REGION}
        if self.creds["session_token"]:
            env["AWS_SESSION_TOKEN"] = self.creds["session_token"]
        return env

    def start(self):
        if self.log_path:
            self._log = open(self.log_path, "a", encoding="utf-8")
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer((self.host, self._port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake_llm",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread:
            self._thread.join(5)
        with self._lock:
            if self._log:
                self._log.close()
                self._log = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake_llm/1"
    fake = None  # set per server by FakeLLM.start

    def log_message(self, fmt, *args):  # quiet: the JSON log says what happened
        pass

    # -- plumbing
    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                if len(data) + size > BODY_MAX:
                    raise ApiError(413, "Request too large.")
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > BODY_MAX:
            raise ApiError(413, "Request too large.")
        return self.rfile.read(length) if length else b""

    def _send(self, status, body, headers=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # -- routing
    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/_fake/control":
            with self.fake._lock:
                return self._send(200, self.fake.state())
        if path == "/_fake/requests":
            return self._send(200, self.fake.requests())
        return self._api("GET")

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        if path in ("/_fake/control", "/_fake/reset"):
            try:
                spec = json.loads(self._body() or b"{}")
                if path == "/_fake/reset":
                    self.fake.reset()
                    with self.fake._lock:
                        state = self.fake.state()
                else:
                    state = self.fake.control(spec)
            except (ValueError, TypeError, AttributeError) as e:
                return self._send(400, {"error": str(e)})
            return self._send(200, state)
        return self._api("POST")

    def do_PUT(self):
        self._api("PUT")

    def do_DELETE(self):
        self._api("DELETE")

    def _api(self, method):
        split = urllib.parse.urlsplit(self.path)
        raw_path, raw_query = split.path, split.query
        m = re.match(r"^(?:/.*)?/model/([^/]+)/converse$", raw_path)
        api = "openai" if raw_path.endswith("/chat/completions") else \
            "bedrock" if m else "unknown"
        rec = {"time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
               "method": method, "path": self.path, "api": api,
               "headers": {}, "body": None, "json": None, "model": None}
        for k, v in self.headers.items():
            k = k.lower()
            rec["headers"][k] = rec["headers"][k] + ", " + v if k in rec["headers"] else v
        rec["mode"] = None  # the behaviour, once the request passed auth and checks
        try:
            body = self._body()
        except (ApiError, ValueError) as e:
            status = getattr(e, "status", 400)
            rec["status"] = status
            self.fake._record(rec)
            self.close_connection = True
            return self._send(status, {"message": str(e)})
        rec["body"] = body.decode("utf-8", "replace")
        try:
            rec["json"] = json.loads(body) if body else None
        except ValueError:
            pass
        if api == "unknown" or method != "POST":
            rec["status"] = 404 if api == "unknown" else 405
            self.fake._record(rec)
            return self._send(rec["status"], {"message": "Not found: %s %s" % (method,
                                                                              raw_path)})
        if api == "openai":
            status, out, headers = self._openai(rec, body)
        else:
            rec["model"] = urllib.parse.unquote(m.group(1))
            status, out, headers = self._bedrock(rec, method, raw_path, raw_query, body)
        rec["status"] = status
        delay = rec.get("delay")
        self.fake._record(rec)
        if delay is not None:
            if self.fake._stop.wait(float(delay)):
                self.close_connection = True
                return None
        return self._send(status, out, headers)

    # -- OpenAI
    def _openai_error(self, e, headers=()):
        return e.status, {"error": {"message": e.message, "type": e.etype, "param": e.param,
                                    "code": e.code}}, list(headers)

    def _take(self, rec):
        """The behaviour for a request that passed auth and checks."""
        b = self.fake._next()
        rec["mode"] = b["mode"]
        if b["mode"] == "delay":
            rec["delay"] = b["delay"]
        return b

    def _openai(self, rec, body):
        key = self.fake.openai_key
        auth = self.headers.get("Authorization")
        if key is not None:
            if not auth:
                return self._openai_error(ApiError(
                    401, "You didn't provide an API key. You need to provide your API key in "
                    "an Authorization header using Bearer auth (i.e. Authorization: Bearer "
                    "YOUR_KEY)."))
            given = auth[7:] if auth.startswith("Bearer ") else auth
            if not hmac.compare_digest(given.encode(), key.encode()):
                masked = given[:3] + "*" * max(len(given) - 7, 3) + given[-4:] \
                    if len(given) > 8 else "*" * len(given)
                return self._openai_error(ApiError(
                    401, "Incorrect API key provided: %s. You can find your API key at "
                    "https://platform.openai.com/account/api-keys." % masked,
                    code="invalid_api_key"))
        try:
            req = json.loads(body)
            check_openai_request(req)
        except ValueError:
            return self._openai_error(ApiError(
                400, "We could not parse the JSON body of your request. (HINT: This likely "
                "means you aren't using your HTTP library correctly.)"))
        except ApiError as e:
            return self._openai_error(e)
        rec["model"] = req["model"]
        rec["system_text"], rec["user_text"] = _text_of(req, "openai")
        b = self._take(rec)
        mode = b["mode"]
        if mode == "429":
            headers = [("x-ratelimit-remaining-requests", "0")]
            if b["retry_after"] is not None:
                headers.append(("Retry-After", str(b["retry_after"])))
            return self._openai_error(ApiError(
                429, "Rate limit reached for %s on requests per min (RPM): Limit 3, Used 3, "
                "Requested 1. Please try again in 1s." % req["model"],
                code="rate_limit_exceeded", etype="requests"), headers)
        if mode == "500":
            return self._openai_error(ApiError(
                500, "The server had an error while processing your request. Sorry about "
                "that!", etype="server_error"))
        if mode == "error":
            return self._openai_error(ApiError(int(b["status"]), b["message"], code=b["code"],
                                               etype=b["type"]))
        if mode == "malformed_body":
            return 200, b'{"id": "chatcmpl-cut", "object": "chat.completion", "choices": [{"in', []
        content = self._answer_text(b, rec["user_text"])
        prompt_tokens = sum(len(m.get("content") or "") if isinstance(m.get("content"), str)
                            else 0 for m in req["messages"]) // 4 + 4 * len(req["messages"])
        completion_tokens = max(1, len(content) // 4)
        return 200, {
            "id": "chatcmpl-" + uuid.uuid4().hex[:24], "object": "chat.completion",
            "created": int(time.time()), "model": req["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content,
                                                 "refusal": None, "annotations": []},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
            "system_fingerprint": "fp_fake_llm"}, [("x-request-id", "req_" + uuid.uuid4().hex)]

    def _answer_obj(self, b, user_text):
        if b["mode"] == "off_schema":
            return OFF_SCHEMA_ANSWER
        if b["mode"] == "script" or (b["mode"] in ("ok", "delay") and b["answer"] is not None):
            return b["answer"]
        return default_answer(user_text)

    def _answer_text(self, b, user_text):
        if b["mode"] == "malformed":
            return MALFORMED_ANSWER
        ans = self._answer_obj(b, user_text)
        return ans if isinstance(ans, str) else json.dumps(ans)

    # -- Bedrock
    def _bedrock_error(self, status, error_type, message, headers=()):
        return status, {"message": message}, [
            ("x-amzn-ErrorType", "%s:http://internal.amazon.com/coral/com.amazon.bedrock/" %
             error_type), ("x-amzn-RequestId", str(uuid.uuid4()))] + list(headers)

    def _bedrock(self, rec, method, raw_path, raw_query, body):
        try:
            rec["auth"] = sigv4_verify(method, raw_path, raw_query, self.headers.items(), body,
                                       self.fake.creds)
        except SigV4Error as e:
            rec["auth"] = {"error": e.error_type}
            return self._bedrock_error(403, e.error_type, e.message)
        try:
            req = json.loads(body)
            tool = check_bedrock_request(req)
        except ValueError:
            return self._bedrock_error(400, "ValidationException",
                                       "Malformed input request, please reformat your input "
                                       "and try again.")
        except ApiError as e:
            return self._bedrock_error(400, "ValidationException", e.message)
        rec["system_text"], rec["user_text"] = _text_of(req, "bedrock")
        b = self._take(rec)
        mode = b["mode"]
        if mode == "429":
            headers = [("Retry-After", str(b["retry_after"]))] \
                if b["retry_after"] is not None else []
            return self._bedrock_error(429, "ThrottlingException",
                                       "Too many requests, please wait before trying again.",
                                       headers)
        if mode == "500":
            return self._bedrock_error(500, "InternalServerException",
                                       "The server encountered an internal error while "
                                       "processing the request.")
        if mode == "error":
            return self._bedrock_error(int(b["status"]), b["code"] or "ValidationException",
                                       b["message"])
        if mode == "malformed_body":
            return 200, b'{"output": {"message": {"role": "assistant", "content": [{"to', []
        if tool and mode not in ("malformed",) and not isinstance(self._answer_obj(
                b, rec["user_text"]), str):
            content = [{"toolUse": {"toolUseId": "tooluse_" + uuid.uuid4().hex[:22],
                                    "name": tool,
                                    "input": self._answer_obj(b, rec["user_text"])}}]
            stop = "tool_use"
            out_len = len(json.dumps(content))
        else:
            text = self._answer_text(b, rec["user_text"])
            content = [{"text": text}]
            stop = "end_turn"
            out_len = len(text)
        in_tokens = (len(rec["user_text"]) + len(rec["system_text"])) // 4 + 8
        out_tokens = max(1, out_len // 4)
        return 200, {"output": {"message": {"role": "assistant", "content": content}},
                     "stopReason": stop,
                     "usage": {"inputTokens": in_tokens, "outputTokens": out_tokens,
                               "totalTokens": in_tokens + out_tokens},
                     "metrics": {"latencyMs": 42}}, [("x-amzn-RequestId", str(uuid.uuid4()))]


# ---------------------------------------------------------------- command line

def main(argv=None):
    env = os.environ.get
    p = argparse.ArgumentParser(description="A fake OpenAI / Bedrock provider for tests.")
    p.add_argument("--host", default=env("FAKE_LLM_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(env("FAKE_LLM_PORT", "0")))
    p.add_argument("--log", default=env("FAKE_LLM_LOG"), help="JSON-lines request log")
    p.add_argument("--mode", default=env("FAKE_LLM_MODE", "ok"), choices=MODES)
    p.add_argument("--count", type=int, default=env("FAKE_LLM_COUNT"),
                   help="apply --mode to this many requests only, then answer ok")
    p.add_argument("--retry-after", default=env("FAKE_LLM_RETRY_AFTER", "1"),
                   help="Retry-After seconds on 429 ('none' to omit)")
    p.add_argument("--delay", type=float, default=float(env("FAKE_LLM_DELAY", "30")))
    p.add_argument("--answer", default=env("FAKE_LLM_ANSWER"),
                   help="scripted answer: JSON (an object, or a string sent verbatim)")
    p.add_argument("--openai-key", default=env("FAKE_LLM_OPENAI_KEY", OPENAI_KEY),
                   help="expected bearer key ('none': accept any)")
    p.add_argument("--aws-access-key-id", default=env("FAKE_LLM_AWS_ACCESS_KEY_ID",
                                                      AWS_ACCESS_KEY_ID))
    p.add_argument("--aws-secret-access-key", default=env("FAKE_LLM_AWS_SECRET_ACCESS_KEY",
                                                          AWS_SECRET_ACCESS_KEY))
    p.add_argument("--aws-session-token", default=env("FAKE_LLM_AWS_SESSION_TOKEN"))
    p.add_argument("--aws-region", default=env("FAKE_LLM_AWS_REGION", AWS_REGION),
                   help="region the signature must be scoped to ('any' to accept any)")
    p.add_argument("--port-file", help="write the port here once listening")
    a = p.parse_args(argv)
    retry_after = None if str(a.retry_after).lower() == "none" else int(a.retry_after)
    answer = json.loads(a.answer) if a.answer else None
    base_mode = a.mode if a.count is None else "ok"
    fake = FakeLLM(port=a.port, log_path=a.log, host=a.host,
                   openai_key=None if a.openai_key == "none" else a.openai_key,
                   aws_access_key_id=a.aws_access_key_id,
                   aws_secret_access_key=a.aws_secret_access_key,
                   aws_session_token=a.aws_session_token or None,
                   aws_region=None if a.aws_region == "any" else a.aws_region,
                   mode=base_mode, retry_after=retry_after, delay=a.delay, answer=answer)
    fake.start()
    if a.count is not None:
        fake.set(a.mode, count=a.count)
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write("%d\n" % fake.port)
        os.rename(a.port_file + ".tmp", a.port_file)
    print("fake_llm listening on %s" % fake.url, flush=True)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(3600):
        pass
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
