"""Jobs between the upload and the summary: a job reads the newest model and secret when it
runs (and fails with model_not_found when the model is gone), manual jobs are not queued twice,
a budget stops a chunked session between two requests, and a budget_exceeded job outlives a
restart."""
import json

from collector.helpers import curl

from .sumlib import (SECRET, docs, expected_usage, metric, openai_model_doc, poll, policy_doc, secret_doc,
                     session_rec)

WRONG = "sk-stale-0000000000000000000000XyZ"


def test_a_job_uses_the_newest_model_and_secret(world):
    w = world
    w.secrets.append(WRONG)
    c = w.collector(summary_workers=1)
    base = w.llm.openai_base_url
    w.create(c, docs(secret_doc("a-key", SECRET), secret_doc("b-key", WRONG),
                     openai_model_doc("a", "model-a", base, secret="a-key"),
                     openai_model_doc("b", "model-b", base, secret="b-key"),
                     policy_doc("pa", "a", filter='resource.metadata.labels["m"] == "a"'),
                     policy_doc("pb", "b", filter='resource.metadata.labels["m"] == "b"')))
    w.rm(c, "policy", "default")
    w.llm.set("delay", count=1, delay=2)  # the one worker is busy with the first job for 2 s
    first = session_rec(user="alice", labels={"m": "a"})
    w.upload(c, first)
    poll(lambda: w.llm.requests(), 10, what="the first request")
    queued = session_rec(user="alice", labels={"m": "b"})
    w.upload(c, queued)
    assert w.jobs(c, queued.sid)[0]["status"] == "pending"
    # while it waits: b's secret gets the right value, and b a new model id
    w.create(c, docs(secret_doc("b-key", SECRET),
                     openai_model_doc("b", "model-b2", base, secret="b-key", temperature=0.7)), force=True)
    j = w.wait_job(c, queued.sid, timeout=20)
    assert j["status"] == "done", (j, w.summary(c, queued.sid))
    q = w.requests(sid=queued.sid)
    assert len(q) == 1 and q[0]["status"] == 200 and q[0]["model"] == "model-b2", q
    assert q[0]["json"]["temperature"] == 0.7, q[0]["json"]
    assert q[0]["headers"]["authorization"] == "Bearer " + SECRET
    assert w.summary(c, queued.sid)["model_id"] == "model-b2"


def test_a_job_whose_model_is_gone_fails_model_not_found(world):
    w = world
    c = w.collector(summary_workers=1)
    w.setup_openai(c, {"gpt": "model-gone", "keep": "model-keep"}, [("all", "gpt")])
    w.llm.set("delay", count=1, delay=2)
    first = session_rec(user="alice")
    w.upload(c, first)
    poll(lambda: w.llm.requests(), 10, what="the first request")
    queued = session_rec(user="alice")
    w.upload(c, queued)
    # the policy names the model: refused until the policy goes
    p = w.cli(c, "rm", "model", "gpt")
    assert p.returncode == 1 and "all" in p.err, (p.out, p.err)
    w.create(c, policy_doc("all", "keep"), force=True)
    w.rm(c, "model", "gpt")
    j = w.wait_job(c, queued.sid, timeout=20)
    assert j["status"] == "failed", j
    s = w.summary(c, queued.sid)
    assert s["success"] is False and s["error_code"] == "model_not_found", s
    assert len(w.requests(sid=queued.sid)) == 0
    assert w.wait_job(c, first.sid)["status"] == "done"  # the one under way finished


def test_manual_jobs_are_not_queued_twice(world):
    w = world
    c = w.collector(summary_workers=1)
    w.setup_openai(c, {"gpt": "model-m"}, [])
    rec = session_rec(user="alice")
    w.upload(c, rec)
    w.llm.set("delay", count=1, delay=2)
    r1 = w.api(c, "/v1/sessions/%s/summarize" % rec.sid, method="POST", data='{"model":"gpt"}',
               headers=("Content-Type: application/json",))
    assert r1.status == 202, r1
    r2 = w.api(c, "/v1/sessions/%s/summarize" % rec.sid, method="POST", data='{"model":"gpt"}',
               headers=("Content-Type: application/json",))
    assert r2.status == 202, r2
    assert r1.json()["job"]["id"] == r2.json()["job"]["id"], (r1, r2)
    p = w.cli(c, "summarize", "--model", "gpt", rec.sid, check=True)
    assert str(r1.json()["job"]["id"]) in p.out + p.err, (p.out, p.err)
    j = w.wait_job(c, rec.sid, timeout=20)
    assert j["status"] == "done" and j["origin"] == "manual", j
    assert len(w.llm.requests()) == 1
    # unknown session, unknown model, session not complete
    r = w.api(c, "/v1/sessions/00000000-0000-4000-8000-000000000000/summarize", method="POST", data="{}", headers=("Content-Type: application/json",))
    assert r.status == 404, r
    r = w.api(c, "/v1/sessions/%s/summarize" % rec.sid, method="POST", data='{"model":"nope"}',
              headers=("Content-Type: application/json",))
    assert r.status == 404, r
    half = session_rec(user="alice")
    assert curl("%s/v1/sessions/%s/parts/0" % (c.url, half.sid), method="PUT", data=half.parts[0]).status == 201
    r = w.api(c, "/v1/sessions/%s/summarize" % half.sid, method="POST", data='{"model":"gpt"}',
              headers=("Content-Type: application/json",))
    assert r.status == 409, r
    p = w.cli(c, "summarize", "--model", "gpt", half.sid)
    assert p.returncode == 1, (p.out, p.err)


def test_budget_stops_a_chunked_session_between_requests(world):
    w = world
    budget = 2000
    c = w.collector(summary_workers=1)
    w.setup_openai(c, {"gpt": ("model-chunks", {"max_session_length_bytes": 1024, "max_tokens_per_day": budget})},
                   [("all", "gpt")])
    rec = session_rec(user="alice", commands=[["printf", "budget-line-%03d" % i, "-v"] for i in range(60)])
    w.upload(c, rec)
    j = w.wait_job(c, rec.sid, timeout=30)
    assert j["status"] == "budget_exceeded", j
    reqs = w.llm.requests()
    spent = [sum(expected_usage(q)) for q in reqs]
    # requests were made while the day's total was under the budget, and not one more
    assert sum(spent[:-1]) < budget <= sum(spent), spent
    assert "This is part" in reqs[-1]["user_text"], "stopped between chunk requests"
    m = w.metrics(c)
    assert metric(m, "sessrec_collector_inference_jobs_budget_exceeded", inference_model_name="gpt") == 1, m
    assert metric(m, "sessrec_collector_inference_tokens_in_total", inference_model_name="gpt") == \
        sum(expected_usage(q)[0] for q in reqs), m
    res = json.loads(w.cli(c, "get", "model", "gpt", "--json", check=True).out)
    assert res["status"]["tokens_in"] + res["status"]["tokens_out"] == sum(spent), res
    w.quiet(1.0)
    # a restart keeps the job waiting for the budget (and the gauge comes from the index)
    c.stop()
    c.start()
    j = w.wait_job(c, rec.sid, timeout=20)  # (tried again at the start, still over today's budget)
    assert j["status"] == "budget_exceeded", j
    m = w.metrics(c)
    assert metric(m, "sessrec_collector_inference_jobs_budget_exceeded", inference_model_name="gpt") == 1, m
    w.quiet(1.0)
    # a raised budget: the session is summarized whole
    n = len(reqs)
    w.create(c, openai_model_doc("gpt", "model-chunks", w.llm.openai_base_url, max_session_length_bytes=1024,
                                 max_tokens_per_day=10 ** 7), force=True)
    j = w.wait_job(c, rec.sid, statuses=("done", "failed"), timeout=30)
    assert j["status"] == "done", j
    s = w.summary(c, rec.sid)
    after = w.llm.requests()[n:]
    assert "The session was split into" in after[-1]["user_text"], after[-1]["user_text"][:200]
    assert s["success"] and s["chunks"] >= 2, s
    parts = [q for q in w.llm.requests() if "This is part" in q["user_text"]]
    assert {int(q["user_text"].split("This is part ")[1].split(" ")[0]) for q in parts} == set(range(1, s["chunks"] + 1))
