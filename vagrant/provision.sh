#!/usr/bin/env bash
# Provision one fleetpy machine of the Vagrant cluster (run as root by the Vagrantfile's shell provisioner).
#
#   provision.sh INDEX COUNT IP1 [IP2 ...]
#   provision.sh --print-config INDEX COUNT IP1 [IP2 ...]   # print the etcd and fleetpyd config it would write
#
# INDEX is this machine's number (1-based), COUNT the number of machines, IP1..IPn every machine's private address
# in order (this one is IP<INDEX>). Optional environment:
#   FLEETPY_METADATA  fleetpyd metadata for this machine (default: role=db on n1, role=web elsewhere, plus node=nX)
#   FLEETPY_SRC       where the repository is synced (default /vagrant)
#
# What it does (idempotent: `vagrant provision` again is safe):
#   1. etcd-server as one member of a COUNT-member cluster on the private network, v2 API on (--enable-v2);
#      listening on the private address and on 127.0.0.1:2379.
#   2. docker.io, with its bridge moved off 172.17.0.0/16 (that range holds the cluster's 172.17.8.0/24).
#   3. fleetpy in a venv (/opt/fleetpy/venv, from a copy of FLEETPY_SRC), `fleetpy`/`fleetpyd` in /usr/local/bin.
#   4. /etc/fleet/fleet.conf (etcd_servers with the local member first, metadata, public_ip).
#   5. units/fleetpyd.service as /etc/systemd/system/fleetpyd.service; scripts/docker-run.sh as /opt/bin/docker-run.sh
#      (the walkthrough's units call it there).
#   6. starts etcd, docker and fleetpyd without waiting: etcd only becomes ready once a majority of the members runs,
#      and `vagrant up` boots the machines one after another.
set -euo pipefail

usage() {
    echo "usage: ${0##*/} [--print-config] INDEX COUNT IP1 [IP2 ...]" >&2
    exit 2
}

print_only=false
if [[ "${1:-}" == --print-config ]]; then
    print_only=true
    shift
fi
[[ $# -ge 3 ]] || usage
index=$1
count=$2
shift 2
ips=("$@")
[[ "$index" =~ ^[1-9][0-9]*$ && "$count" =~ ^[1-9][0-9]*$ ]] || usage
if ((index > count || ${#ips[@]} != count)); then
    echo "${0##*/}: need INDEX <= COUNT and exactly COUNT addresses (got INDEX=$index COUNT=$count, ${#ips[@]} addresses)" >&2
    exit 2
fi

for a in "${ips[@]}"; do
    if [[ ! "$a" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; then
        echo "${0##*/}: not an IPv4 address: '$a'" >&2
        exit 2
    fi
done

name="n$index"
ip=${ips[index - 1]}
src=${FLEETPY_SRC:-/vagrant}
if ((index == 1)); then role=db; else role=web; fi
metadata=${FLEETPY_METADATA:-role=$role,node=$name}
export DEBIAN_FRONTEND=noninteractive

log() { echo "provision[$name]: $*"; }

# etcd: the peer list, this machine's client URLs first in etcd_servers.
initial_cluster=""
etcd_servers="http://$ip:2379"
for ((i = 0; i < count; i++)); do
    initial_cluster+="${initial_cluster:+,}n$((i + 1))=http://${ips[i]}:2380"
    if ((i != index - 1)); then etcd_servers+=",http://${ips[i]}:2379"; fi
done

etcd_env() {
    cat <<CONF
# Written by fleetpy's vagrant/provision.sh
ETCD_NAME=$name
ETCD_DATA_DIR=/var/lib/etcd/default
ETCD_LISTEN_PEER_URLS=http://$ip:2380
ETCD_LISTEN_CLIENT_URLS=http://$ip:2379,http://127.0.0.1:2379
ETCD_ADVERTISE_CLIENT_URLS=http://$ip:2379
ETCD_INITIAL_ADVERTISE_PEER_URLS=http://$ip:2380
ETCD_INITIAL_CLUSTER=$initial_cluster
ETCD_INITIAL_CLUSTER_STATE=new
ETCD_INITIAL_CLUSTER_TOKEN=fleetpy-vagrant
ETCD_ENABLE_V2=true
CONF
}

fleet_conf() {
    cat <<CONF
# Written by fleetpy's vagrant/provision.sh
etcd_servers=$etcd_servers
metadata=$metadata
public_ip=$ip
CONF
}

if $print_only; then
    echo "# /etc/default/etcd"
    etcd_env
    echo "# /etc/fleet/fleet.conf"
    fleet_conf
    exit 0
fi

# Nothing below runs anywhere but on a machine with the repository synced in (a Vagrant VM).
if [[ ! -f "$src/units/fleetpyd.service" || ! -f "$src/scripts/docker-run.sh" ]]; then
    echo "${0##*/}: $src does not hold the fleetpy repository (set FLEETPY_SRC): refusing to provision" >&2
    exit 1
fi
if ((EUID != 0)); then
    echo "${0##*/}: must run as root" >&2
    exit 1
fi

hostnamectl set-hostname "$name"
if ! grep -q "^127.0.1.1 $name\$" /etc/hosts; then
    sed -i '/^127\.0\.1\.1 /d' /etc/hosts
    echo "127.0.1.1 $name" >>/etc/hosts
fi

log "etcd member $name of: $initial_cluster"
# /etc/default/etcd is written before the package is installed (--force-confold keeps it), and policy-rc.d keeps
# the package from starting a throwaway single-member etcd whose data dir would then refuse to join the cluster.
etcd_env >/etc/default/etcd

mkdir -p /etc/docker
if [[ ! -e /etc/docker/daemon.json ]]; then
    echo '{"bip": "10.254.0.1/24"}' >/etc/docker/daemon.json
fi

log "installing packages"
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod 0755 /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold \
    etcd-server etcd-client docker.io curl rsync ca-certificates \
    python3-venv python3-dev build-essential pkg-config libdbus-1-dev libglib2.0-dev
rm -f /usr/sbin/policy-rc.d

# A member that has not joined yet waits for a majority; let its start job wait as long as that takes.
mkdir -p /etc/systemd/system/etcd.service.d
cat >/etc/systemd/system/etcd.service.d/fleetpy.conf <<'CONF'
[Service]
TimeoutStartSec=infinity
Restart=on-failure
RestartSec=5
CONF

log "installing fleetpy from $src"
mkdir -p /opt/fleetpy
rsync -a --delete --exclude .git/ --exclude .venv/ --exclude .lab/ --exclude .vagrant/ --exclude '*.egg-info/' \
    --exclude build/ --exclude __pycache__/ "$src/" /opt/fleetpy/src/
[[ -x /opt/fleetpy/venv/bin/pip ]] || python3 -m venv /opt/fleetpy/venv
/opt/fleetpy/venv/bin/pip install -q --upgrade pip
/opt/fleetpy/venv/bin/pip install -q /opt/fleetpy/src
ln -sf /opt/fleetpy/venv/bin/fleetpy /usr/local/bin/fleetpy
ln -sf /opt/fleetpy/venv/bin/fleetpyd /usr/local/bin/fleetpyd

mkdir -p /etc/fleet
fleet_conf >/etc/fleet/fleet.conf

install -D -m 0755 "$src/scripts/docker-run.sh" /opt/bin/docker-run.sh
install -m 0644 "$src/units/fleetpyd.service" /etc/systemd/system/fleetpyd.service

systemctl daemon-reload
systemctl enable etcd.service docker.service fleetpyd.service
systemctl restart --no-block etcd.service
systemctl start --no-block docker.service
systemctl restart --no-block fleetpyd.service
log "done: etcd, docker and fleetpyd started (etcd waits for a majority of the $count members)"
