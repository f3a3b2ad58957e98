"""The `vlm-tui` command line: the subcommand's flags -> its action, errors as one line.

Every bad value ends here as one line naming the flag and what it accepts, with exit code 2,
before anything is created or launched. The subcommands live in `vlm_tui/commands/`, one module
each, imported only when named.
"""

from __future__ import annotations

import os
import sys

from vlm_tui.commands import COMMANDS, DEFAULT, load
from vlm_tui.commands.common import USAGE_ERROR, spellings
from vlm_tui.core.errors import SetupError, UserError
from vlm_tui.core.request.settings import FIELDS_BY_NAME

# What a shell reports for a process ended by SIGPIPE, which is how `head` ends a writer.
CLOSED_PIPE = 128 + 13
# Errors about these are named as flags even though they are not form fields.
OWN_FLAGS = ("config", "theme", "dry_run", "resume", "detach", "skip_bad_rows")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    named = args[0] if args[:1] and args[0] in COMMANDS and args[0] != DEFAULT else None
    command = load(named or DEFAULT)
    options = command.build_parser().parse_args(args[1:] if named else args)
    try:
        code = int(command.execute(options))
        # Inside the try: with buffered output a closed pipe only shows up at this flush.
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # `vlm-tui runs | head`: the reader has gone, which is no error of ours. stdout now
        # points at /dev/null so the flush at exit cannot fail again; a run being followed
        # goes on under its supervisor, as when a terminal closes.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return CLOSED_PIPE
    except UserError as error:
        # Our own settings are named as flags; axolotl's keys as they appear in the YAML.
        known = error.field in FIELDS_BY_NAME or error.field in OWN_FLAGS
        flag = spellings(error.field)[0] if known else error.field
        if error.field == "run":
            flag = "RUN"
        print(f"vlm-tui: error: {flag}: {error.message}", file=sys.stderr)
        return USAGE_ERROR
    except SetupError as error:
        print(f"vlm-tui: error: {error}", file=sys.stderr)
        return 1
