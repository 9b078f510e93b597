//! A small argument parser for recipes: `--flag value`, `--flag=value`,
//! boolean `--flag`, repeated flags and positionals.

use crate::{Error, Result};

/// Parsed recipe arguments.
#[derive(Debug, Clone, Default)]
pub struct Args {
    positional: Vec<String>,
    options: Vec<(String, String)>,
    switches: Vec<String>,
}

impl Args {
    /// Parse `args`; `valued` flags take a value, `switches` do not. Unknown
    /// flags are a usage error.
    pub fn parse(args: Vec<String>, valued: &[&str], switches: &[&str]) -> Result<Args> {
        let mut out = Args::default();
        let mut iter = args.into_iter();
        while let Some(arg) = iter.next() {
            if arg == "--" {
                out.positional.extend(iter.by_ref());
                break;
            }
            if !arg.starts_with("--") {
                out.positional.push(arg);
                continue;
            }
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (arg.clone(), None),
            };
            if valued.contains(&name.as_str()) {
                let value = match inline {
                    Some(v) => v,
                    None => iter.next().ok_or_else(|| Error::Usage(format!("{name} needs a value")))?,
                };
                out.options.push((name, value));
            } else if switches.contains(&name.as_str()) && inline.is_none() {
                out.switches.push(name);
            } else {
                return Err(Error::Usage(format!("unknown option {arg}")));
            }
        }
        Ok(out)
    }

    /// The last value of a flag.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.options.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Every value of a repeatable flag, in order.
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.options.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }

    /// A flag's value parsed, or `default` when absent.
    pub fn parsed<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T> {
        match self.value(name) {
            Some(v) => v.parse().map_err(|_| Error::Usage(format!("{name} {v:?} is not valid"))),
            None => Ok(default),
        }
    }

    /// Whether a switch was given.
    pub fn has(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    /// Positional arguments.
    pub fn positional(&self) -> &[String] {
        &self.positional
    }

    /// The `i`-th positional argument, or a usage error naming `what`.
    pub fn required(&self, i: usize, what: &str) -> Result<&str> {
        self.positional.get(i).map(String::as_str).ok_or_else(|| Error::Usage(format!("missing {what}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(list: &[&str]) -> Result<Args> {
        Args::parse(list.iter().map(|s| s.to_string()).collect(), &["--subnet", "--alias"], &["--internal"])
    }

    #[test]
    fn flags_values_and_positionals() {
        let a =
            parse(&["create", "net1", "--subnet", "10.0.0.0/24", "--internal", "--alias=a", "--alias", "b"]).unwrap();
        assert_eq!(a.positional(), ["create", "net1"]);
        assert_eq!(a.value("--subnet"), Some("10.0.0.0/24"));
        assert_eq!(a.values("--alias"), ["a", "b"]);
        assert!(a.has("--internal"));
        assert_eq!(a.required(1, "NAME").unwrap(), "net1");
        assert!(a.required(2, "X").is_err());
    }

    #[test]
    fn errors() {
        assert!(matches!(parse(&["--bogus"]), Err(Error::Usage(_))));
        assert!(matches!(parse(&["--subnet"]), Err(Error::Usage(_))));
        assert!(matches!(parse(&["--internal=yes"]), Err(Error::Usage(_))));
    }
}
