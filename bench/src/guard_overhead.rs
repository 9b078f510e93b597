//! Cost of policy + audit + journal: per mutating call, and for docker-bridge
//! with 100 containers (one published port each) brought up in one run,
//! with and without them, in one process. Run inside a throwaway namespace
//! (bench/run.sh).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use netsh::audit::Audit;
use netsh::backend::kernel::Kernel;
use netsh::console::{Console, Terminal};
use netsh::gate::Gate;
use netsh::journal::Journal;
use netsh::ops::{Op, Reply};
use netsh::policy::Policy;
use netsh::runtime::{Cache, Call, Limits, Runtime};

const CALLS: u32 = 2_000;
const CONTAINERS: u32 = 100;

fn allow_all() -> Policy {
    Policy::from_flags(&[], &[], true).expect("no grants to parse")
}

/// A gate with or without the audit log and journal (policy checks always run).
fn gate(kernel: &Arc<Kernel>, state: &std::path::Path, guarded: bool) -> Result<Gate, Box<dyn std::error::Error>> {
    let gate = Gate::new(kernel.clone(), "bench").with_policy(&allow_all(), None);
    if !guarded {
        return Ok(gate);
    }
    let run = Arc::new(Journal::new(state).begin("bench")?);
    Ok(gate.with_audit(Audit::new(state)).with_run(run))
}

async fn veths(kernel: &Arc<Kernel>) -> usize {
    match Gate::new(kernel.clone(), "bench").call(Op::LinkList { ns: None }).await {
        Ok(Reply::Links(links)) => links.iter().filter(|l| l.kind == "veth").count(),
        _ => 0,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let wasm = std::env::args().nth(1).map(PathBuf::from).ok_or("usage: guard-overhead docker-bridge.wasm")?;
    let state = std::env::temp_dir().join(format!("netsh-guard-bench-{}", std::process::id()));
    let kernel = Arc::new(Kernel::default());

    println!("one mutating call (ip link set lo up) x {CALLS}");
    let mut per_call = [Duration::ZERO; 2];
    for (i, guarded) in [false, true].into_iter().enumerate() {
        let g = gate(&kernel, &state, guarded)?;
        let started = Instant::now();
        for _ in 0..CALLS {
            g.call(Op::LinkSetUp { ns: None, name: "lo".into(), up: true }).await?;
        }
        per_call[i] = started.elapsed() / CALLS;
    }
    let [bare, full] = per_call.map(|d| d.as_secs_f64() * 1e6);
    println!("  policy only:              {bare:8.1} us/call");
    println!("  policy + audit + journal: {full:8.1} us/call   (+{:.1} us)", full - bare);

    let console: Arc<dyn Console> = Arc::new(Terminal);
    let runtime = Runtime::new(Cache::for_user())?;
    let loaded = runtime.load(&wasm)?;
    let mut up = vec!["create".to_string(), "bench".into(), "--subnet".into(), "10.77.0.0/16".into()];
    for i in 1..=CONTAINERS {
        up.extend([
            ";".into(),
            "connect".into(),
            "bench".into(),
            format!("c{i}"),
            "--publish".into(),
            format!("{}:80", 20000 + i),
        ]);
    }
    println!("\ndocker-bridge up, {CONTAINERS} containers with a published port each, one run");
    let mut times: Vec<(bool, Duration)> = Vec::new();
    for guarded in [false, true, false, true] {
        let g = gate(&kernel, &state, guarded)?;
        let started = Instant::now();
        runtime.run(&loaded, Call::Run(up.clone()), g.clone(), console.clone(), Limits::default()).await?;
        g.flush().await?;
        times.push((guarded, started.elapsed()));
        let plain = gate(&kernel, &state, false)?;
        runtime
            .run(
                &loaded,
                Call::Run(vec!["rm".into(), "bench".into(), "--force".into()]),
                plain.clone(),
                console.clone(),
                Limits::default(),
            )
            .await?;
        plain.flush().await?;
        while veths(&kernel).await > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let best = |guarded: bool| times.iter().filter(|(g, _)| *g == guarded).map(|(_, d)| *d).min().unwrap_or_default();
    let (bare, full) = (best(false).as_secs_f64() * 1e3, best(true).as_secs_f64() * 1e3);
    println!("  without audit + journal:  {bare:8.1} ms (best of 2)");
    println!("  with audit + journal:     {full:8.1} ms (best of 2)");
    println!("  overhead:                 {:8.1} %", (full / bare - 1.0) * 100.0);
    let _ = std::fs::remove_dir_all(&state);
    Ok(())
}
