#!/usr/bin/env bash
# Generates the identity files Echo's deployments mount, into DIR (default deploy/secrets/,
# which compose.yaml reads and git ignores). Files that exist are kept, so running it again
# never rotates anything by accident.
#
#   bash deploy/make-secrets.sh [DIR]
#
#   jwt-signing-key.pem   Ed25519 private key (PKCS#8 PEM) that signs access tokens: auth only
#   jwt-public-keys.pem   the public keys every target accepts tokens of (SPKI PEM blocks)
#   otp-hmac-key          48 random bytes, base64: auth only (OTP codes are stored HMACed)
#   service-secret        48 random bytes, base64: message, presence, notification (the
#                         service credential of internal contracts)
#   push-webhook-secret   48 random bytes, base64: notification (the HMAC key webhook
#                         pushes are signed with; receivers check Echo-Signature with it)
#
# Kubernetes: `kubectl -n echo create secret generic echo-identity --from-file=DIR` (see
# deploy/README.md). Needs openssl.
set -euo pipefail

dir=${1:-"$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/secrets"}
umask 077
mkdir -p "$dir"
chmod 700 "$dir"

if [[ ! -e $dir/jwt-signing-key.pem ]]; then
    openssl genpkey -algorithm ed25519 -out "$dir/jwt-signing-key.pem"
    echo "make-secrets: wrote $dir/jwt-signing-key.pem"
fi
if [[ ! -e $dir/jwt-public-keys.pem ]]; then
    openssl pkey -in "$dir/jwt-signing-key.pem" -pubout -out "$dir/jwt-public-keys.pem"
    echo "make-secrets: wrote $dir/jwt-public-keys.pem"
fi
for secret in otp-hmac-key service-secret push-webhook-secret; do
    if [[ ! -e $dir/$secret ]]; then
        openssl rand -base64 48 | tr -d '\n' >"$dir/$secret"
        echo "make-secrets: wrote $dir/$secret"
    fi
done

# The containers run as uid 10001 and compose bind-mounts each file as it is on the host: the
# files are readable by all, inside a directory only their owner can enter.
chmod 644 "$dir"/jwt-signing-key.pem "$dir"/jwt-public-keys.pem "$dir"/otp-hmac-key "$dir"/service-secret \
    "$dir"/push-webhook-secret
