"""Which policy summarizes a session: policies whose kinds include the session's, in
alphabetical order of name, the first whose filter is true; no match, no job and no request.
The fake provider's request log shows which model was asked."""
from .sumlib import session_rec

MODELS = {"mx": "model-x", "my": "model-y"}


def _asked(w, sid):
    """The model ids the fake was asked for session sid."""
    return [r["model"] for r in w.requests(sid=sid)]


def test_policy_order_first_match(world):
    w = world
    c = w.collector()
    # b-y before a-x in the file, and a policy sorting first whose filter is false: the order is
    # by name, and the first policy *whose filter is true* wins
    w.setup_openai(c, MODELS, [("b-y", "my"), ("a-x", "mx"), ("0-nobody", "my", None, 'user.metadata.name == "nobody"')],
                   remove_default=False)
    rec = session_rec(user="alice")
    w.upload(c, rec)
    job = w.wait_job(c, rec.sid)
    assert (job["status"], job["policy"], job["model"], job["origin"]) == ("done", "a-x", "mx", "auto"), job
    s = w.summary(c, rec.sid)
    assert s["success"] and s["model_name"] == "mx" and s["model_id"] == "model-x", s
    assert s["provider"] == "openai", s
    assert _asked(w, rec.sid) == ["model-x"]
    assert [r["model"] for r in w.llm.requests()] == ["model-x"]
    ev = w.audit(c, type="session.summarized", sid=rec.sid)
    assert [(e["policy"], e["model_name"]) for e in ev] == [("a-x", "mx")], ev
    # at most one automatic summary: nothing else is asked for this session
    w.quiet(1.0)
    assert len(w.jobs(c, rec.sid)) == 1

    # a-x's filter now false: b-y is the first match
    w.create(c, "kind: inference_policy\nversion: v1\nmetadata:\n  name: a-x\nspec:\n  kinds: [local]\n"
                "  model: mx\n  filter: 'contains(user.spec.roles, \"admin\")'\n", force=True)
    rec2 = session_rec(user="alice")
    w.upload(c, rec2)
    job = w.wait_job(c, rec2.sid)
    assert (job["status"], job["policy"], job["model"]) == ("done", "b-y", "my"), job
    assert _asked(w, rec2.sid) == ["model-y"]
    assert w.summary(c, rec2.sid)["model_id"] == "model-y"


def test_kinds_select_sessions(world):
    w = world
    c = w.collector()
    w.setup_openai(c, MODELS, [("a-ssh", "mx", ["ssh"]), ("b-local", "my", ["local"])])
    local = session_rec(user="alice", kind="local")
    ssh = session_rec(user="alice", kind="ssh")
    k8s = session_rec(user="alice", kind="k8s", labels={"kubernetes.pod": "web-0"})
    for r in (local, ssh, k8s):
        w.upload(c, r)
    # the ssh-only policy, first by name, does not take the local session
    j = w.wait_job(c, local.sid)
    assert (j["status"], j["policy"], j["model"]) == ("done", "b-local", "my"), j
    j = w.wait_job(c, ssh.sid)
    assert (j["status"], j["policy"], j["model"]) == ("done", "a-ssh", "mx"), j
    assert _asked(w, local.sid) == ["model-y"]
    assert _asked(w, ssh.sid) == ["model-x"]
    # k8s: no policy has the kind
    assert w.jobs(c, k8s.sid) == []
    w.quiet(1.0)
    assert _asked(w, k8s.sid) == []
    assert len(w.llm.requests()) == 2


def test_filters_on_user_traits_and_labels(world):
    w = world
    c = w.collector()
    w.setup_openai(c, MODELS, [
        ("a-team", "mx", None, 'contains(user.spec.traits["team"], "platform")'),
        ("b-prod", "my", None, 'equals(resource.metadata.labels["env"], "prod")'),
        ("c-interns", "my", None, 'contains(user.spec.roles, "intern") && resource.metadata.labels["env"] == "staging"'),
    ])
    cases = [  # user, labels, expected (policy, model) or None
        ("alice", {"env": "dev"}, ("a-team", "mx")),      # alice's team trait (collector.yaml users:)
        ("bob", {"env": "prod"}, ("b-prod", "my")),       # the node label
        ("alice", {"env": "prod"}, ("a-team", "mx")),     # both match: the first by name
        ("bob", {"env": "staging"}, ("c-interns", "my")),  # bob's role and a label
        ("bob", {"env": "dev"}, None),                    # bob's team is web, env is not prod
        ("carol", {"env": "staging"}, None),              # not in users: no roles, no traits
        ("carol", {}, None),                              # no env label: reads as ""
    ]
    recs = []
    for user, labels, want in cases:
        r = session_rec(user=user, labels=labels)
        w.upload(c, r)
        recs.append((r, want))
    for r, want in recs:
        if want is None:
            continue
        j = w.wait_job(c, r.sid)
        assert (j["status"], j["policy"], j["model"]) == ("done",) + want, (r.sid, j)
        assert _asked(w, r.sid) == [MODELS[want[1]]], r.sid
    n = len(w.llm.requests())
    assert n == 4, [(q["model"], q["status"]) for q in w.llm.requests()]
    for r, want in recs:
        if want is None:
            assert w.jobs(c, r.sid) == [], r.sid
            assert _asked(w, r.sid) == []
    w.quiet(1.0, n=n)


def test_no_match_no_job_no_request(world):
    w = world
    c = w.collector()
    w.setup_openai(c, MODELS, [("only-prod-ssh", "mx", ["ssh"], 'equals(resource.metadata.labels["env"], "prod")')])
    recs = [session_rec(user="alice", labels={"env": "prod"}),            # local: wrong kind
            session_rec(user="alice", kind="ssh", labels={"env": "dev"})]  # filter false
    for r in recs:
        w.upload(c, r)
    # matching happens when the upload completes: the jobs are there (or not) by now
    assert w.jobs(c) == []
    for r in recs:
        api = w.api(c, "/v1/sessions/%s/summary" % r.sid)
        assert api.status == 404, api
        assert "polic" in api.json()["error"], api
        p = w.cli(c, "summary", r.sid)
        assert p.returncode == 1 and "polic" in p.err and p.out == "", (p.out, p.err)
    w.quiet(1.5)
    assert w.llm.requests() == []
    # no policy at all: the same
    w.rm(c, "policy", "only-prod-ssh")
    api = w.api(c, "/v1/resources/policy")
    assert api.status == 200 and api.json()["resources"] == [], api
    r = session_rec(user="alice")
    w.upload(c, r)
    assert w.jobs(c) == []
    w.quiet(1.0)
    assert w.llm.requests() == []
    m = w.metrics(c)
    assert 'sessrec_collector_provider_requests_total{inference_model_name="mx"} 0' in m, m
    # the default policy, once removed, is never put back (a restart included)
    c.stop()
    c.start()
    assert w.api(c, "/v1/resources/policy/default").status == 404
    r = session_rec(user="alice")
    w.upload(c, r)
    assert w.jobs(c) == []
    w.quiet(0.5)
    assert w.llm.requests() == []


def test_filter_fields_k8s_pods_string_traits_and_evaluation_errors(world):
    w = world
    c = w.collector(users="{dave: {traits: {team: platform}}, alice: {roles: [dev], traits: {team: [platform]}}}")
    w.setup_openai(c, MODELS, [
        # an error only the session's values show (exit_code is an integer): false, logged, next one
        ("a-broken", "mx", None, 'session.exit_code == "0"'),
        ("b-pod", "mx", ["k8s"], 'resource.kind == "pod" && resource.metadata.name == "web-0" && '
                                 'session.kubernetes_pod_namespace == "shop"'),
        ("c-team", "my", None, 'equals(user.spec.traits["team"], "platform") && resource.metadata.labels["env"] == ""'),
    ])
    pod = session_rec(user="zed", kind="k8s", labels={"kubernetes.pod": "web-0", "kubernetes.namespace": "shop"})
    other_pod = session_rec(user="zed", kind="k8s", labels={"kubernetes.pod": "web-1", "kubernetes.namespace": "shop"})
    dave = session_rec(user="dave")  # team: platform written as one string is a list of one
    labelled = session_rec(user="dave", labels={"env": "prod"})  # env present: not ""
    for r in (pod, other_pod, dave, labelled):
        w.upload(c, r)
    j = w.wait_job(c, pod.sid)
    assert (j["status"], j["policy"], j["model"]) == ("done", "b-pod", "mx"), j
    j = w.wait_job(c, dave.sid)
    assert (j["status"], j["policy"], j["model"]) == ("done", "c-team", "my"), j
    assert w.jobs(c, other_pod.sid) == [] and w.jobs(c, labelled.sid) == []
    assert "inference_policy 'a-broken': the filter fails" in c.log_text(), c.log_tail()
    w.quiet(0.5)
    assert sorted(q["model"] for q in w.llm.requests()) == ["model-x", "model-y"]
