"""Create (or update) a RabbitMQ user with the least-privilege permissions of one role.

    python tools/rabbitmq/broker_users.py ROLE USER [--queue QUEUE] [--vhost VHOST]
        [--rabbitmqctl "rabbitmqctl -n rabbit@host"] [--print]

ROLE is submitter, worker (needs --queue: the pool's queue, ``provider.jobs`` or
``provider.jobs.<namespace>.<pool>``), autoscaler or admin; the regexes come from
``itl_controlplane_sdk.contract.permissions`` and are documented in docs/security.md. The
password is read from the ITL_BROKER_PASSWORD variable or standard input and handed to
rabbitmqctl on its standard input, never on a command line (``ps`` would show it).
``--print`` only prints the rabbitmqctl commands. The vhost must exist.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys

from itl_controlplane_sdk.contract.permissions import ROLES, Permissions, for_role


def commands(user: str, vhost: str, permissions: Permissions) -> list[list[str]]:
    """The rabbitmqctl argument lists (after the password has been set)."""
    return [
        [
            "set_permissions",
            "-p",
            vhost,
            user,
            permissions.configure,
            permissions.write,
            permissions.read,
        ],
        ["set_user_tags", user, *permissions.tags],
    ]


def _run(ctl: list[str], args: list[str], stdin: str | None = None) -> tuple[int, str]:
    done = subprocess.run(
        [*ctl, *args], input=stdin, capture_output=True, text=True, timeout=120, check=False
    )
    return done.returncode, (done.stderr.strip() or done.stdout.strip())


def _must(ctl: list[str], args: list[str], stdin: str | None = None) -> None:
    code, output = _run(ctl, args, stdin)
    if code != 0:
        sys.exit(f"rabbitmqctl {args[0]} failed: {output}")


def apply(ctl: list[str], user: str, password: str, vhost: str, permissions: Permissions) -> None:
    code, output = _run(ctl, ["add_user", user], stdin=password)
    if code != 0:
        if "already exists" not in output:
            sys.exit(f"rabbitmqctl add_user failed: {output}")
        _must(ctl, ["change_password", user], stdin=password)
    for args in commands(user, vhost, permissions):
        _must(ctl, args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("role", choices=ROLES)
    parser.add_argument("user")
    parser.add_argument("--queue", help="the pool's job queue (worker only)")
    parser.add_argument("--vhost", default="/")
    parser.add_argument("--rabbitmqctl", default="rabbitmqctl", help="command to run rabbitmqctl")
    parser.add_argument("--print", action="store_true", help="print the commands, change nothing")
    args = parser.parse_args(argv)
    try:
        permissions = for_role(args.role, args.queue)
    except ValueError as exc:
        parser.error(str(exc))
    if args.print:
        print(f"rabbitmqctl add_user {shlex.quote(args.user)}   # password on stdin")
        for command in commands(args.user, args.vhost, permissions):
            print(shlex.join(["rabbitmqctl", *command]))
        return 0
    password = os.environ.get("ITL_BROKER_PASSWORD") or sys.stdin.readline().rstrip("\n")
    if not password:
        parser.error("no password: set ITL_BROKER_PASSWORD or pass it on standard input")
    apply(shlex.split(args.rabbitmqctl), args.user, password, args.vhost, permissions)
    print(f"{args.user}: {args.role} on vhost {args.vhost}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
