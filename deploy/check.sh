#!/usr/bin/env bash
# Static checks of deploy/: no container engine or cluster runs where Echo is developed, so
# this is what stands between these files and a broken rollout. Needs python3 + PyYAML
# (installed if missing); uses `kubectl kustomize` (offline) when kubectl is present.
#
#   bash deploy/check.sh        # exits non-zero, listing every problem, on failure
#   DEPLOY_CHECK_BIN=target/debug/echo bash deploy/check.sh
#                               # also: CONFIG_KEYS below is exactly what that binary's
#                               # `echo print-config` prints (no key missing, none stale)
set -euo pipefail

deploy_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if ! python3 -c 'import yaml' 2>/dev/null; then
    echo "check.sh: installing PyYAML"
    python3 -m pip install --quiet pyyaml \
        || python3 -m pip install --quiet --break-system-packages pyyaml
fi

exec python3 - "$deploy_dir" "${DEPLOY_CHECK_BIN:-}" <<'PY'
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

DEPLOY = pathlib.Path(sys.argv[1])
TARGETS = ["auth", "user", "message", "presence", "notification", "edge"]
SERVICES = TARGETS[:-1]
HPA_TARGETS = {"message", "edge"}
# The documented config keys (crates/config); the variable is ECHO_ + the upper-cased key.
CONFIG_KEYS = [
    "target", "listen", "admin_listen", "data_dir", "database_url", "database_schema_prefix",
    "bus_url", "bus_subject_prefix", "bus_max_age", "bus_duplicate_window", "cache_url",
    "cache_tls_ca_file",
    "cache_key_prefix", "env", "log_format", "log_filter", "otlp_endpoint", "shutdown_grace",
    "max_request_bytes", "keepalive_interval", "cors_allowed_origins",
    "database_max_connections", "internal_listen", "service_secret", "service_secret_file",
    "bus_prune_every", "trusted_proxies",
] + [f"upstreams__{s}" for s in SERVICES] + [
    f"presence__{k}" for k in (
        "heartbeat_interval", "ttl", "stream_closed_ttl", "watch_heartbeat", "max_watch_streams",
        "watch_buffer", "reconcile_every", "sweep_every", "damping",
    )
] + [
    f"auth__{k}" for k in (
        "jwt_signing_key", "jwt_signing_key_file", "jwt_public_keys", "jwt_public_keys_file",
        "jwt_previous_public_keys", "fetch_signing_keys", "jwt_issuer", "otp_hmac_key",
        "otp_hmac_key_file", "access_token_ttl", "refresh_token_ttl", "refresh_retry_grace",
        "otp_sender",
    )
] + [
    f"live__{k}" for k in (
        "heartbeat_interval", "stream_buffer", "replay_limit", "typing_ttl",
        "receipt_max_members", "streams_alive_every",
    )
] + [f"send__{k}" for k in ("queue", "max_batch", "committers", "commit_timeout")] + [
    "retention__batch_size", "retention__sweep_interval", "retention__resolved_reports", "admin__operator_tokens_file",
    "admin__message_internal_url",
] + [
    f"edge__{k}" for k in (
        "resolve_every", "down_for", "ip_calls_per_second", "ip_burst",
        "user_calls_per_second", "user_burst", "user_streams",
    )
] + [
    f"public__{k}" for k in (
        "tls_cert_file", "tls_key_file", "max_connections", "max_concurrent_streams",
        "max_header_bytes", "handshake_timeout", "idle_timeout", "request_timeout", "web_app",
    )
] + [
    f"notification__{k}" for k in (
        "recheck_delay", "job_expiry", "credential_pause", "badge_interval", "claim_lease",
        "poll_every", "dispatch_batch", "dispatch_concurrency", "fanout_chunk",
        "message_internal_url", "presence_internal_url", "fcm_service_account_file",
        "fcm_base_url", "fcm_max_requests_per_minute", "apns_key_file", "apns_key_id",
        "apns_team_id", "apns_topic", "apns_production_url", "apns_sandbox_url",
        "webpush_vapid_key_file", "webpush_subject", "webhook_secret_file", "extra_ca_file",
    )
]
ENV_VARS = {"ECHO_" + k.upper() for k in CONFIG_KEYS}

# Who holds what (DESIGN §5, deploy/README.md "Keys"): only auth has the private signing key
# and the OTP key; every other target verifies with public keys (configured, or fetched from
# auth at upstreams.auth); the services of internal contracts share the service secret. Secrets
# come from files (`*_FILE`), never inline in the manifests.
AUTH_ONLY = ["ECHO_AUTH__JWT_SIGNING_KEY", "ECHO_AUTH__OTP_HMAC_KEY"]
INLINE_SECRETS = AUTH_ONLY + ["ECHO_SERVICE_SECRET"]
INTERNAL_SERVERS = {"message", "presence"}
# auth: its admin API reads reports and purges through message's internal contract.
INTERNAL_CLIENTS = {"notification", "auth"}
# Where the client IP is read behind proxies (auth's per-IP OTP limits) or will be (the edge):
# both need the proxy network as CIDR ranges, not the loopback default.
TRUSTS_PROXIES = {"auth", "edge"}


def identity_problems(target, env, upstream_host):
    """What `target` with environment `env` lacks or must not have; `upstream_host(t)` names
    the host other targets reach target `t` at."""
    problems = []
    has = lambda key: key in env or key + "_FILE" in env
    for key in INLINE_SECRETS:
        if key in env:
            problems.append(f"{key} inline: give {key}_FILE (a mounted secret) instead")
    if target == "auth":
        for key in AUTH_ONLY:
            if not has(key):
                problems.append(f"auth needs {key}_FILE")
        sender = str(env.get("ECHO_AUTH__OTP_SENDER", "log"))
        if not sender.startswith("http://"):
            problems.append(f"auth needs ECHO_AUTH__OTP_SENDER as an http:// webhook, got {sender!r}")
    else:
        for key in AUTH_ONLY:
            if has(key):
                problems.append(f"{key}(_FILE) belongs to auth only")
        if not (has("ECHO_AUTH__JWT_PUBLIC_KEYS") or "ECHO_UPSTREAMS__AUTH" in env):
            problems.append("needs ECHO_AUTH__JWT_PUBLIC_KEYS_FILE or ECHO_UPSTREAMS__AUTH to verify tokens")
        auth = env.get("ECHO_UPSTREAMS__AUTH")
        if auth is not None and auth != f"http://{upstream_host('auth')}:8080":
            problems.append(f"ECHO_UPSTREAMS__AUTH must be http://{upstream_host('auth')}:8080, got {auth}")
    needs_secret = target in INTERNAL_SERVERS | INTERNAL_CLIENTS
    if needs_secret != has("ECHO_SERVICE_SECRET"):
        problems.append("needs ECHO_SERVICE_SECRET_FILE" if needs_secret
                        else "ECHO_SERVICE_SECRET(_FILE) belongs to message, presence, notification and auth only")
    if target in INTERNAL_SERVERS and not str(env.get("ECHO_INTERNAL_LISTEN", "")).startswith("0.0.0.0:9091"):
        problems.append("ECHO_INTERNAL_LISTEN must be 0.0.0.0:9091 (other services call its internal contract)")
    if target == "auth":
        want = f"http://{upstream_host('message')}:9091"
        if env.get("ECHO_ADMIN__MESSAGE_INTERNAL_URL") != want:
            problems.append(f"ECHO_ADMIN__MESSAGE_INTERNAL_URL must be {want}, "
                            f"got {env.get('ECHO_ADMIN__MESSAGE_INTERNAL_URL')}")
    elif target in INTERNAL_CLIENTS:
        for server in sorted(INTERNAL_SERVERS):
            key = f"ECHO_NOTIFICATION__{server.upper()}_INTERNAL_URL"
            want = f"http://{upstream_host(server)}:9091"
            if env.get(key) != want:
                problems.append(f"{key} must be {want}, got {env.get(key)}")
    if target in TRUSTS_PROXIES:
        ranges = [r.strip() for r in str(env.get("ECHO_TRUSTED_PROXIES", "")).split(",") if r.strip()]
        if not ranges or not all(re.fullmatch(r"[0-9a-fA-F.:]+/\d{1,3}", r) for r in ranges):
            problems.append("needs ECHO_TRUSTED_PROXIES as CIDR ranges (the proxy/pod network), "
                            f"got {env.get('ECHO_TRUSTED_PROXIES')!r}")
    elif "ECHO_TRUSTED_PROXIES" in env:
        problems.append("ECHO_TRUSTED_PROXIES is read by auth and the edge only")
    if target == "edge" and "ECHO_DATABASE_URL" in env:
        problems.append("the edge holds no data: no ECHO_DATABASE_URL")
    if target != "edge" and "ECHO_DATABASE_URL" not in env:
        problems.append("needs ECHO_DATABASE_URL")
    return problems


def secret_files(env):
    """The paths the `*_FILE` variables of `env` name."""
    return {key: str(value) for key, value in env.items() if key.endswith("_FILE")}

failures = []
passes = 0


def check(ok, what):
    global passes
    if ok:
        passes += 1
    else:
        failures.append(what)
    return ok


def section(title):
    print(f"== {title}")


def rel(path):
    return path.relative_to(DEPLOY.parent)


# --- 1. every YAML file parses -----------------------------------------------------------
section("YAML syntax")
docs_by_file = {}
for path in sorted(list(DEPLOY.rglob("*.yaml")) + list(DEPLOY.rglob("*.yml"))):
    try:
        docs_by_file[path] = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        check(True, "")
        print(f"   ok  {rel(path)}")
    except yaml.YAMLError as error:
        check(False, f"{rel(path)}: does not parse: {error}")
check(len(docs_by_file) >= 3, "deploy/ holds no YAML files")

# --- 2. every ECHO_* variable is a documented config key ----------------------------------
section("ECHO_* variables are documented config keys")
seen_vars = set()
for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
    if path.name == "check.sh":
        continue
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        continue
    for number, line in enumerate(text.splitlines(), 1):
        for var in re.findall(r"(?<![A-Za-z0-9_])ECHO_[A-Z0-9_]+", line):
            seen_vars.add(var)
            check(var in ENV_VARS, f"{rel(path)}:{number}: {var} is not a documented config key")
print(f"   {len(seen_vars)} distinct variables: {' '.join(sorted(seen_vars))}")

# --- 3. Dockerfile -------------------------------------------------------------------------
section("Dockerfile")
dockerfile = (DEPLOY / "Dockerfile").read_text() if (DEPLOY / "Dockerfile").exists() else ""
check(dockerfile, "deploy/Dockerfile is missing")
from_lines = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
check(from_lines[:1] == ["rust:1.95-bookworm"], f"builder stage must be rust:1.95-bookworm, got {from_lines[:1]}")
check(from_lines[-1:] == ["debian:bookworm-slim"], f"runtime stage must be debian:bookworm-slim, got {from_lines[-1:]}")
check("cargo build --release --locked" in dockerfile, "Dockerfile: no `cargo build --release --locked`")
users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
check(users and users[-1].split(":")[0] not in ("root", "0"), f"Dockerfile: the final USER must be non-root, got {users}")
check(re.search(r'^ENTRYPOINT\s+\["/usr/local/bin/echo"\]\s*$', dockerfile, re.M), 'Dockerfile: ENTRYPOINT must be ["/usr/local/bin/echo"]')
exposed = set(" ".join(re.findall(r"^EXPOSE\s+(.+)$", dockerfile, re.M)).split())
check({"8080", "9090"} <= exposed, f"Dockerfile: must EXPOSE 8080 9090, got {sorted(exposed)}")

# --- 4. compose ----------------------------------------------------------------------------
section("compose.yaml")
compose_docs = docs_by_file.get(DEPLOY / "compose.yaml", [])
compose = compose_docs[0] if compose_docs else {}
services = compose.get("services", {}) if isinstance(compose, dict) else {}
check(services, "compose.yaml: no services")


def image_of(name):
    return str(services.get(name, {}).get("image", ""))


check(image_of("postgres") == "postgres:15", "compose: postgres must be postgres:15")
check(image_of("nats") == "nats:2.9", "compose: nats must be nats:2.9")
check("-js" in (services.get("nats", {}).get("command") or []), "compose: nats must run with -js")
check(image_of("redis") == "redis:7.0", "compose: redis must be redis:7.0")
collector = services.get("otel-collector", {})
check(any("otel-collector.yaml" in str(v) for v in collector.get("volumes", [])),
      "compose: otel-collector must mount deploy/otel-collector.yaml")
check((DEPLOY / "otel-collector.yaml").exists(), "deploy/otel-collector.yaml is missing")
check(services.get("migrate", {}).get("command") == ["migrate"], "compose: `migrate` must run `echo migrate`")

expected_env = {
    "ECHO_ENV": "production",
    "ECHO_BUS_URL": "nats://nats:4222",
    "ECHO_CACHE_URL": "redis://redis:6379",
    "ECHO_LISTEN": "0.0.0.0:8080",
    "ECHO_ADMIN_LISTEN": "0.0.0.0:9090",
    "ECHO_LOG_FORMAT": "json",
    "ECHO_OTLP_ENDPOINT": "http://otel-collector:4317",
}
top_secrets = compose.get("secrets") or {}
for name, secret in top_secrets.items():
    path = str((secret or {}).get("file", ""))
    check(path.startswith("./secrets/"), f"compose: secret {name} must be a file under ./secrets/ (deploy/make-secrets.sh writes them), got {path!r}")
migrate_env = services.get("migrate", {}).get("environment") or {}
check(not secret_files(migrate_env) and not services.get("migrate", {}).get("secrets")
      and not any(k in migrate_env for k in INLINE_SECRETS),
      "compose migrate: needs no key or secret; give it none")
check((DEPLOY / "make-secrets.sh").exists(), "deploy/make-secrets.sh is missing")

echo_images = set()
for target in TARGETS:
    service = services.get(target)
    if not check(service is not None, f"compose: no service `{target}`"):
        continue
    echo_images.add(service.get("image"))
    check(service.get("command") == ["--target", target], f"compose {target}: command must be --target {target}")
    env = service.get("environment") or {}
    check(isinstance(env, dict), f"compose {target}: environment must be a map")
    for key, value in expected_env.items():
        check(str(env.get(key)) == value, f"compose {target}: {key} must be {value}, got {env.get(key)}")
    if target != "edge":
        database = env.get("ECHO_DATABASE_URL")
        check(database == "postgres://echo:echo@postgres:5432/echo",
              f"compose {target}: ECHO_DATABASE_URL must be postgres://echo:echo@postgres:5432/echo, got {database}")
    for problem in identity_problems(target, env, lambda t: t):
        check(False, f"compose {target}: {problem}")
    mounted = service.get("secrets") or []
    for key, path in secret_files(env).items():
        name = path.removeprefix("/run/secrets/")
        check(path.startswith("/run/secrets/") and name in mounted and name in top_secrets,
              f"compose {target}: {key}={path} is not a secret it mounts (secrets: {mounted})")
    for name in mounted:
        check(name in top_secrets, f"compose {target}: secret {name} is not defined at the top level")
        check(any(p == f"/run/secrets/{name}" for p in secret_files(env).values()),
              f"compose {target}: mounts secret {name} but no *_FILE variable reads it")
    health = " ".join(map(str, (service.get("healthcheck") or {}).get("test", [])))
    check("9090/healthz" in health and "9090/readyz" in health,
          f"compose {target}: healthcheck must probe /healthz and /readyz on 9090")
    depends = service.get("depends_on") or {}
    if target != "edge":
        check((depends.get("migrate") or {}).get("condition") == "service_completed_successfully",
              f"compose {target}: must depend on migrate (service_completed_successfully)")
    else:
        for upstream in SERVICES:
            value = env.get(f"ECHO_UPSTREAMS__{upstream.upper()}")
            check(value == f"http://{upstream}:8080",
                  f"compose edge: ECHO_UPSTREAMS__{upstream.upper()} must be http://{upstream}:8080, got {value}")
            check(upstream in depends, f"compose edge: must depend on {upstream}")
    grace = re.fullmatch(r"(\d+)s", str(service.get("stop_grace_period", "")))
    check(grace and float(env.get("ECHO_SHUTDOWN_GRACE", 1e9)) < int(grace.group(1)),
          f"compose {target}: ECHO_SHUTDOWN_GRACE must be below stop_grace_period")
echo_images.add(image_of("migrate"))
check(len(echo_images) == 1, f"compose: every Echo container must use one image, got {echo_images}")
for name, service in services.items():
    for dependency in (service.get("depends_on") or {}):
        check(dependency in services, f"compose {name}: depends on unknown service {dependency}")

# --- 5. Kubernetes (kustomize) -------------------------------------------------------------
section("k8s/")
k8s = DEPLOY / "k8s"
kustomization = (docs_by_file.get(k8s / "kustomization.yaml") or [{}])[0]
resources = kustomization.get("resources", [])
check(resources, "k8s/kustomization.yaml: no resources")
listed = {(k8s / r).resolve() for r in resources}
for path in sorted(k8s.glob("*.y*ml")):
    if path.name != "kustomization.yaml":
        check(path.resolve() in listed, f"{rel(path)} is not listed in kustomization.yaml resources")
objects = []
for resource in resources:
    path = k8s / resource
    if check(path.exists(), f"k8s/kustomization.yaml lists missing {resource}"):
        objects += docs_by_file.get(path, [])

config_literals = {}
for generator in kustomization.get("configMapGenerator", []):
    if generator.get("name") == "echo-config":
        for literal in generator.get("literals", []):
            key, _, value = literal.partition("=")
            config_literals[key] = value
check(config_literals, "k8s: no configMapGenerator `echo-config` with the shared ECHO_* settings")
check(config_literals.get("ECHO_SHUTDOWN_GRACE") == "20", "k8s: echo-config must set ECHO_SHUTDOWN_GRACE=20")
for key in ("ECHO_ENV", "ECHO_BUS_URL", "ECHO_CACHE_URL", "ECHO_LISTEN", "ECHO_ADMIN_LISTEN",
            "ECHO_LOG_FORMAT", "ECHO_OTLP_ENDPOINT"):
    check(key in config_literals, f"k8s: echo-config must set {key}")


def find(kind, name):
    return next((o for o in objects if o.get("kind") == kind and o["metadata"]["name"] == name), None)


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def port_value(container, port):
    if isinstance(port, int):
        return port
    return next((p["containerPort"] for p in container.get("ports", []) if p.get("name") == port), None)


def check_pod(where, pod, args):
    spec = pod.get("spec", {})
    containers = spec.get("containers", [])
    if not check(len(containers) == 1, f"{where}: expected one container"):
        return None
    c = containers[0]
    check(c.get("image") == "echo", f"{where}: image must be `echo` (set by kustomize images)")
    check(c.get("args") == args, f"{where}: args must be {args}, got {c.get('args')}")
    resources = c.get("resources", {})
    check(resources.get("requests") and resources.get("limits"), f"{where}: needs resource requests and limits")
    pod_sc, sc = spec.get("securityContext", {}), c.get("securityContext", {})
    check(pod_sc.get("runAsNonRoot") is True or sc.get("runAsNonRoot") is True, f"{where}: must run as non-root")
    check(sc.get("readOnlyRootFilesystem") is True, f"{where}: root filesystem must be read-only")
    check(sc.get("allowPrivilegeEscalation") is False, f"{where}: must forbid privilege escalation")
    refs = [e.get("configMapRef", {}).get("name") for e in c.get("envFrom", [])]
    check("echo-config" in refs, f"{where}: must take envFrom the echo-config ConfigMap")
    return c


def pod_env(container):
    """The container's ECHO_* environment: the shared ConfigMap, the Secrets it takes whole
    (echo-database gives ECHO_DATABASE_URL), and its own `env`."""
    env = {}
    for source in container.get("envFrom", []):
        if source.get("configMapRef", {}).get("name") == "echo-config":
            env.update(config_literals)
        if source.get("secretRef", {}).get("name") == "echo-database":
            env["ECHO_DATABASE_URL"] = "<secret echo-database>"
    for entry in container.get("env", []):
        env[entry["name"]] = entry.get("value", "<valueFrom>")
    return env


def check_mounted_files(where, spec, container, env):
    """Every *_FILE names a key of a Secret volume the pod mounts, and the pod mounts no key
    it does not read (each target gets exactly its part of the identity)."""
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    read = set(secret_files(env).values())
    for mount in container.get("volumeMounts", []):
        secret = volumes.get(mount["name"], {}).get("secret")
        if not secret:
            continue
        check(mount.get("readOnly") is True, f"{where}: secret volume {mount['name']} must be mounted readOnly")
        items = [i["path"] for i in secret.get("items", [])]
        check(items, f"{where}: secret volume {mount['name']} must list its items (only what the target needs)")
        for item in items:
            path = f"{mount['mountPath']}/{item}"
            check(path in read, f"{where}: mounts {path} but no *_FILE variable reads it")
            read.discard(path)
    for path in sorted(read):
        check(False, f"{where}: a *_FILE variable names {path}, which no secret volume provides")


for target in TARGETS:
    name = f"echo-{target}"
    deployment = find("Deployment", name)
    if not check(deployment, f"k8s: no Deployment {name}"):
        continue
    template = deployment["spec"]["template"]
    labels = template["metadata"].get("labels", {})
    check(selects(deployment["spec"]["selector"].get("matchLabels"), labels),
          f"k8s {name}: Deployment selector does not match its pod labels")
    spec = template["spec"]
    check(spec.get("terminationGracePeriodSeconds") == 30, f"k8s {name}: terminationGracePeriodSeconds must be 30")
    c = check_pod(f"k8s Deployment {name}", template, ["--target", target])
    if c:
        ports = {p.get("containerPort") for p in c.get("ports", [])}
        check({8080, 9090} <= ports, f"k8s {name}: must expose container ports 8080 and 9090")
        ready = (c.get("readinessProbe") or {}).get("grpc", {})
        live = (c.get("livenessProbe") or {}).get("httpGet", {})
        # gRPC health on the serving port (a numeric port: grpc probes take no names); liveness
        # stays /healthz, which a database outage does not fail.
        check(ready.get("port") == 8080 and not ready.get("service"),
              f"k8s {name}: readinessProbe must be a native gRPC health probe (grpc: port: 8080)")
        check(live.get("path") == "/healthz" and port_value(c, live.get("port")) == 9090,
              f"k8s {name}: livenessProbe must GET /healthz on 9090")
        env = pod_env(c)
        for problem in identity_problems(target, env, lambda t: f"echo-{t}"):
            check(False, f"k8s {name}: {problem}")
        check_mounted_files(f"k8s {name}", spec, c, env)
        if target in INTERNAL_SERVERS:
            check(9091 in ports, f"k8s {name}: must expose container port 9091 (internal)")
        if target == "edge":
            for upstream in SERVICES:
                value = env.get(f"ECHO_UPSTREAMS__{upstream.upper()}", "")
                host = re.fullmatch(r"http://([a-z0-9-]+):8080", value)
                check(host and find("Service", host.group(1)),
                      f"k8s edge: ECHO_UPSTREAMS__{upstream.upper()} must name an existing Service on 8080, got {value!r}")
    service = find("Service", name)
    if check(service, f"k8s: no Service {name}"):
        check(selects(service["spec"].get("selector"), labels), f"k8s Service {name}: selector does not match the pods")
        check(any(p.get("port") == 8080 for p in service["spec"].get("ports", [])), f"k8s Service {name}: no port 8080")
    pdb = find("PodDisruptionBudget", name)
    if check(pdb, f"k8s: no PodDisruptionBudget {name}"):
        check(selects(pdb["spec"].get("selector", {}).get("matchLabels"), labels),
              f"k8s PodDisruptionBudget {name}: selector does not match the pods")
    hpa = find("HorizontalPodAutoscaler", name)
    if target in HPA_TARGETS:
        if check(hpa, f"k8s: no HorizontalPodAutoscaler {name}"):
            ref = hpa["spec"].get("scaleTargetRef", {})
            check(ref.get("kind") == "Deployment" and ref.get("name") == name, f"k8s HPA {name}: must scale Deployment {name}")
            check("replicas" not in deployment["spec"], f"k8s {name}: leave `replicas` to the HPA")
    found = [kind for kind, obj in (("Deployment", deployment), ("Service", service),
                                    ("PodDisruptionBudget", pdb), ("HorizontalPodAutoscaler", hpa)) if obj]
    print(f"   {target}: {', '.join(found)}")

jobs = [o for o in objects if o.get("kind") == "Job"]
if check(len(jobs) == 1, "k8s: expected exactly one (migration) Job"):
    job = check_pod("k8s Job " + jobs[0]["metadata"]["name"], jobs[0]["spec"]["template"], ["migrate"])
    if job:
        env = pod_env(job)
        check(not secret_files(env) and not any(k in env for k in INLINE_SECRETS),
              "k8s Job: migrations need no key or secret; give them none")

# --- 6. kustomize renders (offline) --------------------------------------------------------
section("kubectl kustomize")
kubectl = shutil.which("kubectl")
if kubectl:
    run = subprocess.run([kubectl, "kustomize", str(k8s)], capture_output=True, text=True)
    if check(run.returncode == 0, f"kubectl kustomize failed: {run.stderr.strip()}"):
        rendered = [d for d in yaml.safe_load_all(run.stdout) if d]
        kinds = [d["kind"] for d in rendered]
        check(kinds.count("Deployment") == len(TARGETS), "rendered: wrong number of Deployments")
        maps = [d["metadata"]["name"] for d in rendered if d["kind"] == "ConfigMap"]
        check(len(maps) == 1 and maps[0].startswith("echo-config-"), f"rendered: ConfigMap names {maps}")
        for d in rendered:
            if d["kind"] in ("Deployment", "Job"):
                for c in d["spec"]["template"]["spec"]["containers"]:
                    refs = [e["configMapRef"]["name"] for e in c.get("envFrom", []) if "configMapRef" in e]
                    check(refs == maps, f"rendered {d['metadata']['name']}: envFrom not rewritten to {maps}")
        print(f"   ok  {len(rendered)} objects: " + ", ".join(f"{kinds.count(k)} {k}" for k in sorted(set(kinds))))
else:
    print("   skipped: kubectl not installed")

# --- 7. CONFIG_KEYS is exactly the binary's configuration ---------------------------------
section("CONFIG_KEYS against `echo print-config`")
echo_bin = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2] else ""
if echo_bin:
    with tempfile.TemporaryDirectory() as scratch:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("ECHO_")}
        run = subprocess.run([echo_bin, "--data-dir", scratch, "print-config"], capture_output=True,
                             text=True, env=clean, cwd=scratch)
    if check(run.returncode == 0, f"{echo_bin} print-config failed: {run.stderr.strip()[-500:]}"):
        printed = set()

        def leaves(value, prefix):
            for key, inner in value.items():
                if isinstance(inner, dict):
                    leaves(inner, f"{prefix}{key}__")
                else:
                    printed.add(f"{prefix}{key}")

        leaves(json.loads(run.stdout), "")
        for key in sorted(printed - set(CONFIG_KEYS)):
            check(False, f"check.sh CONFIG_KEYS lacks `{key}` (a key of {echo_bin})")
        for key in sorted(set(CONFIG_KEYS) - printed):
            check(False, f"check.sh CONFIG_KEYS has `{key}`, which {echo_bin} does not know")
        print(f"   {len(printed)} keys printed, {len(set(CONFIG_KEYS))} listed")
else:
    print("   skipped: set DEPLOY_CHECK_BIN to a built echo to compare")

print()
if failures:
    print(f"FAIL: {len(failures)} problem(s) ({passes} checks passed):")
    for failure in failures:
        print(f"  - {failure}")
    sys.exit(1)
print(f"OK: {passes} checks passed")
PY
