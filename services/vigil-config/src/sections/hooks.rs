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
}

#[derive(Clone, Debug, PartialEq)]
pub struct HookConfig {
    pub name: String,
    pub command: PathBuf,
    pub args: Vec<String>,
}

pub(crate) fn check(c: &mut Checker, files: Vec<HookFile>) -> Vec<HookConfig> {
    c.each("hooks", files, hook)
}

fn hook(c: &mut Checker, at: &At, h: HookFile) -> Option<HookConfig> {
    let name = c.name(&at.key("name"), h.name, "hook");
    let fix = "set `command` to the program that reads alerts on its stdin";
    let command = c.required(&at.key("command"), h.command, fix);
    Some(HookConfig {
        name: name?,
        command: command?,
        args: h.args,
    })
}
