"""`ctl completion bash|zsh`: the shell completion script, from click's own completion support.

    source <(ctl completion bash)                  # in ~/.bashrc
    ctl completion zsh > "${fpath[1]}/_ctl"        # zsh

The script calls `ctl` back with `_CTL_COMPLETE=bash_complete` (or zsh_complete) set;
click answers with the commands, options and arguments that fit the words typed so far.
"""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> int:
    """Print the shell completion script for bash, zsh or fish."""
    root = ctx.find_root()
    cls = get_completion_class(shell)
    if cls is None:      # click always has these three
        raise click.UsageError(f"no completion for {shell}")
    script = cls(root.command, {}, root.info_name or "ctl", "_CTL_COMPLETE").source()
    click.echo(script)
    return 0
