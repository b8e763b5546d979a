"""When the provider misbehaves: 429 is retried (after Retry-After) and succeeds; 500 always,
a timeout, an answer that is not JSON or not a summary end as a failed summary with the error
code, an SR5000E audit line and the metrics; uploads stay fast while the provider hangs; pending
work survives a collector restart; a daily token budget stops requests until it is raised."""
import json
import time
from datetime import datetime

import pytest

from .sumlib import (SECRET, bedrock_model_doc, docs, metric, openai_model_doc, pick_port, policy_doc, poll,
                     secret_doc, session_rec, transcript_of)


def _m(w, c, name, **labels):
    return metric(w.metrics(c), name, inference_model_name="gpt", **labels)


def test_429_is_retried_after_retry_after_and_succeeds(world):
    w = world
    c = w.collector()
    w.setup_openai(c, {"gpt": ("gpt-rl", {"max_retries": 3})}, [("all", "gpt")])
    w.llm.set("429", count=2, retry_after=2)  # longer than the first backoff (1 s)
    rec = session_rec(user="alice")
    w.upload(c, rec)
    job = w.wait_job(c, rec.sid, timeout=30)
    assert job["status"] == "done", job
    reqs = w.llm.requests()
    assert [q["status"] for q in reqs] == [429, 429, 200], [q["status"] for q in reqs]
    # the same request each time, after the Retry-After second
    assert [q["model"] for q in reqs] == ["gpt-rl"] * 3
    assert transcript_of(reqs[0]) == transcript_of(reqs[1]) == transcript_of(reqs[2]) is not None
    ts = [datetime.fromisoformat(q["time"]).timestamp() for q in reqs]
    assert ts[1] - ts[0] >= 1.9 and ts[2] - ts[1] >= 1.9, ts
    s = w.summary(c, rec.sid)
    assert s["success"] is True and s["error_code"] == "", s
    m = w.metrics(c)
    assert metric(m, "sessrec_collector_provider_requests_total", inference_model_name="gpt") == 3, m
    assert metric(m, "sessrec_collector_provider_errors_total", inference_model_name="gpt") == 2, m
    assert metric(m, "sessrec_collector_summarizations_total", inference_model_name="gpt") == 1, m
    assert metric(m, "sessrec_collector_summarization_errors_total", inference_model_name="gpt") == 0, m
    ev = w.audit(c, type="session.summarized", sid=rec.sid)
    assert [e["code"] for e in ev] == ["SR5000I"], ev


# mode, fake settings, model spec, error code, requests the fake gets
FAILURES = {
    "500": ("500", {}, {"max_retries": 1}, "server_error", 2),
    "timeout": ("delay", {"delay": 4}, {"timeout_seconds": 1, "max_retries": 1}, "timeout", 2),
    "malformed": ("malformed", {}, {"max_retries": 2}, "bad_json", 1),
    "malformed_body": ("malformed_body", {}, {"max_retries": 2}, "bad_json", 1),
    "off_schema": ("off_schema", {}, {"max_retries": 2}, "off_schema", 1),
    "429_always": ("429", {"retry_after": 1}, {"max_retries": 1}, "rate_limit_exceeded", 2),
    "404_model": ("error", {"status": 404, "code": "model_not_found", "message": "The model does not exist."},
                  {"max_retries": 2}, "model_not_found", 1),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_provider_failure_is_a_failed_summary(world, case):
    mode, fake, spec, code, n_requests = FAILURES[case]
    w = world
    c = w.collector()
    w.setup_openai(c, {"gpt": ("gpt-fail", spec)}, [("all", "gpt")])
    w.llm.set(mode, **fake)
    rec = session_rec(user="alice")
    w.upload(c, rec)
    job = w.wait_job(c, rec.sid, timeout=30)
    assert job["status"] == "failed", job
    assert len(w.llm.requests()) == n_requests, [(q["status"], q["mode"]) for q in w.llm.requests()]

    s = w.summary(c, rec.sid)
    assert s["success"] is False and s["error_code"] == code, s
    assert s["error"], s
    assert s["title"] == "" and s["risk_reasons"] == [] and s["commands_of_interest"] == [], s
    assert s["model_name"] == "gpt" and s["provider"] == "openai", s
    p = w.cli(c, "summary", rec.sid)
    assert code in p.out + p.err, (p.out, p.err)
    api = w.api(c, "/v1/sessions/%s/summary" % rec.sid)
    assert api.status == 200 and api.json()["error_code"] == code, api

    ev = w.audit(c, type="session.summarized", sid=rec.sid)
    assert len(ev) == 1, ev
    assert ev[0]["code"] == "SR5000E" and ev[0]["success"] is False and ev[0]["error_code"] == code, ev

    m = w.metrics(c)
    assert metric(m, "sessrec_collector_summarizations_total", inference_model_name="gpt") == 1, m
    assert metric(m, "sessrec_collector_summarization_errors_total", inference_model_name="gpt") == 1, m
    assert metric(m, "sessrec_collector_provider_api_errors_total", inference_model_name="gpt",
                  api_error_code=code) == 1, m
    assert metric(m, "sessrec_collector_provider_requests_total", inference_model_name="gpt") == n_requests, m
    # the session itself has no risk level from a failed attempt
    sess = w.api_json(c, "/v1/sessions/" + rec.sid)
    assert "risk_level" not in sess, sess
    # asked again while the provider still fails: --wait says so, exit status 1
    n = len(w.llm.requests())
    p = w.cli(c, "summarize", "--model", "gpt", "--wait", rec.sid, timeout=60)
    assert p.returncode == 1 and code in p.out + p.err, (p.out, p.err)
    assert len(w.llm.requests()) == n + n_requests
    # and again once the provider is well
    w.llm.reset()
    p = w.cli(c, "summarize", "--model", "gpt", "--wait", rec.sid, timeout=60)
    assert p.returncode == 0, (p.out, p.err)
    assert w.summary(c, rec.sid)["success"] is True


def test_uploads_stay_fast_while_the_provider_hangs(world):
    w = world
    c = w.collector(summary_workers=2)
    w.setup_openai(c, {"gpt": ("gpt-slow", {"timeout_seconds": 60})}, [("all", "gpt")])
    w.llm.set("delay", delay=30)
    recs = [session_rec(user="alice") for _ in range(6)]
    took = [w.upload(c, r, fast=2.0) for r in recs]
    poll(lambda: len(w.llm.requests()) >= 2, 10, what="two requests under way at the fake")
    # more uploads while both workers wait on the provider
    more = [session_rec(user="alice") for _ in range(4)]
    took += [w.upload(c, r, fast=2.0) for r in more]
    assert max(took) < 2.0, took  # against 30 s if an upload waited for the provider
    t = time.monotonic()
    r = w.api(c, "/v1/sessions?limit=100")
    assert r.status == 200 and len(r.json()["sessions"]) == 10, r
    assert time.monotonic() - t < 2.0
    m = w.metrics(c)
    assert _m(w, c, "sessrec_collector_inference_jobs_running") == 2, m
    assert _m(w, c, "sessrec_collector_inference_jobs_pending") == 8, m
    assert _m(w, c, "sessrec_collector_provider_requests_in_flight") == 2, m
    assert len(w.llm.requests()) == 2
    # the waiting sessions say so
    p = w.cli(c, "summary", more[-1].sid)
    assert p.returncode == 1 and "pending" in p.err, (p.out, p.err)
    api = w.api(c, "/v1/sessions/%s/summary" % more[-1].sid)
    assert api.status == 404 and "pending" in api.json()["error"], api


def test_pending_work_survives_a_restart(world):
    w = world
    c = w.collector(summary_workers=1, request_timeout="1s")
    w.setup_openai(c, {"gpt": ("gpt-restart", {"timeout_seconds": 60})}, [("all", "gpt")])
    w.llm.set("delay", delay=30)
    recs = [session_rec(user="alice") for _ in range(3)]
    for r in recs:
        w.upload(c, r)
    poll(lambda: len(w.llm.requests()) >= 1, 10, what="the first request at the fake")
    js = {j["sid"]: j["status"] for j in w.jobs(c)}
    assert sorted(js.values()) == ["pending", "pending", "running"], js
    t = time.monotonic()
    rc = c.stop(timeout=20)  # SIGTERM while the provider hangs
    took = time.monotonic() - t
    assert rc == 0, (rc, c.log_tail())
    assert took < 10, "the collector took %.1fs to stop (request_timeout 1s)" % took
    w.llm.reset()  # the provider is well again
    n = len(w.llm.requests())
    c.start()
    for r in recs:
        j = w.wait_job(c, r.sid, timeout=30)
        assert j["status"] == "done", j
    # oldest first, the one cut short by the stop included
    after = w.llm.requests()[n:]
    assert [next(x.sid for x in recs if x.sid in q["user_text"]) for q in after] == [x.sid for x in recs]
    for r in recs:
        s = w.summary(c, r.sid)
        assert s["success"] is True and s["model_id"] == "gpt-restart", s
        assert [q["status"] for q in w.requests(sid=r.sid)][-1] == 200
    # one request per session after the restart, and no job twice
    assert len(w.llm.requests()) - n == 3, [(q["status"], q["mode"]) for q in w.llm.requests()]
    assert len(w.jobs(c)) == 3
    ev = w.audit(c, type="session.summarized")
    assert sorted(e["sid"] for e in ev) == sorted(r.sid for r in recs), ev

    # a crash (SIGKILL) while a job waits on the provider: the job runs again at the next start
    w.llm.set("delay", delay=30)
    crash = session_rec(user="alice")
    w.upload(c, crash)
    poll(lambda: w.requests(sid=crash.sid), 10, what="the request of the last session")
    assert w.jobs(c, crash.sid)[0]["status"] == "running"
    c.kill()
    w.llm.reset()
    c.start()
    j = w.wait_job(c, crash.sid, timeout=30)
    assert j["status"] == "done", j
    assert [q["status"] for q in w.requests(sid=crash.sid)][-1] == 200
    assert len(w.summary(c, crash.sid, all=True)) == 1


def test_token_budget_exhaustion_and_raise(world):
    w = world
    c = w.collector(summary_workers=1)
    w.setup_openai(c, {"gpt": ("gpt-budget", {"max_tokens_per_day": 10})}, [("all", "gpt")])
    first = session_rec(user="alice")
    w.upload(c, first)
    j = w.wait_job(c, first.sid)
    assert j["status"] == "done", j  # nothing spent yet today: it runs (and goes over)
    spent = w.summary(c, first.sid)
    assert spent["tokens_in"] + spent["tokens_out"] > 10, spent
    res = json.loads(w.cli(c, "get", "model", "gpt", "--json", check=True).out)
    used = spent["tokens_in"] + spent["tokens_out"]
    assert res["status"]["tokens_in"] + res["status"]["tokens_out"] == used, res
    assert res["status"]["usage_day"] == time.strftime("%Y-%m-%d", time.gmtime()), res
    row = [l for l in w.cli(c, "get", "model", check=True).out.splitlines() if l.startswith("gpt ")]
    assert len(row) == 1 and str(used) in row[0].split() and "10" in row[0].split(), row

    second = session_rec(user="alice")
    w.upload(c, second)
    j = w.wait_job(c, second.sid)
    assert j["status"] == "budget_exceeded", j
    assert "max_tokens_per_day" in j["error"], j
    assert len(w.llm.requests()) == 1  # no request for the second session
    api = w.api(c, "/v1/sessions/%s/summary" % second.sid)
    assert api.status == 404 and "budget_exceeded" in api.json()["error"], api
    p = w.cli(c, "summary", second.sid)
    assert p.returncode == 1 and "budget" in p.err, (p.out, p.err)
    assert _m(w, c, "sessrec_collector_inference_jobs_budget_exceeded") == 1
    assert w.jobs(c, status="budget_exceeded")[0]["sid"] == second.sid
    # the waiting job holds no worker: another model's sessions go on
    w.create(c, docs(openai_model_doc("other", "gpt-other", w.llm.openai_base_url),
                     policy_doc("0-other", "other", filter='resource.metadata.labels["m"] == "other"')))
    third = session_rec(user="alice", labels={"m": "other"})
    w.upload(c, third)
    assert w.wait_job(c, third.sid)["status"] == "done"
    assert [q["model"] for q in w.llm.requests()] == ["gpt-budget", "gpt-other"]
    assert w.jobs(c, second.sid)[0]["status"] == "budget_exceeded"
    w.quiet(1.0)

    # a raised budget applies at once
    w.create(c, openai_model_doc("gpt", "gpt-budget", w.llm.openai_base_url, max_tokens_per_day=1000000), force=True)
    j = w.wait_job(c, second.sid, statuses=("done", "failed"), timeout=20)
    assert j["status"] == "done", j
    assert w.summary(c, second.sid)["success"] is True
    assert len(w.llm.requests()) == 3
    assert _m(w, c, "sessrec_collector_inference_jobs_budget_exceeded") == 0


BEDROCK_FAILURES = {  # mode, fake settings, model spec, error code, requests
    "throttled": ("429", {"retry_after": 1}, {"max_retries": 1}, "ThrottlingException", 2),
    "500": ("500", {}, {"max_retries": 1}, "InternalServerException", 2),
    "timeout": ("delay", {"delay": 4}, {"timeout_seconds": 1, "max_retries": 0}, "timeout", 1),
    "off_schema": ("off_schema", {}, {"max_retries": 2}, "off_schema", 1),
    "validation": ("error", {"status": 400, "code": "ValidationException", "message": "Bad input."},
                   {"max_retries": 2}, "ValidationException", 1),
}


@pytest.mark.parametrize("case", sorted(BEDROCK_FAILURES))
def test_bedrock_failure_is_a_failed_summary(world, case):
    mode, fake, spec, code, n_requests = BEDROCK_FAILURES[case]
    w = world
    c = w.collector(bedrock_env=True)
    w.create(c, docs(bedrock_model_doc("gpt", "amazon.nova-lite-v1:0", **spec), policy_doc("all", "gpt")))
    w.rm(c, "policy", "default")
    w.llm.set(mode, **fake)
    rec = session_rec(user="alice")
    w.upload(c, rec)
    job = w.wait_job(c, rec.sid, timeout=30)
    assert job["status"] == "failed", job
    reqs = w.llm.requests()
    assert len(reqs) == n_requests and all("error" not in q["auth"] for q in reqs), \
        [(q["status"], q["mode"], q.get("auth")) for q in reqs]
    s = w.summary(c, rec.sid)
    assert s["success"] is False and s["error_code"] == code and s["provider"] == "bedrock", s
    ev = w.audit(c, type="session.summarized", sid=rec.sid)
    assert [(e["code"], e["error_code"]) for e in ev] == [("SR5000E", code)], ev
    m = w.metrics(c)
    assert metric(m, "sessrec_collector_provider_api_errors_total", inference_model_name="gpt",
                  api_error_code=code) == 1, m


def test_provider_unreachable_is_connect(world):
    w = world
    c = w.collector()
    dead = "http://127.0.0.1:%d/v1" % pick_port()  # nothing listens there
    w.create(c, docs(secret_doc("llm-key", SECRET), openai_model_doc("gpt", "gpt-dead", dead, max_retries=1),
                     policy_doc("all", "gpt")))
    w.rm(c, "policy", "default")
    rec = session_rec(user="alice")
    w.upload(c, rec)
    j = w.wait_job(c, rec.sid, timeout=30)
    assert j["status"] == "failed", j
    s = w.summary(c, rec.sid)
    assert s["success"] is False and s["error_code"] == "connect", s
    m = w.metrics(c)
    assert metric(m, "sessrec_collector_provider_requests_total", inference_model_name="gpt") == 2, m  # retried once
    assert metric(m, "sessrec_collector_provider_api_errors_total", inference_model_name="gpt",
                  api_error_code="connect") == 1, m
