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
use netsh::ops::{Ns, Op, Reply};
use netsh::stop::Stop;

/// Completion: candidates are read when Tab is pressed, from the namespace
/// the line names with `-n NS` (readline runs off the runtime's thread, so
/// the completer can wait for a listing).
struct NetshHelper {
    reader: Gate,
    runtime: tokio::runtime::Handle,
    /// Plugin names, refreshed before every prompt.
    plugins: Arc<Mutex<Vec<String>>>,
    hinter: HistoryHinter,
}

/// Words that may follow a command's first word.
fn subcommands(command: &str) -> &'static [&'static str] {
    match command {
        "netns" => &["add", "del", "attach", "alias", "identify", "exec", "ls"],
        "link" => &["add", "set", "del", "ls"],
        "addr" | "route" => &["add", "del", "ls"],
        "nat" => &["masquerade", "snat"],
        "publish" => &["tcp", "udp"],
        "fw" => &["ls", "rm", "free-port", "forward"],
        "sysctl" => &["get", "set"],
        "record" => &["start", "stop"],
        "audit" => &["verify", "--run", "--since", "--json"],
        _ => &[],
    }
}

/// What a line typed so far completes against: the namespace its `-n NS`
/// names, and its words without a leading `ip` and the options before the command.
fn context(before: &[String]) -> (Ns, Vec<&str>) {
    let mut words: Vec<&str> = before.iter().map(String::as_str).collect();
    if words.first() == Some(&"ip") {
        words.remove(0);
    }
    let mut ns = None;
    let mut rest = Vec::new();
    let mut i = 0;
    while i < words.len() {
        match words[i] {
            "-n" | "-netns" | "--netns" if i + 1 < words.len() => {
                ns = Some(words[i + 1].to_string());
                i += 2;
                continue;
            }
            "-br" | "-brief" | "-j" | "-json" if rest.is_empty() => {}
            word => rest.push(word),
        }
        i += 1;
    }
    (ns, rest)
}

fn owned(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

impl NetshHelper {
    fn read(&self, op: Op) -> Option<Reply> {
        self.runtime.block_on(self.reader.call(op)).ok()
    }

    /// Names of the links in `ns`, bridges only when `bridges`.
    fn links(&self, ns: Ns, bridges: bool) -> Vec<String> {
        match self.read(Op::LinkList { ns }) {
            Some(Reply::Links(links)) => {
                links.into_iter().filter(|l| !bridges || l.kind == "bridge").map(|l| l.name).collect()
            }
            _ => Vec::new(),
        }
    }

    fn namespaces(&self) -> Vec<String> {
        match self.read(Op::NetnsList) {
            Some(Reply::Names(names)) => names,
            _ => Vec::new(),
        }
    }

    fn candidates(&self, before: &[String]) -> Vec<String> {
        if matches!(before.last().map(String::as_str), Some("-n" | "-netns" | "--netns")) {
            return self.namespaces();
        }
        let (ns, words) = context(before);
        match words.as_slice() {
            [] => COMMANDS.iter().map(|c| c.name.to_string()).collect(),
            ["help"] => COMMANDS.iter().map(|c| c.name.to_string()).collect(),
            ["run" | "plan"] => self.plugins.lock().map(|p| p.clone()).unwrap_or_default(),
            [cmd] => owned(subcommands(cmd)),
            [.., "master"] => self.links(ns, true),
            ["netns", "del" | "exec" | "alias"] | ["netns", "alias", _] | [.., "netns"] => self.namespaces(),
            [.., "dev" | "out-not" | "out" | "in"] | ["link", "set" | "del"] | ["link", "add", .., "link"] => {
                self.links(ns, false)
            }
            [.., "type"] => owned(&["bridge", "veth", "vxlan", "macvlan"]),
            ["link", "set", _, ..] => owned(&["up", "down", "master", "nomaster", "netns", "mtu"]),
            _ => Vec::new(),
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

/// The plugin names, for completion after `run` and `plan`.
fn refresh_plugins(engine: &Engine, plugins: &Mutex<Vec<String>>) {
    let names = engine.plugins().and_then(|p| Ok(p.index()?)).map(|i| i.into_keys().collect()).unwrap_or_default();
    if let Ok(mut p) = plugins.lock() {
        *p = names;
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
    let plugins = Arc::new(Mutex::new(Vec::new()));
    // List every candidate at once, like bash, instead of cycling through them.
    let config = rustyline::Config::builder().completion_type(rustyline::CompletionType::List).build();
    let mut editor: Editor<NetshHelper, rustyline::history::DefaultHistory> = Editor::with_config(config)?;
    editor.set_helper(Some(NetshHelper {
        reader: engine.reader("repl"),
        runtime: tokio::runtime::Handle::current(),
        plugins: plugins.clone(),
        hinter: HistoryHinter::new(),
    }));
    let history = state.join("repl_history");
    let _ = editor.load_history(&history);
    let color = std::io::stdout().is_terminal();
    let prompt = if color { "\x1b[1mnetsh>\x1b[0m " } else { "netsh> " };
    println!("netsh shell — `help` lists commands, Tab completes, Ctrl-D exits");
    loop {
        refresh_plugins(engine, &plugins);
        // Off the runtime's thread, so that the completer can wait for listings.
        let (back, read) = tokio::task::spawn_blocking(move || {
            let read = editor.readline(prompt);
            (editor, read)
        })
        .await?;
        editor = back;
        let line = match read {
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
