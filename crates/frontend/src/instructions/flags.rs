//! BuildKit's instruction flag rules (`BFlags`): which `--name[=value]`
//! words an instruction accepts, and how each kind of flag reads its value.

use std::collections::BTreeMap;

use super::suggest::closest;
use super::Problem;

/// How a flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `--link`, `--link=true`, `--link=false` (case-insensitive).
    Bool,
    /// `--chown=VALUE`; given at most once.
    String,
    /// `--mount=VALUE`; may repeat, every value is kept in order.
    Strings,
}

/// The flags an instruction accepts and the values it was given.
pub(crate) struct Flags {
    command: &'static str,
    known: Vec<(&'static str, Kind)>,
    values: BTreeMap<&'static str, Vec<String>>,
}

impl Flags {
    /// Checks `given` (as the parser left them: `--name=value`, unquoted)
    /// against `known`, in source order, stopping at the first problem as
    /// BuildKit does.
    pub(crate) fn parse(
        command: &'static str,
        known: &[(&'static str, Kind)],
        given: &[String],
    ) -> Result<Flags, Problem> {
        let mut flags = Flags {
            command,
            known: known.to_vec(),
            values: BTreeMap::new(),
        };
        for word in given {
            flags.take(word)?;
        }
        Ok(flags)
    }

    fn take(&mut self, word: &str) -> Result<(), Problem> {
        let body = word.strip_prefix("--").unwrap_or(word);
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let needle = format!("--{name}");
        let Some(&(known_name, kind)) = self.known.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = self.known.iter().map(|(n, _)| *n).collect();
            let mut problem =
                Problem::new(format!("unknown flag --{name} for {}", self.command)).needle(&needle);
            problem = match closest(name, &names, true) {
                Some(best) => problem.help(format!("did you mean --{best}?")),
                None if names.is_empty() => {
                    problem.help(format!("{} takes no flags", self.command))
                }
                None => problem.help(format!(
                    "{} accepts {}",
                    self.command,
                    names
                        .iter()
                        .map(|n| format!("--{n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            };
            return Err(problem);
        };
        let entry = self.values.entry(known_name).or_default();
        if !entry.is_empty() && kind != Kind::Strings {
            return Err(
                Problem::new(format!("duplicate flag --{name} for {}", self.command))
                    .needle(&needle)
                    .help("give the flag only once"),
            );
        }
        let value = match (kind, value) {
            (Kind::Bool, None) => "true".to_string(),
            (Kind::Bool, Some("")) | (Kind::String | Kind::Strings, None) => {
                return Err(Problem::new(format!(
                    "missing a value on flag --{name} for {}",
                    self.command
                ))
                .needle(&needle)
                .help(format!("write it as --{name}=VALUE")));
            }
            (Kind::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                l @ ("true" | "false") => l.to_string(),
                _ => {
                    return Err(Problem::new(format!(
                        "expecting boolean value for flag --{name}, not: {v}"
                    ))
                    .needle(&needle)
                    .help(format!("use --{name}, --{name}=true or --{name}=false")))
                }
            },
            (_, Some(v)) => v.to_string(),
        };
        entry.push(value);
        Ok(())
    }

    /// The value of a string flag, if given.
    pub(crate) fn string(&self, name: &str) -> Option<String> {
        self.values.get(name).and_then(|v| v.first().cloned())
    }

    /// Every value of a repeatable flag, in source order.
    pub(crate) fn strings(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }

    /// A bool flag: `None` when absent, else its value.
    pub(crate) fn bool_opt(&self, name: &str) -> Option<bool> {
        self.string(name).map(|v| v == "true")
    }

    /// A bool flag, false when absent.
    pub(crate) fn bool(&self, name: &str) -> bool {
        self.bool_opt(name).unwrap_or(false)
    }
}
