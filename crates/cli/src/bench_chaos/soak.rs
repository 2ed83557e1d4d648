//! `ferry bench soak`: Ferry at a steady rate for a long time (an hour by default), every
//! service its own OS process on production-durable servers, the warehouse shipping and
//! recounting throughout, a third of what is shipped coming back. It samples each process's resident memory and open file
//! descriptors, and PostgreSQL's client connections, and proves none of them grows once
//! warmed up: a leak that a minute-long benchmark cannot see shows here (issue 20).

use std::time::{Duration, Instant};

use ferry_sim_centra::OrderMix;
use rand::SeedableRng;

use super::rig::{Rig, RigSpec, change_stock, return_new, ship_new};
use super::{Observe, Verdict, round1};

#[derive(clap::Args, Debug, Clone)]
pub struct SoakArgs {
    /// How long orders arrive.
    #[arg(long, default_value_t = 60)]
    pub minutes: u64,
    /// Orders created per second.
    #[arg(long, default_value_t = 200)]
    pub rate: usize,
    /// Minutes before the figures count: pools, caches and buffers fill — the inventory
    /// pusher keeps the last 15 minutes of posted orders.
    #[arg(long, default_value_t = 20)]
    pub warmup_minutes: u64,
    /// Shipments the warehouse makes per second (oldest orders first).
    #[arg(long, default_value_t = 50)]
    pub ship_per_sec: usize,
    /// Centra's request quota per 10 s (the other buckets scale with it): generous, so
    /// the run measures Ferry rather than the quota.
    #[arg(long, default_value_t = 50_000)]
    pub centra_requests_per_10s: u32,
    /// Seconds between two samples.
    #[arg(long, default_value_t = 10)]
    pub sample_secs: u64,
    /// Replicas of each service.
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// Sizes whose ERP stock changes during the run.
    #[arg(long, default_value_t = 40)]
    pub skus: usize,
    /// How long, after the last order, the run may take to converge.
    #[arg(long, default_value_t = 300)]
    pub settle_secs: u64,
    /// Largest growth of a process's memory, warm-up to the end, that still counts as flat.
    #[arg(long, default_value_t = 10.0)]
    pub max_rss_growth_pct: f64,
    #[arg(long, default_value_t = 11)]
    pub seed: u64,
    /// The `ferry` binary the services run as (default: this one).
    #[arg(long)]
    pub exe: Option<std::path::PathBuf>,
}

/// Descriptors a process may hold beyond the most it held in the first window (pooled
/// connections opened on demand).
const FDS_SLACK: i64 = 2;

/// One service process over the run (medians of the first and the last window after the
/// warm-up).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProcessFigures {
    pub service: &'static str,
    pub replica: usize,
    pub rss_mb_warm: f64,
    pub rss_mb_end: f64,
    pub rss_mb_max: f64,
    pub rss_growth_pct: f64,
    pub fds_warm: u64,
    pub fds_end: u64,
}

/// The last line.
#[derive(Debug, serde::Serialize)]
pub struct SoakReport {
    pub minutes: u64,
    pub orders: usize,
    pub orders_per_sec: f64,
    pub samples: usize,
    /// The largest memory growth of any service process, warm-up to the end.
    pub rss_growth_pct: f64,
    /// The largest growth of any process's open descriptors beyond the most it had in
    /// the first window.
    pub fds_growth: i64,
    pub pg_connections_warm: i64,
    pub pg_connections_end: i64,
    pub pg_connections_max: i64,
    /// Orders the reconciler had not judged reconciled, at the last sample before the
    /// orders stopped (how far it trailed at this rate).
    pub reconciler_lag: usize,
    /// Returns completed in Centra (each must become one credit note).
    pub returns: usize,
    #[serde(flatten)]
    pub verdict: Verdict,
    pub crashes: usize,
    pub flat: bool,
    pub seconds: f64,
    pub processes: Vec<ProcessFigures>,
}

/// What one sample read.
#[derive(Debug, Clone, Default)]
struct Sample {
    /// Per replica: resident memory (bytes) and open descriptors; `None` if unreadable.
    processes: Vec<Option<(u64, u64)>>,
    pg_connections: i64,
}

pub async fn soak(args: SoakArgs) -> anyhow::Result<()> {
    let report = run(&args).await?;
    println!("{}", serde_json::to_string(&report)?);
    anyhow::ensure!(
        report.flat && report.verdict.clean() && report.crashes == 0,
        "the soak run is not clean: {report:?}"
    );
    Ok(())
}

pub async fn run(args: &SoakArgs) -> anyhow::Result<SoakReport> {
    anyhow::ensure!(
        args.warmup_minutes < args.minutes,
        "the warm-up must end before the run does"
    );
    let observe = Observe::default();
    let mut rig = Rig::start(RigSpec {
        name: "soak",
        seed: args.seed,
        skus: args.skus,
        replicas: args.replicas,
        centra_requests_per_10s: args.centra_requests_per_10s,
        // An hour at 200 orders/s is 720,000 orders: ~3.5 GB in the CENTRA stream.
        stream_gib: u32::try_from((args.rate as u64 * args.minutes * 60 * 5_000) >> 30)
            .unwrap_or(u32::MAX)
            .max(1)
            + 1,
        exe: args.exe.clone(),
        observe: &observe,
    })
    .await?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    change_stock(&mut rig.world, &mut rng, usize::MAX);
    // Everyday webhook trouble: a few lost (the Events queue and the resync find those
    // orders), some sent twice.
    let webhooks = ferry_sim_centra::WebhookConfig {
        drop_per_mille: 10,
        duplicate_per_mille: 50,
        ..rig.webhooks.clone()
    };
    rig.send_webhooks(webhooks);
    let mix = OrderMix {
        hold_pct: 0,
        pending_pct: 0,
        ..OrderMix::default()
    };
    let run_for = Duration::from_secs(args.minutes * 60);
    let warmup = Duration::from_secs(args.warmup_minutes * 60);
    let every = Duration::from_secs(args.sample_secs.max(1));
    let mut samples: Vec<(Duration, Sample)> = Vec::new();
    let mut crashes = 0;
    let mut reconciler_lag = 0;
    let begun = Instant::now();
    let mut last_second = 0;
    let mut next_sample = Duration::ZERO;
    let mut next_progress = Duration::from_secs(60);
    while begun.elapsed() < run_for {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = begun.elapsed();
        let due = (now.as_secs_f64() * args.rate as f64) as usize;
        if due > rig.world.orders.len() {
            let made = rig
                .world
                .centra
                .generate(due - rig.world.orders.len(), &mix);
            rig.world.orders.extend(made);
        }
        if now.as_secs() > last_second {
            last_second = now.as_secs();
            ship_new(&mut rig.world, args.ship_per_sec);
            return_new(&mut rig.world, args.ship_per_sec);
            change_stock(&mut rig.world, &mut rng, 3);
            crashes += rig.fleet.restart_crashed()?;
        }
        if now >= next_sample {
            next_sample += every;
            samples.push((now, sample(&rig).await));
        }
        if now >= next_progress {
            next_progress += Duration::from_secs(60);
            let reconciled = rig
                .world
                .store
                .verdict_counts(super::rig::TENANT)
                .await
                .map_or(0, |c| c.reconciled as usize);
            reconciler_lag = rig.world.orders.len().saturating_sub(reconciled);
            eprintln!(
                "soak: {:>3} min  orders {:>7}  shipped {:>7}  reconciled {:>7}  rss MB {}",
                now.as_secs() / 60,
                rig.world.orders.len(),
                rig.world.shipped.len(),
                reconciled,
                samples
                    .last()
                    .map(|(_, s)| rss_line(&rig, s))
                    .unwrap_or_default()
            );
        }
    }
    let orders_per_sec = round1(rig.world.orders.len() as f64 / begun.elapsed().as_secs_f64());
    eprintln!(
        "soak: {} orders in {:.0} s; converging",
        rig.world.orders.len(),
        begun.elapsed().as_secs_f64()
    );
    let deadline = Instant::now() + Duration::from_secs(args.settle_secs);
    let verdict = loop {
        crashes += rig.fleet.restart_crashed()?;
        let v = rig.world.judge().await;
        if v.clean() || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    };

    let measured: Vec<&Sample> = samples
        .iter()
        .filter(|(at, _)| *at >= warmup)
        .map(|(_, s)| s)
        .collect();
    let replicas: Vec<(&'static str, usize)> = rig
        .fleet
        .replicas
        .iter()
        .map(|r| (r.service, r.index))
        .collect();
    let figures = Figures::of(&measured, &replicas);
    let report = SoakReport {
        minutes: args.minutes,
        orders: rig.world.orders.len(),
        orders_per_sec,
        samples: samples.len(),
        rss_growth_pct: figures
            .processes
            .iter()
            .map(|p| p.rss_growth_pct)
            .fold(f64::MIN, f64::max),
        fds_growth: figures.fds_growth,
        pg_connections_warm: figures.pg_warm,
        pg_connections_end: figures.pg_end,
        pg_connections_max: figures.pg_max,
        reconciler_lag,
        returns: rig.world.returns.len(),
        verdict,
        crashes,
        flat: false,
        seconds: round1(rig.started.elapsed().as_secs_f64()),
        processes: figures.processes,
    };
    // Connection pools open and close connections on demand (sqlx, up to
    // `database.max_connections` per process): a socket or two more at the end is a pool
    // breathing, not a leak, which grows without bound.
    let flat = report.rss_growth_pct <= args.max_rss_growth_pct
        && report.fds_growth <= FDS_SLACK
        && report.pg_connections_end <= figures.pg_warm_max + (figures.pg_warm_max / 10).max(2);
    rig.finish(&observe).await?;
    Ok(SoakReport { flat, ..report })
}

/// Reads every service process's memory and descriptors, and PostgreSQL's connections.
async fn sample(rig: &Rig) -> Sample {
    let processes = (0..rig.fleet.replicas.len())
        .map(|i| rig.fleet.pid(i).and_then(proc_figures))
        .collect();
    let pg_connections = sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'",
    )
    .fetch_one(rig.world.store.pool())
    .await
    .unwrap_or(-1);
    Sample {
        processes,
        pg_connections,
    }
}

/// A process's resident memory (bytes) and open file descriptors, from `/proc`.
fn proc_figures(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some((rss_kb * 1024, fds))
}

fn rss_line(rig: &Rig, s: &Sample) -> String {
    rig.fleet
        .replicas
        .iter()
        .zip(&s.processes)
        .map(|(r, p)| match p {
            Some((rss, _)) => format!("{}={:.0}", r.service, *rss as f64 / 1e6),
            None => format!("{}=?", r.service),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The figures of the samples taken after the warm-up.
struct Figures {
    processes: Vec<ProcessFigures>,
    fds_growth: i64,
    pg_warm: i64,
    pg_warm_max: i64,
    pg_end: i64,
    pg_max: i64,
}

impl Figures {
    /// Compares the first sixth of the measured samples with the last sixth (medians, so
    /// one sample taken mid-burst does not decide).
    fn of(measured: &[&Sample], replicas: &[(&'static str, usize)]) -> Figures {
        let window = (measured.len() / 6).max(1);
        let first = &measured[..window.min(measured.len())];
        let last = &measured[measured.len().saturating_sub(window)..];
        let mut processes = Vec::new();
        let mut fds_growth = i64::MIN;
        for (i, &(service, replica)) in replicas.iter().enumerate() {
            let of = |samples: &[&Sample], pick: fn(&(u64, u64)) -> u64| -> Vec<u64> {
                samples
                    .iter()
                    .filter_map(|s| s.processes.get(i).copied().flatten())
                    .map(|p| pick(&p))
                    .collect()
            };
            let rss_warm = median(of(first, |p| p.0));
            let rss_end = median(of(last, |p| p.0));
            let rss_max = of(measured, |p| p.0).into_iter().max().unwrap_or(0);
            let fds_warm_max = of(first, |p| p.1).into_iter().max().unwrap_or(0);
            let fds_end = median(of(last, |p| p.1));
            fds_growth = fds_growth.max(fds_end as i64 - fds_warm_max as i64);
            processes.push(ProcessFigures {
                service,
                replica,
                rss_mb_warm: mb(rss_warm),
                rss_mb_end: mb(rss_end),
                rss_mb_max: mb(rss_max),
                rss_growth_pct: if rss_warm > 0 {
                    round1((rss_end as f64 / rss_warm as f64 - 1.0) * 100.0)
                } else {
                    0.0
                },
                fds_warm: median(of(first, |p| p.1)),
                fds_end,
            });
        }
        let pg = |samples: &[&Sample]| -> Vec<u64> {
            samples
                .iter()
                .filter(|s| s.pg_connections >= 0)
                .map(|s| s.pg_connections as u64)
                .collect()
        };
        Figures {
            processes,
            fds_growth: if fds_growth == i64::MIN {
                0
            } else {
                fds_growth
            },
            pg_warm: median(pg(first)) as i64,
            pg_warm_max: pg(first).into_iter().max().unwrap_or(0) as i64,
            pg_end: median(pg(last)) as i64,
            pg_max: pg(measured).into_iter().max().unwrap_or(0) as i64,
        }
    }
}

fn median(mut v: Vec<u64>) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[v.len() / 2]
}

fn mb(bytes: u64) -> f64 {
    round1(bytes as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(rss: impl Fn(usize) -> u64, fds: impl Fn(usize) -> u64, pg: i64) -> Vec<Sample> {
        (0..60)
            .map(|i| Sample {
                processes: vec![Some((rss(i), fds(i)))],
                pg_connections: pg,
            })
            .collect()
    }

    fn figures(s: &[Sample]) -> Figures {
        let refs: Vec<&Sample> = s.iter().collect();
        Figures::of(&refs, &[("ingest", 0)])
    }

    #[test]
    fn memory_that_keeps_growing_is_seen_and_noise_is_not() {
        let mb = 1_000_000;
        // 50 MB, jittering by a megabyte: flat.
        let flat = figures(&samples(|i| 50 * mb + (i as u64 % 3) * mb, |_| 40, 8));
        let p = &flat.processes[0];
        assert!(p.rss_growth_pct.abs() <= 4.0, "{p:?}");
        assert_eq!((flat.fds_growth, flat.pg_end), (0, 8));
        // A leak of half a megabyte a sample: 50 → ~80 MB.
        let leak = figures(&samples(|i| 50 * mb + i as u64 * mb / 2, |_| 40, 8));
        assert!(
            leak.processes[0].rss_growth_pct > 40.0,
            "{:?}",
            leak.processes
        );
        // A descriptor lost every few samples.
        let fds = figures(&samples(|_| 50 * mb, |i| 40 + i as u64 / 5, 8));
        assert!(fds.fds_growth >= 8, "{}", fds.fds_growth);
    }

    #[test]
    fn an_unreadable_sample_counts_for_nothing() {
        let mut s = samples(|_| 10_000_000, |_| 12, 3);
        s[0].processes[0] = None;
        s[59].pg_connections = -1;
        let f = figures(&s);
        assert_eq!(f.processes[0].rss_mb_warm, 10.0);
        assert_eq!((f.pg_warm, f.pg_end, f.pg_max), (3, 3, 3));
    }
}
