"""The CoreOS walkthrough, fleetpy style: example units, scripts/docker-run.sh, the Vagrant cluster, the lab run."""
