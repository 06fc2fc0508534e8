#!/usr/bin/env bash
# Runs the grpcurl walkthrough of docs/messages.md, as a reader would type it, against a fresh
# embedded `echo` (temporary data dir, free ports): two users sign up, then a direct
# conversation, a group, a message, an edit, a reaction, a search, a read marker, member
# settings and a delete for everyone. Fails on the first answer that is not what the docs say.
#
#   bash scripts/docs-walkthrough.sh [path/to/echo]     # default: target/debug/echo
set -euo pipefail

bin=${1:-target/debug/echo}
[[ -x $bin ]] || { echo "walkthrough: FAIL: no executable at $bin (cargo build first)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/echo-walkthrough.XXXXXX")
log=$work/server.log
# Ports no outgoing connection can take, held while this script runs (scripts/ports.py).
read -r a_port admin_port < <(python3 "$(dirname "${BASH_SOURCE[0]}")/ports.py" 2 --for $$)
A=127.0.0.1:$a_port
"$bin" --data-dir "$work" --listen "$A" --admin-listen "127.0.0.1:$admin_port" >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

fail() { echo "walkthrough: FAIL: $1" >&2; [[ -n ${2:-} ]] && echo "$2" >&2; tail -n 20 "$log" >&2; exit 1; }
g() { grpcurl -plaintext -connect-timeout 5 -max-time 15 "$@"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
expect() { grep -q -- "$2" <<<"$3" || fail "$1: the answer lacks $2" "$3"; echo "walkthrough: ok: $1"; }

for _ in $(seq 150); do g "$A" list >/dev/null 2>&1 && break; sleep 0.2; done
g "$A" list >/dev/null || fail "the server did not start"

# Signs up `phone` as `name` (the development OTP sender writes the code to the log); prints
# "<access token> <user id>".
sign_up() {
    local before code=""
    before=$(grep -c 'otp code' "$log" || true)
    g -d "{\"phone_number\":\"$1\",\"password\":\"correct horse battery staple\",\"display_name\":\"$2\"}" \
        "$A" echo.auth.v1.AuthService/Register >/dev/null
    for _ in $(seq 50); do
        code=$(grep 'otp code' "$log" | tail -n +"$((before + 1))" | grep -o '"code":"[0-9]*"' | tail -n 1 | tr -dc '0-9' || true)
        [[ -n $code ]] && break
        sleep 0.1
    done
    [[ -n $code ]] || fail "no OTP code for $1 in the log"
    g -d "{\"phone_number\":\"$1\",\"code\":\"$code\",\"device\":{\"name\":\"cli\",\"platform\":\"DEVICE_PLATFORM_DESKTOP\"}}" \
        "$A" echo.auth.v1.AuthService/VerifyPhone | json 'd["tokens"]["accessToken"], d["tokens"]["userId"]'
}
read -r TOKEN _ < <(sign_up +14155550101 Ada)
read -r BOB_TOKEN BOB < <(sign_up +14155550102 Bob)

H="authorization: Bearer $TOKEN"; S=echo.message.v1.MessageService
# The message service learns about new accounts from auth's events: retry the first call briefly.
for _ in $(seq 50); do
    out=$(g -H "$H" -d "{\"peer_user_id\":\"$BOB\"}" "$A" $S/CreateDirectConversation 2>&1) && break
    sleep 0.1
done
expect CreateDirectConversation CONVERSATION_TYPE_DIRECT "$out"
out=$(g -H "$H" -d "{\"type\":\"CONVERSATION_TYPE_GROUP\",\"title\":\"Lunch\",\"member_user_ids\":[\"$BOB\"],\"client_request_id\":\"lunch-1\"}" \
    "$A" $S/CreateConversation)
expect CreateConversation '"memberCount": 2' "$out"
C=$(json 'd["conversation"]["conversationId"]' <<<"$out")
out=$(g -H "$H" -d "{\"conversation_id\":\"$C\",\"client_message_id\":\"walkthrough-1\",\"content\":{\"text\":\"pizza at noon?\"}}" \
    "$A" $S/SendMessage)
expect SendMessage '"text": "pizza at noon?"' "$out"
M=$(json 'd["message"]["messageId"]' <<<"$out")
expect ListMessages '"text": "pizza at noon?"' "$(g -H "$H" -d "{\"conversation_id\":\"$C\"}" "$A" $S/ListMessages)"
out=$(g -H "$H" -d "{\"conversation_id\":\"$C\",\"message_id\":\"$M\",\"content\":{\"text\":\"pizza at 1?\"},\"update_mask\":{\"paths\":[\"text\"]}}" \
    "$A" $S/EditMessage)
expect EditMessage '"editCount": 1' "$out"
out=$(g -H "$H" -d "{\"conversation_id\":\"$C\",\"message_id\":\"$M\",\"emoji\":\"🍕\"}" "$A" $S/AddReaction)
expect AddReaction '"emoji": "🍕"' "$out"
expect SearchMessages '"snippet"' "$(g -H "$H" -d '{"query":"pizza"}' "$A" $S/SearchMessages)"
expect MarkRead '"lastReadSeq"' "$(g -H "$H" -d "{\"conversation_id\":\"$C\",\"last_read_seq\":\"100\"}" "$A" $S/MarkRead)"
out=$(g -H "$H" -d "{\"conversation_id\":\"$C\",\"settings\":{\"pinned\":true,\"mute_until\":\"2030-01-01T00:00:00Z\"},\"update_mask\":{\"paths\":[\"pinned\",\"mute_until\"]}}" \
    "$A" $S/UpdateMemberSettings)
expect UpdateMemberSettings '"pinned": true' "$out"
out=$(g -H "$H" -d "{\"conversation_id\":\"$C\",\"message_id\":\"$M\",\"scope\":\"DELETE_SCOPE_FOR_EVERYONE\"}" "$A" $S/DeleteMessage)
expect DeleteMessage MESSAGE_STATE_DELETED_FOR_EVERYONE "$out"
expect ListConversations '"title": "Lunch"' "$(g -H "$H" "$A" $S/ListConversations)"
# docs/lifecycle.md: disappearing messages on the group, then off again.
out=$(g -H "$H" -d "{\"conversation\":{\"conversation_id\":\"$C\",\"message_ttl\":\"86400s\"},\"update_mask\":{\"paths\":[\"message_ttl\"]}}" \
    "$A" $S/UpdateConversation)
expect "UpdateConversation message_ttl" '"messageTtl": "86400s"' "$out"
out=$(g -H "$H" -d "{\"conversation_id\":\"$C\",\"client_message_id\":\"walkthrough-2\",\"content\":{\"text\":\"gone tomorrow\"}}" \
    "$A" $S/SendMessage)
expect "SendMessage with a ttl" '"expiresAt"' "$out"
R=$(json 'd["message"]["messageId"]' <<<"$out")
out=$(g -H "$H" -d "{\"conversation\":{\"conversation_id\":\"$C\"},\"update_mask\":{\"paths\":[\"message_ttl\"]}}" \
    "$A" $S/UpdateConversation)
expect "UpdateConversation ttl off" '"title": "Lunch"' "$out"
[[ "$out" != *messageTtl* ]] || { echo "walkthrough: UpdateConversation left the ttl on: $out" >&2; exit 1; }
# docs/lifecycle.md "Reports": Bob reports Ada's message; again answers the same report.
report() {
    g -H "authorization: Bearer $BOB_TOKEN" \
        -d "{\"conversation_id\":\"$C\",\"message_id\":\"$R\",\"reason\":\"REPORT_REASON_SPAM\",\"note\":\"third time today\"}" \
        "$A" $S/ReportMessage | json 'd["reportId"]'
}
first=$(report); again=$(report)
[[ -n $first && $first == "$again" ]] || fail "ReportMessage: $first then $again"
echo "walkthrough: ok: ReportMessage"
echo "walkthrough: PASS"
