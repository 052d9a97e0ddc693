"""`python -m pipelines submit | schedule | runs` against a Kubeflow Pipelines look-alike.

The server below speaks the parts of the KFP v2beta1 REST API the commands use, with the
request and response shapes of kfp_server_api (the client the real kfp.Client drives):
healthz, experiments, pipelines and their versions (the version upload is multipart),
runs and recurring runs. It keeps its state in memory, on 127.0.0.1, and records every
request, so the tests check what reached the API: the uploaded spec, the parameters,
the experiment, the cron and its settings.
"""

from __future__ import annotations

import http.server
import itertools
import json
import threading
import uuid
from datetime import datetime, timedelta, timezone
from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from tests.conftest import free_port, run_cli

API = "/apis/v2beta1"
# Every cache and result folder on S3, as a cluster run needs (nothing here reads them).
ON_S3 = ("ingest.cache=s3://tt/cache", "train.model_cache=s3://tt/models", "train.checkpoint_root=s3://tt/checkpoints",
         "generate.progress_root=s3://tt/stories", "evaluate.results_root=s3://tt/evaluations",
         "evaluate.sentiment.model_cache=s3://tt/models", "run_prefix=s3://tt/reports/demo")


class KfpHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_DELETE(self):
        self._handle("DELETE")

    def _handle(self, method: str):
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body, files = None, {}
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("multipart/form-data"):
            form = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw)
            files = {part.get_param("name", header="content-disposition"): (part.get_filename(), part.get_payload(decode=True))
                     for part in form.iter_parts()}
        elif raw:
            body = json.loads(raw)
        server: KfpServer = self.server
        with server.lock:
            server.requests.append({"method": method, "path": url.path, "query": query, "body": body, "files": files,
                                    "authorization": self.headers.get("Authorization")})
            if server.token and url.path != f"{API}/healthz" and self.headers.get("Authorization") != f"Bearer {server.token}":
                status, answer = 401, {"error": "Unauthenticated", "code": 16, "message": "Request header error: there is no user identity header."}
            else:
                status, answer = server.route(method, url.path.removeprefix(API), query, body, files)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _named(items, query: dict) -> list:
    """The API's filter, as much of it as the client sends: display_name EQUALS."""
    if "filter" not in query:
        return list(items)
    out = list(items)
    for p in json.loads(query["filter"])["predicates"]:
        assert p["operation"] in ("EQUALS", 1) and p["key"] == "display_name", p
        out = [i for i in out if i["display_name"] == (p.get("stringValue") or p.get("string_value"))]
    return out


def _not_found(what: str):
    return 404, {"error": f"{what} not found", "code": 5, "message": f"{what} not found"}


class KfpServer(http.server.ThreadingHTTPServer):
    def __init__(self):
        super().__init__(("127.0.0.1", 0), KfpHandler)
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.token: str | None = None
        self.experiments, self.pipelines, self.versions, self.runs, self.recurring = {}, {}, {}, {}, {}
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self._clock = itertools.count()

    def now(self) -> str:  # strictly increasing, so "newest first" is well defined
        moment = datetime(2025, 1, 6, tzinfo=timezone.utc) + timedelta(minutes=next(self._clock))
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    def calls(self, method: str, path: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == method and r["path"] == API + path]

    def route(self, method: str, path: str, query: dict, body, files) -> tuple[int, dict]:
        parts = path.strip("/").split("/")
        if (method, path) == ("GET", "/healthz"):
            return 200, {"multi_user": False, "pipeline_store": "database"}
        if parts[0] == "experiments":
            if method == "POST":
                exp = {**body, "experiment_id": str(uuid.uuid4()), "created_at": self.now(), "storage_state": "AVAILABLE"}
                self.experiments[exp["experiment_id"]] = exp
                return 200, exp
            if len(parts) == 2:
                return (200, self.experiments[parts[1]]) if parts[1] in self.experiments else _not_found("experiment")
            found = [e for e in _named(self.experiments.values(), query) if e.get("namespace") in (None, "", query.get("namespace"))]
            return 200, {"experiments": found, "total_size": len(found)}
        if path == "/pipelines/upload_version" and method == "POST":
            pipeline_id = query["pipelineid"]
            if pipeline_id not in self.pipelines:
                return _not_found("pipeline")
            if any(v["display_name"] == query["name"] and v["pipeline_id"] == pipeline_id for v in self.versions.values()):
                return 409, {"error": "version exists", "code": 6, "message": "a version of this name exists"}
            filename, data = files["uploadfile"]
            spec = next(yaml.safe_load_all(data))
            version = {"pipeline_id": pipeline_id, "pipeline_version_id": str(uuid.uuid4()), "display_name": query["name"],
                       "name": query["name"], "description": query.get("description"), "created_at": self.now(), "pipeline_spec": spec,
                       "_filename": filename, "_yaml": data.decode()}
            self.versions[version["pipeline_version_id"]] = version
            return 200, {k: v for k, v in version.items() if not k.startswith("_")}
        if parts[0] == "pipelines":
            if len(parts) == 1 and method == "POST":
                pipeline = {**body, "pipeline_id": str(uuid.uuid4()), "created_at": self.now()}
                self.pipelines[pipeline["pipeline_id"]] = pipeline
                return 200, pipeline
            if len(parts) == 1:
                found = _named(self.pipelines.values(), query)
                return 200, {"pipelines": found, "total_size": len(found)}
            if len(parts) == 3 and parts[2] == "versions" and method == "GET":
                mine = [{k: v for k, v in x.items() if not k.startswith("_")} for x in self.versions.values() if x["pipeline_id"] == parts[1]]
                found = _named(mine, query)
                return 200, {"pipeline_versions": found, "total_size": len(found)}
        if parts[0] == "runs":
            if method == "POST":
                reference = body.get("pipeline_version_reference") or {}
                if body["experiment_id"] not in self.experiments or reference.get("pipeline_version_id") not in self.versions:
                    return _not_found("experiment or pipeline version")
                run = {**body, "run_id": str(uuid.uuid4()), "created_at": self.now(), "state": "PENDING", "storage_state": "AVAILABLE"}
                self.runs[run["run_id"]] = run
                return 200, run
            found = [r for r in self.runs.values() if r["experiment_id"] == query.get("experiment_id", r["experiment_id"])]
            assert query.get("sort_by") in (None, "created_at desc"), query
            found.sort(key=lambda r: r["created_at"], reverse=query.get("sort_by") == "created_at desc")
            size = int(query.get("page_size", 10))
            return 200, {"runs": found[:size], "total_size": len(found), **({"next_page_token": "more"} if len(found) > size else {})}
        if parts[0] == "recurringruns":
            if len(parts) == 1 and method == "POST":
                recurring = {**body, "recurring_run_id": str(uuid.uuid4()), "created_at": self.now(), "updated_at": self.now(),
                             "max_concurrency": str(body["max_concurrency"]), "status": "ENABLED" if body["mode"] == "ENABLE" else "DISABLED"}
                self.recurring[recurring["recurring_run_id"]] = recurring
                return 200, recurring
            if len(parts) == 1:
                found = [r for r in _named(self.recurring.values(), query) if r["experiment_id"] == query.get("experiment_id", r["experiment_id"])]
                return 200, {"recurringRuns": found, "total_size": len(found)}  # camelCase here alone, as in the API's swagger
            rid, _, action = parts[1].partition(":")
            if rid not in self.recurring:
                return _not_found("recurring run")
            if method == "DELETE":
                del self.recurring[rid]
                return 200, {}
            if method == "POST" and action in ("enable", "disable"):
                self.recurring[rid].update(mode=action.upper(), status=f"{action.upper()}D")
                return 200, {}
        return 404, {"error": f"no route {method} {path}", "code": 12, "message": f"no route {method} {path}"}


@pytest.fixture
def kfp_api():
    server = KfpServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def cli(tmp_path):
    """`python -m pipelines ...` with no cluster settings of the developer's: HOME (kfp's
    context file) in the test's folder, no endpoint, token or namespace, not in a pod.

    The images are this process's IMAGE and GPU_IMAGE, passed on: their tag is the
    checkout's state, which an edit elsewhere in it during the test would change."""
    from components.common.image import GPU_IMAGE, IMAGE

    home = tmp_path / "home"
    home.mkdir()
    clean = {"HOME": str(home), "KFP_HOST": "", "KFP_TOKEN": "", "KFP_NAMESPACE": "", "KF_PIPELINES_ENDPOINT": "", "KUBERNETES_SERVICE_HOST": "",
             "TALETUNE_IMAGE": IMAGE, "TALETUNE_GPU_IMAGE": GPU_IMAGE}

    def run(command: str, *args: str, env: dict | None = None, on_s3: bool = True):
        overrides = [a for item in (ON_S3 if on_s3 else ()) for a in ("--set", item)]  # before the test's own
        return run_cli("pipelines", command, *overrides, *args, env={**clean, **(env or {})})

    return run


def _parameters(*overrides: str) -> dict:
    from pipelines.config import load_experiment
    from pipelines.pipeline import parameters

    return json.loads(json.dumps(parameters(load_experiment("demo", [*ON_S3, *overrides]))))


def test_submit_uploads_a_version_and_starts_a_run_then_runs_lists_it(kfp_api, cli):
    from components.common.image import GPU_IMAGE, IMAGE

    result = cli("submit", "--config", "demo", "--host", kfp_api.url, "--experiment", "nightly")
    assert result.returncode == 0, result.stderr[-3000:]
    (experiment,) = kfp_api.experiments.values()
    assert experiment["display_name"] == "nightly"
    (pipeline,) = kfp_api.pipelines.values()
    assert pipeline["display_name"] == "taletune-demo"
    (version,) = kfp_api.versions.values()
    assert version["pipeline_id"] == pipeline["pipeline_id"]
    tag = IMAGE.rsplit(":", 1)[1]
    assert version["display_name"].startswith(f"{tag}-"), "versions are named by the image tag (the commit)"
    # The upload is the compiled pipeline, every task in the images of this checkout.
    spec, platform = yaml.safe_load_all(version["_yaml"])
    assert spec["pipelineInfo"]["name"] == "taletune"
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {IMAGE, GPU_IMAGE}
    tasks = {t["taskInfo"]["name"]: t for t in spec["root"]["dag"]["tasks"].values()}
    assert "check" in tasks and tasks["check"]["inputs"]["parameters"]["cluster"]["runtimeValue"]["constant"] is True
    assert platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-ingest"]["secretAsEnv"][0]["secretName"] == "taletune-s3"

    (run,) = kfp_api.runs.values()
    assert run["experiment_id"] == experiment["experiment_id"]
    assert run["display_name"] == "taletune-demo"
    assert run["pipeline_version_reference"] == {"pipeline_id": pipeline["pipeline_id"], "pipeline_version_id": version["pipeline_version_id"]}
    assert "pipeline_spec" not in run or run["pipeline_spec"] is None, "the run refers to the uploaded version"
    assert run["runtime_config"]["parameters"] == _parameters()
    assert run["runtime_config"]["parameters"]["ingest_config"]["cache"] == "s3://tt/cache"
    assert f"run {run['run_id']} started in experiment nightly" in result.stdout

    # The same code and config again: the version is reused, a second run starts.
    again = cli("submit", "--config", "demo", "--host", kfp_api.url, "--experiment", "nightly")
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(kfp_api.versions) == 1 and len(kfp_api.calls("POST", "/pipelines/upload_version")) == 1, [v["display_name"] for v in kfp_api.versions.values()]
    assert len(kfp_api.pipelines) == 1 and len(kfp_api.experiments) == 1 and len(kfp_api.runs) == 2
    assert "(already uploaded)" in again.stdout
    # A changed setting is a new version of the same pipeline.
    changed = cli("submit", "--config", "demo", "--host", kfp_api.url, "--experiment", "nightly", "--set", "generate.n=7")
    assert changed.returncode == 0, changed.stderr[-3000:]
    assert len(kfp_api.pipelines) == 1 and len(kfp_api.versions) == 2 and len(kfp_api.runs) == 3
    newest = max(kfp_api.runs.values(), key=lambda r: r["created_at"])
    assert newest["runtime_config"]["parameters"]["generate_config"]["n"] == 7
    assert newest["pipeline_version_reference"]["pipeline_version_id"] != version["pipeline_version_id"]

    first, second, third = sorted(kfp_api.runs.values(), key=lambda r: r["created_at"])
    first["state"], second["state"] = "SUCCEEDED", "FAILED"
    listed = cli("runs", "--host", kfp_api.url, "--experiment", "nightly", "--limit", "2", on_s3=False)
    assert listed.returncode == 0, listed.stderr[-3000:]
    lines = listed.stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["created", "(UTC)", "state"]
    assert [line.split()[3] for line in lines[1:]] == [third["run_id"], second["run_id"]], "newest first, --limit 2"
    assert lines[1].split()[2] == "PENDING" and lines[2].split()[2] == "FAILED"
    assert lines[2].startswith("2025-01-06 ") and lines[2].split()[4] == "taletune-demo"
    (call,) = kfp_api.calls("GET", "/runs")
    assert call["query"]["experiment_id"] == experiment["experiment_id"] and call["query"]["page_size"] == "2"


def test_schedule_leaves_one_recurring_run_replaced_only_when_it_changes(kfp_api, cli):
    def schedule(cron: str, *more: str):
        result = cli("schedule", "--config", "demo", "--host", kfp_api.url, "--experiment", "weekly", "--cron", cron, *more)
        assert result.returncode == 0, result.stderr[-3000:]
        (recurring,) = kfp_api.recurring.values()  # exactly one, every time
        return recurring, result

    first, result = schedule("0 0 3 * * 1")
    assert "recurring run taletune-demo created" in result.stdout
    (experiment,) = kfp_api.experiments.values()
    assert first["display_name"] == "taletune-demo" and first["experiment_id"] == experiment["experiment_id"]
    assert first["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * 1"
    assert first["no_catchup"] is True and first["max_concurrency"] == "1" and first["mode"] == "ENABLE"
    assert first["runtime_config"]["parameters"] == _parameters()
    (version,) = kfp_api.versions.values()
    assert first["pipeline_version_reference"]["pipeline_version_id"] == version["pipeline_version_id"]

    # Twice with the same everything: left alone, nothing created or deleted.
    same, result = schedule("0 0 3 * * 1")
    assert same["recurring_run_id"] == first["recurring_run_id"] and "unchanged" in result.stdout
    assert len(kfp_api.calls("POST", "/recurringruns")) == 1 and not [r for r in kfp_api.requests if r["method"] == "DELETE"]
    assert len(kfp_api.versions) == 1, "the same spec is not uploaded again"

    # A new cron: one recurring run, the new one, created before the old one was deleted.
    moved, result = schedule("0 30 4 * * 2")
    assert moved["recurring_run_id"] != first["recurring_run_id"] and "replaced" in result.stdout
    assert moved["trigger"]["cron_schedule"]["cron"] == "0 30 4 * * 2"
    order = [(r["method"], r["path"]) for r in kfp_api.requests if r["path"].startswith(f"{API}/recurringruns/") or
             (r["method"] == "POST" and r["path"] == f"{API}/recurringruns")]
    assert order[-2:] == [("POST", f"{API}/recurringruns"), ("DELETE", f"{API}/recurringruns/{first['recurring_run_id']}")]

    # --max-concurrency and the config's settings are part of the schedule too.
    bigger, _ = schedule("0 30 4 * * 2", "--max-concurrency", "2", "--set", "generate.n=7")
    assert bigger["recurring_run_id"] != moved["recurring_run_id"] and bigger["max_concurrency"] == "2"
    assert bigger["runtime_config"]["parameters"]["generate_config"]["n"] == 7 and len(kfp_api.versions) == 2
    assert bigger["pipeline_version_reference"]["pipeline_version_id"] != version["pipeline_version_id"]

    # Paused in the dashboard, then scheduled again unchanged: enabled again, not replaced.
    kfp_api.recurring[bigger["recurring_run_id"]].update(mode="DISABLE", status="DISABLED")
    enabled, result = schedule("0 30 4 * * 2", "--max-concurrency", "2", "--set", "generate.n=7")
    assert enabled["recurring_run_id"] == bigger["recurring_run_id"] and enabled["status"] == "ENABLED"
    assert "enabled again" in result.stdout


def test_a_config_with_local_caches_is_refused_before_the_cluster_hears_of_it(kfp_api, cli):
    for command in (("submit",), ("schedule", "--cron", "0 0 3 * * 1")):
        result = cli(*command, "--config", "demo", "--host", kfp_api.url, on_s3=False)
        assert result.returncode == 2, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: on a cluster a retried or resumed pod starts with an empty disk")
        for setting in ("ingest.cache (unset", "train.model_cache (unset", "train.checkpoint_root (unset", "generate.progress_root (unset",
                        "evaluate.results_root (unset", "evaluate.sentiment.model_cache (unset", "run_prefix ("):
            assert setting in line, setting
    # One setting left local is named alone.
    result = cli("submit", "--config", "demo", "--host", kfp_api.url, "--set", "train.checkpoint_root=/data/checkpoints")
    assert result.returncode == 2
    assert "these are not: train.checkpoint_root (/data/checkpoints)." in result.stderr
    assert kfp_api.requests == []


def test_bad_cron_and_missing_endpoint_are_one_line_each(kfp_api, cli):
    for cron, says in (("0 3 * * 1", "has 5 fields; KFP's cron has 6, seconds first"), ("0 0 27 * * 1", "the hour field '27' is not 0-23")):
        result = cli("schedule", "--config", "demo", "--host", kfp_api.url, "--cron", cron)
        assert result.returncode == 2 and says in result.stderr and "Traceback" not in result.stderr, result.stderr
    bad = cli("schedule", "--config", "demo", "--host", kfp_api.url, "--cron", "0 0 3 * * 1", "--max-concurrency", "0")
    assert bad.returncode == 2 and "--max-concurrency is 0" in bad.stderr
    assert kfp_api.requests == []
    nowhere = cli("submit", "--config", "demo")
    assert nowhere.returncode == 2 and "no Kubeflow Pipelines endpoint: pass --host URL or set KFP_HOST" in nowhere.stderr
    lonely = cli("runs", env={"KFP_TOKEN": "abc"}, on_s3=False)
    assert lonely.returncode == 2 and "a token (--token / KFP_TOKEN) goes with an endpoint" in lonely.stderr
    missing = cli("runs", "--host", kfp_api.url, "--experiment", "never", on_s3=False)
    assert missing.returncode == 2 and "no experiment 'never'; `python -m pipelines submit --experiment never` creates it" in missing.stderr


def test_the_token_is_sent_and_a_refusal_is_one_line(kfp_api, cli):
    kfp_api.token = "s3cret"
    ok = cli("runs", "--host", kfp_api.url, "--experiment", "nightly", env={"KFP_TOKEN": "s3cret"}, on_s3=False)
    assert "no experiment 'nightly'" in ok.stderr, "got past authentication"
    assert {r["authorization"] for r in kfp_api.requests if not r["path"].endswith("/healthz")} == {"Bearer s3cret"}
    refused = cli("runs", "--host", kfp_api.url, "--token", "wrong", on_s3=False)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert f"error: Kubeflow Pipelines at {kfp_api.url} answered 401 Unauthorized" in refused.stderr
    assert "check the token (--token / KFP_TOKEN" in refused.stderr
    closed = cli("runs", "--host", f"http://127.0.0.1:{free_port()}", on_s3=False)
    assert closed.returncode == 2 and "cannot reach Kubeflow Pipelines at http://127.0.0.1:" in closed.stderr, closed.stderr[-2000:]
