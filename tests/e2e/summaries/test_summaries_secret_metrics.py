"""The inference secret is in no answer, output, log line or error (a provider refusing the key
included); the index that holds it is private. The metrics, labelled by model name, move as
the work done says, and promtool accepts them."""
import json
import os
import stat

import fake_llm

from .sumlib import (SECRET, docs, expected_usage, metric, openai_model_doc, policy_doc, promtool_check, secret_doc,
                     session_rec)

WRONG = "sk-wrong-Zq8VmT3kLp0xR7nYb2Wc9HfD"


def test_secret_never_shown(world):
    w = world
    w.secrets.append(WRONG)
    c = w.collector(log_level="debug")  # even the most talkative log has no secret
    base = w.llm.openai_base_url
    w.create(c, docs(secret_doc("good-key", SECRET), secret_doc("bad-key", WRONG),
                     openai_model_doc("good", "gpt-good", base, secret="good-key"),
                     openai_model_doc("bad", "gpt-bad", base, secret="bad-key", max_retries=2),
                     policy_doc("a-bad", "bad", filter='resource.metadata.labels["key"] == "bad"'),
                     policy_doc("b-good", "good")))
    ok = session_rec(user="alice")
    bad = session_rec(user="alice", labels={"key": "bad"})
    w.upload(c, ok)
    w.upload(c, bad)
    assert w.wait_job(c, ok.sid)["status"] == "done"
    j = w.wait_job(c, bad.sid)
    assert j["status"] == "failed", j
    # the provider refused the wrong key (401, not retried), echoing it masked as OpenAI does
    q = w.requests(sid=bad.sid)
    assert [x["status"] for x in q] == [401], q
    s = w.summary(c, bad.sid)
    assert s["success"] is False and s["error_code"] == "invalid_api_key", s
    assert WRONG not in s["error"], s
    # a provider that echoes the whole key in its error: the collector does not repeat it
    w.llm.set("error", count=1, status=401, code="invalid_api_key",
              message="Incorrect API key provided: %s. You can find your API key at ..." % SECRET)
    p = w.cli(c, "summarize", "--model", "good", "--wait", ok.sid, timeout=60)
    assert p.returncode == 1 and "invalid_api_key" in p.out + p.err, (p.out, p.err)
    s = w.summary(c, ok.sid)
    assert s["success"] is False and s["error_code"] == "invalid_api_key", s
    assert SECRET not in json.dumps(s), s
    api = w.api(c, "/v1/sessions/%s/summary?all=1" % bad.sid)
    assert api.status == 200, api
    w.cli(c, "summary", bad.sid)
    w.audit(c)
    w.api(c, "/v1/jobs")
    w.api(c, "/metrics")

    # every way of reading a secret shows its name and times only
    for name in ("good-key", "bad-key"):
        p = w.cli(c, "get", "secret", name, "--json", check=True)
        doc = json.loads(p.out)
        assert doc["kind"] == "inference_secret" and doc["metadata"]["name"] == name, doc
        assert "spec" not in doc or "value" not in json.dumps(doc["spec"]), doc
        w.cli(c, "get", "secret", name, check=True)
        r = w.api(c, "/v1/resources/secret/" + name)
        assert r.status == 200 and "spec" not in r.json(), r
    w.cli(c, "get", "secret", check=True)
    w.cli(c, "get", "all", check=True)
    w.cli(c, "get", "all", "--json", check=True)
    w.cli(c, "get", "model", "good", check=True)
    assert w.api(c, "/v1/resources").status == 200
    # a secret a model names cannot be removed
    p = w.cli(c, "rm", "secret", "good-key")
    assert p.returncode == 1 and "good" in p.err, (p.out, p.err)
    # what `get` prints goes back to `create` (the secret aside, which needs its value)
    p = w.cli(c, "get", "model", "good", check=True)
    w.create(c, p.out, force=True)

    # errors about a secret document describe the value without quoting it
    for text in (
        secret_doc("k1", SECRET).replace("spec:\n", "spec:\n  valeu: 1\n"),  # an unknown field beside it
        secret_doc("k2", SECRET) + "  extra: [\n",  # YAML that does not parse, after the value
        "kind: inference_secret\nversion: v1\nmetadata:\n  name: k3\nspec:\n  value: [%s]\n" % SECRET,  # not a string
        "kind: inference_secret\nversion: v1\nmetadata:\n  name: \"%s\"\nspec:\n  value: %s\n" % ("bad name!", SECRET),
        secret_doc("good-key", SECRET),  # exists already (409)
        "kind: inference_secret\nversion: v1\nmetadata:\n  name: k4\nspec:\n  value: \"%s\n" % SECRET,  # unterminated
    ):
        p = w.create(c, text, check=False)
        assert p.returncode == 1 and p.err, (text, p.out, p.err)
        r = w.api(c, "/v1/resources", method="POST", data=text, headers=("Content-Type: application/yaml",))
        assert r.status in (400, 409), r

    # the collector's own files: the index is private, nothing else has the secret
    assert stat.S_IMODE(os.stat(c.data_dir).st_mode) == 0o700, oct(os.stat(c.data_dir).st_mode)
    for f in ("index.db", "index.db-wal", "index.db-shm"):
        p = os.path.join(c.data_dir, f)
        if os.path.exists(p):
            assert stat.S_IMODE(os.stat(p).st_mode) == 0o600, (f, oct(os.stat(p).st_mode))
    c.stop()
    os.chmod(c.data_dir, 0o755)  # loosened by someone: tightened again at the next start
    os.chmod(os.path.join(c.data_dir, "index.db"), 0o644)
    c.start()
    assert stat.S_IMODE(os.stat(c.data_dir).st_mode) == 0o700, oct(os.stat(c.data_dir).st_mode)
    assert stat.S_IMODE(os.stat(os.path.join(c.data_dir, "index.db")).st_mode) == 0o600
    for root, _, files in os.walk(c.data_dir):
        for f in files:
            if f.startswith("index.db"):
                continue
            with open(os.path.join(root, f), "rb") as fh:
                data = fh.read()
            for sec in (SECRET, WRONG):
                assert sec.encode() not in data, os.path.join(root, f)
    w.check_secrets()  # (again after the test, by the fixture)


def test_metrics_by_model_and_promtool(world):
    w = world
    c = w.collector(summary_workers=1)
    w.setup_openai(c, {"alpha": ("gpt-alpha", {"max_retries": 0}), "beta": ("gpt-beta", {"max_retries": 0})},
                   [("a-beta", "beta", None, 'resource.metadata.labels["m"] == "beta"'), ("b-alpha", "alpha")])
    m0 = w.metrics(c)
    for name in ("builtin", "alpha", "beta"):  # every model the collector knows, from the start
        for fam in ("summarizations_total", "summarization_errors_total", "provider_requests_total",
                    "inference_tokens_in_total", "inference_tokens_out_total", "inference_jobs_pending",
                    "inference_jobs_running", "provider_requests_in_flight"):
            assert metric(m0, "sessrec_collector_" + fam, inference_model_name=name) == 0, (fam, name, m0)
    rc, out = promtool_check(m0)
    assert rc == 0, out

    a1, a2 = session_rec(user="alice"), session_rec(user="bob")
    b1 = session_rec(user="alice", labels={"m": "beta"})
    for r in (a1, a2):
        w.upload(c, r)
    for r in (a1, a2):
        assert w.wait_job(c, r.sid)["status"] == "done"
    w.llm.set("500")  # beta's session meets a provider that fails
    w.upload(c, b1)
    assert w.wait_job(c, b1.sid)["status"] == "failed"
    w.llm.reset()

    m = w.metrics(c)
    rc, out = promtool_check(m)
    assert rc == 0, out

    def v(fam, name, **kw):
        return metric(m, "sessrec_collector_" + fam, inference_model_name=name, **kw)

    assert v("summarizations_total", "alpha") == 2 and v("summarization_errors_total", "alpha") == 0, m
    assert v("summarizations_total", "beta") == 1 and v("summarization_errors_total", "beta") == 1, m
    assert v("summarizations_total", "builtin") == 0, m
    assert v("provider_requests_total", "alpha") == 2 and v("provider_errors_total", "alpha") == 0, m
    assert v("provider_requests_total", "beta") == 1 and v("provider_errors_total", "beta") == 1, m
    assert v("provider_api_errors_total", "beta", api_error_code="server_error") == 1, m
    assert v("provider_api_errors_total", "alpha", api_error_code="server_error") in (None, 0), m
    # tokens: what the fake reported, as the summaries say
    ra = [q for q in w.llm.requests() if q["model"] == "gpt-alpha"]
    assert len(ra) == 2
    tin = sum(expected_usage(q)[0] for q in ra)
    tout = sum(expected_usage(q)[1] for q in ra)
    assert (v("inference_tokens_in_total", "alpha"), v("inference_tokens_out_total", "alpha")) == (tin, tout), m
    sums = [w.summary(c, r.sid) for r in (a1, a2)]
    assert sum(s["tokens_in"] for s in sums) == tin and sum(s["tokens_out"] for s in sums) == tout, sums
    assert v("inference_tokens_in_total", "beta") == 0 and v("inference_tokens_out_total", "beta") == 0, m
    for name in ("alpha", "beta"):
        assert v("inference_jobs_pending", name) == 0 and v("inference_jobs_running", name) == 0, m
        assert v("provider_requests_in_flight", name) == 0 and v("inference_jobs_budget_exceeded", name) == 0, m
    # a model created later is there too
    w.create(c, openai_model_doc("gamma", "gpt-gamma", w.llm.openai_base_url))
    m = w.metrics(c)
    assert metric(m, "sessrec_collector_summarizations_total", inference_model_name="gamma") == 0, m
    rc, out = promtool_check(m)
    assert rc == 0, out
    assert fake_llm.OPENAI_KEY not in m


def test_many_sessions_each_summarized_once(world):
    w = world
    c = w.collector(summary_workers=3)
    w.setup_openai(c, {"gpt": "gpt-many"}, [("all", "gpt")])
    recs = [session_rec(user="alice") for _ in range(12)]
    for r in recs:
        w.upload(c, r)
    for r in recs:
        assert w.wait_job(c, r.sid)["status"] == "done"
    reqs = w.llm.requests()
    assert sorted(next(r.sid for r in recs if r.sid in q["user_text"]) for q in reqs) == sorted(r.sid for r in recs)
    m = w.metrics(c)
    assert metric(m, "sessrec_collector_summarizations_total", inference_model_name="gpt") == 12, m
    assert metric(m, "sessrec_collector_provider_requests_total", inference_model_name="gpt") == 12, m
    ev = w.audit(c, type="session.summarized")
    assert sorted(e["sid"] for e in ev) == sorted(r.sid for r in recs), ev
