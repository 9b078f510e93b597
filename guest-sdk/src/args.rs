//! A strict argument parser for recipes: `--flag value`, `--flag=value`,
//! short forms (`-p 8080:80`), repeatable flags, switches and positionals.
//! What it does not know is an error with a suggestion, never a silent
//! positional word: `-subnet 10.0.0.0/8` is refused with "did you mean --subnet?".

use crate::{Error, Result};

/// What an option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// One value; giving it twice is an error.
    Value,
    /// A value each time it is given.
    Values,
    /// No value.
    Switch,
}

/// One option a recipe accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opt {
    pub long: &'static str,
    pub short: Option<char>,
    /// Other long names for it (`--network-alias` for `--alias`); values
    /// are found under `long`.
    pub synonyms: &'static [&'static str],
    pub takes: Takes,
}

impl Opt {
    /// `--name VALUE`, at most once.
    pub const fn value(long: &'static str) -> Opt {
        Opt { long, short: None, synonyms: &[], takes: Takes::Value }
    }

    /// `--name VALUE`, any number of times.
    pub const fn values(long: &'static str) -> Opt {
        Opt { long, short: None, synonyms: &[], takes: Takes::Values }
    }

    /// `--name`, no value.
    pub const fn switch(long: &'static str) -> Opt {
        Opt { long, short: None, synonyms: &[], takes: Takes::Switch }
    }

    /// Also accept these long names.
    pub const fn or(mut self, synonyms: &'static [&'static str]) -> Opt {
        self.synonyms = synonyms;
        self
    }

    fn named(&self, name: &str) -> bool {
        self.long == name
            || self.synonyms.contains(&name)
            || (name.len() == 2 && self.short.is_some_and(|c| name == format!("-{c}")))
    }

    /// Also accept `-c`.
    pub const fn short(mut self, c: char) -> Opt {
        self.short = Some(c);
        self
    }
}

/// Parsed recipe arguments.
#[derive(Debug, Clone, Default)]
pub struct Args {
    positional: Vec<String>,
    options: Vec<(&'static str, String)>,
    switches: Vec<&'static str>,
}

/// Levenshtein distance, for suggestions.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn unknown(arg: &str, opts: &[Opt]) -> Error {
    let name = arg.split_once('=').map_or(arg, |(n, _)| n);
    let best = opts.iter().map(|o| (distance(name, o.long), o.long)).min();
    match best {
        Some((d, long)) if d <= 3 => Error::Usage(format!("unknown option {name}; did you mean {long}?")),
        _ => {
            let all: Vec<&str> = opts.iter().map(|o| o.long).collect();
            Error::Usage(format!("unknown option {name} (options: {})", all.join(" ")))
        }
    }
}

impl Args {
    /// Parse `args` against `opts`. A word starting with `-` that names no
    /// option is an error (so is a single-value option given twice); after
    /// a lone `--`, every word is positional.
    pub fn parse(args: Vec<String>, opts: &[Opt]) -> Result<Args> {
        let mut out = Args::default();
        let mut iter = args.into_iter();
        while let Some(arg) = iter.next() {
            if arg == "--" {
                out.positional.extend(iter.by_ref());
                break;
            }
            if !arg.starts_with('-') || arg == "-" || arg.parse::<f64>().is_ok() {
                out.positional.push(arg);
                continue;
            }
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            let opt = opts.iter().find(|o| o.named(&name));
            let Some(opt) = opt else { return Err(unknown(&arg, opts)) };
            match opt.takes {
                Takes::Switch if inline.is_some() => {
                    return Err(Error::Usage(format!("{} takes no value", opt.long)));
                }
                Takes::Switch => out.switches.push(opt.long),
                Takes::Value | Takes::Values => {
                    if opt.takes == Takes::Value && out.options.iter().any(|(n, _)| *n == opt.long) {
                        return Err(Error::Usage(format!("{} given twice; give it once", opt.long)));
                    }
                    let value = match inline {
                        Some(v) => v,
                        None => iter.next().ok_or_else(|| Error::Usage(format!("{} needs a value", opt.long)))?,
                    };
                    out.options.push((opt.long, value));
                }
            }
        }
        Ok(out)
    }

    /// The value of an option.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.options.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// Every value of a repeatable option, in order.
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.options.iter().filter(|(n, _)| *n == name).map(|(_, v)| v.as_str()).collect()
    }

    /// An option's value parsed, or `default` when absent.
    pub fn parsed<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T> {
        match self.value(name) {
            Some(v) => v.parse().map_err(|_| Error::Usage(format!("{name} {v:?} is not valid"))),
            None => Ok(default),
        }
    }

    /// Whether a switch was given.
    pub fn has(&self, name: &str) -> bool {
        self.switches.contains(&name)
    }

    /// Whether an option was given at all (a switch, or with a value).
    pub fn given(&self, name: &str) -> bool {
        self.has(name) || self.value(name).is_some()
    }

    /// Positional arguments.
    pub fn positional(&self) -> &[String] {
        &self.positional
    }

    /// The `i`-th positional argument, or a usage error naming `what`.
    pub fn required(&self, i: usize, what: &str) -> Result<&str> {
        self.positional.get(i).map(String::as_str).ok_or_else(|| Error::Usage(format!("missing {what}")))
    }

    /// Refuse positional words past the first `n`.
    pub fn at_most(&self, n: usize) -> Result<()> {
        match self.positional.get(n) {
            Some(extra) => Err(Error::Usage(format!("unexpected argument {extra:?}"))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTS: &[Opt] = &[
        Opt::value("--subnet"),
        Opt::values("--alias").or(&["--network-alias", "--net-alias"]),
        Opt::switch("--internal"),
        Opt::values("--publish").short('p'),
        Opt::value("--hostname").short('h'),
    ];

    fn parse(list: &[&str]) -> Result<Args> {
        Args::parse(list.iter().map(|s| s.to_string()).collect(), OPTS)
    }

    #[test]
    fn flags_values_and_positionals() {
        let a = parse(&[
            "create",
            "net1",
            "--subnet",
            "10.0.0.0/24",
            "--internal",
            "--alias=a",
            "--alias",
            "b",
            "-p",
            "80:80",
        ])
        .unwrap();
        assert_eq!(a.positional(), ["create", "net1"]);
        assert_eq!(a.value("--subnet"), Some("10.0.0.0/24"));
        assert_eq!(a.values("--alias"), ["a", "b"]);
        assert_eq!(a.values("--publish"), ["80:80"]);
        assert!(a.has("--internal"));
        assert_eq!(a.required(1, "NAME").unwrap(), "net1");
        assert!(a.required(2, "X").is_err());
        assert!(a.at_most(2).is_ok() && a.at_most(1).is_err());
        assert_eq!(parse(&["-h", "web"]).unwrap().value("--hostname"), Some("web"));
        assert_eq!(parse(&["--", "-x"]).unwrap().positional(), ["-x"]);
        let synonyms = parse(&["--network-alias", "a", "--net-alias=b", "--alias", "c"]).unwrap();
        assert_eq!(synonyms.values("--alias"), ["a", "b", "c"]);
    }

    #[test]
    fn what_is_not_known_is_refused_with_a_suggestion() {
        let err = |list: &[&str]| parse(list).unwrap_err().to_string();
        assert_eq!(
            err(&["create", "n", "-subnet", "10.0.0.0/8"]),
            "usage: unknown option -subnet; did you mean --subnet?"
        );
        assert!(err(&["-d", "overlay"]).contains("unknown option -d"));
        assert!(err(&["--bogus"]).contains("unknown option --bogus"));
        assert_eq!(err(&["--subnet", "a", "--subnet", "b"]), "usage: --subnet given twice; give it once");
        assert!(err(&["--subnet"]).contains("needs a value"));
        assert!(err(&["--internal=yes"]).contains("takes no value"));
    }
}
