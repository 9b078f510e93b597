//! wasm->host call overhead: N `link.get("lo")` calls made by a recipe
//! against the same N calls made natively through the same gate and kernel
//! backend, in one process. Run inside a throwaway namespace (bench/run.sh).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use netsh::backend::kernel::Kernel;
use netsh::console::{Console, Terminal};
use netsh::gate::Gate;
use netsh::ops::Op;
use netsh::runtime::{Cache, Call, Limits, Runtime};

const CALLS: u32 = 10_000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let wasm = std::env::args().nth(1).map(PathBuf::from).ok_or("usage: call-overhead CALLBENCH.wasm")?;
    let gate = Gate::new(Arc::new(Kernel::default()), "bench");
    let get_lo = || Op::LinkGet { ns: None, name: "lo".into() };
    gate.call(get_lo()).await?;

    let started = Instant::now();
    for _ in 0..CALLS {
        gate.call(get_lo()).await?;
    }
    let native_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(CALLS);

    let console: Arc<dyn Console> = Arc::new(Terminal);
    let runtime = Runtime::new(Cache::for_user())?;
    let loaded = runtime.load(&wasm)?;
    let run = |n: u32| {
        let (runtime, loaded, gate, console) = (&runtime, &loaded, gate.clone(), console.clone());
        async move {
            let started = Instant::now();
            runtime
                .run(loaded, Call::Run(vec![n.to_string()]), gate, console, Limits::default())
                .await
                .map(|_| started.elapsed())
        }
    };
    let empty = run(0).await?;
    let full = run(CALLS).await?;
    let wasm_us = (full.saturating_sub(empty)).as_secs_f64() * 1e6 / f64::from(CALLS);

    println!("link.get(\"lo\") x {CALLS}");
    println!("  native through the gate: {native_us:8.2} us/call");
    println!("  from a wasm recipe:      {wasm_us:8.2} us/call");
    println!("  wasm->host overhead:     {:8.2} us/call", wasm_us - native_us);
    println!("  (instantiate + run of an empty recipe: {:.2} ms)", empty.as_secs_f64() * 1e3);
    Ok(())
}
