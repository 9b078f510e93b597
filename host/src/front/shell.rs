//! The rustyline front end: completion, hints, history, Ctrl-C / Ctrl-D.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::{Hinter, HistoryHinter};
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use netsh::console::Console;
use netsh::engine::grammar::{COMMANDS, words};
use netsh::engine::shell::{Next, Session};
use netsh::engine::{Engine, GrantSpec};
use netsh::gate::Gate;
use netsh::ops::{Op, Reply};
use netsh::stop::Stop;

/// Names offered by completion, refreshed after every command.
#[derive(Debug, Default, Clone)]
struct Names {
    links: Vec<String>,
    namespaces: Vec<String>,
    plugins: Vec<String>,
}

struct NetshHelper {
    names: Arc<Mutex<Names>>,
    hinter: HistoryHinter,
}

/// Words that may follow a command's first word.
fn subcommands(command: &str) -> &'static [&'static str] {
    match command {
        "netns" => &["add", "del", "attach", "exec", "ls"],
        "link" => &["add", "set", "del", "ls"],
        "addr" | "route" => &["add", "del", "ls"],
        "nat" => &["masquerade"],
        "publish" => &["tcp", "udp"],
        "fw" => &["ls", "rm", "free-port"],
        "sysctl" => &["get", "set"],
        "record" => &["start", "stop"],
        "audit" => &["verify", "--run", "--since", "--json"],
        _ => &[],
    }
}

impl NetshHelper {
    fn candidates(&self, before: &[String]) -> Vec<String> {
        let names = self.names.lock().map(|n| n.clone()).unwrap_or_default();
        let words: Vec<&str> = before.iter().map(String::as_str).skip_while(|w| *w == "-n").collect();
        let words =
            if before.first().map(String::as_str) == Some("-n") { &words[1.min(words.len())..] } else { &words[..] };
        match words {
            [] if before.first().map(String::as_str) == Some("-n") && before.len() == 1 => names.namespaces,
            [] => COMMANDS.iter().map(|c| c.name.to_string()).collect(),
            [cmd] if *cmd == "help" => COMMANDS.iter().map(|c| c.name.to_string()).collect(),
            [cmd] if *cmd == "run" || *cmd == "plan" => names.plugins,
            [cmd] => subcommands(cmd).iter().map(|s| s.to_string()).collect(),
            [.., last] => match *last {
                "dev" | "master" | "out-not" | "set" | "del" if words[0] != "netns" => names.links,
                "netns" | "del" => names.namespaces,
                "type" => vec!["bridge".into(), "veth".into()],
                _ if words[0] == "link" && words.get(1) == Some(&"set") => {
                    ["up", "down", "master", "nomaster", "netns", "mtu"].iter().map(|s| s.to_string()).collect()
                }
                _ => Vec::new(),
            },
        }
    }
}

impl Completer for NetshHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let head = &line[..pos];
        let start = head.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let partial = &head[start..];
        let before = words(&head[..start]);
        let found = self
            .candidates(&before)
            .into_iter()
            .filter(|c| c.starts_with(partial))
            .map(|c| Pair { display: c.clone(), replacement: format!("{c} ") })
            .collect();
        Ok((start, found))
    }
}

impl Hinter for NetshHelper {
    type Hint = String;

    fn hint(&self, line: &str, pos: usize, ctx: &Context<'_>) -> Option<String> {
        self.hinter.hint(line, pos, ctx)
    }
}

impl Highlighter for NetshHelper {}
impl Validator for NetshHelper {}
impl Helper for NetshHelper {}

/// Read the current names for completion.
async fn refresh(gate: &Gate, engine: &Engine, names: &Mutex<Names>) {
    let mut fresh = Names::default();
    if let Ok(Reply::Links(links)) = gate.call(Op::LinkList { ns: None }).await {
        fresh.links = links.into_iter().map(|l| l.name).collect();
    }
    if let Ok(Reply::Names(ns)) = gate.call(Op::NetnsList).await {
        fresh.namespaces = ns;
    }
    fresh.plugins = engine.plugins().and_then(|p| Ok(p.index()?)).map(|i| i.into_keys().collect()).unwrap_or_default();
    if let Ok(mut n) = names.lock() {
        *n = fresh;
    }
}

/// The interactive loop.
pub async fn repl(
    engine: &Engine,
    grants: GrantSpec,
    console: Arc<dyn Console>,
    stop: Stop,
    state: &Path,
) -> Result<()> {
    let mut session = Session::new(engine, grants, console, stop.clone(), true)?;
    let names = Arc::new(Mutex::new(Names::default()));
    // List every candidate at once, like bash, instead of cycling through them.
    let config = rustyline::Config::builder().completion_type(rustyline::CompletionType::List).build();
    let mut editor: Editor<NetshHelper, rustyline::history::DefaultHistory> = Editor::with_config(config)?;
    editor.set_helper(Some(NetshHelper { names: names.clone(), hinter: HistoryHinter::new() }));
    let history = state.join("repl_history");
    let _ = editor.load_history(&history);
    let color = std::io::stdout().is_terminal();
    let prompt = if color { "\x1b[1mnetsh>\x1b[0m " } else { "netsh> " };
    println!("netsh shell — `help` lists commands, Tab completes, Ctrl-D exits");
    let reader = engine.reader("repl");
    loop {
        refresh(&reader, engine, &names).await;
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        if !line.trim().is_empty() {
            let _ = editor.add_history_entry(line.as_str());
        }
        stop.clear();
        match session.execute(&line).await {
            Ok(Next::Exit) => break,
            Ok(Next::Continue) => {}
            Err(e) if color => eprintln!("\x1b[31merror:\x1b[0m {e:#}"),
            Err(e) => eprintln!("error: {e:#}"),
        }
    }
    if let Some(dir) = history.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = editor.save_history(&history);
    Ok(())
}
