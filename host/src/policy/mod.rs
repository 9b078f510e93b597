//! Deny by default: grants from `--allow`, `--deny` (always wins),
//! `--allow-all`, policy files (entries may be pinned to a recipe's sha256)
//! and, on a terminal, a prompt. Parsed once into typed [`Grant`]s.

mod grant;
mod needs;
pub mod prompt;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

pub use grant::{Grant, GrantError, Need};
pub use needs::{Needs, needs, rule_needs};

/// Why a policy could not be loaded.
#[derive(Debug, Error)]
pub enum PolicyError {
    #[error(transparent)]
    Grant(#[from] GrantError),
    #[error("cannot read policy file {path}: {err}")]
    Read { path: String, err: std::io::Error },
    #[error("policy file {path}: {err}")]
    Parse { path: String, err: String },
    #[error("policy file {path} is not trusted: {err}")]
    Untrusted { path: String, err: crate::trust::TrustError },
}

/// A policy file: `allow`/`deny` lists and `[[pin]]` tables whose grants
/// apply only to the recipe with that sha256.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
    #[serde(default)]
    pub pin: Vec<Pin>,
}

/// Grants pinned to one recipe digest.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    pub sha256: String,
    #[serde(default)]
    pub allow: Vec<String>,
}

/// Where a grant came from, for messages and the audit log.
#[derive(Debug, Clone)]
struct Source {
    grant: Grant,
    from: String,
    /// Only for the recipe with this digest.
    pinned: Option<String>,
}

/// The grants in force for one principal.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    allow: Vec<Source>,
    deny: Vec<Source>,
    allow_all: bool,
    /// The principal's digest (none for the REPL or CLI).
    digest: Option<String>,
}

/// The outcome of checking an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed; the grants that allowed it.
    Allow(Vec<String>),
    /// Denied because of `need`; `reason` says why and what to do.
    Deny { need: Need, reason: String },
}

fn parse_all(list: &[String], from: &str, pinned: Option<&str>) -> Result<Vec<Source>, GrantError> {
    list.iter()
        .map(|g| Ok(Source { grant: g.parse()?, from: from.to_string(), pinned: pinned.map(String::from) }))
        .collect()
}

impl Policy {
    /// A policy from command-line flags.
    pub fn from_flags(allow: &[String], deny: &[String], allow_all: bool) -> Result<Policy, PolicyError> {
        Ok(Policy {
            allow: parse_all(allow, "--allow", None)?,
            deny: parse_all(deny, "--deny", None)?,
            allow_all,
            digest: None,
        })
    }

    /// Add a policy file's grants. The file must be trusted: a file that
    /// someone else can write could grant anything to a process running as root.
    pub fn add_file(&mut self, path: &Path) -> Result<(), PolicyError> {
        let shown = path.display().to_string();
        crate::trust::check(path).map_err(|err| PolicyError::Untrusted { path: shown.clone(), err })?;
        let text = std::fs::read_to_string(path).map_err(|err| PolicyError::Read { path: shown.clone(), err })?;
        let file: PolicyFile =
            toml::from_str(&text).map_err(|e| PolicyError::Parse { path: shown.clone(), err: e.to_string() })?;
        self.allow.extend(parse_all(&file.allow, &shown, None)?);
        self.deny.extend(parse_all(&file.deny, &shown, None)?);
        for pin in &file.pin {
            self.allow.extend(parse_all(&pin.allow, &shown, Some(&pin.sha256))?);
        }
        Ok(())
    }

    /// The policy as it applies to the recipe with `digest`.
    pub fn for_digest(&self, digest: Option<&str>) -> Policy {
        Policy { digest: digest.map(String::from), ..self.clone() }
    }

    /// Allow `grant` from now on (a prompt's answer).
    pub fn remember(&mut self, grant: Grant, from: &str) {
        self.allow.push(Source { grant, from: from.into(), pinned: None });
    }

    /// Whether `need` is denied outright (by a `--deny` or a policy file's deny).
    pub fn denies(&self, need: &Need) -> bool {
        self.deny.iter().any(|d| d.grant.allows(need))
    }

    /// The grants in force, one line each, for `grants` in the REPL.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.allow_all {
            out.push("allow everything not denied (--allow-all)".to_string());
        }
        for s in &self.allow {
            let pinned =
                s.pinned.as_ref().map(|d| format!(", pinned to {}", crate::names::short_digest(d))).unwrap_or_default();
            out.push(format!("allow {} (from {}{pinned})", s.grant, s.from));
        }
        for s in &self.deny {
            out.push(format!("deny  {} (from {})", s.grant, s.from));
        }
        out
    }

    /// Whether everything is allowed (`--allow-all`).
    pub fn allows_all(&self) -> bool {
        self.allow_all
    }

    /// Check every need; `--deny` wins over any allow.
    pub fn decide(&self, needs: &[Need]) -> Decision {
        let mut used = Vec::new();
        for need in needs {
            if let Some(d) = self.deny.iter().find(|d| d.grant.allows(need)) {
                let reason = format!("{need} is denied by {} {}", d.from, d.grant);
                return Decision::Deny { need: need.clone(), reason };
            }
            if self.allow_all {
                used.push("--allow-all".to_string());
                continue;
            }
            let usable = |s: &&Source| s.pinned.is_none() || s.pinned.as_deref() == self.digest.as_deref();
            match self.allow.iter().filter(usable).find(|s| s.grant.allows(need)) {
                Some(s) => used.push(s.grant.to_string()),
                None => {
                    let reason = format!("needs {need}; rerun with --allow {need}");
                    return Decision::Deny { need: need.clone(), reason };
                }
            }
        }
        used.dedup();
        Decision::Allow(used)
    }
}

/// Policy files read by default: /etc/netsh/policy.toml and the user's
/// `$XDG_CONFIG_HOME/netsh/policy.toml` (or ~/.config/netsh/policy.toml).
pub fn default_files() -> Vec<PathBuf> {
    system_files().into_iter().chain(user_file()).filter(|p| p.exists()).collect()
}

/// /etc/netsh/policy.toml, if it exists: the policy of callers that are no
/// user (a CNI runtime).
pub fn system_files() -> Vec<PathBuf> {
    Some(PathBuf::from("/etc/netsh/policy.toml")).into_iter().filter(|p| p.exists()).collect()
}

/// The user's policy file, where "always" answers are written.
pub fn user_file() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("netsh/policy.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(text: &str) -> Need {
        Need::Link(text.into())
    }

    #[test]
    fn deny_by_default_and_deny_wins() {
        let p = Policy::from_flags(&["link:br-*".into()], &["link:br-secret".into()], false).unwrap();
        assert_eq!(p.decide(&[need("br-x")]), Decision::Allow(vec!["link:br-*".into()]));
        assert!(
            matches!(p.decide(&[need("eth0")]), Decision::Deny { reason, .. } if reason.contains("--allow link:eth0"))
        );
        assert!(
            matches!(p.decide(&[need("br-secret")]), Decision::Deny { reason, .. } if reason.contains("denied by --deny"))
        );
        let all = Policy::from_flags(&[], &["link:lo".into()], true).unwrap();
        assert!(matches!(all.decide(&[need("lo")]), Decision::Deny { .. }));
        assert!(matches!(all.decide(&[need("br-x")]), Decision::Allow(_)));
    }

    #[test]
    fn pinned_grants_need_the_digest() {
        let dir = std::env::temp_dir().join(format!("netsh-policy-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("policy.toml");
        std::fs::write(&file, "allow = [\"netns:c-*\"]\n[[pin]]\nsha256 = \"abc\"\nallow = [\"link:br-*\"]\n").unwrap();
        let mut p = Policy::default();
        p.add_file(&file).unwrap();
        assert!(matches!(p.for_digest(Some("abc")).decide(&[need("br-x")]), Decision::Allow(_)));
        assert!(matches!(p.for_digest(Some("abd")).decide(&[need("br-x")]), Decision::Deny { .. }));
        assert!(matches!(p.for_digest(None).decide(&[Need::Netns("c-1".into())]), Decision::Allow(_)));
        std::fs::write(&file, "allow = [\"bogus\"]").unwrap();
        assert!(Policy::default().add_file(&file).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
