//! `[[hooks]]`: programs that alertd feeds alerts to, one JSON line each.

use std::path::PathBuf;

use serde::Deserialize;

use crate::check::{At, Checker};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HookFile {
    name: Option<String>,
    command: Option<PathBuf>,
    #[serde(default)]
    args: Vec<String>,
    socket: Option<PathBuf>,
}

/// Where a hook's alerts go.
#[derive(Clone, Debug, PartialEq)]
pub enum HookTarget {
    /// alertd starts the program itself, as a child: it runs with alertd's
    /// uid and sandbox.
    Command { command: PathBuf, args: Vec<String> },
    /// A Unix stream socket someone else listens on (NixOS: a systemd
    /// socket with `Accept=yes`, whose service runs the program as the hook
    /// user with the connection as its stdin): alertd connects and writes
    /// the same JSON lines. The program runs under a uid of its own, so a
    /// compromised hook has none of alertd's rights.
    Socket(PathBuf),
}

#[derive(Clone, Debug, PartialEq)]
pub struct HookConfig {
    pub name: String,
    pub target: HookTarget,
}

impl HookConfig {
    /// The program or socket, for log lines.
    pub fn describe(&self) -> String {
        match &self.target {
            HookTarget::Command { command, .. } => command.display().to_string(),
            HookTarget::Socket(path) => format!("socket {}", path.display()),
        }
    }
}

pub(crate) fn check(c: &mut Checker, files: Vec<HookFile>) -> Vec<HookConfig> {
    c.each("hooks", files, hook)
}

fn hook(c: &mut Checker, at: &At, h: HookFile) -> Option<HookConfig> {
    let name = c.name(&at.key("name"), h.name, "hook");
    let target = match (h.command, h.socket) {
        (Some(command), None) => Some(HookTarget::Command {
            command,
            args: h.args,
        }),
        (None, Some(socket)) => {
            if !h.args.is_empty() {
                c.report(
                    at.key("args"),
                    "`args` belong to a `command`; a socket's listener runs the program",
                    "give the arguments to whoever listens on the socket, or use `command`",
                );
            }
            if !socket.is_absolute() {
                c.report(
                    at.key("socket"),
                    format!("{} is a relative path", socket.display()),
                    "use an absolute path",
                );
            }
            Some(HookTarget::Socket(socket))
        }
        (Some(_), Some(_)) => {
            c.report(
                at.key("socket"),
                "a hook has either a `command` or a `socket`, not both",
                "keep `command` (alertd starts it) or `socket` (someone else runs it)",
            );
            None
        }
        (None, None) => {
            c.report(
                at.key("command"),
                "missing",
                "set `command` to the program that reads alerts on its stdin, or `socket` to \
                 where its listener waits",
            );
            None
        }
    };
    Some(HookConfig {
        name: name?,
        target: target?,
    })
}
