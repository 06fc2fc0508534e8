# Echo's everyday commands (`pip install rust-just` provides `just`).

# List the recipes.
default:
    @just --list

# Run the whole mesh on embedded defaults (SQLite, in-process bus, in-memory cache).
run *ARGS:
    cargo run --release -- {{ ARGS }}

# Run every test in the workspace (real servers are used when up: see `just services`).
test:
    cargo test --workspace

# Run the reliability suite of docs/reliability.md (authorization matrix, chaos, outages).
reliability:
    cargo test --test authorization_matrix --test live_chaos --test live_instances --test presence_failures --test malformed_requests --test fuzz_requests --test fuzz_frames --test outages --test instance_kill --test relay_failover --test edge_scale_out

# Live delivery chaos for longer than CI does (docs/reliability.md, R1): `just chaos 600` writes for 600 s per backend.
chaos SECS="600":
    CHAOS_SECS={{ SECS }} cargo test --test live_chaos -- --nocapture

# Fuzz every RPC for longer than CI does (docs/reliability.md, R4): `just fuzz 400 7` = 400 requests per RPC, seed 7.
fuzz CASES="400" SEED="1":
    FUZZ_CASES={{ CASES }} FUZZ_SEED={{ SEED }} cargo test --test fuzz_requests -- --nocapture

# Damage the gRPC framing of every RPC for longer than CI does (docs/reliability.md, R4): `just fuzz-frames 50 7` = 50 rounds, seed 7.
fuzz-frames ROUNDS="50" SEED="1":
    FRAMES_ROUNDS={{ ROUNDS }} FRAMES_SEED={{ SEED }} cargo test --test fuzz_frames -- --nocapture

# Check formatting and lints of the Rust code and the protos, as CI does.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings
    buf lint
    buf format -d --exit-code
    bash scripts/buf-breaking.sh
    cargo machete
    cargo fetch --locked --quiet
    cargo deny --offline check licenses bans sources

# Format the Rust code and the protos in place.
fmt:
    cargo fmt --all
    buf format -w

# Start a debug build and probe it with grpcurl and curl (reflection, health, metrics, SIGTERM).
smoke:
    cargo build
    bash scripts/smoke.sh target/debug/echo

# Run the grpcurl walkthrough of docs/messages.md against a fresh embedded server.
walkthrough:
    cargo build
    bash scripts/docs-walkthrough.sh target/debug/echo

# Run the Python live client of docs/live-client.md through a crash, a resync and outages.
live-example:
    cargo build
    bash scripts/live-example.sh target/debug/echo

# Check the Python client (clients/python): stubs current, pip install into a venv, a journey against a debug echo.
python-client:
    cargo build
    bash clients/python/tests/run.sh target/debug/echo

# The web chat (docs/web.md): regenerate clients/ts and web/dist, then two users in headless Chromium.
web-test:
    cargo build
    bash web/test/run.sh target/debug/echo

# Statically check deploy/ (YAML, compose, Kubernetes manifests, ECHO_* variables).
deploy-check:
    bash deploy/check.sh

# Check deploy/observability/ (promtool tests the alerts; their metrics and the dashboard's are in a live /metrics).
observability-check:
    cargo build
    bash deploy/observability/check.sh target/debug/echo

# Start deploy/compose.yaml's Echo as processes (its exact environment, local servers) and walk
# a journey through the edge; `cargo build` first, needs grpcurl and `just services`.
deploy-run *ARGS:
    cargo build
    DEPLOY_CHECK_BIN=target/debug/echo bash deploy/check.sh
    python3 deploy/run-local.py --bin target/debug/echo {{ ARGS }}

# Soak a child echo under a steady mixed load (docs/reliability.md, R6): `just soak 3600 --backend real`.
soak SECS="3600" *ARGS:
    cargo build --release -p echo -p echo-bench
    target/release/echo-bench --server child {{ ARGS }} soak --duration {{ SECS }} --check --strict

# Start whichever of PostgreSQL, NATS and Redis is down on its standard local port.
services:
    bash scripts/services.sh

# (`cargo build --release` builds echo and echo-bench, the default members, with the features
# `cargo run --release` uses: nothing `just run` built is built again.)
# Load Echo and print figures (docs/BENCHMARKS.md): every scenario, or `just bench <scenario> [flags]`.
bench *ARGS:
    cargo build --release
    target/release/echo-bench {{ ARGS }}

# Apply every service's database migrations and exit.
migrate:
    cargo run --release -- migrate
