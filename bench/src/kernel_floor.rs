//! The kernel's own cost for N containers, the way netsh's kernel backend
//! makes them but with nothing above it (no wasm, policy, journal, audit or
//! kv store): the floor the other columns are compared with. Per container it
//! does what the docker-bridge recipe and the bench's script do: namespace,
//! veth in hairpin mode, addresses, route, resolv.conf, hostname, a line in the
//! shared hosts file, a published port; down removes the rule and the
//! namespace. Run inside a throwaway namespace (bench/run.sh).

use std::sync::Arc;
use std::time::{Duration, Instant};

use netsh::backend::Backend;
use netsh::backend::kernel::Kernel;
use netsh::ops::{EtcFile, FwRule, Op, Proto, Reply, RouteSpec, VethSpec};

async fn apply(kernel: &Kernel, op: Op) -> Result<Reply, Box<dyn std::error::Error>> {
    Ok(kernel.apply(op).await?)
}

async fn veths(kernel: &Kernel) -> usize {
    match kernel.apply(Op::LinkList { ns: None }).await {
        Ok(Reply::Links(links)) => links.iter().filter(|l| l.kind == "veth").count(),
        _ => 0,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let kernel = Arc::new(Kernel::default());
    apply(&kernel, Op::LinkAddBridge { ns: None, name: "br-floor".into(), mtu: None }).await?;
    apply(&kernel, Op::AddrAdd { ns: None, dev: "br-floor".into(), cidr: "10.89.0.1/16".parse()?, nodad: false })
        .await?;
    apply(&kernel, Op::LinkSetUp { ns: None, name: "br-floor".into(), up: true }).await?;
    let mut rules = Vec::new();
    let started = Instant::now();
    for i in 1..=n {
        let ns = Some(format!("f{i}"));
        let ip = format!("10.89.{}.{}", (i + 1) / 256, (i + 1) % 256);
        apply(&kernel, Op::NetnsCreate { name: format!("f{i}") }).await?;
        let spec = VethSpec {
            name: format!("vf{i}"),
            peer: "eth0".into(),
            peer_ns: ns.clone(),
            peer_mac: None,
            master: Some("br-floor".into()),
            up: true,
            mtu: None,
            hairpin: true,
        };
        apply(&kernel, Op::LinkAddVeth { ns: None, spec }).await?;
        apply(&kernel, Op::LinkSetUp { ns: ns.clone(), name: "lo".into(), up: true }).await?;
        apply(
            &kernel,
            Op::AddrAdd { ns: ns.clone(), dev: "eth0".into(), cidr: format!("{ip}/16").parse()?, nodad: false },
        )
        .await?;
        apply(&kernel, Op::LinkSetUp { ns: ns.clone(), name: "eth0".into(), up: true }).await?;
        let route = RouteSpec {
            dest: "0.0.0.0/0".parse()?,
            via: Some("10.89.0.1".parse()?),
            dev: None,
            onlink: false,
            metric: None,
            src: None,
            table: None,
            proto: None,
            scope: None,
        };
        apply(&kernel, Op::RouteAdd { ns, route }).await?;
        let rule = FwRule::Publish {
            proto: Proto::Tcp,
            host_ip: None,
            first: 30000 + i as u16,
            last: 30000 + i as u16,
            to_ip: ip.parse()?,
            to_port: 80,
        };
        apply(
            &kernel,
            Op::NetnsWriteEtc {
                name: format!("f{i}"),
                file: EtcFile::ResolvConf,
                contents: "nameserver 8.8.8.8\n".into(),
            },
        )
        .await?;
        apply(
            &kernel,
            Op::NetnsWriteEtc { name: format!("f{i}"), file: EtcFile::Hostname, contents: format!("f{i}\n") },
        )
        .await?;
        apply(&kernel, Op::HostsAdd { group: "floor".into(), line: format!("{ip} f{i}") }).await?;
        apply(&kernel, Op::HostsShare { name: format!("f{i}"), group: "floor".into() }).await?;
        match apply(&kernel, Op::FwAdd { ns: None, owner: "floor".into(), rule }).await? {
            Reply::Rule { id, .. } => rules.push(id),
            other => return Err(format!("unexpected reply {other:?}").into()),
        }
    }
    kernel.flush().await?;
    let up = started.elapsed();
    let started = Instant::now();
    for (i, id) in (1..=n).zip(rules) {
        let ip = format!("10.89.{}.{}", (i + 1) / 256, (i + 1) % 256);
        apply(&kernel, Op::FwRemove { ns: None, id }).await?;
        apply(&kernel, Op::HostsRemove { group: "floor".into(), line: format!("{ip} f{i}") }).await?;
        apply(&kernel, Op::NetnsDelete { name: format!("f{i}") }).await?;
    }
    kernel.flush().await?;
    while veths(&kernel).await > 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let down = started.elapsed();
    println!("{:.1} {:.1}", up.as_secs_f64() * 1e3, down.as_secs_f64() * 1e3);
    Ok(())
}
