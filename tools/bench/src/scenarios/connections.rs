//! `connections`: K idle Subscribe streams and what they cost the server in memory, in two
//! layouts: each stream on its own HTTP/2 connection (as K phones are), spread over several
//! 127.0.0.x source addresses, and K streams multiplexed over a few connections (as behind a
//! proxy): `--mux-connections` or, at most `--streams-per-connection` streams a connection
//! (the server takes 100 a connection), as many more as K needs. Each layout gets a fresh server, so the second does not inherit the first's heap.
//!
//! Memory is the resident size (VmRSS) of the server process before and after, read from
//! /proc. An in-process server shares the bench's process, so its figure includes the client
//! side too; the scenario therefore prefers a child process.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{StreamExt as _, TryStreamExt as _};
use serde_json::json;

use super::Run;
use crate::cli::{ConnectionsArgs, Global, ServerKind};
use crate::client::live::{self, Opened};
use crate::client::{Bearer, connect, connections_for, layout as layout_of, message_client};
use crate::report::{Failed, Report, note, round1};
use crate::server::ServerSpec;
use crate::stats::per_second;

/// Descriptors kept free for everything else a process holds (databases, logs, listeners).
const SPARE_DESCRIPTORS: usize = 500;
/// Streams opened and closed before measuring, so first-use allocations are not counted.
const WARM_UP_STREAMS: usize = 50;

/// The two layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    OwnConnection,
    Multiplexed,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::OwnConnection => "one connection per stream",
            Layout::Multiplexed => "multiplexed",
        }
    }
}

/// Run the scenario.
pub async fn run(args: &ConnectionsArgs, global: &Global) -> anyhow::Result<Vec<Report>> {
    let mut reports = Vec::new();
    for layout in [Layout::OwnConnection, Layout::Multiplexed] {
        let measured = Run::with(global, ServerKind::Child, async |run| {
            measure(args, global, run, layout).await
        })
        .await;
        match measured {
            Ok(report) => reports.push(report),
            Err(error) => {
                // The layout measured keeps its figures; this one says why it has none.
                let reason = format!("{}: {error:#}", layout.name());
                let setup = ServerSpec::from_flags(global, ServerKind::Child).setup();
                let figures = json!({
                    "layout": layout.name(),
                    "streams": args.streams,
                    "streams_per_connection": global.streams_per_connection,
                });
                reports.push(Report::not_measured(
                    "connections",
                    &setup,
                    layout.name(),
                    figures,
                    &reason,
                ));
                return Err(Failed { reports, reason }.into());
            }
        }
    }
    Ok(reports)
}

/// One idle stream and what keeps it open.
struct Held {
    _channel: tonic::transport::Channel,
    _stream: Opened,
}

async fn measure(
    args: &ConnectionsArgs,
    global: &Global,
    run: &Run,
    layout: Layout,
) -> anyhow::Result<Report> {
    let streams = fit_to_descriptors(args.streams, layout, run.echo.is_in_process());
    let mux: Vec<tonic::transport::Channel> = match layout {
        Layout::OwnConnection => Vec::new(),
        Layout::Multiplexed => {
            let mut channels = Vec::new();
            let wanted =
                connections_for(streams, args.mux_connections, global.streams_per_connection);
            for _ in 0..wanted {
                channels.push(connect(&run.echo.endpoint, None).await?);
            }
            channels
        }
    };
    let open_one = async |index: usize| -> anyhow::Result<Held> {
        let channel = match layout {
            Layout::OwnConnection => {
                let source = source_address(index, args.per_address);
                connect(&run.echo.endpoint, Some(IpAddr::V4(source))).await?
            }
            Layout::Multiplexed => mux[index % mux.len()].clone(),
        };
        let bearer = Bearer::new(&run.echo.mint_token(uuid::Uuid::now_v7())?)?;
        let mut client = message_client(&channel, &bearer);
        let stream = live::open(&mut client, String::new()).await?;
        Ok(Held {
            _channel: channel,
            _stream: stream,
        })
    };

    let warm_up: Vec<Held> = futures::stream::iter(0..WARM_UP_STREAMS)
        .map(&open_one)
        .buffer_unordered(args.open_concurrency.max(1))
        .try_collect()
        .await?;
    drop(warm_up);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = run.echo.memory_kib();

    let bar = run.progress.bar(streams as u64, "opening idle streams");
    let started = Instant::now();
    let held: Vec<Held> = futures::stream::iter(0..streams)
        .map(|index| {
            let bar = &bar;
            let open_one = &open_one;
            async move {
                let held = open_one(index).await;
                bar.inc(1);
                held
            }
        })
        .buffer_unordered(args.open_concurrency.max(1))
        .try_collect()
        .await
        .with_context(|| {
            let connections = match layout {
                Layout::OwnConnection => streams,
                Layout::Multiplexed => mux.len(),
            };
            format!(
                "opening idle Subscribe: {}",
                layout_of(streams, connections)
            )
        })?;
    let opening = started.elapsed();
    bar.finish_and_clear();
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    let after = run.echo.memory_kib();
    let connections = match layout {
        Layout::OwnConnection => held.len(),
        Layout::Multiplexed => mux.len(),
    };
    drop(held);

    let per_stream_kib = match (before, after) {
        (Some(before), Some(after)) if streams > 0 => {
            Some(round1(after.saturating_sub(before) as f64 / streams as f64))
        }
        _ => None,
    };
    let memory_of = if run.echo.is_in_process() {
        "bench process (client and server)"
    } else {
        "server process"
    };
    let per_stream = per_stream_kib.map_or("unknown (no server pid)".to_owned(), |kib| {
        format!("{kib} KiB")
    });
    let line = format!(
        "{streams} idle streams, {} ({connections} connections): {per_stream} of {memory_of} \
         memory per stream (RSS {} → {} MiB), opened at {}/s",
        layout.name(),
        mib(before),
        mib(after),
        per_second(streams as u64, opening),
    );
    let figures = json!({
        "layout": layout.name(),
        "streams": streams,
        "connections": connections,
        "streams_per_connection": streams.div_ceil(connections.max(1)),
        "rss_before_kib": before,
        "rss_after_kib": after,
        "per_stream_kib": per_stream_kib,
        "memory_of": memory_of,
        "opened_per_s": per_second(streams as u64, opening),
        "opening_s": opening.as_secs_f64(),
    });
    Ok(Report::new("connections", &run.setup, line, figures))
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("?".into(), |kib| format!("{}", round1(kib as f64 / 1024.0)))
}

/// The source address of the `index`th connection: 127.0.0.2 for the first `per_address`,
/// then 127.0.0.3, … (each address pair has its own ~28,000 ephemeral ports).
fn source_address(index: usize, per_address: usize) -> Ipv4Addr {
    let n = 2 + index / per_address.max(1);
    let n = u16::try_from(n).unwrap_or(u16::MAX);
    let [high, low] = n.to_be_bytes();
    Ipv4Addr::new(127, 0, high, low)
}

/// At most as many streams as the process may hold descriptors for (each own-connection
/// stream is a socket; in-process, both ends of it are ours), with a note when cut.
fn fit_to_descriptors(streams: usize, layout: Layout, in_process: bool) -> usize {
    let per_stream = match (layout, in_process) {
        (Layout::Multiplexed, _) => return streams,
        (Layout::OwnConnection, false) => 1,
        (Layout::OwnConnection, true) => 2,
    };
    let Some(limit) = open_files_limit() else {
        return streams;
    };
    let fit = limit.saturating_sub(SPARE_DESCRIPTORS) / per_stream;
    if streams > fit {
        note(&format!(
            "{streams} streams need {} descriptors; this process may open {limit}: using {fit}",
            streams * per_stream
        ));
        return fit;
    }
    streams
}

fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    soft_open_files(&limits)
}

fn soft_open_files(limits: &str) -> Option<usize> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_spread_over_source_addresses() {
        assert_eq!(source_address(0, 2000), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(source_address(1999, 2000), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(source_address(2000, 2000), Ipv4Addr::new(127, 0, 0, 3));
        assert_eq!(source_address(14_999, 2000), Ipv4Addr::new(127, 0, 0, 9));
        // Past 127.0.0.255 it moves on to 127.0.1.x.
        assert_eq!(source_address(254, 1), Ipv4Addr::new(127, 0, 1, 0));
        assert_eq!(source_address(5, 0), Ipv4Addr::new(127, 0, 0, 7));
    }

    #[test]
    fn the_soft_open_files_limit_is_read() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            20000                20000                files     \n";
        assert_eq!(soft_open_files(limits), Some(20_000));
        assert_eq!(soft_open_files("nothing"), None);
    }

    #[test]
    fn multiplexed_streams_need_no_descriptors_of_their_own() {
        assert_eq!(
            fit_to_descriptors(1_000_000, Layout::Multiplexed, true),
            1_000_000
        );
    }
}
