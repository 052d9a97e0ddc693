"""Kubeflow Pipelines from the command line: connect, upload a pipeline version, start a
run, keep one recurring run per config, list runs (`python -m pipelines submit|schedule|runs`).

Authentication is the KFP client's own, one of:
- an endpoint (`--host` / `KFP_HOST`, or KFP's own `KF_PIPELINES_ENDPOINT`), e.g. a
  `kubectl port-forward` of the UI service, with no credentials;
- that endpoint and a bearer token from outside the SDK (`--token` / `KFP_TOKEN`:
  `kfp.Client(existing_token=...)`), e.g. `kubectl create token` for a service account;
- no endpoint, inside a pod of the cluster: `kfp.Client()` talks to
  ml-pipeline.kubeflow.svc.cluster.local:8888 with the pod's audience-bound service
  account token, which it reads from /var/run/secrets/kubeflow/pipelines/token (or
  $KF_PIPELINES_SA_TOKEN_PATH); a multi-user deployment refuses requests without it.
  KFP deployed in another namespace than kubeflow: pass its service as --host, with a
  token (the pod's token is used only with no host, as kfp.Client does).
The namespace (`--namespace` / `KFP_NAMESPACE`) is a multi-user deployment's profile
namespace; without one, the client's own (its context file, or the pod's namespace).

The pipeline is uploaded as a version of the pipeline `taletune-<config name>`, named by
the image tag and a digest of the compiled spec: the same code and config make the same
version, uploaded once, which is what lets `schedule` tell an unchanged schedule from a
changed one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import yaml

from components.common.errors import TaletuneError

# What `kubernetes.config.load_incluster_config` needs, and so what makes kfp.Client() in-cluster.
POD_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
PIPELINES_TOKEN = "/var/run/secrets/kubeflow/pipelines/token"  # kfp.client.KF_PIPELINES_SA_TOKEN_PATH


@dataclass
class Connection:
    client: object  # kfp.Client
    namespace: str | None
    endpoint: str  # for messages


def in_pod() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and Path(POD_TOKEN).is_file()


@contextlib.contextmanager
def answered(endpoint: str):
    """The API's refusals and an unreachable endpoint as one line each."""
    import kfp_server_api
    import urllib3

    try:
        yield
    except kfp_server_api.ApiException as exc:
        message = exc.body or ""
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            body = json.loads(exc.body)
            message = body.get("message") or body.get("error") or message
        message = " ".join(str(message).split())[:300]
        hint = ""
        if exc.status in (401, 403):
            hint = "; check the token (--token / KFP_TOKEN, or the pod's service account) and --namespace / KFP_NAMESPACE"
        raise TaletuneError(f"Kubeflow Pipelines at {endpoint} answered {exc.status} {exc.reason or ''}".rstrip()
                            + (f": {message}" if message else "") + hint) from None
    except urllib3.exceptions.HTTPError as exc:
        reason = getattr(exc, "reason", None) or exc
        raise TaletuneError(f"cannot reach Kubeflow Pipelines at {endpoint} ({reason}); check --host / KFP_HOST") from None
    except TimeoutError as exc:  # kfp.Client's health check, after its own retries
        raise TaletuneError(f"Kubeflow Pipelines at {endpoint} did not answer its health check ({exc})") from None


def connect(host: str | None = None, token: str | None = None, namespace: str | None = None) -> Connection:
    """A kfp.Client by one of the client's own ways to authenticate (see the module doc)."""
    import logging

    import kfp

    host = host or os.environ.get("KFP_HOST") or os.environ.get("KF_PIPELINES_ENDPOINT")
    token = token or os.environ.get("KFP_TOKEN")
    namespace = namespace or os.environ.get("KFP_NAMESPACE") or None
    if token and not host:
        raise TaletuneError("a token (--token / KFP_TOKEN) goes with an endpoint; pass --host URL or set KFP_HOST too")
    if not host and not in_pod():
        raise TaletuneError(
            "no Kubeflow Pipelines endpoint: pass --host URL or set KFP_HOST (for example http://localhost:8080 after "
            "`kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`), with --token / KFP_TOKEN where the endpoint "
            "asks for one, or run this inside a pod of the cluster, which uses the pod's service account"
        )
    sa_token = os.environ.get("KF_PIPELINES_SA_TOKEN_PATH") or PIPELINES_TOKEN
    if not host and not Path(sa_token).is_file():  # kfp.Client goes on without credentials, with a warning of its own
        logging.getLogger(__name__).warning(
            "no Kubeflow Pipelines token in this pod (%s): requests go without credentials, which a multi-user "
            "deployment refuses; mount the projected token (Kubeflow's PodDefault access-ml-pipeline does)", sa_token)
    endpoint = host or "the in-cluster endpoint (ml-pipeline.kubeflow.svc.cluster.local:8888)"
    with answered(endpoint), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "only works with Kubeflow Pipeline v2.0.0-beta.2 and later"
        if host:
            # With a host, the client's namespace is only the user namespace (it names the
            # in-cluster service otherwise), and given, it spares the multi-user probe.
            client = kfp.Client(host=host, existing_token=token, namespace=namespace or "kubeflow")
        else:
            client = kfp.Client()  # in-cluster endpoint and service account token, as kfp.Client does it
    return Connection(client, namespace or client.get_user_namespace() or None, endpoint)


# ---------------------------------------------------------------- look-ups


def _named(list_page, items: str, name: str, **kwargs) -> list:
    """Every item called `name`, over all pages (the server filters; the name is checked again)."""
    wanted = json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]})
    found, token = [], ""
    while True:
        page = list_page(page_token=token, page_size=100, filter=wanted, **kwargs)
        found += [item for item in getattr(page, items) or [] if item.display_name == name]
        token = page.next_page_token
        if not token:
            return found


def experiment(conn: Connection, name: str, create: bool):
    """The experiment called `name` in the namespace; created if missing and `create`."""
    client = conn.client
    with answered(conn.endpoint):
        if create:
            return client.create_experiment(name, namespace=conn.namespace)  # finds it first
        found = _named(client.list_experiments, "experiments", name, namespace=conn.namespace)
    if not found:
        where = f" in namespace {conn.namespace}" if conn.namespace else ""
        raise TaletuneError(f"no experiment {name!r}{where}; `python -m pipelines submit --experiment {name}` creates it")
    return found[0]


def cluster_images() -> tuple[str, str]:
    """The images a compiled pipeline names, refused where their tag cannot name the code."""
    from components.common.image import GPU_IMAGE, IMAGE, require_tag

    try:
        require_tag()
    except RuntimeError as exc:
        raise TaletuneError(str(exc)) from None
    return IMAGE, GPU_IMAGE


def compiled(config, folder: Path) -> tuple[Path, str]:
    """The pipeline compiled for the cluster, and a digest of its spec (not of its comments,
    whose order of keys varies from one compile to the next)."""
    from kfp import compiler

    from pipelines.pipeline import build_pipeline

    cluster_images()  # an image tag that names the code, or one clear refusal
    package = folder / f"taletune-{config.name}.yaml"
    compiler.Compiler().compile(build_pipeline(config), package_path=str(package))
    docs = list(yaml.safe_load_all(package.read_text()))
    return package, hashlib.sha256(json.dumps(docs, sort_keys=True).encode()).hexdigest()


def pipeline_version(conn: Connection, config, folder: Path):
    """(pipeline id, version, uploaded?): the version of pipeline `taletune-<name>` holding
    this compiled spec, uploaded unless a version of that name is there already."""
    import kfp_server_api

    from components.common.image import TAG

    package, digest = compiled(config, folder)
    name, version_name = f"taletune-{config.name}", f"{TAG}-{digest[:12]}"
    client = conn.client
    with answered(conn.endpoint):
        pipelines = _named(client.list_pipelines, "pipelines", name, namespace=conn.namespace)
        if pipelines:
            pipeline_id = pipelines[0].pipeline_id
        else:  # an empty pipeline: its first version is named like every other
            pipeline_id = client.pipelines.pipeline_service_create_pipeline(pipeline=kfp_server_api.V2beta1Pipeline(
                name=name, display_name=name, namespace=conn.namespace,
                description=f"taletune, config {config.name}: genre storytellers from public-domain books")).pipeline_id
        versions = _named(lambda **kw: client.list_pipeline_versions(pipeline_id, **kw), "pipeline_versions", version_name)
        if versions:
            return pipeline_id, versions[0], False
        from components.common.image import GPU_IMAGE, IMAGE

        version = client.upload_pipeline_version(str(package), version_name, pipeline_id=pipeline_id,
                                                 description=f"images {IMAGE} and {GPU_IMAGE}; spec sha256 {digest}")
    return pipeline_id, version, True


def arguments(config) -> dict:
    """The run's parameters: the config's own, as JSON (what the API sends and gives back)."""
    from pipelines.pipeline import parameters

    return json.loads(json.dumps(parameters(config)))


# ---------------------------------------------------------------- commands


def refuse_local_state(config) -> None:
    """A cluster run keeps nothing on a pod's disk: every cache and result folder on S3."""
    from components.check.stage import refuse_local_state, state_settings

    trains = {spec.label: config.train_config(spec) for spec in config.models}
    generates = {spec.label: config.generate_config(spec) for spec in config.models}
    refuse_local_state(state_settings(config.ingest, trains, generates, config.evaluate, config.report_prefix()))


def submit(conn: Connection, config, experiment_name: str) -> str:
    """Upload the pipeline version and start a run of it; returns the run id."""
    with tempfile.TemporaryDirectory() as tmp:
        pipeline_id, version, uploaded = pipeline_version(conn, config, Path(tmp))
    print(f"pipeline taletune-{config.name}, version {version.display_name}" + ("" if uploaded else " (already uploaded)"))
    exp = experiment(conn, experiment_name, create=True)
    with answered(conn.endpoint):
        run = conn.client.run_pipeline(experiment_id=exp.experiment_id, job_name=f"taletune-{config.name}", params=arguments(config),
                                       pipeline_id=pipeline_id, version_id=version.pipeline_version_id)
    print(f"run {run.run_id} started in experiment {experiment_name}")
    return run.run_id


# The fields of KFP's cron (robfig/cron with seconds), their ranges and names.
CRON_FIELDS = (("second", 0, 59), ("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 6))
CRON_NAMES = {"month": {m: i for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), 1)},
              "day of week": {d: i for i, d in enumerate("SUN MON TUE WED THU FRI SAT".split())}}
CRON_EXAMPLE = '"0 0 3 * * 1" is Mondays at 03:00:00'


def _cron_part(part: str, what: str, low: int, high: int) -> bool:
    """One item of a cron field: *, ? (days only), a value or a range a-b, with an optional /step."""
    base, slash, step = part.partition("/")
    if slash and not (step.isdigit() and int(step) > 0):
        return False
    if base == "*" or (base == "?" and what.startswith("day")):
        return True
    names = CRON_NAMES.get(what, {})
    values = [int(v) if v.isdigit() else names.get(v.upper()) for v in base.split("-")]
    return len(values) <= 2 and all(v is not None and low <= v <= high for v in values) and values == sorted(values)


def check_cron(cron: str) -> str:
    """KFP's six-field cron (seconds first), checked field by field; returns it normalized."""
    fields = cron.split()
    if len(fields) != 6:
        raise TaletuneError(f"--cron {cron!r} has {len(fields)} fields; KFP's cron has 6, seconds first ({CRON_EXAMPLE})")
    for field, (what, low, high) in zip(fields, CRON_FIELDS):
        if not all(_cron_part(part, what, low, high) for part in field.split(",")):
            names = list(CRON_NAMES.get(what, {}))
            raise TaletuneError(f"--cron {cron!r}: the {what} field {field!r} is not {low}-{high}"
                                + (f" (or {names[0]}-{names[-1]})" if names else "") + f", a range a-b, a list a,b, * or a step */n "
                                f"({CRON_EXAMPLE})")
    return " ".join(fields)


def check_schedule(cron: str, max_concurrency: int) -> str:
    """The cron, normalized, and the concurrency, checked before anything reaches the cluster."""
    if max_concurrency < 1:
        raise TaletuneError(f"--max-concurrency is {max_concurrency}; give 1 or more (1: a run waits for the one before)")
    return check_cron(cron)


def _schedule_of(recurring) -> dict:
    """What makes two recurring runs the same schedule."""
    reference = recurring.pipeline_version_reference
    cron = recurring.trigger.cron_schedule.cron if recurring.trigger and recurring.trigger.cron_schedule else None
    return {"version": reference.pipeline_version_id if reference else recurring.pipeline_version_id, "cron": cron,
            "max_concurrency": int(recurring.max_concurrency or 0), "no_catchup": bool(recurring.no_catchup),
            "parameters": (recurring.runtime_config.parameters if recurring.runtime_config else None) or {}}


def schedule(conn: Connection, config, experiment_name: str, cron: str, max_concurrency: int = 1) -> str:
    """Leave exactly one recurring run named taletune-<config name> in the experiment, with
    this spec and cron; returns its id. KFP has no update for recurring runs: a changed one
    is replaced, the new one created before the old is deleted, so no slot is missed."""
    cron = check_schedule(cron, max_concurrency)
    with tempfile.TemporaryDirectory() as tmp:
        pipeline_id, version, _ = pipeline_version(conn, config, Path(tmp))
    exp = experiment(conn, experiment_name, create=True)
    name, params = f"taletune-{config.name}", arguments(config)
    wanted = {"version": version.pipeline_version_id, "cron": cron, "max_concurrency": max_concurrency, "no_catchup": True, "parameters": params}
    client = conn.client
    with answered(conn.endpoint):
        existing = _named(client.list_recurring_runs, "recurring_runs", name, experiment_id=exp.experiment_id)
        keep = next((r for r in existing if _schedule_of(r) == wanted), None)
        if keep is None:
            # no_catchup: a schedule paused or behind starts one run, not one per missed slot.
            keep = client.create_recurring_run(
                experiment_id=exp.experiment_id, job_name=name, description=f"taletune config {config.name}, version {version.display_name}",
                cron_expression=cron, max_concurrency=max_concurrency, no_catchup=True, params=params,
                pipeline_id=pipeline_id, version_id=version.pipeline_version_id)
            print(f"recurring run {name} {'replaced' if existing else 'created'}: {keep.recurring_run_id} ({cron}, version {version.display_name})")
        elif keep.mode == "DISABLE" or keep.status == "DISABLED":
            client.enable_recurring_run(keep.recurring_run_id)
            print(f"recurring run {name} unchanged and enabled again: {keep.recurring_run_id} ({cron})")
        else:
            print(f"recurring run {name} unchanged: {keep.recurring_run_id} ({cron})")
        for old in existing:
            if old.recurring_run_id != keep.recurring_run_id:
                client.delete_recurring_run(old.recurring_run_id)
                print(f"deleted the recurring run it replaces: {old.recurring_run_id}")
    return keep.recurring_run_id


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def list_runs(conn: Connection, experiment_name: str, limit: int = 10) -> list:
    """The experiment's newest runs, newest first, printed one a line."""
    if limit < 1:
        raise TaletuneError(f"--limit is {limit}; give 1 or more")
    exp = experiment(conn, experiment_name, create=False)
    with answered(conn.endpoint):
        page = conn.client.list_runs(page_size=limit, sort_by="created_at desc", experiment_id=exp.experiment_id)
    runs = sorted(page.runs or [], key=lambda r: _when(r.created_at), reverse=True)[:limit]  # "-" (no time) sorts last
    if not runs:
        print(f"no runs in experiment {experiment_name}")
        return []
    print(f"{'created (UTC)':<21} {'state':<10} {'run id':<36}  name")
    for run in runs:
        state = re.sub(r"^RUNTIME_STATE_", "", str(run.state or "-"))
        print(f"{_when(run.created_at):<21} {state:<10} {run.run_id:<36}  {run.display_name}")
    return runs
