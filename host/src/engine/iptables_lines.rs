//! iptables lines as the tutorials write them, spelled as the shell's own
//! commands: the FORWARD policy and accepts, SNAT and MASQUERADE, DNAT.
//! netsh keeps its own rules (tagged, journaled, undone), so a line is
//! translated, never handed to iptables; what has no netsh form is refused
//! with the form to use.

/// What an iptables line becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spelled {
    /// The shell's words for it (or the line itself, when it is no iptables line).
    Words(Vec<String>),
    /// Nothing to do, and why.
    Note(String),
}

type Result<T> = std::result::Result<T, String>;

/// The options of one `iptables` line.
#[derive(Debug, Default)]
struct Line<'a> {
    table: Option<&'a str>,
    chain: Option<&'a str>,
    policy: Option<&'a str>,
    input: Option<&'a str>,
    output: Option<&'a str>,
    not_output: bool,
    source: Option<&'a str>,
    dest: Option<&'a str>,
    proto: Option<&'a str>,
    dport: Option<&'a str>,
    ctstate: Option<&'a str>,
    target: Option<&'a str>,
    to: Option<&'a str>,
}

/// An `iptables ...` (or `ip6tables -P ...`) line as netsh words; any
/// other line as it is.
pub fn spelled(words: Vec<String>) -> Result<Spelled> {
    let v6 = match words.first().map(String::as_str) {
        Some("iptables") => false,
        Some("ip6tables") => true,
        _ => return Ok(Spelled::Words(words)),
    };
    let line = options(&words[1..])?;
    let out = |w: &[&str]| Ok(Spelled::Words(w.iter().map(|s| s.to_string()).collect()));
    if let (Some(chain), Some(policy)) = (line.chain, line.policy) {
        return out(&[if v6 { "-6" } else { "-4" }, "fw", "policy", chain, policy]);
    }
    if v6 {
        return Err("ip6tables: only -P FORWARD ACCEPT|DROP is spelled here; fw forward covers both families, and nat masquerade|snat and publish take IPv6 addresses".into());
    }
    match (line.table.unwrap_or("filter"), line.chain, line.target) {
        ("filter", Some("FORWARD"), Some("ACCEPT")) => forward_accept(&line),
        ("nat", Some("POSTROUTING"), Some("SNAT" | "MASQUERADE")) => source_nat(&line),
        ("nat", Some("PREROUTING" | "OUTPUT"), Some("DNAT")) => dnat(&line),
        _ => Err("iptables: netsh spells -P FORWARD, -A FORWARD ... -j ACCEPT, -t nat -A POSTROUTING ... -j SNAT|MASQUERADE and -t nat -A PREROUTING ... -j DNAT; see help fw, help nat, help publish".into()),
    }
}

fn options(args: &[String]) -> Result<Line<'_>> {
    let mut line = Line::default();
    let mut words = args.iter().map(String::as_str).peekable();
    let mut negated = false;
    while let Some(flag) = words.next() {
        let mut value = |what: &str| words.next().ok_or_else(|| format!("iptables {flag}: missing {what}"));
        match flag {
            "!" => {
                negated = true;
                continue;
            }
            "-t" | "--table" => line.table = Some(value("table")?),
            "-A" | "--append" => line.chain = Some(value("chain")?),
            // A position (`-I CHAIN 1`) means nothing to netsh's own chains.
            "-I" | "--insert" => {
                line.chain = Some(value("chain")?);
                words.next_if(|w| w.parse::<u32>().is_ok());
            }
            "-P" | "--policy" => {
                line.chain = Some(value("chain")?);
                line.policy = Some(value("policy")?);
            }
            "-D" | "--delete" => {
                return Err("iptables -D: netsh removes its rules by id (fw ls, then fw rm ID) or by undo".into());
            }
            "-i" | "--in-interface" => line.input = Some(value("interface")?),
            "-o" | "--out-interface" => {
                line.output = Some(value("interface")?);
                line.not_output = negated;
            }
            "-s" | "--source" => line.source = Some(value("source")?),
            "-d" | "--destination" => line.dest = Some(value("destination")?),
            "-p" | "--protocol" => line.proto = Some(value("protocol")?),
            "--dport" | "--destination-port" => line.dport = Some(value("port")?),
            "-m" | "--match" => match value("match")? {
                "conntrack" | "state" | "tcp" | "udp" => {}
                other => return Err(format!("iptables -m {other}: not spelled here")),
            },
            "--ctstate" | "--state" => line.ctstate = Some(value("states")?),
            "-j" | "--jump" => line.target = Some(value("target")?),
            "--to" | "--to-source" | "--to-destination" => line.to = Some(value("address")?),
            other => return Err(format!("iptables option {other} is not spelled here")),
        }
        if negated && flag != "-o" && flag != "--out-interface" {
            return Err(format!("iptables ! {flag}: only ! -o IF is spelled here"));
        }
        negated = false;
    }
    Ok(line)
}

/// `-A FORWARD [-i IF] [-o IF] -j ACCEPT` is `fw forward`; the
/// ESTABLISHED,RELATED accept is part of every `fw forward` already.
fn forward_accept(line: &Line) -> Result<Spelled> {
    if line.source.is_some() || line.dest.is_some() || line.proto.is_some() || line.not_output {
        return Err("iptables -A FORWARD: netsh accepts forwarding by interface only: -i IF and/or -o IF".into());
    }
    if line.ctstate.is_some_and(|s| s.contains("ESTABLISHED") || s.contains("RELATED")) {
        return Ok(Spelled::Note(
            "nothing to add: each fw forward rule accepts the replies (ESTABLISHED,RELATED) of what it lets through"
                .into(),
        ));
    }
    let mut words = vec!["fw".to_string(), "forward".into()];
    for (word, interface) in [("in", line.input), ("out", line.output)] {
        if let Some(interface) = interface {
            words.extend([word.to_string(), interface.to_string()]);
        }
    }
    Ok(Spelled::Words(words))
}

/// `-t nat -A POSTROUTING [-s CIDR] [[!] -o IF] -j SNAT --to IP | -j MASQUERADE`.
fn source_nat(line: &Line) -> Result<Spelled> {
    let source = line.source.unwrap_or("0.0.0.0/0").to_string();
    let mut words = vec!["nat".to_string()];
    match (line.target, line.to) {
        (Some("SNAT"), Some(to)) if !line.not_output => words.extend(["snat".into(), source, "to".into(), to.into()]),
        (Some("SNAT"), Some(_)) => return Err("iptables -j SNAT with ! -o: use nat snat CIDR to IP [out IF]".into()),
        (Some("SNAT"), None) => return Err("iptables -j SNAT needs --to-source IP".into()),
        _ => words.extend(["masquerade".into(), source]),
    }
    if let Some(out) = line.output {
        words.extend([if line.not_output { "out-not" } else { "out" }.to_string(), out.to_string()]);
    }
    Ok(Spelled::Words(words))
}

/// `-t nat -A PREROUTING [-d IP] -p tcp|udp --dport P[:Q] -j DNAT --to IP[:PORT]`
/// is `publish`.
fn dnat(line: &Line) -> Result<Spelled> {
    let (Some(proto), Some(dport), Some(to)) = (line.proto, line.dport, line.to) else {
        return Err(
            "iptables -j DNAT: netsh publishes ports: -p tcp|udp --dport PORT -j DNAT --to-destination IP:PORT".into(),
        );
    };
    let ports = dport.replace(':', "-");
    let host = line.dest.map(|ip| format!("{ip}:{ports}")).unwrap_or(ports.clone());
    let first = ports.split('-').next().unwrap_or_default();
    let to = if to.contains(':') { to.to_string() } else { format!("{to}:{first}") };
    let words = ["publish", proto, &host, "to", &to];
    Ok(Spelled::Words(words.iter().map(|w| w.to_string()).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spell(line: &str) -> Result<String> {
        match spelled(line.split_whitespace().map(String::from).collect())? {
            Spelled::Words(words) => Ok(words.join(" ")),
            Spelled::Note(note) => Ok(format!("note: {note}")),
        }
    }

    #[test]
    fn the_tutorials_iptables_lines_become_netsh_commands() {
        let cases = [
            ("iptables -P FORWARD DROP", "-4 fw policy FORWARD DROP"),
            ("ip6tables -P FORWARD ACCEPT", "-6 fw policy FORWARD ACCEPT"),
            ("iptables -A FORWARD -i br0 -o eth0 -j ACCEPT", "fw forward in br0 out eth0"),
            ("iptables -I FORWARD 1 -o br0 -j ACCEPT", "fw forward out br0"),
            (
                "iptables -t nat -A POSTROUTING -s 192.168.2.0/24 -j SNAT --to 10.0.0.5",
                "nat snat 192.168.2.0/24 to 10.0.0.5",
            ),
            ("iptables -t nat -A POSTROUTING -o eth0 -j MASQUERADE", "nat masquerade 0.0.0.0/0 out eth0"),
            (
                "iptables -t nat -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE",
                "nat masquerade 172.17.0.0/16 out-not docker0",
            ),
            (
                "iptables -t nat -A PREROUTING -p tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80",
                "publish tcp 8080 to 172.17.0.2:80",
            ),
            (
                "iptables -t nat -A PREROUTING -d 10.0.0.1 -p udp --dport 53:54 -j DNAT --to 172.17.0.2",
                "publish udp 10.0.0.1:53-54 to 172.17.0.2:53",
            ),
            ("ip link add br0 type bridge", "ip link add br0 type bridge"),
        ];
        for (line, want) in cases {
            assert_eq!(spell(line).as_deref(), Ok(want), "{line}");
        }
        let note = spell("iptables -A FORWARD -o br0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT");
        assert!(note.is_ok_and(|n| n.starts_with("note: nothing to add")));
        for (line, why) in [
            ("iptables -D FORWARD -i br0 -j ACCEPT", "fw rm ID"),
            ("iptables -A FORWARD -s 10.0.0.0/8 -j ACCEPT", "by interface only"),
            ("iptables -A INPUT -j DROP", "netsh spells"),
            ("iptables -t nat -A POSTROUTING -j SNAT", "--to-source"),
            ("iptables -t nat -A PREROUTING -j DNAT --to 1.2.3.4", "publishes ports"),
            ("iptables -A FORWARD -m multiport -j ACCEPT", "-m multiport"),
            ("iptables -A FORWARD ! -i br0 -j ACCEPT", "only ! -o IF"),
            ("ip6tables -A FORWARD -i br0 -j ACCEPT", "both families"),
            ("iptables -t", "missing table"),
        ] {
            let err = spell(line).expect_err(line);
            assert!(err.contains(why), "{line}: {err}");
        }
    }
}
