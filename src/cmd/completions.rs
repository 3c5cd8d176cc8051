//! `quarry completions SHELL`: the shell completion script of the whole command line, generated
//! by `clap_complete` from the same clap definition that parses it, so it cannot drift.

use clap_complete::Shell;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to complete for: bash, zsh, fish, elvish or powershell.
    pub shell: Shell,
}

/// Writes the completion script of `command` for `args.shell` on stdout.
pub(crate) fn run(mut command: clap::Command, args: Args) -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut command, "quarry", &mut out);
    super::emit(&String::from_utf8(out)?);
    Ok(())
}
