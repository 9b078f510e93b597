//! netsh as a CNI plugin (spec 1.0 and 1.1). A runtime runs the `netsh`
//! binary with `CNI_COMMAND` and friends in the environment and the network
//! configuration on stdin. The configuration names the recipe (an installed
//! plugin or a .wasm path, optionally pinned by SHA-256), the network and the
//! grants; the recipe's `cni` export answers under the same gate, journal
//! and audit as `netsh run`. Settings come from the configuration only: on
//! DEL a runtime may pass almost no environment.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use netsh::backend::kernel::{FirewallKind, Kernel};
use netsh::console::Console;
use netsh::engine::run::RunSpec;
use netsh::engine::{Engine, EngineError, GrantSpec};
use netsh::runtime::{CniCommand, CniPort, CniRequest, CniResult, RunError};
use netsh::stop::Stop;
use rscni_types::error::Error as Fault;
use rscni_types::ipnet::IpNet;
use rscni_types::types::{CNIResult, CNIResultWithVersion, Cmd, Dns, ErrorResult, Interface, IpConfig, NetConf, Route};
use rscni_types::version::{PluginInfo, SpecVersion};
use serde_json::Value;

/// The largest configuration read from stdin.
const MAX_CONFIG: u64 = 4 << 20;

/// netsh's error code for a run that failed (the spec leaves 100 and up to
/// plugins; the guest SDK uses 100 for a denied grant, 101 for a failure).
const RUN_FAILED: u32 = 101;

/// Whether this process was started as a CNI plugin: `CNI_COMMAND` set and no arguments.
pub fn invoked() -> bool {
    std::env::var_os("CNI_COMMAND").is_some() && std::env::args_os().len() == 1
}

/// The versions netsh answers in: the 1.x result layout.
fn plugin_info() -> PluginInfo {
    PluginInfo::new(SpecVersion::CURRENT, vec![SpecVersion::new(1, 0, 0), SpecVersion::new(1, 1, 0)])
}

/// Answer one CNI call: through the agent when one listens (and accepts),
/// else here. On stdout the result (ADD, VERSION) or nothing and exit 0, or
/// the spec's error JSON and exit 1.
pub fn main() -> ExitCode {
    let call = match Call::of_process() {
        Ok(call) => call,
        Err(fault) => return ExitCode::from(print(Err((SpecVersion::CURRENT, fault)))),
    };
    if let Some(code) = through_agent(&call) {
        return ExitCode::from(code);
    }
    let answer = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(answer(&call, None)),
        Err(e) => Err((SpecVersion::CURRENT, Fault::IOFailure(format!("cannot start the async runtime: {e}")))),
    };
    ExitCode::from(print(answer))
}

/// Answer a call the agent received, with its engine: stdout text and exit code.
pub async fn answer_for_agent(engine: &Engine, env: Vec<(String, String)>, stdin: String) -> (String, u8) {
    let call = Call { env, stdin };
    match answer(&call, Some(engine)).await {
        Ok(json) => (json.map(|j| format!("{j}\n")).unwrap_or_default(), 0),
        Err((version, fault)) => (format!("{}\n", error_json(version, &fault)), 1),
    }
}

fn print(answer: Answer) -> u8 {
    match answer {
        Ok(Some(json)) => {
            println!("{json}");
            0
        }
        Ok(None) => 0,
        Err((version, fault)) => {
            println!("{}", error_json(version, &fault));
            1
        }
    }
}

fn error_json(version: SpecVersion, fault: &Fault) -> String {
    serde_json::to_string(&ErrorResult::new(version, fault)).unwrap_or_default()
}

type Answer = Result<Option<String>, (SpecVersion, Fault)>;

/// A plugin call: the CNI variables and the configuration.
struct Call {
    env: Vec<(String, String)>,
    stdin: String,
}

impl Call {
    /// This process's call (VERSION needs no configuration).
    fn of_process() -> Result<Call, Fault> {
        let env: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with("CNI_")).collect();
        let mut stdin = String::new();
        if std::env::var("CNI_COMMAND").as_deref() != Ok("VERSION") {
            std::io::stdin()
                .take(MAX_CONFIG)
                .read_to_string(&mut stdin)
                .map_err(|e| Fault::IOFailure(format!("reading the network configuration from stdin: {e}")))?;
        }
        Ok(Call { env, stdin })
    }

    fn var(&self, name: &str) -> Option<String> {
        self.env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).filter(|v| !v.is_empty())
    }
}

/// Hand the call to the agent at the configuration's `agentSocket` (or the
/// default socket); `None` when none listens or it declines.
fn through_agent(call: &Call) -> Option<u8> {
    if call.var("CNI_COMMAND").as_deref() == Some("VERSION") {
        return None;
    }
    let conf: NetConf = serde_json::from_str(&call.stdin).ok()?;
    let settings = Settings::from_conf(&conf).ok()?;
    let socket = settings.agent_socket.clone().unwrap_or_else(|| PathBuf::from(netsh::agent::DEFAULT_SOCKET));
    if !socket.exists() {
        return None;
    }
    let request = netsh::agent::Request {
        argv: vec!["netsh".into()],
        cwd: std::env::current_dir().ok()?,
        stdin: Some(call.stdin.clone()),
        state_dir: crate::state_dir(settings.state_dir.clone()),
        user_policy: netsh::policy::user_file(),
        firewall: settings.firewall.unwrap_or_else(FirewallKind::detect),
        kv: settings.kv.clone(),
        place: netsh::agent::Place::current().ok()?,
        cni: Some(call.env.clone()),
    };
    match netsh::agent::forward(&socket, request, &netsh::console::Terminal, drop) {
        Ok(netsh::agent::Forwarded::Exit(code)) => Some(code),
        _ => None,
    }
}

async fn answer(call: &Call, engine: Option<&Engine>) -> Answer {
    let current = |fault| (SpecVersion::CURRENT, fault);
    let cmd: Cmd = call.var("CNI_COMMAND").unwrap_or_default().parse().map_err(current)?;
    if cmd == Cmd::Version {
        return Ok(Some(serde_json::to_string(&plugin_info()).unwrap_or_default()));
    }
    let conf: NetConf = serde_json::from_str(&call.stdin).map_err(|e| {
        current(Fault::FailedToDecode(format!("the network configuration on stdin is not valid CNI JSON: {e}")))
    })?;
    let version = plugin_info().negotiate(&conf, cmd).map_err(current)?;
    let at = |fault| (version, fault);
    conf.validate_name().map_err(at)?;
    let settings = Settings::from_conf(&conf).map_err(at)?;
    let netns_path = call.var("CNI_NETNS");
    let request = request(call, cmd, &conf, &settings, netns_path.as_deref()).map_err(at)?;
    let result = match engine {
        Some(engine) => run(engine, &settings, request).await,
        None => run(&own_engine(&settings).map_err(at)?, &settings, request).await,
    };
    let Some(result) = result.map_err(at)?.filter(|_| cmd == Cmd::Add) else { return Ok(None) };
    let rendered = render(result, netns_path.as_deref()).map_err(at)?;
    Ok(Some(serde_json::to_string(&CNIResultWithVersion::new(version, rendered)).unwrap_or_default()))
}

fn own_engine(settings: &Settings) -> Result<Engine, Fault> {
    let firewall = settings.firewall.unwrap_or_else(FirewallKind::detect);
    let kernel = Kernel::configured(firewall, settings.kv.as_deref())
        .map_err(|e| Fault::InvalidNetworkConfig(format!("\"kv\": {e}")))?;
    Ok(Engine::new(crate::state_dir(settings.state_dir.clone()), kernel))
}

/// What netsh's own keys in the configuration say.
struct Settings {
    /// An installed plugin's name or a .wasm path.
    recipe: String,
    sha256: Option<String>,
    network: String,
    grants: Vec<String>,
    options: Vec<(String, String)>,
    state_dir: Option<PathBuf>,
    firewall: Option<FirewallKind>,
    /// `"kv"`: the shared key-value store, like `--kv`.
    kv: Option<String>,
    agent_socket: Option<PathBuf>,
}

impl Settings {
    fn from_conf(conf: &NetConf) -> Result<Settings, Fault> {
        let invalid = |m: String| Fault::InvalidNetworkConfig(m);
        let text = |key: &str| match conf.custom.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(invalid(format!("\"{key}\" must be a string, not {other}"))),
        };
        let recipe = text("recipe")?.ok_or_else(|| {
            invalid("the netsh plugin needs \"recipe\": an installed plugin's name or a .wasm path".into())
        })?;
        let grants = match conf.custom.get("grants") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|g| g.as_str().map(String::from).ok_or_else(|| invalid(format!("grant {g} is not a string"))))
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(invalid(format!("\"grants\" must be a list of grants, not {other}"))),
        };
        let options = match conf.custom.get("options") {
            None => Vec::new(),
            Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), plain(v))).collect(),
            Some(other) => return Err(invalid(format!("\"options\" must be an object, not {other}"))),
        };
        let firewall = match text("firewall")? {
            None => None,
            Some(name) => Some(name.parse().map_err(|e| invalid(format!("\"firewall\": {e}")))?),
        };
        Ok(Settings {
            recipe,
            sha256: text("sha256")?,
            network: text("network")?.unwrap_or_else(|| conf.name.clone()),
            grants,
            options,
            state_dir: text("stateDir")?.map(PathBuf::from),
            firewall,
            kv: text("kv")?,
            agent_socket: text("agentSocket")?.map(PathBuf::from),
        })
    }
}

/// A JSON value as text: strings as they are, anything else as JSON.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The typed request for the recipe.
fn request(
    call: &Call,
    cmd: Cmd,
    conf: &NetConf,
    settings: &Settings,
    netns_path: Option<&str>,
) -> Result<CniRequest, Fault> {
    let command = match cmd {
        Cmd::Add => CniCommand::Add,
        Cmd::Del => CniCommand::Del,
        Cmd::Check => CniCommand::Check,
        Cmd::Status => CniCommand::Status,
        Cmd::Gc => CniCommand::Gc,
        Cmd::Version => unreachable!("VERSION is answered before a request is made"),
    };
    let per_container = matches!(cmd, Cmd::Add | Cmd::Del | Cmd::Check);
    let mut missing: Vec<&str> = Vec::new();
    let container_id = call.var("CNI_CONTAINERID");
    let ifname = call.var("CNI_IFNAME");
    if per_container && container_id.is_none() {
        missing.push("CNI_CONTAINERID");
    }
    if per_container && ifname.is_none() {
        missing.push("CNI_IFNAME");
    }
    if matches!(cmd, Cmd::Add | Cmd::Check) && netns_path.is_none() {
        missing.push("CNI_NETNS");
    }
    if !missing.is_empty() {
        return Err(Fault::missing_env(&missing));
    }
    let netns = match netns_path {
        Some(path) => netns_name(path, cmd == Cmd::Del)?,
        None => None,
    };
    let args = cni_args(call);
    let runtime = conf.runtime_config.as_ref();
    let mut ips: Vec<String> = runtime.map(|r| strings(r.custom.get("ips"))).unwrap_or_default();
    ips.extend(args.iter().filter(|(k, _)| k == "IP").map(|(_, v)| v.clone()));
    let aliases = runtime
        .and_then(|r| r.custom.get("aliases"))
        .and_then(|a| a.get(&conf.name))
        .map(|a| strings(Some(a)))
        .unwrap_or_default();
    let port_mappings = runtime.map(|r| r.port_mappings.iter().map(port).collect()).transpose()?.unwrap_or_default();
    let valid_attachments =
        conf.valid_attachments.iter().flatten().map(|a| (a.container_id.clone(), a.ifname.clone())).collect();
    Ok(CniRequest {
        command,
        network: settings.network.clone(),
        container_id: container_id.unwrap_or_default(),
        netns,
        ifname: ifname.unwrap_or_default(),
        options: settings.options.clone(),
        args,
        port_mappings,
        aliases,
        ips,
        valid_attachments,
    })
}

/// The netsh name of a namespace path: its file name under /run/netns
/// (/var/run/netns is the same directory). On DEL a namespace that is gone
/// is fine: the recipe removes what is left of the attachment.
fn netns_name(path: &str, deleting: bool) -> Result<Option<String>, Fault> {
    let path = Path::new(path);
    let name = path.file_name().and_then(|n| n.to_str()).map(String::from);
    let dir = path.parent().and_then(|d| d.canonicalize().ok());
    let named = dir.as_deref() == Some(Path::new("/run/netns")) && name.is_some();
    match (named, path.exists()) {
        (true, true) => Ok(name),
        (_, false) if deleting => Ok(name),
        (true, false) => Err(Fault::InvalidNetNS(format!("namespace {} does not exist", path.display()))),
        (false, _) => Err(Fault::InvalidNetNS(format!(
            "netsh reaches namespaces by name under /run/netns, and {} is not there (bind-mount it there first)",
            path.display()
        ))),
    }
}

/// `CNI_ARGS`: `K=V;K=V` pairs.
fn cni_args(call: &Call) -> Vec<(String, String)> {
    call.var("CNI_ARGS")
        .unwrap_or_default()
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).map(String::from).collect())
        .unwrap_or_default()
}

fn port(mapping: &rscni_types::types::PortMapping) -> Result<CniPort, Fault> {
    let in_range = |p: u32| {
        u16::try_from(p)
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| Fault::InvalidNetworkConfig(format!("port {p} is not 1-65535")))
    };
    let protocol = mapping.protocol.as_ref().map_or("tcp".to_string(), |p| {
        serde_json::to_value(p).ok().as_ref().map(plain).unwrap_or_default().to_ascii_lowercase()
    });
    Ok(CniPort {
        host_port: in_range(mapping.host_port)?,
        container_port: in_range(mapping.container_port)?,
        protocol,
        host_ip: mapping.custom.get("hostIP").and_then(Value::as_str).filter(|ip| !ip.is_empty()).map(String::from),
    })
}

/// Run the recipe's `cni` export like `netsh run` runs `run`.
async fn run(engine: &Engine, settings: &Settings, request: CniRequest) -> Result<Option<CniResult>, Fault> {
    let mut spec = RunSpec::new(PathBuf::from(&settings.recipe), Vec::new());
    spec.grants = GrantSpec { allow: settings.grants.clone(), system_only: true, ..GrantSpec::default() };
    spec.sha256 = settings.sha256.clone();
    spec.cni = Some(request);
    let console = Arc::new(Captured::default());
    let ran = engine.run(&spec, console.clone(), Stop::default()).await;
    ran.map(|report| report.cni).map_err(|e| fault(e, &console.text()))
}

/// The CNI error for a failed run; what netsh printed goes in `details`.
fn fault(error: EngineError, printed: &str) -> Fault {
    match error {
        EngineError::Runtime(RunError::Cni { code, msg, details }) => {
            Fault::Custom(code, msg, if details.is_empty() { printed.into() } else { details })
        }
        EngineError::Usage(msg) => Fault::Custom(7, msg, printed.into()),
        other => Fault::Custom(RUN_FAILED, other.to_string(), printed.into()),
    }
}

/// ADD's result in the spec's layout.
fn render(result: CniResult, netns_path: Option<&str>) -> Result<CNIResult, Fault> {
    let bad = |what: &str, text: &str| {
        Fault::Custom(RUN_FAILED, format!("the recipe returned an invalid {what}: {text:?}"), String::new())
    };
    let interfaces = result
        .interfaces
        .into_iter()
        .map(|i| Interface {
            name: i.name,
            mac: i.mac,
            mtu: None,
            sandbox: i.in_container.then(|| netns_path.unwrap_or_default().to_string()),
            socket_path: None,
            pci_id: None,
        })
        .collect();
    let ips = result
        .ips
        .into_iter()
        .map(|ip| {
            Ok(IpConfig {
                interface: ip.interface,
                address: ip.address.parse::<IpNet>().map_err(|_| bad("address", &ip.address))?,
                gateway: ip.gateway.as_deref().map(|g| g.parse().map_err(|_| bad("gateway", g))).transpose()?,
            })
        })
        .collect::<Result<_, Fault>>()?;
    let routes = result
        .routes
        .into_iter()
        .map(|r| {
            Ok(Route {
                dst: r.dst.parse().map_err(|_| bad("route", &r.dst))?,
                gw: r.gw.as_deref().map(|g| g.parse().map_err(|_| bad("gateway", g))).transpose()?,
                mtu: None,
                advmss: None,
                priority: None,
                table: None,
                scope: None,
            })
        })
        .collect::<Result<_, Fault>>()?;
    let dns = (!result.nameservers.is_empty()).then(|| Dns { nameservers: result.nameservers, ..Dns::default() });
    Ok(CNIResult { interfaces, ips, routes, dns })
}

/// Everything netsh prints goes to stderr (stdout is the runtime's), and is kept for error details.
#[derive(Default)]
struct Captured(Mutex<Vec<u8>>);

impl Captured {
    fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).trim_end().to_string()
    }
}

impl Console for Captured {
    fn out(&self, bytes: &[u8]) {
        self.err(bytes);
    }

    fn err(&self, bytes: &[u8]) {
        use std::io::Write;
        let _ = std::io::stderr().write_all(bytes);
        if let Ok(mut kept) = self.0.lock() {
            kept.extend_from_slice(bytes);
        }
    }
}
