//! Property tests over every parser that reads input from a person or from
//! disk: none may panic, whatever the bytes. `PROPTEST_CASES` sets how many
//! inputs each property tries (CI: a few thousand, seconds; by hand: millions,
//! minutes). Inputs that once broke a parser live in `tests/corpus/` and run
//! every time.

use std::path::PathBuf;

use netsh::engine::grammar;
use netsh::engine::runs::parse_since;
use netsh::journal::Journal;
use netsh::ops::FwRule;
use netsh::plugins::Store;
use netsh::policy::{Grant, Policy};
use netsh::units::{parse_duration, parse_mib};
use proptest::prelude::*;

/// Words the shell grammar knows, mixed with numbers, addresses and junk.
fn shell_line() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        prop::sample::select(vec![
            "ip",
            "-n",
            "c1",
            "netns",
            "link",
            "addr",
            "route",
            "nat",
            "publish",
            "fw",
            "sysctl",
            "show",
            "run",
            "plan",
            "undo",
            "audit",
            "grants",
            "help",
            "record",
            "exit",
            "add",
            "del",
            "set",
            "ls",
            "attach",
            "type",
            "bridge",
            "veth",
            "peer",
            "netns",
            "master",
            "nomaster",
            "up",
            "down",
            "mtu",
            "dev",
            "via",
            "default",
            "onlink",
            "metric",
            "to",
            "tcp",
            "udp",
            "masquerade",
            "out-not",
            "verify",
            "--run",
            "--since",
            "--json",
            "#",
            "\"",
        ])
        .prop_map(String::from),
        "[0-9]{1,6}".prop_map(String::from),
        "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(/[0-9]{1,3})?(:[0-9]{1,6})?".prop_map(String::from),
        "[a-f0-9:]{1,20}(/[0-9]{1,3})?".prop_map(String::from),
        "\\PC{0,20}".prop_map(String::from),
    ];
    prop::collection::vec(word, 0..10).prop_map(|w| w.join(" "))
}

fn grant_text() -> impl Strategy<Value = String> {
    let kind = prop::sample::select(vec!["netns", "link", "addr", "route", "nat", "publish", "sysctl", "kv", "x", ""]);
    let scope = prop_oneof![
        "[a-z*?/.-]{0,12}".prop_map(String::from),
        "[0-9.:/a-f]{0,24}".prop_map(String::from),
        "(tcp|udp|sctp)?/?[0-9]{0,6}(-[0-9]{0,6})?".prop_map(String::from),
        "\\PC{0,16}".prop_map(String::from),
    ];
    (kind, scope).prop_map(|(k, s)| format!("{k}:{s}"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "netsh-fuzz-{name}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Every input a parser of netsh reads is thrown at all of them.
fn all_parsers(text: &str) {
    let _ = grammar::parse(text);
    let _ = text.parse::<Grant>();
    let _ = text.parse::<FwRule>();
    let _ = parse_duration(text);
    let _ = parse_mib(text);
    let _ = parse_since(text);
}

proptest! {
    #[test]
    fn the_shell_grammar_never_panics(line in shell_line()) {
        let _ = grammar::parse(&line);
    }

    #[test]
    fn grants_parse_or_refuse(text in grant_text()) {
        if let Ok(grant) = text.parse::<Grant>() {
            // What parses prints back as itself.
            prop_assert_eq!(grant.to_string(), text);
        }
    }

    #[test]
    fn firewall_rule_text_round_trips(text in "(masquerade|publish|forward|isolate) \\PC{0,40}") {
        if let Ok(rule) = text.parse::<FwRule>() {
            prop_assert_eq!(rule.to_string().parse::<FwRule>().ok(), Some(rule));
        }
    }

    #[test]
    fn durations_sizes_and_ages_never_panic(text in "[0-9]{0,25}(\\.[0-9]{0,5})?(ms|s|m|h|d|M|G|T|MiB|GiB|y)?|\\PC{0,20}") {
        all_parsers(&text);
    }

    #[test]
    fn policy_files_never_panic(body in "(allow|deny|\\[\\[pin\\]\\]|sha256|=|\\[|\\]|\"|,|\\n| |[a-z:*/.0-9-]{1,12}){0,30}") {
        let dir = scratch("policy");
        let file = dir.join("policy.toml");
        std::fs::write(&file, body).unwrap();
        let _ = Policy::default().add_file(&file);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn plugin_indexes_never_panic(body in "\\{(\"[a-z_-]{0,8}\":\\{(\"(sha256|name|version|summary|usage|added|grants)\":(\"[0-9a-f]{0,70}\"|\\[\\]|1|null),?){0,8}\\},?){0,3}\\}|\\PC{0,40}") {
        let dir = scratch("plugins");
        std::fs::create_dir_all(dir.join("plugins")).unwrap();
        std::fs::write(dir.join("plugins/index.json"), body).unwrap();
        let store = Store::new(&dir);
        if let Ok(index) = store.index() {
            for plugin in index.values() {
                let _ = netsh::names::short_digest(&plugin.recipe.sha256);
                let _ = store.current_digest(plugin);
            }
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn journal_lines_never_panic(lines in prop::collection::vec("\\{\"(start|intent|done|failed|reverted|end|await-confirm)\":\\{(\"[a-z_]{1,9}\":(\"\\PC{0,12}\"|[0-9]{1,12}|null|\\{\\}),?){0,5}\\}\\}|\\PC{0,30}", 0..8)) {
        let dir = scratch("journal");
        std::fs::create_dir_all(dir.join("runs")).unwrap();
        std::fs::write(dir.join("runs/20260101-000000-abcd.jsonl"), lines.join("\n")).unwrap();
        let journal = Journal::new(&dir);
        if let Ok(info) = journal.load("20260101-000000-abcd") {
            let _ = info.undo_order().count();
            let _ = info.abandoned();
        }
        let _ = journal.list();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn audit_logs_never_panic(lines in prop::collection::vec("\\{\"time\":\"\\PC{0,10}\",(\"[a-z_]{1,9}\":(\"\\PC{0,12}\"|[0-9]{1,12}|null|\\[\\]),?){0,12}\\}|\\PC{0,40}", 0..6), head in "\\PC{0,80}") {
        let dir = scratch("audit");
        let audit = netsh::audit::Audit::new(&dir);
        audit.ensure_writable().unwrap();
        std::fs::write(audit.path(), lines.join("\n")).unwrap();
        std::fs::write(dir.join("audit.head"), head).unwrap();
        let _ = audit.verify();
        let _ = audit.entries();
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// Inputs that once broke (or nearly broke) a parser, one per line.
#[test]
fn the_corpus_still_parses_without_panicking() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("tests/corpus") {
        let text = std::fs::read_to_string(entry.expect("corpus entry").path()).expect("corpus file");
        for line in text.lines() {
            all_parsers(line);
            count += 1;
        }
    }
    assert!(count > 0, "the corpus is empty");
}
