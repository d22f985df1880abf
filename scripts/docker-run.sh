#!/usr/bin/env bash
# docker-run.sh: the walkthrough's container launcher, for a systemd unit's ExecStart.
#
#   docker-run.sh --name NAME [docker run options...] IMAGE [COMMAND [ARG...]]
#
# If a container called NAME exists (running or stopped), it is started again and attached to
# (`docker start -a NAME`); otherwise `docker run ARGS...` creates it. Either way docker stays in the foreground
# (no -d), so the unit's main process lives as long as the container, systemd sees its exit status, and its
# output goes to the journal. Stop it with `ExecStop=/usr/bin/docker stop NAME`.
#
# - Every argument is passed to docker unchanged (kept as an array: spaces and quotes survive).
# - The name is the first `--name NAME` or `--name=NAME` among the arguments: put it before the image.
# - The existence check is exact: `docker ps -a` filtered on ^/NAME$ (dots escaped), then compared as strings.
# - No sudo: the unit runs as root. docker is exec'ed last, so its exit code is the script's exit code.
# - Without --name: a usage line on stderr, exit 2. docker missing or its daemon down: docker's own exit code.
set -euo pipefail

prog=${0##*/}
usage() {
    echo "usage: $prog --name NAME [docker run options...] IMAGE [COMMAND [ARG...]]" >&2
    exit 2
}

case "${1:-}" in
    -h | --help)
        echo "usage: $prog --name NAME [docker run options...] IMAGE [COMMAND [ARG...]]"
        exit 0
        ;;
esac

name=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
        --name)
            ((i + 1 < ${#args[@]})) || usage
            name=${args[i + 1]}
            break
            ;;
        --name=*)
            name=${args[i]#--name=}
            break
            ;;
    esac
done
[[ -n "$name" ]] || usage
# Docker's own rule for container names; it also keeps the name safe inside the filter's regular expression.
if [[ ! "$name" =~ ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$ ]]; then
    echo "$prog: invalid container name: '$name'" >&2
    exit 2
fi

pattern="^/${name//./\\.}\$"
found=$(docker ps -a --filter "name=$pattern" --format '{{.Names}}') || {
    rc=$?
    echo "$prog: 'docker ps' failed (exit $rc)" >&2
    exit "$rc"
}
while IFS= read -r existing; do
    if [[ "$existing" == "$name" ]]; then
        exec docker start -a "$name"
    fi
done <<<"$found"

exec docker run "${args[@]}"
