//! Tracked connections, as /proc/thread-self/net/nf_conntrack lists those
//! of the calling thread's namespace.

use std::net::IpAddr;

use crate::error::{CapError, CapResult};
use crate::ops::{Flow, Tuple};

const PATH: &str = "/proc/thread-self/net/nf_conntrack";

/// Every tracked connection of this thread's namespace (none while the
/// kernel tracks nothing there yet).
pub fn list() -> CapResult<Vec<Flow>> {
    match std::fs::read_to_string(PATH) {
        Ok(text) => Ok(text.lines().filter_map(parse).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(CapError::io(&e, format!("read {PATH}"))),
    }
}

/// `ipv4 2 tcp 6 117 TIME_WAIT src=.. dst=.. sport=.. dport=.. src=.. dst=.. sport=.. dport=.. [ASSURED] mark=0 ...`.
fn parse(line: &str) -> Option<Flow> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let (proto, timeout) = (words.get(2)?.to_string(), words.get(4)?.parse().ok()?);
    let rest = &words[5..];
    let state = rest.first().filter(|w| !w.contains('=') && !w.starts_with('[')).map(|w| w.to_string());
    let mut tuples: Vec<Vec<(&str, &str)>> = Vec::new();
    for (key, value) in rest.iter().filter_map(|w| w.split_once('=')) {
        if key == "src" {
            tuples.push(Vec::new());
        }
        if let Some(t) = tuples.last_mut() {
            t.push((key, value));
        }
    }
    let flags = rest.iter().filter_map(|w| w.strip_prefix('[')?.strip_suffix(']')).map(String::from).collect();
    Some(Flow { proto, timeout, state, original: tuple(tuples.first()?)?, reply: tuple(tuples.get(1)?)?, flags })
}

fn tuple(fields: &[(&str, &str)]) -> Option<Tuple> {
    let get = |k: &str| fields.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    Some(Tuple {
        src: get("src")?.parse::<IpAddr>().ok()?,
        dst: get("dst")?.parse::<IpAddr>().ok()?,
        sport: get("sport").and_then(|p| p.parse().ok()),
        dport: get("dport").and_then(|p| p.parse().ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masqueraded_connection_reads_back_both_directions() {
        let line = "ipv4     2 tcp      6 117 TIME_WAIT src=172.20.0.2 dst=10.200.0.2 sport=40000 dport=80 \
                    src=10.200.0.2 dst=10.200.0.1 sport=80 dport=40000 [ASSURED] mark=0 zone=0 use=2";
        let flow = parse(line).unwrap();
        assert_eq!((flow.proto.as_str(), flow.timeout, flow.state.as_deref()), ("tcp", 117, Some("TIME_WAIT")));
        assert_eq!(flow.reply.dst, "10.200.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(flow.original.dport, Some(80));
        assert_eq!(flow.flags, ["ASSURED"]);
        let icmp = "ipv4 2 icmp 1 29 src=10.0.0.2 dst=10.0.0.1 type=8 code=0 id=7 [UNREPLIED] src=10.0.0.1 dst=10.0.0.2 type=0 code=0 id=7 mark=0 use=1";
        let flow = parse(icmp).unwrap();
        assert_eq!((flow.state, flow.original.sport, flow.flags), (None, None, vec!["UNREPLIED".to_string()]));
    }
}
